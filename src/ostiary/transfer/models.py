"""The export document ``ostiary.subaccount/1``, validated strictly: unknown fields, wrong
types, a wrong format or version and oversize input are refused with the reason.

It holds configuration only, never a secret: no password hashes, generated secrets,
client secrets, private keys, certificates issued to users, tokens or messages.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ostiary.errors import InvalidInput

FORMAT = "ostiary.subaccount/1"
FORMAT_PREFIX = "ostiary.subaccount/"
#: The largest document read (the API's bodies are also bound by OSTIARY_MAX_REQUEST_BYTES).
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
#: Upper bounds per list: the standard plan's limits (README, *Member roles*), rounded up.
MAX_ITEMS = 10_000

Name = Annotated[str, Field(min_length=1, max_length=200)]
Text = Annotated[str, Field(max_length=2000)]
UserId = Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9]+$")]
Names = Annotated[list[Name], Field(max_length=MAX_ITEMS)]


class InvalidDocument(InvalidInput):
    """The file is not an ``ostiary.subaccount/1`` document (422 with the reason)."""

    status_code = 422
    code = "invalid_document"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SettingsDoc(_Strict):
    """The sub-account's own settings."""

    display_name: Annotated[str, Field(min_length=1, max_length=200)]
    description: Text = ""
    plan: Literal["trial", "standard"] = "trial"
    basic_auth_allowed: bool = True
    message_retention_days: Annotated[int, Field(ge=1, le=3650)] = 30


class RoleDoc(_Strict):
    """A custom role (built-in templates are never exported)."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    description: Text = ""


class CollectionDoc(_Strict):
    """A role collection and the names of its roles."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    description: Text = ""
    roles: Names = []


class FlowDoc(_Strict):
    """A flow's configuration (its messages are never exported)."""

    path: Annotated[str, Field(min_length=1, max_length=200)]
    description: Text = ""
    required_role: Annotated[str, Field(min_length=1, max_length=100)]
    auth: Annotated[list[Literal["basic", "oauth", "certificate"]], Field(min_length=1)]
    mode: Literal["store", "forward"] = "store"
    receiver_url: Annotated[str, Field(max_length=2000)] | None = None
    timeout_seconds: Annotated[float, Field(ge=0.1, le=300)] = 30.0
    max_bytes: Annotated[int, Field(ge=1)]
    enabled: bool = True


class MappingRuleDoc(_Strict):
    """Certificates under the trusted CA with this subject act as ``user_id``."""

    subject_dn: Annotated[str, Field(min_length=1, max_length=2000)]
    user_id: UserId


class TrustedCADoc(_Strict):
    """A trusted external CA: public certificates only, and its mapping rules."""

    certificate_pem: Annotated[str, Field(min_length=1, max_length=200_000)]
    description: Text = ""
    #: Informational; import recomputes it from ``certificate_pem``.
    subject_dn: Annotated[str, Field(max_length=2000)] = ""
    fingerprint_sha256: Annotated[str, Field(max_length=64)] = ""
    mapping_rules: Annotated[list[MappingRuleDoc], Field(max_length=MAX_ITEMS)] = []

    @field_validator("certificate_pem")
    @classmethod
    def _public_only(cls, value: str) -> str:
        if "PRIVATE KEY" in value:
            raise ValueError("a trusted CA is certificates only; this holds a private key")
        return value


class MemberDoc(_Strict):
    """A member by user ID with member roles."""

    user_id: UserId
    roles: Annotated[
        list[Literal["Administrator", "Developer", "Viewer"]], Field(min_length=1, max_length=3)
    ]
    description: Text = ""


class AssignmentDoc(_Strict):
    """Role collections a user holds in the sub-account."""

    user_id: UserId
    role_collections: Names


class GroupAssignmentDoc(_Strict):
    """Role collections a directory group holds in the sub-account."""

    group_id: Annotated[str, Field(min_length=1, max_length=16)]
    #: Informational; the group is found by ``group_id``.
    name: Annotated[str, Field(max_length=100)] = ""
    role_collections: Names


class Document(_Strict):
    """A sub-account's configuration, as exported and imported."""

    format: str
    exported_at: str = ""
    source_subdomain: Annotated[str, Field(max_length=63)] = ""
    settings: SettingsDoc
    roles: Annotated[list[RoleDoc], Field(max_length=MAX_ITEMS)] = []
    role_collections: Annotated[list[CollectionDoc], Field(max_length=MAX_ITEMS)] = []
    flows: Annotated[list[FlowDoc], Field(max_length=MAX_ITEMS)] = []
    trusted_cas: Annotated[list[TrustedCADoc], Field(max_length=MAX_ITEMS)] = []
    members: Annotated[list[MemberDoc], Field(max_length=MAX_ITEMS)] = []
    assignments: Annotated[list[AssignmentDoc], Field(max_length=MAX_ITEMS)] = []
    group_assignments: Annotated[list[GroupAssignmentDoc], Field(max_length=MAX_ITEMS)] = []

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value == FORMAT:
            return value
        if value.startswith(FORMAT_PREFIX):
            raise ValueError(f"unsupported version {value!r}; this Ostiary reads {FORMAT!r}")
        raise ValueError(f"not a sub-account export: format must be {FORMAT!r}")


def _unique(items: list[Any], key: str, what: str) -> None:
    seen: set[str] = set()
    for item in items:
        value = str(getattr(item, key)).strip("/") if key == "path" else getattr(item, key)
        if value in seen:
            raise InvalidDocument(f"{what} {value!r} appears twice in the file")
        seen.add(value)


class _DuplicateKey(ValueError):
    pass


def _one_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Python keeps the last of two equal keys; a reviewer of the file may read the first.
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKey(key)
        found[key] = value
    return found


def _storable(data: Any) -> None:
    """``InvalidDocument`` for a text no database stores alike: a NUL (PostgreSQL refuses
    it, SQLite keeps it) or a lone surrogate (no UTF-8)."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((f"{where}.{k}" if where else k, v) for k, v in value.items())
            stack.extend((where or "document", k) for k in value)
        elif isinstance(value, list):
            stack.extend((f"{where}.{i}", v) for i, v in enumerate(value))
        elif isinstance(value, str):
            if "\x00" in value:
                raise InvalidDocument(f"{where}: a text holds a NUL character")
            try:
                value.encode()
            except UnicodeEncodeError as exc:
                raise InvalidDocument(f"{where}: a text is not valid Unicode") from exc


def parse(raw: bytes | str) -> Document:
    """The validated document in ``raw`` (JSON), or ``InvalidDocument`` with the reason."""
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > MAX_DOCUMENT_BYTES:
        raise InvalidDocument(f"the file has {size} bytes; at most {MAX_DOCUMENT_BYTES} are read")
    try:
        data = json.loads(raw, object_pairs_hook=_one_each)
    except _DuplicateKey as exc:
        raise InvalidDocument(f"the key {exc.args[0]!r} appears twice in one object") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidDocument(f"the file is not JSON: {exc}") from exc
    except RecursionError as exc:
        raise InvalidDocument("the file nests too deeply to be an export") from exc
    if not isinstance(data, dict):
        raise InvalidDocument("the file must hold one JSON object")
    _storable(data)
    try:
        document = Document.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "document"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise InvalidDocument(f"{where}: {first.get('msg', 'invalid')}{more}") from exc
    _unique(document.roles, "name", "role")
    _unique(document.role_collections, "name", "role collection")
    _unique(document.flows, "path", "flow")
    _unique(document.members, "user_id", "member")
    _unique(document.assignments, "user_id", "assignment of user")
    _unique(document.group_assignments, "group_id", "assignment of group")
    return document


def dump(document: Document) -> str:
    """The document as pretty, stable JSON (sorted lists come from ``export``)."""
    return json.dumps(document.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"
