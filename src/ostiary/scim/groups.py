"""SCIM ``Groups`` (RFC 7643 §4.2) over the directory's groups (``ostiary.groups``).

The SCIM ``id`` is the group ID (``G000001``), ``displayName`` the group's unique name.
Members are users by user ID: persons carry a ``$ref`` to their SCIM User, technical users
only their ``value``, the id of their read-only ``TechnicalUser`` (``Group.members.$ref``
names Users alone, so the published Group schema stays as identity providers know it).
Membership changes go through the groups service, so they are audited and reach the read
model (and so the runtime) like any other.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from scim2_models import Context
from sqlalchemy import select
from sqlalchemy.orm import Session

from ostiary.context import AppContext
from ostiary.errors import Conflict, InvalidInput
from ostiary.groups import service as groups
from ostiary.groups.models import Group, GroupMember
from ostiary.identity.models import User, UserKind
from ostiary.scim import rfc7644_patch
from ostiary.scim.errors import (
    InvalidSyntax,
    InvalidValue,
    ResourceNotFound,
    ScimError,
    Uniqueness,
)
from ostiary.scim.rfc7643_schema import GROUP_SCHEMA, resource_spec
from ostiary.scim.rfc7643_schema import Group as GroupResource
from ostiary.scim.users import etag, iso, known_id, require_version

SPEC = resource_spec(GroupResource)
#: Most members one write may name (a larger group is built with several PATCHes).
MAX_MEMBERS = 10_000


class GroupConflict(ScimError):
    """The group cannot be deleted now (it owns technical users): 409."""

    status = 409


def _member(user: User, *, base: str) -> dict[str, Any]:
    found: dict[str, Any] = {"value": user.user_id}
    if user.kind is UserKind.person:
        found["$ref"] = f"{base}/Users/{user.user_id}"
    return found


def representation(
    session: Session, group: Group, *, base: str, members: list[User] | None = None
) -> dict[str, Any]:
    """The group as SCIM JSON, ``meta.version`` included."""
    doc: dict[str, Any] = {
        "schemas": [GROUP_SCHEMA],
        "id": group.group_id,
        "displayName": group.name,
    }
    if group.external_id:
        doc["externalId"] = group.external_id
    shown = members if members is not None else groups.members(session, group=group)
    if shown:
        doc["members"] = [_member(u, base=base) for u in sorted(shown, key=lambda u: u.user_id)]
    doc["meta"] = {
        "resourceType": "Group",
        "created": iso(group.created_at),
        "lastModified": iso(group.updated_at),
        "location": f"{base}/Groups/{group.group_id}",
    }
    doc["meta"]["version"] = etag(doc)
    return doc


def listing(session: Session, *, base: str) -> list[dict[str, Any]]:
    """Every group as SCIM JSON, by group ID (members read in one query)."""
    everyone = list(session.scalars(select(Group).order_by(Group.group_id)))
    by_group: dict[Any, list[User]] = {g.id: [] for g in everyone}
    for group_uuid, user in session.execute(
        select(GroupMember.group_id, User).join(User, User.id == GroupMember.user_id)
    ):
        by_group.setdefault(group_uuid, []).append(user)
    return [representation(session, g, base=base, members=by_group[g.id]) for g in everyone]


def find(session: Session, *, scim_id: str) -> Group:
    """The group with SCIM ``id`` ``scim_id``, or 404."""
    key = known_id(scim_id)
    group = None if key is None else session.scalar(select(Group).where(Group.group_id == key))
    if group is None:
        raise ResourceNotFound(f"no Group {scim_id}")
    return group


def _parse(payload: Any, context: Context) -> GroupResource:
    if not isinstance(payload, dict):
        raise InvalidSyntax("the body is a Group object")
    schemas = payload.get("schemas")
    if not isinstance(schemas, list) or GROUP_SCHEMA not in schemas:
        raise InvalidSyntax(f"schemas must contain {GROUP_SCHEMA}")
    payload = rfc7644_patch.known_only(SPEC, payload)
    try:
        parsed = GroupResource.model_validate(payload, scim_ctx=context)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidValue(f"{where}: {first.get('msg', 'invalid')}") from None
    if not parsed.display_name or not parsed.display_name.strip():
        raise InvalidValue("displayName is required")
    if parsed.external_id is not None and len(parsed.external_id) > 200:
        raise InvalidValue("externalId is longer than 200 characters")
    if len(parsed.members or []) > MAX_MEMBERS:
        raise InvalidValue(f"at most {MAX_MEMBERS} members per request")
    return parsed


def _members(session: Session, parsed: GroupResource) -> list[User]:
    """The users ``members`` names, by ``value`` (or the last segment of ``$ref``)."""
    wanted: list[str] = []
    for member in parsed.members or []:
        value = member.value or (
            str(member.ref).rstrip("/").rsplit("/", 1)[-1] if member.ref else ""
        )
        if not value:
            raise InvalidValue("each member needs a value (a user ID)")
        if known_id(value) is None:
            raise InvalidValue("a member value is a user ID, without control characters")
        wanted.append(value.strip().upper()[:16])
    if not wanted:
        return []
    found = {u.user_id: u for u in session.scalars(select(User).where(User.user_id.in_(wanted)))}
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise InvalidValue(f"no user {', '.join(missing)}")
    return [found[w] for w in dict.fromkeys(wanted)]


def _translated(work: Any) -> Any:
    """The groups service's errors as SCIM errors."""
    try:
        return work()
    except Conflict as exc:
        raise Uniqueness(exc.detail) from None
    except InvalidInput as exc:
        raise InvalidValue(exc.detail) from None


def create(
    session: Session, ctx: AppContext, *, actor: str, payload: Any, base: str
) -> dict[str, Any]:
    """``POST /Groups``: a group with its members."""
    parsed = _parse(payload, Context.RESOURCE_CREATION_REQUEST)
    users = _members(session, parsed)
    assert parsed.display_name is not None
    name = parsed.display_name
    group: Group = _translated(
        lambda: groups.create(
            session, clock=ctx.clock, actor=actor, name=name, external_id=parsed.external_id
        )
    )
    groups.set_members(session, clock=ctx.clock, actor=actor, group=group, users=users)
    return representation(session, group, base=base)


def _save(
    session: Session, ctx: AppContext, *, actor: str, group: Group, parsed: GroupResource, base: str
) -> dict[str, Any]:
    users = _members(session, parsed)
    assert parsed.display_name is not None
    name = parsed.display_name
    if name != group.name or (parsed.external_id or None) != group.external_id:
        _translated(
            lambda: groups.update_group(
                session,
                clock=ctx.clock,
                actor=actor,
                group=group,
                name=name,
                external_id=parsed.external_id or "",
            )
        )
    groups.set_members(session, clock=ctx.clock, actor=actor, group=group, users=users)
    return representation(session, group, base=base)


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
    """``PUT /Groups/{id}``: name, externalId and members become the payload's."""
    group = find(session, scim_id=scim_id)
    require_version(representation(session, group, base=base), if_match)
    parsed = _parse(payload, Context.RESOURCE_REPLACEMENT_REQUEST)
    return _save(session, ctx, actor=actor, group=group, parsed=parsed, base=base)


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
    """``PATCH /Groups/{id}``, membership included (``add members``, ``remove
    members[value eq "P000123"]``); all operations or none."""
    group = find(session, scim_id=scim_id)
    current = representation(session, group, base=base)
    require_version(current, if_match)
    patched = rfc7644_patch.apply(SPEC, current, payload)
    patched.pop("meta", None)
    parsed = _parse(patched, Context.RESOURCE_REPLACEMENT_REQUEST)
    return _save(session, ctx, actor=actor, group=group, parsed=parsed, base=base)


def delete(
    session: Session, ctx: AppContext, *, actor: str, scim_id: str, if_match: str | None, base: str
) -> None:
    """``DELETE /Groups/{id}`` (409 while the group owns technical users)."""
    group = find(session, scim_id=scim_id)
    require_version(representation(session, group, base=base), if_match)
    try:
        groups.delete_group(session, clock=ctx.clock, actor=actor, group=group)
    except Conflict as exc:
        raise GroupConflict(exc.detail) from None
