"""JWT access tokens in the RFC 9068 profile: issuing and validating.

Claims (§2.2): ``iss``, ``sub`` (the technical user's user ID), ``aud`` (the sub-account's
tenant, ``{issuer}/t/{subdomain}``), ``client_id``, ``exp``, ``iat``, ``nbf``, ``jti``,
``scope`` (the roles the token carries); header ``typ: at+jwt`` (§2.1), ES256.

Validation (§4) accepts exactly ES256 with a published ``kid`` of ours: ``alg: none``,
HMAC signed with our public key (algorithm confusion), unknown keys, wrong issuer or
audience, and expired or not-yet-valid tokens all fail. Verified tokens are cached until
their expiry, so PyJWT's ~150 µs decode is paid once per token, not per request;
revocation and current grants are checked on every use, outside the cache.

Issuing builds the compact JWS (RFC 7515 §7.1) itself: the token endpoint signs one token
per request, and PyJWT's ``encode`` spent ~20 µs around the ~25 µs ECDSA signature
(header JSON and base64 each time, key checks, a new encoder, DER to ``r || s``).
"""

from __future__ import annotations

import base64
import functools
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt

from ostiary.access.snapshot import GrantSnapshot, KeyFacts
from ostiary.crypto import random_bytes
from ostiary.oauth.errors import InvalidRequest, InvalidToken
from ostiary.oauth.keys import ALGORITHM, KeyRing
from ostiary.oauth.rfc8705_mtls import bound_thumbprint

TYPE = "at+jwt"
REQUIRED = ["exp", "iat", "iss", "sub", "aud", "jti", "client_id"]
# Compact JSON as PyJWT writes it, ASCII only; one encoder for every token.
_JSON = json.JSONEncoder(separators=(",", ":"))


def _b64(data: bytes) -> bytes:
    """base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _new_jti() -> str:
    """128 random bits in hex (``crypto.random_bytes``: no ``getrandom`` per token)."""
    return random_bytes(16).hex()


@functools.lru_cache(maxsize=32)
def _header(kid: str) -> bytes:
    """The encoded protected header of the tokens ``kid`` signs (RFC 9068 §2.1): the same
    for every token of a key, so it is encoded once per key."""
    return _b64(_JSON.encode({"alg": ALGORITHM, "kid": kid, "typ": TYPE}).encode())


def audience(issuer: str, subdomain: str) -> str:
    """The audience naming a sub-account's tenant."""
    return f"{issuer}/t/{subdomain}"


def signing_key(snapshot: GrantSnapshot, now: datetime) -> KeyFacts:
    """The newest key whose ``signs_from`` has passed."""
    for key in snapshot.keys:  # newest first
        if key.signs_from <= now:
            return key
    raise RuntimeError("no signing key; start the server once to create one")


def published(snapshot: GrantSnapshot, now: datetime) -> list[KeyFacts]:
    """Keys in the JWKS: every key not yet past its publication end."""
    return [k for k in snapshot.keys if k.published_until is None or k.published_until > now]


def issue(
    snapshot: GrantSnapshot,
    ring: KeyRing,
    *,
    issuer: str,
    subdomain: str,
    user_id: str,
    client_id: str,
    scope: list[str],
    now: datetime,
    lifetime: int,
    cnf: dict[str, str] | None = None,
) -> tuple[str, str]:
    """A signed access token and its ``jti``; ``cnf`` is the confirmation claim of a
    certificate-bound token (RFC 8705 §3.1)."""
    key = signing_key(snapshot, now)
    jti = _new_jti()
    stamp = int(now.timestamp())
    claims = {
        "iss": issuer,
        "sub": user_id,
        "aud": audience(issuer, subdomain),
        "client_id": client_id,
        "iat": stamp,
        "nbf": stamp,
        "exp": stamp + lifetime,
        "jti": jti,
        "scope": " ".join(scope),
        "tenant": subdomain,
    }
    if cnf is not None:
        claims["cnf"] = cnf
    signing_input = _header(key.kid) + b"." + _b64(_JSON.encode(claims).encode())
    signature = ring.sign(key.kid, key.private_encrypted, signing_input)
    return (signing_input + b"." + _b64(signature)).decode("ascii"), jti


@dataclass(frozen=True)
class AccessToken:
    """The claims of a validated token."""

    subject: str
    client_id: str
    subdomain: str
    audience: str
    scope: frozenset[str]
    jti: str
    expires_at: int
    issued_at: int
    claims: dict[str, Any]
    #: The ``x5t#S256`` the token is bound to (RFC 8705 §3.1); ``None``: not bound.
    bound_to: str | None = None


class TokenValidator:
    """Validates tokens against the published keys; caches verified ones until expiry."""

    def __init__(self, ring: KeyRing, *, issuer: str, max_entries: int = 50_000) -> None:
        self._ring = ring
        self._issuer = issuer
        self._cache: OrderedDict[str, AccessToken] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def validate(
        self,
        token: str,
        snapshot: GrantSnapshot,
        *,
        now: datetime,
        expected_audience: str | None = None,
    ) -> AccessToken:
        """The token's claims, or ``InvalidToken`` (reason kept for the audit trail)."""
        stamp = now.timestamp()
        cached = self._cache.get(token)
        if cached is None:
            cached = self._verify(token, snapshot, now)
            with self._lock:
                self._cache[token] = cached
                while len(self._cache) > self._max:
                    self._cache.popitem(last=False)
        if cached.expires_at <= stamp:
            raise InvalidToken("the token has expired", reason="expired")
        if cached.issued_at > stamp + 5:
            raise InvalidToken("the token is not yet valid", reason="not yet valid")
        if expected_audience is not None and cached.audience != expected_audience:
            raise InvalidToken(
                "the token is for another tenant",
                reason=f"audience {cached.audience}, expected {expected_audience}",
            )
        if cached.jti in snapshot.revoked:
            raise InvalidToken("the token was revoked", reason="revoked")
        return cached

    def _verify(self, token: str, snapshot: GrantSnapshot, now: datetime) -> AccessToken:
        if len(token) > 8192:
            raise InvalidToken("malformed token", reason="token too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed token", reason=f"malformed: {exc}") from exc
        if header.get("alg") != ALGORITHM:
            # Refuse before verifying: 'none', and HMAC keyed with our public key (confusion).
            raise InvalidToken(
                "unsupported token algorithm", reason=f"alg {header.get('alg')!r} refused"
            )
        typ = header.get("typ", "")
        if not isinstance(typ, str) or typ.lower() not in {TYPE, f"application/{TYPE}"}:
            raise InvalidToken("not an access token", reason=f"typ {header.get('typ')!r}")
        key = next((k for k in published(snapshot, now) if k.kid == header.get("kid")), None)
        if key is None:
            raise InvalidToken("unknown signing key", reason=f"kid {header.get('kid')!r}")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._ring.public(key.kid, key.public_jwk),
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                options={
                    "require": REQUIRED,
                    "verify_aud": False,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken("invalid token", reason=f"{type(exc).__name__}: {exc}") from exc
        aud = claims["aud"]
        if not isinstance(aud, str) or not aud.startswith(f"{self._issuer}/t/"):
            raise InvalidToken("invalid audience", reason=f"audience {aud!r}")
        return AccessToken(
            subject=str(claims["sub"]),
            client_id=str(claims["client_id"]),
            subdomain=aud.removeprefix(f"{self._issuer}/t/"),
            audience=aud,
            scope=frozenset(str(claims.get("scope", "")).split()),
            jti=str(claims["jti"]),
            expires_at=int(claims["exp"]),
            issued_at=int(claims.get("nbf", claims["iat"])),
            claims=claims,
            bound_to=bound_thumbprint(claims),
        )


def presented_token(
    validator: TokenValidator,
    snapshot: GrantSnapshot,
    form: dict[str, str],
    *,
    client_id: str,
    now: datetime,
) -> AccessToken | None:
    """The valid access token in ``form["token"]`` if it was issued to ``client_id``;
    ``None`` for any other token (RFC 7009 §2.2, RFC 7662 §2.2 learn nothing else)."""
    token = form.get("token")
    if not token:
        raise InvalidRequest("token is required")
    try:
        access = validator.validate(token, snapshot, now=now)
    except InvalidToken:
        return None
    return access if access.client_id == client_id else None
