"""OAuth errors that carry their own wire format (RFC 6749 §5.2, RFC 6750 §3.1)."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(Exception):
    """An error answered as ``{"error": …, "error_description": …}``."""

    status_code = 400
    error = "invalid_request"

    def __init__(self, description: str, *, reason: str = "") -> None:
        super().__init__(description)
        self.description = description
        #: The real reason, for the audit trail only.
        self.reason = reason or description

    def headers(self) -> dict[str, str]:
        """Headers of the error response."""
        return dict(NO_STORE)

    def response(self) -> Response:
        """The RFC 6749 §5.2 error response."""
        return JSONResponse(
            {"error": self.error, "error_description": self.description},
            status_code=self.status_code,
            headers=self.headers(),
        )


class InvalidRequest(OAuthError):
    """A parameter is missing, repeated or malformed."""


class InvalidClient(OAuthError):
    """Client authentication failed (always 401 with a challenge)."""

    status_code = 401
    error = "invalid_client"

    def __init__(
        self, description: str, *, reason: str = "", expired_credential: str | None = None
    ) -> None:
        super().__init__(description, reason=reason)
        #: A right credential past its end (audited as ``credential:expired``).
        self.expired_credential = expired_credential

    def headers(self) -> dict[str, str]:
        """The challenge for the client."""
        return {**NO_STORE, "WWW-Authenticate": 'Basic realm="ostiary"'}


class UnsupportedGrantType(OAuthError):
    """Only ``client_credentials`` is offered."""

    error = "unsupported_grant_type"


class InvalidScope(OAuthError):
    """A requested scope is not held by the client's technical user."""

    error = "invalid_scope"


class SlowDown(OAuthError):
    """Too many failed client authentications."""

    status_code = 429
    error = "slow_down"


class InvalidToken(OAuthError):
    """A bearer token that is malformed, expired, revoked, or not for this resource."""

    status_code = 401
    error = "invalid_token"

    def headers(self) -> dict[str, str]:
        """The RFC 6750 challenge."""
        return {
            "WWW-Authenticate": 'Bearer realm="ostiary", error="invalid_token", '
            f'error_description="{self.description}"'
        }


class TemporarilyUnavailable(OAuthError):
    """The grants could not be loaded or a change could not be stored: try again.

    The rest of Ostiary says ``store_unavailable`` for the same 503; the OAuth endpoints
    say ``temporarily_unavailable`` because that is the code OAuth clients know (RFC 6749
    §4.1.2.1, registered for exactly this case), and their answers keep the RFC 6749 shape.
    """

    status_code = 503
    error = "temporarily_unavailable"

    def headers(self) -> dict[str, str]:
        """Ask for a retry."""
        return {**NO_STORE, "Retry-After": "1"}
