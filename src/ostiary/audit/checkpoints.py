"""Signed checkpoints of the audit chain: ES256 over the head hash and the event count.

A checkpoint says "the chain had N events, the last with hash H", signed with a P-256 key
derived from ``OSTIARY_SECRET_KEY`` (so there is no key to store or lose; changing the
secret key starts a new chain anyway). Kept in ``audit_checkpoints`` and, for safekeeping
where nobody with database access can reach it, exported as a small JSON file: a cut tail
or a re-chain by someone holding the key shows against it (``verify``).

``write`` is what ``ostiary audit checkpoint`` and the scheduler call. It checks only the
events since the previous checkpoint, so running it every few minutes stays cheap, and it
refuses to sign a chain that is already broken.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ostiary.audit.models import AuditCheckpoint, AuditEvent
from ostiary.audit.service import lock_chain
from ostiary.audit.verify import Checkpoint, verify_from
from ostiary.errors import Conflict, InvalidInput

if TYPE_CHECKING:
    from ostiary.context import AppContext

__all__ = ["Checkpoint", "export", "latest", "load", "public_key_pem", "write"]

_TYPE = "ostiary-audit-checkpoint"
#: The order of P-256, for turning derived bytes into a private scalar in [1, n-1].
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def signing_key(secret_key: bytes) -> ec.EllipticCurvePrivateKey:
    """The checkpoint key: a P-256 scalar derived (HKDF-SHA256) from the secret key."""
    material = HKDF(
        algorithm=hashes.SHA256(), length=48, salt=b"ostiary-audit-checkpoints", info=b"es256"
    ).derive(secret_key)
    scalar = int.from_bytes(material, "big") % (_P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def public_key_pem(secret_key: bytes) -> str:
    """The public half, to verify exported checkpoints anywhere."""
    return (
        signing_key(secret_key)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _key_id(secret_key: bytes) -> str:
    der = (
        signing_key(secret_key)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return hashlib.sha256(der).hexdigest()[:16]


def _from_row(row: AuditCheckpoint) -> Checkpoint:
    return Checkpoint(
        created_at=row.created_at,
        event_count=row.event_count,
        head_event_id=row.head_event_id,
        head_hash=row.head_hash,
    )


def latest(session: Session, ctx: AppContext) -> Checkpoint | None:
    """The newest stored checkpoint, its signature checked (raises if it fails)."""
    row = session.scalar(select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(1))
    if row is None:
        return None
    checkpoint = load(row.token, ctx)
    if checkpoint != _from_row(row):
        raise InvalidInput(f"stored checkpoint {row.id} differs from what it signed")
    return checkpoint


def write(session: Session, ctx: AppContext) -> AuditCheckpoint:
    """Sign the chain's current head, in the caller's transaction; refuses a broken chain."""
    lock_chain(session)  # the head must not move between reading and signing it
    previous = latest(session, ctx)
    check = verify_from(session, anchor=previous)
    if not check.ok:
        raise Conflict(f"the audit chain is broken, no checkpoint written: {check.reason}")
    head = session.scalar(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1))
    count = session.scalar(select(func.count()).select_from(AuditEvent)) or 0
    if count != check.events:  # verify_from counted from the anchor; both must agree
        raise Conflict(f"the audit chain holds {count} events, its links {check.events}")
    created_at = ctx.clock.now()
    claims: dict[str, Any] = {
        "typ": _TYPE,
        "iss": ctx.settings.public_url,
        "created_at": created_at.isoformat(),
        "count": count,
        "head_id": head.id if head else None,
        "head_hash": head.hash if head else "0" * 64,
    }
    token = jwt.encode(
        claims,
        signing_key(ctx.secret_key),
        algorithm="ES256",
        headers={"kid": _key_id(ctx.secret_key)},
    )
    row = AuditCheckpoint(
        created_at=created_at,
        event_count=count,
        head_event_id=claims["head_id"],
        head_hash=claims["head_hash"],
        token=token,
    )
    session.add(row)
    session.flush()
    return row


def export(row: AuditCheckpoint, ctx: AppContext) -> str:
    """The checkpoint as a JSON document to keep elsewhere (only ``checkpoint`` counts;
    the other fields are there to read, and the public key to check it without Ostiary)."""
    return json.dumps(
        {
            "checkpoint": row.token,
            "created_at": row.created_at.isoformat(),
            "event_count": row.event_count,
            "head_event_id": row.head_event_id,
            "head_hash": row.head_hash,
            "algorithm": "ES256",
            "public_key_pem": public_key_pem(ctx.secret_key),
        },
        indent=2,
    )


def load(document: str, ctx: AppContext) -> Checkpoint:
    """A checkpoint from an exported document (or a bare token), its ES256 signature
    checked under this installation's key, never under a key the document names."""
    document = document.strip()
    try:
        token = json.loads(document)["checkpoint"] if document.startswith("{") else document
        claims = jwt.decode(
            str(token),
            signing_key(ctx.secret_key).public_key(),
            algorithms=["ES256"],
            options={"require": ["typ", "count", "head_hash", "created_at"]},
        )
        if claims["typ"] != _TYPE:
            raise InvalidInput("not an Ostiary audit checkpoint")
        return Checkpoint(
            created_at=datetime.fromisoformat(claims["created_at"]).astimezone(UTC),
            event_count=int(claims["count"]),
            head_event_id=None if claims.get("head_id") is None else int(claims["head_id"]),
            head_hash=str(claims["head_hash"]),
        )
    except (ValueError, KeyError, TypeError, jwt.PyJWTError) as exc:
        raise InvalidInput(f"not a valid checkpoint of this installation: {exc}") from exc


def write_if_due(session: Session, ctx: AppContext, *, every: timedelta) -> AuditCheckpoint | None:
    """The scheduler's job: a checkpoint when events came after the newest one and that one
    is at least ``every`` old (or there is none); ``None`` when nothing is due."""
    previous = session.scalar(select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(1))
    head_id = session.scalar(select(func.max(AuditEvent.id)))
    if head_id is None:
        return None
    if previous is not None and (
        previous.head_event_id == head_id or ctx.clock.now() - previous.created_at < every
    ):
        return None
    return write(session, ctx)
