"""Last use per user and per credential, aggregated in memory and flushed every few
seconds: the hot paths never write a row just to say "used" (issue 11 item 4).

Keys name what was used: a user ID, ``client:{client_id}`` (an OAuth client),
``cert:{certificate_id}``, ``secret:{secret_id}`` (a technical user's secret) and
``client_secret:{credential_id}`` (one secret of a client), ``client_key:{credential_id}``
(one key of its JWK set); credentials also keep the
address of their newest use.
"""

from __future__ import annotations

import threading
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from ostiary.gate.principal import Method, Principal
from ostiary.identity.models import User, UserKind


class LastUse:
    """Newest use per user or credential since the last flush."""

    def __init__(self) -> None:
        self._seen: dict[str, datetime] = {}
        self._addresses: dict[str, str] = {}
        self._lock = threading.Lock()

    def touch(self, user_id: str, when: datetime) -> None:
        """Remember that ``user_id`` was used at ``when``."""
        with self._lock:
            if user_id not in self._seen or self._seen[user_id] < when:
                self._seen[user_id] = when

    def _touch_at(self, key: str, when: datetime, address: str) -> None:
        with self._lock:
            if key not in self._seen or self._seen[key] < when:
                self._seen[key] = when
                self._addresses[key] = address[:64]

    def touch_client_secret(self, credential_id: str, when: datetime, address: str) -> None:
        """Remember a use of one secret of an OAuth client (``naming.client_secret_id``)."""
        self._touch_at(f"client_secret:{credential_id}", when, address)

    def touch_client_key(self, credential_id: str, when: datetime, address: str) -> None:
        """Remember a use of one key of a client's JWK set (``naming.client_key_id``)."""
        self._touch_at(f"client_key:{credential_id}", when, address)

    def touch_principal(self, principal: Principal, when: datetime, address: str) -> None:
        """Remember a use of the caller and of the credential it proved itself with, at
        any entry point (runtime, admin API)."""
        credential = None
        if principal.method is Method.certificate and principal.credential_id:
            credential = f"cert:{principal.credential_id}"
        elif principal.method is Method.basic and principal.kind is UserKind.technical:
            credential = f"secret:{principal.credential_id}"
        user_id = principal.user_id
        with self._lock:  # once per request on the hot path: one lock for both
            if user_id not in self._seen or self._seen[user_id] < when:
                self._seen[user_id] = when
            if credential is not None and (
                credential not in self._seen or self._seen[credential] < when
            ):
                self._seen[credential] = when
                self._addresses[credential] = address[:64]

    def take_all(self) -> tuple[dict[str, datetime], dict[str, str]]:
        """Every use and the credentials' last addresses, forgetting them (one lock)."""
        with self._lock:
            seen, self._seen = self._seen, {}
            addresses, self._addresses = self._addresses, {}
        return seen, addresses

    @staticmethod
    def flush(
        session: Session, seen: dict[str, datetime], addresses: dict[str, str] | None = None
    ) -> None:
        """Write the newest use of each user and credential, never moving a time back."""
        from ostiary.certificates.models import Certificate
        from ostiary.credentials.models import TechnicalUserSecret
        from ostiary.oauth.models import OAuthClient

        for key, when in sorted(seen.items()):  # one order everywhere: no deadlocks
            address = (addresses or {}).get(key)
            kind, _, name = key.partition(":")
            if kind == "cert":
                session.execute(
                    update(Certificate)
                    .where(
                        Certificate.certificate_id == name,
                        or_(Certificate.last_used_at.is_(None), Certificate.last_used_at < when),
                    )
                    .values(last_used_at=when, last_address=address)
                )
            elif kind == "secret":
                session.execute(
                    update(TechnicalUserSecret)
                    .where(
                        TechnicalUserSecret.secret_id == name,
                        or_(
                            TechnicalUserSecret.last_used_at.is_(None),
                            TechnicalUserSecret.last_used_at < when,
                        ),
                    )
                    .values(last_used_at=when, last_address=address)
                )
            elif kind == "client_secret":
                _flush_client_secret(session, name, when, address)
            elif kind == "client_key":
                _flush_client_key(session, name, when, address)
            elif kind == "client":
                session.execute(
                    update(OAuthClient)
                    .where(
                        OAuthClient.client_id == name,
                        or_(OAuthClient.last_used_at.is_(None), OAuthClient.last_used_at < when),
                    )
                    .values(last_used_at=when)
                )
            else:
                session.execute(
                    update(User)
                    .where(
                        User.user_id == key,
                        or_(User.last_used_at.is_(None), User.last_used_at < when),
                    )
                    .values(last_used_at=when)
                )


def _flush_client_secret(
    session: Session, credential_id: str, when: datetime, address: str | None
) -> None:
    """A client secret is named ``<client ID>.s-<8 hex of its row>`` (``naming``)."""
    from ostiary.oauth.models import ClientSecret, OAuthClient

    client_id, _, prefix = credential_id.rpartition(".s-")
    rows = [
        row_id
        for row_id in session.scalars(
            select(ClientSecret.id)
            .join(OAuthClient, OAuthClient.id == ClientSecret.client_id)
            .where(OAuthClient.client_id == client_id)
        )
        if row_id.hex.startswith(prefix) and prefix
    ]
    if rows:
        session.execute(
            update(ClientSecret)
            .where(
                ClientSecret.id.in_(rows),
                or_(ClientSecret.last_used_at.is_(None), ClientSecret.last_used_at < when),
            )
            .values(last_used_at=when, last_address=address)
        )


def _flush_client_key(
    session: Session, credential_id: str, when: datetime, address: str | None
) -> None:
    """A client key is named ``<client ID>.k-<kid>`` (``naming``); keys fetched from a
    ``jwks_uri`` have no row and keep only the client's last use."""
    from ostiary.credentials.models import ClientKey
    from ostiary.oauth.models import OAuthClient

    client_id, _, kid = credential_id.partition(".k-")
    client = select(OAuthClient.id).where(OAuthClient.client_id == client_id).scalar_subquery()
    session.execute(
        update(ClientKey)
        .where(
            ClientKey.client_id == client,
            ClientKey.kid == kid,
            or_(ClientKey.last_used_at.is_(None), ClientKey.last_used_at < when),
        )
        .values(last_used_at=when, last_address=address)
    )
