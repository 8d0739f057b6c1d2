"""Whether a secret key is the one a backup was made with, without putting the key in it.

The manifest holds an HMAC of a fixed text under the key (a key derived for this purpose
only), so it tells nothing about the key, and a restore can refuse a wrong key before it
loads a row instead of leaving keyed hashes and sealed signing keys that nothing opens.
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from ostiary import crypto
from ostiary.backup.errors import BackupError
from ostiary.certificates.models import CertificateAuthority
from ostiary.crypto import KeyedHasher, constant_time_equals
from ostiary.oauth.models import SigningKey

_PURPOSE = "backup-key-check"
_TEXT = "ostiary backup key check v1"


def key_check(secret_key: bytes) -> str:
    """The manifest's ``key_check`` for ``secret_key``."""
    return KeyedHasher(secret_key, _PURPOSE).hash(_TEXT)


def same_key(secret_key: bytes, check: str) -> bool:
    """Whether ``secret_key`` made ``check``."""
    return constant_time_equals(key_check(secret_key), check)


def keys_open(connection: Connection, secret_key: bytes, *, then: str) -> None:
    """Every sealed private key must open with ``secret_key`` (else no token could be signed
    or checked and no CA could issue); ``then`` says what a refusal means."""
    for blob in connection.execute(select(SigningKey.private_key_encrypted)).scalars():
        _open(secret_key, blob, crypto.SIGNING_KEYS, "a token signing key", then)
    for blob in connection.execute(select(CertificateAuthority.private_key_encrypted)).scalars():
        _open(secret_key, blob, crypto.CA_KEYS, "a sub-account CA key", then)


def _open(secret_key: bytes, blob: str, purpose: bytes, what: str, then: str) -> None:
    try:
        crypto.decrypt_private(secret_key, blob, purpose=purpose)
    except Exception as exc:  # InvalidTag or a damaged blob: both mean "cannot use it"
        raise BackupError(f"{what} does not open with the secret key; {then}") from exc
