"""Last use per user, aggregated in memory and flushed every few seconds: the hot path
never writes a row just to say "used"."""

from __future__ import annotations

import threading
from datetime import datetime

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from ostiary.identity.models import User


class LastUse:
    """Newest use per user ID (or ``client:{client_id}``) since the last flush."""

    def __init__(self) -> None:
        self._seen: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def touch(self, user_id: str, when: datetime) -> None:
        """Remember that ``user_id`` was used at ``when``."""
        with self._lock:
            if user_id not in self._seen or self._seen[user_id] < when:
                self._seen[user_id] = when

    def take(self) -> dict[str, datetime]:
        """Everything remembered, forgetting it."""
        with self._lock:
            seen, self._seen = self._seen, {}
        return seen

    @staticmethod
    def flush(session: Session, seen: dict[str, datetime]) -> None:
        """Write the newest use of each user, never moving a time backwards."""
        from ostiary.oauth.models import OAuthClient

        for user_id, when in sorted(seen.items()):  # one order everywhere: no deadlocks
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
