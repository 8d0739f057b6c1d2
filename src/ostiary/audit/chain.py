"""The keyed chain: what each audit event's MACs cover, and where the key comes from.

Every event stores two MACs, both HMAC-SHA256 under keys derived from ``OSTIARY_SECRET_KEY``:

- ``content_mac`` covers the event's content (time, actor, action, sub-account, target,
  detail);
- ``hash`` covers the previous event's ``hash`` and this event's ``content_mac``.

The chain therefore links MACs rather than contents. That is what lets erasure
(``service.pseudonymise``) replace a person's name or e-mail inside an event without
breaking the chain: the event keeps its ``content_mac`` and gains a ``redacted_mac``, a third
MAC over the original ``content_mac`` and the rewritten content. Without the key nobody can
compute any of the three, so an edited, forged or re-chained event is found at once; a
deleted one is found at the next event, whose ``prev_hash`` no longer follows. What a holder
of the key could still rewrite, the signed checkpoints (``checkpoints``) anchor.

The key rides on the session (``session.info``), put there by the application context's
session factories (``attach``), so no call site can forget it; a session without it
refuses to write or check the chain instead of writing an unkeyed event.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ostiary.crypto import KeyedHasher

GENESIS = "0" * 64
_INFO_KEY = "ostiary.audit.keys"


class AuditKeyMissing(RuntimeError):
    """A session without the audit key tried to write or check the audit chain (a bug:
    every session factory of the application context carries it)."""


@dataclass(frozen=True)
class Content:
    """The part of an event its ``content_mac`` covers."""

    occurred_at: datetime
    actor: str
    action: str
    subdomain: str | None
    target: str
    detail: dict[str, Any]

    def canonical(self) -> bytes:
        """One byte string per content: sorted keys, no spaces, times in ISO 8601."""
        return json.dumps(
            [
                self.occurred_at.isoformat(),
                self.actor,
                self.action,
                self.subdomain,
                self.target,
                self.detail,
            ],
            sort_keys=True,
            separators=(",", ":"),
            default=str,
        ).encode()


class ChainKeys:
    """The three MAC keys of the audit chain, derived from the installation secret."""

    def __init__(self, secret_key: bytes) -> None:
        self._content = KeyedHasher(secret_key, "audit-content")
        self._link = KeyedHasher(secret_key, "audit-chain")
        self._redaction = KeyedHasher(secret_key, "audit-redaction")

    def content_mac(self, content: Content) -> str:
        """The MAC of an event's content."""
        return self._content.hash(content.canonical().decode())

    def link(self, prev_hash: str, content_mac: str) -> str:
        """The event's ``hash``: the previous hash and this content's MAC, keyed."""
        return self._link.hash(f"{prev_hash}:{content_mac}")

    def redacted_mac(self, content_mac: str, content: Content) -> str:
        """The MAC that vouches for rewritten content of an event with ``content_mac``."""
        return self._redaction.hash(f"{content_mac}:{content.canonical().decode()}")

    def content_holds(
        self, content: Content, *, content_mac: str, redacted_mac: str | None
    ) -> bool:
        """Whether the stored content is the original or a keyed rewrite of it."""
        if hmac.compare_digest(self.content_mac(content), content_mac):
            return True
        return redacted_mac is not None and hmac.compare_digest(
            self.redacted_mac(content_mac, content), redacted_mac
        )


def attach(factory: sessionmaker[Session], secret_key: bytes) -> None:
    """Give every session of ``factory`` the chain keys."""
    info = dict(factory.kw.get("info") or {})
    info[_INFO_KEY] = ChainKeys(secret_key)
    factory.configure(info=info)


def keys_of(session: Session) -> ChainKeys:
    """The chain keys of ``session`` (raises if its factory was never attached)."""
    keys = session.info.get(_INFO_KEY)
    if not isinstance(keys, ChainKeys):
        raise AuditKeyMissing("this session carries no audit key (see ostiary.audit.chain)")
    return keys
