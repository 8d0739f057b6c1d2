"""How credentials are named where they have no ID of their own (client secrets, keys).

A technical-user secret is ``pwd-<user ID>-<10 hex>`` (the MPL named a password that way
before secrets became rows, so old messages still name the migrated secret), a certificate
is its ``crt-…`` ID; a client secret or key is named after its client.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid


def new_secret_id(user_id: str) -> str:
    """A fresh ID for a technical-user secret: ``pwd-<user ID>-<10 random hex>``."""
    return f"pwd-{user_id}-{secrets.token_hex(5)}"


def legacy_secret_id(user_id: str, password_hash: str | None) -> str:
    """The name a password had before secrets were rows: ``pwd-<user>-<10 hex of its hash>``
    (``access.snapshot.password_credential_id``; the migration keeps it)."""
    digest = hashlib.sha256((password_hash or "").encode()).hexdigest()[:10]
    return f"pwd-{user_id}-{digest}"


def client_secret_id(client_id: str, secret_row: uuid.UUID) -> str:
    """An OAuth client secret: ``<client ID>.s-<8 hex of its row>``."""
    return f"{client_id}.s-{secret_row.hex[:8]}"


def client_key_id(client_id: str, kid: str) -> str:
    """A client key for ``private_key_jwt``: ``<client ID>.k-<kid>``."""
    return f"{client_id}.k-{kid[:64]}"
