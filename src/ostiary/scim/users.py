"""SCIM ``Users`` (RFC 7643 §4.1) over the directory's persons.

Every person is a SCIM User whose ``id`` is the user ID (``P000123``). ``userName`` and
``externalId`` live in ``scim_users``; a person who registered themself and was never
written over SCIM has the e-mail address as ``userName`` until a client sets one. Names,
display name and e-mail are the directory's own columns; ``active`` is the status
(``active``, anything else is ``false``; setting ``false`` disables and ends sessions).
Technical users are not SCIM Users: docs/scim.md says why.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from scim2_models import Context
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.context import AppContext
from ostiary.errors import InvalidInput
from ostiary.groups.models import Group, GroupMember
from ostiary.groups.service import groups_of
from ostiary.identity import erasure, sessions
from ostiary.identity.emails import parse_email
from ostiary.identity.models import User, UserKind, UserStatus
from ostiary.identity.service import allocate_user_id, normalize_email
from ostiary.scim import rfc7644_patch
from ostiary.scim.errors import (
    Forbidden,
    InvalidSyntax,
    InvalidValue,
    PreconditionFailed,
    ResourceNotFound,
    ScimError,
    Uniqueness,
)
from ostiary.scim.models import ScimUser
from ostiary.scim.rfc7643_schema import USER_SCHEMA, Email, Name, resource_spec
from ostiary.scim.rfc7643_schema import User as UserResource
from ostiary.textsafe import clean

SPEC = resource_spec(UserResource)
#: Room for the column sizes of ``users`` and ``scim_users``.
_LIMITS = {"userName": 320, "externalId": 320, "givenName": 200, "familyName": 200}


class Conflict(ScimError):
    """The person still solely owns technical users (409, no ``scimType``)."""

    status = 409


def iso(moment: datetime) -> str:
    """A timestamp as SCIM writes it (RFC 7643 §2.3.5: xsd:dateTime, here in UTC)."""
    return moment.isoformat().replace("+00:00", "Z")


def etag(resource: dict[str, Any]) -> str:
    """A weak entity tag over the representation (RFC 7644 §3.14): it changes whenever
    anything shown changes, whoever changed it (SCIM, the admin API or the console)."""
    shown = {k: v for k, v in resource.items() if k != "meta"}
    digest = hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()
    return f'W/"{digest[:20]}"'


def representation(
    user: User, link: ScimUser | None, *, base: str, memberships: list[Group] | None = None
) -> dict[str, Any]:
    """The user as SCIM JSON, ``meta.version`` included; ``groups`` lists ``memberships``."""
    doc: dict[str, Any] = {
        "schemas": [USER_SCHEMA],
        "id": user.user_id,
        "userName": link.user_name if link else (user.email or user.user_id),
        "active": user.status is UserStatus.active,
    }
    if link is not None and link.external_id:
        doc["externalId"] = link.external_id
    name = {
        k: v for k, v in (("givenName", user.given_name), ("familyName", user.family_name)) if v
    }
    if name:
        doc["name"] = name
    if user.display_name:
        doc["displayName"] = user.display_name
    if user.email:
        email: dict[str, Any] = {"value": user.email}
        if link is None:
            email["primary"] = True
        else:
            if link.email_type:
                email["type"] = link.email_type
            if link.email_primary is not None:
                email["primary"] = link.email_primary
        doc["emails"] = [email]
    if memberships:
        doc["groups"] = [
            {"value": g.group_id, "$ref": f"{base}/Groups/{g.group_id}", "display": g.name}
            for g in sorted(memberships, key=lambda g: g.group_id)
        ]
    doc["meta"] = {
        "resourceType": "User",
        "created": iso(user.created_at),
        "lastModified": iso(user.updated_at),
        "location": f"{base}/Users/{user.user_id}",
    }
    doc["meta"]["version"] = etag(doc)
    return doc


def _persons(session: Session) -> list[tuple[User, ScimUser | None]]:
    rows = session.execute(
        select(User, ScimUser)
        .outerjoin(ScimUser, ScimUser.user_id == User.id)
        .where(User.kind == UserKind.person, User.status != UserStatus.erased)
        .order_by(User.user_id)
    )
    return [(user, link) for user, link in rows]


def _memberships(session: Session) -> dict[uuid.UUID, list[Group]]:
    found: dict[uuid.UUID, list[Group]] = {}
    for user_uuid, group in session.execute(
        select(GroupMember.user_id, Group).join(Group, Group.id == GroupMember.group_id)
    ):
        found.setdefault(user_uuid, []).append(group)
    return found


def listing(session: Session, *, base: str) -> list[dict[str, Any]]:
    """Every person as SCIM JSON, by user ID (filters and paging are the caller's)."""
    memberships = _memberships(session)
    return [
        representation(user, link, base=base, memberships=memberships.get(user.id))
        for user, link in _persons(session)
    ]


def shown(session: Session, user: User, link: ScimUser | None, *, base: str) -> dict[str, Any]:
    """One person as SCIM JSON, with the groups they are in."""
    return representation(user, link, base=base, memberships=groups_of(session, user=user))


def find(session: Session, *, scim_id: str) -> tuple[User, ScimUser | None]:
    """The person with SCIM ``id`` ``scim_id``, or 404."""
    key = known_id(scim_id)
    user = (
        None
        if key is None
        else session.scalar(
            select(User).where(
                User.user_id == key,
                User.kind == UserKind.person,
                User.status != UserStatus.erased,
            )
        )
    )
    if user is None:
        raise ResourceNotFound(f"no User {scim_id}")
    return user, session.get(ScimUser, user.id)


def writable(session: Session, *, scim_id: str) -> tuple[User, ScimUser | None]:
    """The person PUT, PATCH or DELETE may change, or 404 / 403.

    Platform administrators are the operator's, not the identity provider's: a token that
    could rewrite one's e-mail would get the password-reset link for their account, and
    one that could disable or erase them all would lock the operator out. SCIM reads them
    and manages their group memberships; their e-mail, status and erasure stay with the
    admin API, console and CLI."""
    user, link = find(session, scim_id=scim_id)
    if user.is_platform_admin:
        raise Forbidden(f"{user.user_id} is a platform administrator; SCIM does not change them")
    return user, link


def _parse(payload: Any, context: Context) -> UserResource:
    if not isinstance(payload, dict):
        raise InvalidSyntax("the body is a User object")
    schemas = payload.get("schemas")
    if not isinstance(schemas, list) or USER_SCHEMA not in schemas:
        raise InvalidSyntax(f"schemas must contain {USER_SCHEMA}")
    payload = rfc7644_patch.known_only(SPEC, payload)
    if not any(k.lower() == "active" for k in payload):
        # Most identity providers send it; the rest mean a person who may sign in.
        payload = {**payload, "active": True}
    try:
        parsed = UserResource.model_validate(payload, scim_ctx=context)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidValue(f"{where}: {first.get('msg', 'invalid')}") from None
    if not parsed.user_name or not parsed.user_name.strip():
        raise InvalidValue("userName is required")
    for field, value in (
        ("userName", parsed.user_name),
        ("externalId", parsed.external_id),
        ("givenName", parsed.name.given_name if parsed.name else None),
        ("familyName", parsed.name.family_name if parsed.name else None),
    ):
        if value is not None and len(value) > _LIMITS[field]:
            raise InvalidValue(f"{field} is longer than {_LIMITS[field]} characters")
    if parsed.display_name is not None and len(parsed.display_name) > 200:
        raise InvalidValue("displayName is longer than 200 characters")
    for field, value in (
        ("userName", parsed.user_name),
        ("externalId", parsed.external_id),
        ("name.givenName", parsed.name.given_name if parsed.name else None),
        ("name.familyName", parsed.name.family_name if parsed.name else None),
        ("displayName", parsed.display_name),
        *((f"emails[{n}].type", e.type) for n, e in enumerate(parsed.emails or [])),
    ):
        # PostgreSQL refuses a NUL in a text column and SQLite stores it: refuse control
        # characters alike on both, rather than storing what the identity provider did not send.
        if value is not None and clean(value) != value:
            raise InvalidValue(f"{field} contains control characters")
    return parsed


def known_id(scim_id: str) -> str | None:
    """The user or group ID a SCIM ``id`` in a path can be (``None``: none can, such as
    one with control characters, which PostgreSQL could not even compare)."""
    return scim_id[:16] if scim_id.isprintable() else None


def syntactically_valid(address: str) -> bool:
    """Whether ``address`` is a syntactically valid e-mail address, by the directory's one
    check (internal and special-use domains such as ``corp.local`` are fine)."""
    try:
        parse_email(address)
    except InvalidInput:
        return False
    return True


def _email(emails: list[Email] | None) -> Email | None:
    if not emails:
        return None
    if len(emails) > 1:
        raise InvalidValue("the directory keeps one e-mail address per person")
    found = emails[0]
    if found.value is None:
        raise InvalidValue("emails[0].value is required")
    if not syntactically_valid(found.value):
        raise InvalidValue(f"emails[0].value: {found.value!r} is not an e-mail address")
    if found.type is not None and len(found.type) > 64:
        raise InvalidValue("emails[0].type is longer than 64 characters")
    return found


def _write(
    session: Session, ctx: AppContext, user: User, link: ScimUser, parsed: UserResource
) -> None:
    """Copy ``parsed`` onto the rows; a taken ``userName`` or e-mail is 409 ``uniqueness``."""
    assert parsed.user_name is not None
    key = parsed.user_name.strip().casefold()
    taken = session.scalar(
        select(ScimUser.user_id).where(ScimUser.user_name_key == key, ScimUser.user_id != user.id)
    )
    if taken is not None:
        raise Uniqueness(f"userName {parsed.user_name!r} is taken")
    email = _email(parsed.emails)
    if email is not None and email.value is not None:
        normalized = normalize_email(email.value)
        other = session.scalar(
            select(User.id).where(
                User.email_normalized == normalized,
                User.kind == UserKind.person,
                User.id != user.id,
            )
        )
        if other is not None:
            raise Uniqueness("that e-mail address belongs to another person")
        user.email, user.email_normalized = email.value.strip(), normalized
    else:
        user.email = user.email_normalized = None
    link.user_name, link.user_name_key = parsed.user_name.strip(), key
    link.external_id = parsed.external_id
    link.email_type = email.type if email is not None else None
    link.email_primary = email.primary if email is not None else None
    name: Name | None = parsed.name
    user.given_name = (name.given_name if name else None) or ""
    user.family_name = (name.family_name if name else None) or ""
    user.display_name = parsed.display_name or ""
    user.updated_at = ctx.clock.now()
    active = parsed.active is not False
    if active and user.status is not UserStatus.active:
        user.status = UserStatus.active
        user.activated_at = user.activated_at or user.updated_at
    elif not active and user.status is UserStatus.active:
        user.status = UserStatus.disabled
        sessions.end_all_for(session, user=user)
    try:
        with session.begin_nested():
            session.add(link)
            session.flush()
    except IntegrityError as exc:
        # A concurrent writer took the name or address between the checks and now.
        raise Uniqueness("userName or e-mail address is taken") from exc


def create(
    session: Session, ctx: AppContext, *, actor: str, payload: Any, base: str
) -> dict[str, Any]:
    """Provision a person from a SCIM ``User``; it is active unless ``active`` is false."""
    parsed = _parse(payload, Context.RESOURCE_CREATION_REQUEST)
    now = ctx.clock.now()
    user = User(
        id=uuid.uuid4(),
        user_id=allocate_user_id(session, kind=UserKind.person),
        kind=UserKind.person,
        status=UserStatus.pending,
        display_name="",
        description="provisioned over SCIM",
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    link = ScimUser(user_id=user.id, user_name="", user_name_key="")
    _write(session, ctx, user, link, parsed)
    record(
        session,
        clock=ctx.clock,
        actor=actor,
        action=AuditAction.scim_user_provisioned,
        target=user.user_id,
    )
    return shown(session, user, link, base=base)


def require_version(current: dict[str, Any], if_match: str | None) -> None:
    """``If-Match`` (RFC 7644 §3.14): 412 unless it names the current version (or ``*``)."""
    if if_match is None or if_match.strip() == "*":
        return
    tags = {t.strip() for t in if_match.split(",")}
    version = current["meta"]["version"]
    if version not in tags and version.removeprefix("W/") not in tags:
        raise PreconditionFailed(f"the User changed; its version is now {version}")


def _save(
    session: Session,
    ctx: AppContext,
    *,
    actor: str,
    user: User,
    link: ScimUser | None,
    parsed: UserResource,
    base: str,
) -> dict[str, Any]:
    link = link or ScimUser(user_id=user.id, user_name="", user_name_key="")
    before = shown(session, user, link, base=base)
    _write(session, ctx, user, link, parsed)
    after = shown(session, user, link, base=base)
    changed = sorted(
        k for k in set(before) | set(after) if k != "meta" and before.get(k) != after.get(k)
    )
    if changed:
        record(
            session,
            clock=ctx.clock,
            actor=actor,
            action=AuditAction.scim_user_changed,
            target=user.user_id,
            after={"attributes": changed},
        )
    return after


def replace(
    session: Session,
    ctx: AppContext,
    *,
    actor: str,
    scim_id: str,
    payload: Any,
    if_match: str | None,
    base: str,
) -> dict[str, Any]:
    """PUT: the User becomes ``payload`` (RFC 7644 §3.5.1); read-only attributes ignored."""
    user, link = writable(session, scim_id=scim_id)
    require_version(shown(session, user, link, base=base), if_match)
    parsed = _parse(payload, Context.RESOURCE_REPLACEMENT_REQUEST)
    return _save(session, ctx, actor=actor, user=user, link=link, parsed=parsed, base=base)


def patch(
    session: Session,
    ctx: AppContext,
    *,
    actor: str,
    scim_id: str,
    payload: Any,
    if_match: str | None,
    base: str,
) -> dict[str, Any]:
    """PATCH (RFC 7644 §3.5.2): the operations applied in order, all or nothing."""
    user, link = writable(session, scim_id=scim_id)
    current = shown(session, user, link, base=base)
    require_version(current, if_match)
    patched = rfc7644_patch.apply(SPEC, current, payload)
    patched.pop("meta", None)
    parsed = _parse(patched, Context.RESOURCE_REPLACEMENT_REQUEST)
    return _save(session, ctx, actor=actor, user=user, link=link, parsed=parsed, base=base)


def delete(
    session: Session, ctx: AppContext, *, actor: str, scim_id: str, if_match: str | None, base: str
) -> None:
    """DELETE: the person is erased like ``DELETE /api/v1/users/{id}`` (README, *Users*):
    personal data and credentials go, the user ID stays in the audit trail. Refused while
    they alone own technical users, which would otherwise be left without an owner."""
    user, link = writable(session, scim_id=scim_id)
    require_version(shown(session, user, link, base=base), if_match)
    owned = erasure.sole_owned(session, person=user)
    if owned:
        names = ", ".join(sorted(t.user_id for t in owned))
        raise Conflict(f"{user.user_id} owns technical users ({names}); transfer them first")
    record(
        session,
        clock=ctx.clock,
        actor=actor,
        action=AuditAction.scim_user_deprovisioned,
        target=user.user_id,
    )
    erasure.erase(session, ctx, actor=actor, user=user)
