"""The one error tree of Ostiary's services.

    OstiaryError                 (400 invalid_request)
    ├── InvalidInput             (400 invalid_request)   bad field values, policy violations
    │   ├── PasswordPolicyViolation (400 password_policy)
    │   └── InvalidClientMetadata (422 invalid_client_metadata) an OAuth client's registration
    ├── InvalidToken             (400 invalid_token)     forged, used or expired link tokens
    ├── AuthenticationFailed     (401 unauthorized)      one answer for every sign-in failure
    ├── PasswordExpired          (403 password_expired)  right password, but it must be changed
    ├── PermissionDenied         (403 forbidden)
    ├── NotFound                 (404 not_found)
    ├── Conflict                 (409 conflict)
    │   ├── LimitExceeded        (409 plan_limit)        the sub-account's plan allows no more
    │   └── SoleOwner            (409 sole_owner)        erasure refused: lists technical_users
    ├── PayloadTooLarge          (413 payload_too_large)
    └── Throttled                (429 too_many_requests)

Services raise these; the web layer (``ostiary.api.errors``) turns them into
``{error, detail}`` JSON in exactly one place, and the console into flash messages.
"""

from __future__ import annotations


class OstiaryError(Exception):
    """Base of every error a service raises on purpose."""

    status_code = 400
    code = "invalid_request"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.code)
        self.detail = detail or self.code


class InvalidInput(OstiaryError):
    """The request is well-formed but a value is not acceptable."""


class InvalidClientMetadata(InvalidInput):
    """An OAuth client's registration does not fit its authentication method (RFC 7591
    §3.2.2's error name; 422 like the other field errors of that request)."""

    status_code = 422
    code = "invalid_client_metadata"


class PasswordPolicyViolation(InvalidInput):
    """A new password breaks the password policy of the user's kind."""

    code = "password_policy"


class InvalidToken(OstiaryError):
    """A single-use link token is unknown, already used or expired."""

    code = "invalid_token"


class AuthenticationFailed(OstiaryError):
    """Credentials were missing or wrong; the reason is never told to the caller."""

    status_code = 401
    code = "unauthorized"

    def __init__(self, detail: str = "authentication required", *, reason: str = "") -> None:
        super().__init__(detail)
        #: The real reason, for the log and the audit trail only.
        self.reason = reason


class PasswordExpired(OstiaryError):
    """The password was right but has expired and must be changed first."""

    status_code = 403
    code = "password_expired"


class PermissionDenied(OstiaryError):
    """The caller is known but may not do this.

    ``reason`` (the missing link, from ``Deny``) is for the audit trail only; the web layer
    records it with ``actor`` and ``subdomain`` after the failed transaction rolled back.
    """

    status_code = 403
    code = "forbidden"

    def __init__(
        self,
        detail: str = "",
        *,
        reason: str = "",
        actor: str | None = None,
        subdomain: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.actor = actor
        self.subdomain = subdomain


class NotFound(OstiaryError):
    """The thing asked for does not exist (or the caller may not know it does)."""

    status_code = 404
    code = "not_found"


class Conflict(OstiaryError):
    """The change would break a uniqueness or state rule."""

    status_code = 409
    code = "conflict"


class LimitExceeded(Conflict):
    """The sub-account's plan allows no more of something (contract C2: limits, never hiding)."""

    code = "plan_limit"


class SoleOwner(Conflict):
    """A person cannot be erased while they alone own technical users; the answer lists them
    (``technical_users``) so they can be handed over first."""

    code = "sole_owner"

    def __init__(self, detail: str, *, technical_users: list[str]) -> None:
        super().__init__(detail)
        self.technical_users = technical_users


class PayloadTooLarge(OstiaryError):
    """The request body exceeds the allowed size."""

    status_code = 413
    code = "payload_too_large"


class Throttled(OstiaryError):
    """Too many failed attempts; try again later."""

    status_code = 429
    code = "too_many_requests"

    def __init__(self, detail: str = "too many attempts", *, retry_after: int = 60) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
