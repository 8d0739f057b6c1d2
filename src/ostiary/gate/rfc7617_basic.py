"""RFC 7617 §2: the ``Basic`` authorization header, split into user-id and password."""

from __future__ import annotations

import base64
import binascii

from ostiary.errors import AuthenticationFailed


def parse_basic(header: str) -> tuple[str, str]:
    """Split a ``Basic`` authorization header into identifier and password, or raise
    ``AuthenticationFailed`` (an empty password counts as malformed)."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise AuthenticationFailed(reason="malformed basic header")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise AuthenticationFailed(reason="malformed basic header") from exc
    identifier, colon, password = decoded.partition(":")
    if not colon or not identifier:
        raise AuthenticationFailed(reason="malformed basic header")
    return identifier, password
