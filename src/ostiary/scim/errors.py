"""SCIM errors that carry their wire format (RFC 7644 §3.12): an HTTP status and, for 400
and 409, a ``scimType``.

    ScimError             (status, scimType)
    ├── InvalidFilter     (400 invalidFilter)
    ├── InvalidPath       (400 invalidPath)
    ├── NoTarget          (400 noTarget)
    ├── InvalidValue      (400 invalidValue)
    ├── InvalidSyntax     (400 invalidSyntax)
    ├── Mutability        (400 mutability)
    ├── Uniqueness        (409 uniqueness)
    ├── ResourceNotFound  (404)
    ├── PreconditionFailed (412)
    └── TooLarge          (413)

The SCIM edge (``ostiary.api.scim``) turns them, and the directory's own errors, into
``Error`` resources in one place.
"""

from __future__ import annotations


class ScimError(Exception):
    """Base of the errors SCIM answers with an ``Error`` resource."""

    status = 400
    scim_type: str | None = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidFilter(ScimError):
    """The filter syntax is invalid or names an attribute that cannot be filtered."""

    scim_type = "invalidFilter"


class InvalidPath(ScimError):
    """A PATCH path is malformed or names no attribute of the schema."""

    scim_type = "invalidPath"


class NoTarget(ScimError):
    """A PATCH path with a value filter matched nothing."""

    scim_type = "noTarget"


class InvalidValue(ScimError):
    """A required value is missing or a value is not acceptable."""

    scim_type = "invalidValue"


class InvalidSyntax(ScimError):
    """The request body is not a well-formed SCIM message."""

    scim_type = "invalidSyntax"


class Mutability(ScimError):
    """The change would modify an immutable or read-only attribute."""

    scim_type = "mutability"


class Uniqueness(ScimError):
    """A value that must be unique (``userName``, an e-mail, a group name) is taken."""

    status = 409
    scim_type = "uniqueness"


class ResourceNotFound(ScimError):
    """No resource with that id (or the endpoint does not exist)."""

    status = 404


class Forbidden(ScimError):
    """The token may not change this resource (RFC 7644 §3.12: 403, no ``scimType``)."""

    status = 403


class PreconditionFailed(ScimError):
    """``If-Match`` names a version that is not the current one."""

    status = 412


class TooLarge(ScimError):
    """The request body exceeds what one SCIM request may carry."""

    status = 413
