"""Last use per user, aggregated in memory and flushed every few seconds: the hot path
never writes a row just to say "used"."""

from __future__ import annotations

import threading
from datetime import datetime

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from ostiary.identity.models import User


class LastUse:
    """Newest use per user ID (or ``client:{client_id}``, ``cert:{certificate_id}``) since
    the last flush."""

    def __init__(self) -> None:
        self._seen: dict[str, datetime] = {}
        self._addresses: dict[str, str] = {}
        self._lock = threading.Lock()

    def touch(self, user_id: str, when: datetime) -> None:
        """Remember that ``user_id`` was used at ``when``."""
        with self._lock:
            if user_id not in self._seen or self._seen[user_id] < when:
                self._seen[user_id] = when

    def touch_certificate(self, certificate_id: str, when: datetime, address: str) -> None:
        """Remember a use of a client certificate, and the address of its newest use."""
        key = f"cert:{certificate_id}"
        with self._lock:
            if key not in self._seen or self._seen[key] < when:
                self._seen[key] = when
                self._addresses[key] = address[:64]

    def take(self) -> dict[str, datetime]:
        """Everything remembered, forgetting it (see ``take_all``)."""
        with self._lock:
            seen, self._seen = self._seen, {}
        return seen

    def take_all(self) -> tuple[dict[str, datetime], dict[str, str]]:
        """Every use and the certificates' last addresses, forgetting them (one lock)."""
        with self._lock:
            seen, self._seen = self._seen, {}
            addresses, self._addresses = self._addresses, {}
        return seen, addresses

    @staticmethod
    def flush(
        session: Session, seen: dict[str, datetime], addresses: dict[str, str] | None = None
    ) -> None:
        """Write the newest use of each user, never moving a time backwards."""
        from ostiary.certificates.models import Certificate
        from ostiary.oauth.models import OAuthClient

        for user_id, when in sorted(seen.items()):  # one order everywhere: no deadlocks
            if user_id.startswith("cert:"):
                address = (addresses or {}).get(user_id)
                session.execute(
                    update(Certificate)
                    .where(
                        Certificate.certificate_id == user_id.removeprefix("cert:"),
                        or_(Certificate.last_used_at.is_(None), Certificate.last_used_at < when),
                    )
                    .values(last_used_at=when, last_address=address)
                )
                continue
            if user_id.startswith("client:"):
                session.execute(
                    update(OAuthClient)
                    .where(
                        OAuthClient.client_id == user_id.removeprefix("client:"),
                        or_(OAuthClient.last_used_at.is_(None), OAuthClient.last_used_at < when),
                    )
                    .values(last_used_at=when)
                )
                continue
            session.execute(
                update(User)
                .where(
                    User.user_id == user_id,
                    or_(User.last_used_at.is_(None), User.last_used_at < when),
                )
                .values(last_used_at=when)
            )
