"""A per-process snapshot of all grants, for deciding without a database query.

Each process polls the grants version (one row) every ``interval`` seconds in a
background thread and reloads the snapshot when it moved. That makes a change visible
to every worker and node within ``interval`` plus one reload (well under 1 s), on SQLite
(several workers on one file) and PostgreSQL (several processes on several machines)
alike, without a per-request query.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ostiary.access import versions
from ostiary.access.certificate_facts import CertificateModel, load_certificates
from ostiary.access.decision import Grants
from ostiary.access.models import RoleCollection, RoleCollectionAssignment, RoleCollectionRole
from ostiary.identity.models import User, UserKind, UserStatus
from ostiary.tenancy.models import Member, Subaccount

if TYPE_CHECKING:
    from ostiary.oauth.models import AuthMethod

log = logging.getLogger("ostiary.access")


@dataclass(frozen=True)
class UserFacts:
    """What the snapshot knows of one user (the stored hash lets the runtime verify
    credentials without a query)."""

    id: uuid.UUID
    user_id: str
    kind: UserKind
    status: UserStatus
    is_platform_admin: bool
    password_hash: str | None = None
    #: How the MPL names the password credential as it is now (changes when it is reset);
    #: computed once per snapshot, not per runtime call.
    password_credential_id: str = ""
    #: When the password expires under the policy of the user's kind (``None``: never).
    password_expires_at: datetime | None = None


def password_credential_id(user_id: str, password_hash: str | None) -> str:
    """A stable name for a user's password credential: ``pwd-<user>-<10 hex of its hash>``."""
    digest = hashlib.sha256((password_hash or "").encode()).hexdigest()[:10]
    return f"pwd-{user_id}-{digest}"


@dataclass(frozen=True)
class FlowFacts:
    """What the runtime needs of one flow."""

    id: uuid.UUID
    path: str
    required_role: str
    auth: frozenset[str]
    mode: str
    receiver_url: str | None
    timeout_seconds: float
    max_bytes: int
    enabled: bool


@dataclass(frozen=True)
class SubaccountFacts:
    """What the runtime needs of one sub-account."""

    id: uuid.UUID
    subdomain: str
    basic_auth_allowed: bool


@dataclass(frozen=True)
class ClientFacts:
    """What the token endpoint and the runtime need of one OAuth client."""

    id: uuid.UUID
    client_id: str
    subdomain: str
    user_id: str
    active: bool
    expires_at: datetime | None
    #: (keyed hash, expiry) of each secret; two during an overlap rotation.
    secrets: tuple[tuple[str, datetime | None], ...]
    jwks: dict[str, Any] | None
    jwks_uri: str | None
    #: An RFC 8705 method (``tls_client_auth``, ``self_signed_tls_client_auth``) or ``None``.
    mtls_method: str | None = None
    #: ``tls_client_auth``: the registered subject DN (normalised RFC 4514).
    subject_dn: str | None = None
    #: ``self_signed_tls_client_auth``: SHA-256 (hex) of the pinned certificate.
    certificate_fingerprint: str | None = None


@dataclass(frozen=True)
class KeyFacts:
    """A signing key as the snapshot carries it (the private part still encrypted)."""

    kid: str
    alg: str
    public_jwk: dict[str, Any]
    private_encrypted: str
    signs_from: datetime
    published_until: datetime | None


@dataclass(frozen=True)
class GrantSnapshot:
    """Users, sub-accounts, member roles and application roles at one grants version."""

    version: int
    users: dict[str, UserFacts] = field(default_factory=dict)
    #: Persons' normalised e-mail → user ID, for Basic auth by e-mail.
    emails: dict[str, str] = field(default_factory=dict)
    subaccounts: dict[str, uuid.UUID] = field(default_factory=dict)
    subaccount_facts: dict[str, SubaccountFacts] = field(default_factory=dict)
    #: (subdomain, path) → flow.
    flows: dict[tuple[str, str], FlowFacts] = field(default_factory=dict)
    clients: dict[str, ClientFacts] = field(default_factory=dict)
    #: Newest first.
    keys: tuple[KeyFacts, ...] = ()
    #: jti → expiry of revoked, not yet expired access tokens.
    revoked: dict[str, datetime] = field(default_factory=dict)
    member_roles: dict[tuple[uuid.UUID, uuid.UUID], frozenset[str]] = field(default_factory=dict)
    roles: dict[tuple[uuid.UUID, uuid.UUID], dict[str, frozenset[str]]] = field(
        default_factory=dict
    )
    #: (user, sub-account) → every role collection assigned there, also those without roles.
    collections: dict[tuple[uuid.UUID, uuid.UUID], frozenset[str]] = field(default_factory=dict)
    #: (user, sub-account) → role collection → groups giving it there (issue 12).
    via_groups: dict[tuple[uuid.UUID, uuid.UUID], dict[str, frozenset[str]]] = field(
        default_factory=dict
    )
    #: (user, sub-account) → role collections assigned to the user itself, for users that
    #: also hold some through a group (absent: every collection is direct).
    direct: dict[tuple[uuid.UUID, uuid.UUID], frozenset[str]] = field(default_factory=dict)
    #: Client-certificate trust per sub-account and certificates by fingerprint (issue 10).
    certificates: CertificateModel = field(default_factory=CertificateModel)
    #: ``grants()`` answers, made once per (user, sub-account) and snapshot: the snapshot
    #: never changes, and building a ``Grants`` was ~3 % of a token request's CPU time.
    _grants: dict[tuple[str, str], Grants] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def find_user(self, identifier: str) -> UserFacts | None:
        """The user named by a user ID or a person's e-mail."""
        identifier = identifier.strip()
        if "@" in identifier:
            user_id = self.emails.get(identifier.lower())
            return self.users.get(user_id) if user_id else None
        return self.users.get(identifier.upper())

    def grants(self, *, user_id: str, subdomain: str) -> Grants | None:
        """The grants of a user in a sub-account; ``None`` if either is unknown."""
        made = self._grants.get((user_id, subdomain))
        if made is not None:
            return made
        user = self.users.get(user_id)
        subaccount = self.subaccounts.get(subdomain)
        if user is None or subaccount is None:
            return None  # not remembered: unknown names must not grow the cache
        key = (user.id, subaccount)
        made = Grants(
            user_id=user.user_id,
            status=user.status,
            is_platform_admin=user.is_platform_admin,
            subdomain=subdomain,
            member_roles=self.member_roles.get(key, frozenset()),
            roles=self.roles.get(key, {}),
            collections=self.collections.get(key, frozenset()),
            via_groups=self.via_groups.get(key, {}),
            direct=self.direct.get(key),
        )
        self._grants[(user_id, subdomain)] = made
        return made


#: Every column ``load`` reads, by table (tests/test_grants_version.py holds the two equal).
#: A transaction that inserts or deletes a row of one of these tables, or writes one of
#: these columns, moves the grants version by itself (access/versions.py); writes to
#: anything else (last use, descriptions, messages, audit events) reload nothing.
READ_MODEL: Mapping[str, frozenset[str]] = {
    "users": frozenset(
        {
            "id",
            "user_id",
            "kind",
            "status",
            "is_platform_admin",
            "password_hash",
            "email_normalized",
            "password_changed_at",
        }
    ),
    "password_policies": frozenset({"kind", "expiry_days"}),
    "subaccounts": frozenset({"id", "subdomain", "basic_auth_allowed"}),
    "flows": frozenset(
        {
            "id",
            "subaccount_id",
            "path",
            "description",
            "required_role",
            "auth",
            "mode",
            "receiver_url",
            "timeout_seconds",
            "max_bytes",
            "enabled",
            "created_at",
            "updated_at",
        }
    ),
    "members": frozenset({"user_id", "subaccount_id", "roles"}),
    "role_collections": frozenset({"id", "subaccount_id", "name"}),
    "role_collection_roles": frozenset({"collection_id", "role_name"}),
    "role_collection_assignments": frozenset({"user_id", "collection_id"}),
    # Issue 12 (groups/): membership and group role collections give grants.
    "groups": frozenset({"id", "name"}),
    "group_members": frozenset({"group_id", "user_id"}),
    "group_role_collection_assignments": frozenset({"group_id", "collection_id"}),
    "oauth_clients": frozenset(
        {
            "id",
            "client_id",
            "subaccount_id",
            "user_id",
            "status",
            "expires_at",
            "jwks",
            "jwks_uri",
            "token_endpoint_auth_method",
            "tls_client_auth_subject_dn",
            "certificate_fingerprint",
        }
    ),
    "oauth_client_secrets": frozenset({"client_id", "secret_hash", "expires_at"}),
    "signing_keys": frozenset(
        {
            "kid",
            "alg",
            "public_jwk",
            "private_key_encrypted",
            "created_at",
            "signs_from",
            "published_until",
        }
    ),
    "revoked_tokens": frozenset({"jti", "expires_at"}),
    # Issue 10 (access/certificate_facts.py); last use of a certificate is outside.
    "certificate_authorities": frozenset(
        {
            "id",
            "subaccount_id",
            "certificate_pem",
            "fingerprint_sha256",
            "subject_dn",
            "not_before",
            "not_after",
            "status",
            "trusted_until",
        }
    ),
    "certificates": frozenset(
        {
            "id",
            "certificate_id",
            "subaccount_id",
            "user_id",
            "source",
            "fingerprint_sha256",
            "not_before",
            "not_after",
            "certificate_pem",
            "trusted_ca_id",
            "status",
        }
    ),
    "trusted_cas": frozenset(
        {"id", "trusted_ca_id", "subaccount_id", "certificate_pem", "fingerprint_sha256"}
    ),
    "certificate_mapping_rules": frozenset(
        {"id", "rule_id", "subaccount_id", "trusted_ca_id", "subject_dn", "user_id"}
    ),
}


def load(session: Session) -> GrantSnapshot:
    """Read the whole snapshot in one transaction."""
    from ostiary.runtime.models import Flow

    version = versions.current(session)
    expiry = _expiry_days(session)
    users: dict[str, UserFacts] = {}
    emails: dict[str, str] = {}
    for u in session.execute(
        select(
            User.id,
            User.user_id,
            User.kind,
            User.status,
            User.is_platform_admin,
            User.password_hash,
            User.email_normalized,
            User.password_changed_at,
        )
    ):
        days = expiry.get(u.kind)
        users[u.user_id] = UserFacts(
            u.id,
            u.user_id,
            u.kind,
            u.status,
            u.is_platform_admin,
            u.password_hash,
            password_credential_id(u.user_id, u.password_hash),
            u.password_changed_at + timedelta(days=days)
            if days is not None and u.password_changed_at is not None
            else None,
        )
        if u.kind is UserKind.person and u.email_normalized:
            emails[u.email_normalized] = u.user_id
    facts = {
        row.subdomain: SubaccountFacts(row.id, row.subdomain, row.basic_auth_allowed)
        for row in session.execute(
            select(Subaccount.id, Subaccount.subdomain, Subaccount.basic_auth_allowed)
        )
    }
    subaccounts = {sd: fact.id for sd, fact in facts.items()}
    by_id = {fact.id: sd for sd, fact in facts.items()}
    flows = {
        (by_id[flow.subaccount_id], flow.path): FlowFacts(
            flow.id,
            flow.path,
            flow.required_role,
            frozenset(flow.auth),
            flow.mode.value,
            flow.receiver_url,
            flow.timeout_seconds,
            flow.max_bytes,
            flow.enabled,
        )
        for flow in session.scalars(select(Flow))
        if flow.subaccount_id in by_id
    }
    clients, keys, revoked = _load_oauth(session, by_id)
    member_roles = {
        (user_id, sub_id): frozenset(roles)
        for user_id, sub_id, roles in session.execute(
            select(Member.user_id, Member.subaccount_id, Member.roles)
        )
    }
    roles: dict[tuple[uuid.UUID, uuid.UUID], dict[str, set[str]]] = {}
    rows = session.execute(
        select(
            RoleCollectionAssignment.user_id,
            RoleCollection.subaccount_id,
            RoleCollectionRole.role_name,
            RoleCollection.name,
        )
        .join(RoleCollection, RoleCollection.id == RoleCollectionAssignment.collection_id)
        .join(RoleCollectionRole, RoleCollectionRole.collection_id == RoleCollection.id)
    )
    for user_id, sub_id, role_name, collection_name in rows:
        roles.setdefault((user_id, sub_id), {}).setdefault(role_name, set()).add(collection_name)
    collections: dict[tuple[uuid.UUID, uuid.UUID], set[str]] = {}
    for user_id, sub_id, collection_name in session.execute(
        select(
            RoleCollectionAssignment.user_id, RoleCollection.subaccount_id, RoleCollection.name
        ).join(RoleCollection, RoleCollection.id == RoleCollectionAssignment.collection_id)
    ):
        collections.setdefault((user_id, sub_id), set()).add(collection_name)
    via_groups, direct = _through_groups(session, roles, collections)
    return GrantSnapshot(
        version=version,
        users=users,
        emails=emails,
        subaccounts=subaccounts,
        subaccount_facts=facts,
        flows=flows,
        clients=clients,
        keys=keys,
        revoked=revoked,
        member_roles=member_roles,
        roles={k: {r: frozenset(c) for r, c in v.items()} for k, v in roles.items()},
        collections={k: frozenset(v) for k, v in collections.items()},
        via_groups=via_groups,
        direct=direct,
        certificates=load_certificates(
            session, by_id, {facts.id: facts.user_id for facts in users.values()}
        ),
    )


def _through_groups(
    session: Session,
    roles: dict[tuple[uuid.UUID, uuid.UUID], dict[str, set[str]]],
    collections: dict[tuple[uuid.UUID, uuid.UUID], set[str]],
) -> tuple[
    dict[tuple[uuid.UUID, uuid.UUID], dict[str, frozenset[str]]],
    dict[tuple[uuid.UUID, uuid.UUID], frozenset[str]],
]:
    """Add what members hold through their groups to ``roles`` and ``collections`` (in
    place); answer the group paths and, for those users, the directly held collections."""
    from ostiary.groups.models import Group, GroupAssignment, GroupMember

    held: dict[uuid.UUID, list[tuple[uuid.UUID, str, str, str | None]]] = {}
    for group_id, group_name, sub_id, collection_name, role_name in session.execute(
        select(
            GroupAssignment.group_id,
            Group.name,
            RoleCollection.subaccount_id,
            RoleCollection.name,
            RoleCollectionRole.role_name,
        )
        .join(Group, Group.id == GroupAssignment.group_id)
        .join(RoleCollection, RoleCollection.id == GroupAssignment.collection_id)
        .outerjoin(RoleCollectionRole, RoleCollectionRole.collection_id == RoleCollection.id)
    ):
        held.setdefault(group_id, []).append((sub_id, group_name, collection_name, role_name))
    paths: dict[tuple[uuid.UUID, uuid.UUID], dict[str, set[str]]] = {}
    direct: dict[tuple[uuid.UUID, uuid.UUID], frozenset[str]] = {}
    for group_id, user_id in session.execute(select(GroupMember.group_id, GroupMember.user_id)):
        for sub_id, group_name, collection_name, role in held.get(group_id, ()):
            key = (user_id, sub_id)
            if key not in direct:
                direct[key] = frozenset(collections.get(key, ()))
            paths.setdefault(key, {}).setdefault(collection_name, set()).add(group_name)
            collections.setdefault(key, set()).add(collection_name)
            if role is not None:
                roles.setdefault(key, {}).setdefault(role, set()).add(collection_name)
    via = {k: {c: frozenset(g) for c, g in v.items()} for k, v in paths.items()}
    return via, direct


def _expiry_days(session: Session) -> dict[UserKind, int | None]:
    """Password expiry in days per user kind: the stored policy, else the default."""
    from ostiary.identity.models import PasswordPolicy
    from ostiary.identity.policy import DEFAULTS

    days = {kind: defaults.expiry_days for kind, defaults in DEFAULTS.items()}
    for kind, expiry_days in session.execute(
        select(PasswordPolicy.kind, PasswordPolicy.expiry_days)
    ):
        days[kind] = expiry_days
    return days


def _load_oauth(
    session: Session, subdomains: dict[uuid.UUID, str]
) -> tuple[dict[str, ClientFacts], tuple[KeyFacts, ...], dict[str, datetime]]:
    from ostiary.oauth.models import (
        ClientSecret,
        ClientStatus,
        OAuthClient,
        RevokedToken,
        SigningKey,
    )

    secrets: dict[uuid.UUID, list[tuple[str, datetime | None]]] = {}
    for owner, digest, expires in session.execute(
        select(ClientSecret.client_id, ClientSecret.secret_hash, ClientSecret.expires_at)
    ):
        secrets.setdefault(owner, []).append((digest, expires))
    user_ids = {row.id: row.user_id for row in session.execute(select(User.id, User.user_id))}
    clients = {
        c.client_id: ClientFacts(
            c.id,
            c.client_id,
            subdomains.get(c.subaccount_id, ""),
            user_ids.get(c.user_id, ""),
            c.status is ClientStatus.active,
            c.expires_at,
            tuple(secrets.get(c.id, ())),
            c.jwks,
            c.jwks_uri,
            _mtls(c.token_endpoint_auth_method),
            c.tls_client_auth_subject_dn,
            c.certificate_fingerprint,
        )
        for c in session.execute(
            # Named columns, not the entity: last use (flushed every few seconds) and the
            # description are not part of the read model, so writing them bumps nothing.
            select(
                OAuthClient.id,
                OAuthClient.client_id,
                OAuthClient.subaccount_id,
                OAuthClient.user_id,
                OAuthClient.status,
                OAuthClient.expires_at,
                OAuthClient.jwks,
                OAuthClient.jwks_uri,
                OAuthClient.token_endpoint_auth_method,
                OAuthClient.tls_client_auth_subject_dn,
                OAuthClient.certificate_fingerprint,
            )
        )
    }
    keys = tuple(
        KeyFacts(
            k.kid, k.alg, k.public_jwk, k.private_key_encrypted, k.signs_from, k.published_until
        )
        for k in session.scalars(select(SigningKey).order_by(SigningKey.signs_from.desc()))
    )
    revoked = {
        row.jti: row.expires_at
        for row in session.execute(select(RevokedToken.jti, RevokedToken.expires_at))
    }
    return clients, keys, revoked


def _mtls(method: AuthMethod | None) -> str | None:
    """The RFC 8705 method of a client, ``None`` for the secret methods."""
    return method.value if method is not None and method.mutual_tls else None


class SnapshotCache:
    """Holds the current snapshot and keeps it fresh from a background thread."""

    def __init__(self, sessions: sessionmaker[Session], *, interval: float = 0.2) -> None:
        self._sessions = sessions
        self._interval = interval
        self._snapshot: GrantSnapshot | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wanted_generation = 0
        self._loaded_generation = 0
        self._generation_lock = threading.Lock()

    def get(self) -> GrantSnapshot:
        """The current snapshot (loaded on first use, and at once after a local change)."""
        snapshot = self._snapshot
        if snapshot is None or self._loaded_generation != self._wanted_generation:
            return self.refresh()
        return snapshot

    def peek(self) -> GrantSnapshot | None:
        """The snapshot held now, never loading (for callers that must not block, such as
        the TLS handshake's trust anchors); ``None`` before the first load."""
        return self._snapshot

    def mark_stale(self) -> None:
        """This process committed a change: the next ``get`` reloads before answering."""
        with self._generation_lock:
            self._wanted_generation += 1

    def refresh(self) -> GrantSnapshot:
        """Reload now if the version moved (or nothing is loaded yet).

        The generation is read under the lock *before* the version, so a change committed
        after this refresh began leaves the snapshot marked stale, and the next ``get``
        waits for a fresh one instead of returning this one.
        """
        with self._lock:
            generation = self._wanted_generation
            with self._sessions() as session, session.begin():
                version = versions.current(session)
                if self._snapshot is None or self._snapshot.version != version:
                    self._snapshot = load(session)
            self._loaded_generation = max(self._loaded_generation, generation)
            return self._snapshot

    def start(self) -> None:
        """Start polling in a daemon thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="grants-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def _poll(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.refresh()
            except Exception:  # the database may be briefly away; keep the last snapshot
                log.warning("could not refresh the grants snapshot", exc_info=True)
