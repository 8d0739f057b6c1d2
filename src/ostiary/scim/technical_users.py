"""SCIM ``TechnicalUsers``: the directory's technical users as a read-only resource type of
Ostiary's own schema (``urn:ostiary:params:scim:schemas:core:2.0:TechnicalUser``).

The ``id`` is the user ID (``T000004``), the one a Group's ``members.value`` names. An
identity provider may list, read and reference technical users; it may not create, change
or remove them, because their owners manage them and their secrets in Ostiary
(docs/scim.md). ``owner`` is a person (``$ref`` to the SCIM User) or a group (``$ref`` to
the SCIM Group).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, aliased

from ostiary.groups.models import Group, GroupOwnership
from ostiary.identity.models import User, UserKind, UserStatus
from ostiary.scim.errors import ResourceNotFound
from ostiary.scim.rfc7643_schema import TECHNICAL_USER_SCHEMA, resource_spec
from ostiary.scim.rfc7643_schema import TechnicalUser as TechnicalUserResource
from ostiary.scim.users import etag, iso
from ostiary.tenancy.models import Subaccount

SPEC = resource_spec(TechnicalUserResource)
#: What the refused writes answer (405, with ``Allow: GET``).
READ_ONLY = (
    "TechnicalUsers are read-only over SCIM: their owners create and manage them, and "
    "their secrets, in Ostiary"
)

_Owner = aliased(User)


def _owner(owner: User | None, group: Group | None, *, base: str) -> dict[str, Any] | None:
    if group is not None:
        return {"value": group.group_id, "type": "group", "$ref": f"{base}/Groups/{group.group_id}"}
    if owner is None:
        return None
    found: dict[str, Any] = {"value": owner.user_id, "type": "person"}
    if owner.kind is UserKind.person and owner.status is not UserStatus.erased:
        found["$ref"] = f"{base}/Users/{owner.user_id}"  # an erased person is no SCIM User
    return found


def representation(
    user: User,
    *,
    owner: User | None,
    group: Group | None,
    home: Subaccount | None,
    base: str,
) -> dict[str, Any]:
    """The technical user as SCIM JSON, ``meta.version`` included."""
    doc: dict[str, Any] = {"schemas": [TECHNICAL_USER_SCHEMA], "id": user.user_id}
    if user.display_name:
        doc["displayName"] = user.display_name
    if user.description:
        doc["description"] = user.description
    doc["active"] = user.status is UserStatus.active
    shown_owner = _owner(owner, group, base=base)
    if shown_owner is not None:
        doc["owner"] = shown_owner
    if home is not None:
        doc["homeSubaccount"] = home.subdomain
    doc["meta"] = {
        "resourceType": "TechnicalUser",
        "created": iso(user.created_at),
        "lastModified": iso(user.updated_at),
        "location": f"{base}/TechnicalUsers/{user.user_id}",
    }
    doc["meta"]["version"] = etag(doc)
    return doc


def _query() -> Select[User, User, Group, Subaccount]:
    """Technical users with their person owner, owning group and home, in one query (the
    outer joins make the last three ``None`` where there is none; SQLAlchemy's types do not
    say so, ``representation`` takes them as optional)."""
    return (
        select(User, _Owner, Group, Subaccount)
        .outerjoin(_Owner, _Owner.id == User.owner_id)
        .outerjoin(GroupOwnership, GroupOwnership.user_id == User.id)
        .outerjoin(Group, Group.id == GroupOwnership.group_id)
        .outerjoin(Subaccount, Subaccount.id == User.home_subaccount_id)
        .where(User.kind == UserKind.technical, User.status != UserStatus.erased)
        .order_by(User.user_id)
    )


def listing(session: Session, *, base: str) -> list[dict[str, Any]]:
    """Every technical user as SCIM JSON, by user ID (filters and paging are the caller's)."""
    return [
        representation(user, owner=owner, group=group, home=home, base=base)
        for user, owner, group, home in session.execute(_query())
    ]


def one(session: Session, scim_id: str, base: str) -> dict[str, Any]:
    """The technical user with SCIM ``id`` ``scim_id``, or 404 (a person's ID included)."""
    row = session.execute(_query().where(User.user_id == scim_id[:16])).first()
    if row is None:
        raise ResourceNotFound(f"no TechnicalUser {scim_id}")
    user, owner, group, home = row
    return representation(user, owner=owner, group=group, home=home, base=base)
