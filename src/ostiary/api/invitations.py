"""Invitations to a sub-account: send, list pending, withdraw, accept (issue 12)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends
from pydantic import BaseModel, Field

from ostiary.access.permissions import Permission
from ostiary.api.authn import Principal, authenticated
from ostiary.api.deps import acting_user, authorized, context, deliver_after_response
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.groups import invitations
from ostiary.groups.models import Invitation
from ostiary.tenancy.models import MemberRole

router = APIRouter(prefix="/api/v1", tags=["invitations"])
Ctx = Annotated[AppContext, Depends(context)]
Caller = Annotated[Principal, Depends(authenticated)]
Token = Annotated[str, Field(min_length=1, max_length=200)]


class InvitationIn(BaseModel):
    """Invite an e-mail address as a member with member roles."""

    email: Annotated[str, Field(min_length=3, max_length=320)]
    roles: Annotated[list[MemberRole], Field(min_length=1, max_length=3)]
    description: Annotated[str, Field(max_length=2000)] = ""


class InvitationOut(BaseModel):
    """A pending invitation (the link is only in the mail)."""

    invitation_id: str
    email: str
    roles: list[str]
    description: str
    status: str
    invited_by: str
    created_at: datetime
    expires_at: datetime


class AcceptIn(BaseModel):
    """The token from the invitation link."""

    token: Token


class RegisterIn(BaseModel):
    """Register the invited address and join."""

    token: Token
    given_name: Annotated[str, Field(min_length=1, max_length=200)]
    family_name: Annotated[str, Field(max_length=200)] = ""
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class JoinedOut(BaseModel):
    """Who joined which sub-account with which member roles."""

    user_id: str
    subdomain: str
    roles: list[str]


def invitation_out(invitation: Invitation) -> InvitationOut:
    """An invitation as the API shows it."""
    return InvitationOut(
        invitation_id=invitation.invitation_id,
        email=invitation.email,
        roles=list(invitation.roles),
        description=invitation.description,
        status=invitation.status.value,
        invited_by=invitation.invited_by,
        created_at=invitation.created_at,
        expires_at=invitation.expires_at,
    )


@router.post("/subaccounts/{subdomain}/invitations", status_code=201, response_model=InvitationOut)
def invite(
    subdomain: str, body: InvitationIn, ctx: Ctx, principal: Caller, tasks: BackgroundTasks
) -> InvitationOut:
    """Invite an e-mail address; the mail with the single-use link goes out after the answer."""
    with authorized(ctx, principal, subdomain, Permission.members_write, write=True) as (
        session,
        subaccount,
        actor,
    ):
        sent = invitations.invite(
            session,
            ctx,
            actor=actor,
            subaccount=subaccount,
            email=body.email,
            roles=[r.value for r in body.roles],
            description=body.description,
        )
        out = invitation_out(sent.invitation)
    deliver_after_response(tasks, ctx, [sent.mail_id])
    return out


@router.get("/subaccounts/{subdomain}/invitations", response_model=list[InvitationOut])
def list_pending(subdomain: str, ctx: Ctx, principal: Caller) -> list[InvitationOut]:
    """Invitations not yet accepted, withdrawn or expired, newest first."""
    with authorized(ctx, principal, subdomain, Permission.members_read, write=False) as (
        session,
        subaccount,
        _,
    ):
        return [invitation_out(i) for i in invitations.pending(session, ctx, subaccount=subaccount)]


@router.delete("/subaccounts/{subdomain}/invitations/{invitation_id}", status_code=204)
def withdraw(subdomain: str, invitation_id: str, ctx: Ctx, principal: Caller) -> None:
    """Withdraw a pending invitation; its link stops working."""
    with authorized(ctx, principal, subdomain, Permission.members_write, write=True) as (
        session,
        subaccount,
        actor,
    ):
        invitations.withdraw(
            session, ctx, actor=actor, subaccount=subaccount, invitation_id=invitation_id
        )


@router.post("/invitations/accept", response_model=JoinedOut)
def accept(body: AcceptIn, ctx: Ctx, principal: Caller) -> JoinedOut:
    """Join as the signed-in person the invitation was mailed to."""
    with transaction(ctx.sessions) as session:
        user = acting_user(session, principal)
        _, subaccount = invitations.peek(session, ctx, token=body.token)
        member = invitations.accept(session, ctx, token=body.token, user=user)
        return JoinedOut(user_id=user.user_id, subdomain=subaccount.subdomain, roles=member.roles)


@router.post("/invitations/register", status_code=201, response_model=JoinedOut)
def register(body: RegisterIn, ctx: Ctx) -> JoinedOut:
    """Register the invited address (active at once: the link proved the mailbox) and join."""
    with transaction(ctx.sessions) as session:
        _, subaccount = invitations.peek(session, ctx, token=body.token)
        user, member = invitations.register_and_accept(
            session,
            ctx,
            token=body.token,
            given_name=body.given_name,
            family_name=body.family_name,
            password=body.password,
        )
        return JoinedOut(user_id=user.user_id, subdomain=subaccount.subdomain, roles=member.roles)
