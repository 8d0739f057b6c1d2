"""A per-process snapshot of all grants, for deciding without a database query.

Each process polls the grants version (one row) every ``interval`` seconds in a
background thread and reloads the snapshot when it moved. That makes a change visible
to every worker and node within ``interval`` plus one reload (well under 1 s), on SQLite
(several workers on one file) and PostgreSQL (several processes on several machines)
alike, without a per-request query.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ostiary.access import versions
from ostiary.access.decision import Grants
from ostiary.access.models import RoleCollection, RoleCollectionAssignment, RoleCollectionRole
from ostiary.identity.models import User, UserKind, UserStatus
from ostiary.tenancy.models import Member, Subaccount

log = logging.getLogger("ostiary.access")


@dataclass(frozen=True)
class UserFacts:
    """What the snapshot knows of one user."""

    id: uuid.UUID
    user_id: str
    kind: UserKind
    status: UserStatus
    is_platform_admin: bool


@dataclass(frozen=True)
class GrantSnapshot:
    """Users, sub-accounts, member roles and application roles at one grants version."""

    version: int
    users: dict[str, UserFacts] = field(default_factory=dict)
    subaccounts: dict[str, uuid.UUID] = field(default_factory=dict)
    member_roles: dict[tuple[uuid.UUID, uuid.UUID], frozenset[str]] = field(default_factory=dict)
    roles: dict[tuple[uuid.UUID, uuid.UUID], dict[str, frozenset[str]]] = field(
        default_factory=dict
    )

    def grants(self, *, user_id: str, subdomain: str) -> Grants | None:
        """The grants of a user in a sub-account; ``None`` if either is unknown."""
        user = self.users.get(user_id)
        subaccount = self.subaccounts.get(subdomain)
        if user is None or subaccount is None:
            return None
        key = (user.id, subaccount)
        return Grants(
            user_id=user.user_id,
            status=user.status,
            is_platform_admin=user.is_platform_admin,
            subdomain=subdomain,
            member_roles=self.member_roles.get(key, frozenset()),
            roles=self.roles.get(key, {}),
        )


def load(session: Session) -> GrantSnapshot:
    """Read the whole snapshot in one transaction."""
    version = versions.current(session)
    users = {
        u.user_id: UserFacts(u.id, u.user_id, u.kind, u.status, u.is_platform_admin)
        for u in session.execute(
            select(User.id, User.user_id, User.kind, User.status, User.is_platform_admin)
        ).all()
    }
    subaccounts = {s: i for i, s in session.execute(select(Subaccount.id, Subaccount.subdomain))}
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
    return GrantSnapshot(
        version=version,
        users=users,
        subaccounts=subaccounts,
        member_roles=member_roles,
        roles={k: {r: frozenset(c) for r, c in v.items()} for k, v in roles.items()},
    )


class SnapshotCache:
    """Holds the current snapshot and keeps it fresh from a background thread."""

    def __init__(self, sessions: sessionmaker[Session], *, interval: float = 0.2) -> None:
        self._sessions = sessions
        self._interval = interval
        self._snapshot: GrantSnapshot | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def get(self) -> GrantSnapshot:
        """The current snapshot (loaded on first use)."""
        snapshot = self._snapshot
        if snapshot is None:
            return self.refresh()
        return snapshot

    def refresh(self) -> GrantSnapshot:
        """Reload now if the version moved (or nothing is loaded yet)."""
        with self._lock:
            with self._sessions() as session, session.begin():
                version = versions.current(session)
                if self._snapshot is not None and self._snapshot.version == version:
                    return self._snapshot
                self._snapshot = load(session)
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
