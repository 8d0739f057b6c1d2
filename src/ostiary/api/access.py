"""Roles, role collections, assignments (Security → Authorizations) and access checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from ostiary.access import service as access
from ostiary.access.decision import Allow, Deny, RoleRequirement, decide
from ostiary.access.permissions import Permission
from ostiary.api.authn import Principal, authenticated
from ostiary.api.deps import Cursor, Limit, Page, authorize, authorized, context, paginate
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.identity import service as identity

router = APIRouter(prefix="/api/v1/subaccounts/{subdomain}", tags=["authorizations"])
Ctx = Annotated[AppContext, Depends(context)]
Caller = Annotated[Principal, Depends(authenticated)]
RoleName = Annotated[str, Field(min_length=1, max_length=100)]
CollectionName = Annotated[str, Field(min_length=1, max_length=100)]
Text = Annotated[str, Field(max_length=2000)]


class RoleOut(BaseModel):
    """A role of the tenant: a built-in template or a custom role."""

    name: str
    description: str
    builtin: bool


class RoleIn(BaseModel):
    """A custom role."""

    name: RoleName
    description: Text = ""


class CollectionIn(BaseModel):
    """A role collection."""

    name: CollectionName
    roles: Annotated[list[RoleName], Field(max_length=200)] = []
    description: Text = ""


class CollectionPatch(BaseModel):
    """Replace a collection's roles and/or description."""

    roles: Annotated[list[RoleName], Field(max_length=200)] | None = None
    description: Text | None = None


class CollectionOut(BaseModel):
    """A role collection with its roles and how many users hold it."""

    name: str
    description: str
    roles: list[str]
    assigned_users: int


class AssignmentIn(BaseModel):
    """The complete set of role collections a user should hold in the sub-account."""

    role_collections: Annotated[list[CollectionName], Field(max_length=200)]


class AssignmentOut(BaseModel):
    """The role collections a user holds in the sub-account."""

    user_id: str
    role_collections: list[str]


class AuthorizedUserOut(BaseModel):
    """A user of the sub-account with their role collections (Authorizations → Users)."""

    user_id: str
    display_name: str
    email: str | None
    kind: str
    status: str
    role_collections: list[str]


class CheckOut(BaseModel):
    """Whether a user may use a role in the sub-account, as every worker decides it."""

    user_id: str
    role: str
    decision: Literal["allow", "deny"]
    reason: str
    grants_version: int


@router.get("/roles", response_model=list[RoleOut])
def list_roles(subdomain: str, ctx: Ctx, principal: Caller) -> list[RoleOut]:
    """Built-in role templates and custom roles."""
    with authorized(ctx, principal, subdomain, Permission.roles_read, write=False) as (
        session,
        subaccount,
        _,
    ):
        names = access.role_names(session, subaccount=subaccount)
    return [
        RoleOut(name=n, description=d, builtin=n in access.BUILTIN_ROLES) for n, d in names.items()
    ]


@router.post("/roles", status_code=201, response_model=RoleOut)
def create_role(subdomain: str, body: RoleIn, ctx: Ctx, principal: Caller) -> RoleOut:
    """Define a custom role, e.g. ``Orders.send``."""
    with authorized(ctx, principal, subdomain, Permission.roles_write, write=True) as (
        session,
        subaccount,
        _,
    ):
        role = access.create_role(
            session,
            clock=ctx.clock,
            actor=principal.user_id,
            subaccount=subaccount,
            name=body.name,
            description=body.description,
        )
    return RoleOut(name=role.name, description=role.description, builtin=False)


@router.delete("/roles/{name}", status_code=204)
def delete_role(subdomain: str, name: str, ctx: Ctx, principal: Caller) -> None:
    """Delete a custom role no collection uses."""
    with authorized(ctx, principal, subdomain, Permission.roles_write, write=True) as (
        session,
        subaccount,
        _,
    ):
        access.delete_role(
            session, clock=ctx.clock, actor=principal.user_id, subaccount=subaccount, name=name
        )


@router.get("/role-collections", response_model=Page[CollectionOut])
def list_collections(
    subdomain: str, ctx: Ctx, principal: Caller, limit: Limit = 50, cursor: Cursor = None
) -> Page[CollectionOut]:
    """Role collections with their roles."""
    with authorized(ctx, principal, subdomain, Permission.role_collections_read, write=False) as (
        session,
        subaccount,
        _,
    ):
        items = [
            CollectionOut(name=c.name, description=c.description, roles=r, assigned_users=n)
            for c, r, n in access.list_collections(session, subaccount=subaccount)
        ]
    return paginate(items, key=lambda c: c.name, limit=limit, cursor=cursor)


@router.post("/role-collections", status_code=201, response_model=CollectionOut)
def create_collection(
    subdomain: str, body: CollectionIn, ctx: Ctx, principal: Caller
) -> CollectionOut:
    """Create a role collection."""
    with authorized(ctx, principal, subdomain, Permission.role_collections_write, write=True) as (
        session,
        subaccount,
        _,
    ):
        collection = access.create_collection(
            session,
            clock=ctx.clock,
            actor=principal.user_id,
            subaccount=subaccount,
            name=body.name,
            roles=body.roles,
            description=body.description,
        )
        roles = access.collection_roles(session, collection=collection)
    return CollectionOut(
        name=collection.name, description=collection.description, roles=roles, assigned_users=0
    )


@router.patch("/role-collections/{name}", response_model=CollectionOut)
def change_collection(
    subdomain: str, name: str, body: CollectionPatch, ctx: Ctx, principal: Caller
) -> CollectionOut:
    """Replace a role collection's roles or description."""
    with authorized(ctx, principal, subdomain, Permission.role_collections_write, write=True) as (
        session,
        subaccount,
        _,
    ):
        collection = access.change_collection(
            session,
            clock=ctx.clock,
            actor=principal.user_id,
            subaccount=subaccount,
            name=name,
            roles=body.roles,
            description=body.description,
        )
        rows = {c.name: n for c, _, n in access.list_collections(session, subaccount=subaccount)}
        roles = access.collection_roles(session, collection=collection)
    return CollectionOut(
        name=collection.name,
        description=collection.description,
        roles=roles,
        assigned_users=rows.get(collection.name, 0),
    )


@router.delete("/role-collections/{name}", status_code=204)
def delete_collection(subdomain: str, name: str, ctx: Ctx, principal: Caller) -> None:
    """Delete a role collection and its assignments."""
    with authorized(ctx, principal, subdomain, Permission.role_collections_write, write=True) as (
        session,
        subaccount,
        _,
    ):
        access.delete_collection(
            session, clock=ctx.clock, actor=principal.user_id, subaccount=subaccount, name=name
        )


@router.get("/users", response_model=Page[AuthorizedUserOut])
def list_authorized_users(
    subdomain: str,
    ctx: Ctx,
    principal: Caller,
    limit: Limit = 50,
    cursor: Cursor = None,
    search: Annotated[str, Query(max_length=100)] = "",
) -> Page[AuthorizedUserOut]:
    """Members and role holders with their role collections (Security → Authorizations)."""
    with authorized(ctx, principal, subdomain, Permission.assignments_read, write=False) as (
        session,
        subaccount,
        _,
    ):
        rows = access.users_with_assignments(
            session, subaccount=subaccount, search=search, limit=5000
        )
        items = [
            AuthorizedUserOut(
                user_id=u.user_id,
                display_name=u.display_name,
                email=u.email,
                kind=u.kind.value,
                status=u.status.value,
                role_collections=c,
            )
            for u, c in rows
        ]
    return paginate(items, key=lambda u: u.user_id, limit=limit, cursor=cursor)


@router.get("/users/{user_id}/role-collections", response_model=AssignmentOut)
def get_assignments(subdomain: str, user_id: str, ctx: Ctx, principal: Caller) -> AssignmentOut:
    """The role collections a user holds here."""
    with authorized(ctx, principal, subdomain, Permission.assignments_read, write=False) as (
        session,
        subaccount,
        _,
    ):
        user = identity.get_user(session, user_id=user_id)
        names = access.user_collections(session, subaccount=subaccount, user=user)
    return AssignmentOut(user_id=user.user_id, role_collections=names)


def _change_assignments(
    ctx: AppContext,
    principal: Principal,
    subdomain: str,
    user_id: str,
    change: Callable[..., list[str]],
    **arguments: object,
) -> AssignmentOut:
    """Apply one of ``access``'s assignment changes to ``user_id`` and answer the result."""
    with authorized(ctx, principal, subdomain, Permission.assignments_write, write=True) as (
        session,
        subaccount,
        _,
    ):
        user = identity.get_user(session, user_id=user_id)
        names = change(
            session,
            clock=ctx.clock,
            actor=principal.user_id,
            subaccount=subaccount,
            user=user,
            **arguments,
        )
    return AssignmentOut(user_id=user.user_id, role_collections=names)


@router.put("/users/{user_id}/role-collections", response_model=AssignmentOut)
def set_assignments(
    subdomain: str, user_id: str, body: AssignmentIn, ctx: Ctx, principal: Caller
) -> AssignmentOut:
    """Replace the set of role collections a user holds here."""
    return _change_assignments(
        ctx,
        principal,
        subdomain,
        user_id,
        access.set_user_collections,
        names=body.role_collections,
    )


@router.post("/users/{user_id}/role-collections/{name}", response_model=AssignmentOut)
def add_assignment(
    subdomain: str, user_id: str, name: str, ctx: Ctx, principal: Caller
) -> AssignmentOut:
    """Assign one more role collection."""
    return _change_assignments(
        ctx, principal, subdomain, user_id, access.add_user_collection, name=name
    )


@router.delete("/users/{user_id}/role-collections/{name}", response_model=AssignmentOut)
def remove_assignment(
    subdomain: str, user_id: str, name: str, ctx: Ctx, principal: Caller
) -> AssignmentOut:
    """Take one role collection away."""
    return _change_assignments(
        ctx, principal, subdomain, user_id, access.remove_user_collection, name=name
    )


@router.get("/access/check", response_model=CheckOut)
def check_access(
    subdomain: str,
    ctx: Ctx,
    principal: Caller,
    user_id: Annotated[str, Query(min_length=1, max_length=32)],
    role: Annotated[str, Query(min_length=1, max_length=100)] = "ESBMessaging.send",
) -> CheckOut:
    """Decide from this process's grants snapshot, exactly as the runtime will."""
    with transaction(ctx.read_sessions) as session:
        authorize(
            session,
            principal=principal,
            subdomain=subdomain,
            permission=Permission.assignments_read,
        )
    snapshot = ctx.grants.get()
    grants = snapshot.grants(user_id=user_id.strip().upper(), subdomain=subdomain)
    decision: Allow | Deny = (
        decide(grants, RoleRequirement(role)) if grants is not None else Deny(f"no user {user_id}")
    )
    return CheckOut(
        user_id=user_id,
        role=role,
        decision="allow" if isinstance(decision, Allow) else "deny",
        reason=decision.because if isinstance(decision, Allow) else decision.reason,
        grants_version=snapshot.version,
    )
