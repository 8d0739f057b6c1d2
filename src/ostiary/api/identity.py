"""Registration, activation, account settings, passwords and password policies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Request
from pydantic import AfterValidator, BaseModel, Field

from ostiary.api.authn import (
    SESSION_COOKIE,
    Principal,
    authenticated,
    authenticated_allow_expired,
    platform_admin,
)
from ostiary.api.deps import context, deliver_after_response
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.gate.principal import Method
from ostiary.identity import policy as policies
from ostiary.identity import service as identity
from ostiary.identity import sessions
from ostiary.identity.emails import Email
from ostiary.identity.models import PasswordPolicy, User, UserKind

router = APIRouter(prefix="/api/v1", tags=["identity"])


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and no name, password or token needs one.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]
Password = Annotated[str, Field(min_length=1, max_length=1024), AfterValidator(_no_nul)]
Token = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]
Ctx = Annotated[AppContext, Depends(context)]


class RegistrationIn(BaseModel):
    """A person's self-registration."""

    email: Email
    given_name: Name
    family_name: Name
    password: Password


class Accepted(BaseModel):
    """The request was taken; what happens next arrives by mail."""

    status: Literal["accepted"] = "accepted"
    detail: str


class ActivationIn(BaseModel):
    """The token from an activation link."""

    token: Token


class ActivationOut(BaseModel):
    """The activated user's ID."""

    user_id: str


class MeOut(BaseModel):
    """Account settings of the caller."""

    user_id: str
    email: str | None
    given_name: str
    family_name: str
    kind: UserKind
    status: str
    is_platform_admin: bool
    created_at: datetime
    password_expires_at: datetime | None


class PasswordChangeIn(BaseModel):
    """A change of one's own password."""

    current_password: Password
    new_password: Password


class ResetRequestIn(BaseModel):
    """Ask for a password-reset link."""

    email: Email


class ResetConfirmIn(BaseModel):
    """Set a new password with a reset link's token."""

    token: Token
    new_password: Password


class PolicyOut(BaseModel):
    """The password policy of one kind of user."""

    kind: UserKind
    min_length: int
    check_common: bool
    history_count: int
    expiry_days: int | None
    updated_at: datetime


class PolicyIn(BaseModel):
    """Fields to change; ``expiry_days: null`` switches expiry off."""

    min_length: int | None = Field(default=None, ge=8, le=256)
    check_common: bool | None = None
    history_count: int | None = Field(default=None, ge=0, le=24)
    expiry_days: int | None = Field(default=None, ge=1, le=3650)


def _policy_out(policy: PasswordPolicy) -> PolicyOut:
    return PolicyOut(
        kind=policy.kind,
        min_length=policy.min_length,
        check_common=policy.check_common,
        history_count=policy.history_count,
        expiry_days=policy.expiry_days,
        updated_at=policy.updated_at,
    )


def me_out(ctx: AppContext, user: User) -> MeOut:
    """Account settings as the API shows them."""
    with transaction(ctx.read_sessions) as session:
        policy = policies.current_policy(session, kind=user.kind, clock=ctx.clock)
        expires = policies.password_expires_at(user, policy)
    return MeOut(
        user_id=user.user_id,
        email=user.email,
        given_name=user.given_name,
        family_name=user.family_name,
        kind=user.kind,
        status=user.status.value,
        is_platform_admin=user.is_platform_admin,
        created_at=user.created_at,
        password_expires_at=expires,
    )


@router.post("/registrations", status_code=202, response_model=Accepted)
def register(body: RegistrationIn, ctx: Ctx, tasks: BackgroundTasks) -> Accepted:
    """Register a person; the answer is the same whether or not the e-mail is taken (C3)."""
    with transaction(ctx.sessions) as session:
        result = identity.register(
            session,
            ctx,
            email=body.email,
            given_name=body.given_name,
            family_name=body.family_name,
            password=body.password,
        )
    deliver_after_response(tasks, ctx, result.mail_ids)
    return Accepted(detail="check your mailbox for the activation link")


@router.post("/activations", response_model=ActivationOut)
def activate(body: ActivationIn, ctx: Ctx) -> ActivationOut:
    """Activate an account with the token from its activation mail."""
    with transaction(ctx.sessions) as session:
        user = identity.activate(session, ctx, token=body.token)
    return ActivationOut(user_id=user.user_id)


@router.get("/me", response_model=MeOut)
def me(ctx: Ctx, principal: Principal = Depends(authenticated)) -> MeOut:
    """The caller's account settings."""
    with transaction(ctx.read_sessions) as session:
        user = identity.get_user(session, user_id=principal.user_id)
    return me_out(ctx, user)


@router.post("/me/password", status_code=204)
def change_password(
    body: PasswordChangeIn,
    request: Request,
    ctx: Ctx,
    principal: Principal = Depends(authenticated_allow_expired),
) -> None:
    """Change one's own password (works with an expired one too); the caller's other
    console sessions end, the one this request came with (if any) stays."""
    cookie = request.cookies.get(SESSION_COOKIE, "")
    from_session = principal.method is Method.session and bool(cookie)
    keep = sessions.hash_of(ctx, secret=cookie) if from_session else None
    with transaction(ctx.sessions) as session:
        user = identity.get_user(session, user_id=principal.user_id)
        identity.change_password(
            session,
            ctx,
            user=user,
            current_password=body.current_password,
            new_password=body.new_password,
            keep_session=keep,
        )
        if keep is not None:
            sessions.password_changed(session, token_hash=keep)


@router.post("/password-resets", status_code=202, response_model=Accepted)
def request_reset(body: ResetRequestIn, ctx: Ctx, tasks: BackgroundTasks) -> Accepted:
    """Mail a reset link if the address belongs to a person; the answer never says."""
    with transaction(ctx.sessions) as session:
        mail_ids = identity.request_password_reset(session, ctx, email=body.email)
    deliver_after_response(tasks, ctx, mail_ids)
    return Accepted(detail="if the address belongs to an account, a reset link is on its way")


@router.post("/password-resets/confirm", status_code=204)
def confirm_reset(body: ResetConfirmIn, ctx: Ctx) -> None:
    """Set a new password with the token from a reset mail."""
    with transaction(ctx.sessions) as session:
        identity.reset_password(session, ctx, token=body.token, new_password=body.new_password)


@router.get("/password-policies", response_model=list[PolicyOut])
def list_policies(ctx: Ctx, _: Principal = Depends(platform_admin)) -> list[PolicyOut]:
    """The password policy of each kind of user."""
    with transaction(ctx.read_sessions) as session:
        return [
            _policy_out(policies.current_policy(session, kind=kind, clock=ctx.clock))
            for kind in UserKind
        ]


@router.patch("/password-policies/{kind}", response_model=PolicyOut)
def update_policy(
    kind: UserKind, body: PolicyIn, ctx: Ctx, principal: Principal = Depends(platform_admin)
) -> PolicyOut:
    """Change a password policy; send ``expiry_days: null`` to switch expiry off."""
    with transaction(ctx.sessions) as session:
        policy = policies.update_policy(
            session,
            kind=kind,
            clock=ctx.clock,
            actor=principal.user_id,
            min_length=body.min_length,
            check_common=body.check_common,
            history_count=body.history_count,
            expiry_days=body.expiry_days,
            clear_expiry="expiry_days" in body.model_fields_set and body.expiry_days is None,
        )
        return _policy_out(policy)
