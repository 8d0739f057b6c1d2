"""Flows, the message processing log and the access explanation."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from starlette.responses import Response

from ostiary.access.permissions import Permission
from ostiary.api.authn import Principal, authenticated
from ostiary.api.deps import Cursor, Limit, Page, authorized, context
from ostiary.context import AppContext
from ostiary.errors import NotFound
from ostiary.gate.admission import explain
from ostiary.runtime import flows as flow_service
from ostiary.runtime import mpl
from ostiary.runtime.models import (
    DEFAULT_MAX_BYTES,
    DEFAULT_ROLE,
    AuthMethod,
    Flow,
    FlowMode,
    Message,
    MessageStatus,
)

router = APIRouter(prefix="/api/v1/subaccounts/{subdomain}", tags=["runtime"])
Ctx = Annotated[AppContext, Depends(context)]
Caller = Annotated[Principal, Depends(authenticated)]


class FlowIn(BaseModel):
    """A new integration flow."""

    path: Annotated[str, Field(min_length=1, max_length=200)]
    required_role: Annotated[str, Field(min_length=1, max_length=100)] = DEFAULT_ROLE
    auth: Annotated[list[AuthMethod], Field(min_length=1, max_length=3)] = [AuthMethod.basic]
    mode: FlowMode = FlowMode.store
    receiver_url: Annotated[str, Field(max_length=2000)] | None = None
    timeout_seconds: Annotated[float, Field(ge=0.1, le=300)] = 30.0
    max_bytes: Annotated[int, Field(ge=1, le=flow_service.MAX_FLOW_BYTES)] = DEFAULT_MAX_BYTES
    enabled: bool = True
    description: Annotated[str, Field(max_length=2000)] = ""


class FlowPatch(BaseModel):
    """Changes to a flow."""

    required_role: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    auth: Annotated[list[AuthMethod], Field(min_length=1, max_length=3)] | None = None
    mode: FlowMode | None = None
    receiver_url: Annotated[str, Field(max_length=2000)] | None = None
    timeout_seconds: Annotated[float, Field(ge=0.1, le=300)] | None = None
    max_bytes: Annotated[int, Field(ge=1, le=flow_service.MAX_FLOW_BYTES)] | None = None
    enabled: bool | None = None
    description: Annotated[str, Field(max_length=2000)] | None = None


class FlowOut(BaseModel):
    """An integration flow and its endpoint."""

    path: str
    endpoint: str
    required_role: str
    auth: list[str]
    mode: FlowMode
    receiver_url: str | None
    timeout_seconds: float
    max_bytes: int
    enabled: bool
    description: str


class MessageOut(BaseModel):
    """One entry of the message processing log."""

    message_id: str
    flow: str
    sender: str
    credential_id: str
    auth_method: str
    status: MessageStatus
    size: int
    content_type: str
    business_id: str | None
    client_address: str
    received_at: datetime
    duration_ms: float
    detail: str | None


class ExplanationOut(BaseModel):
    """Whether a user may call a flow, and the chain behind it."""

    user_id: str
    flow: str
    decision: str
    missing_link: str | None
    chain: list[str]
    role_collections: list[str]
    roles: list[str]
    required_role: str | None
    #: Every path giving the required role ("T000004 → group G → role collection C → role").
    paths: list[str] = []


def flow_out(ctx: AppContext, subdomain: str, flow: Flow) -> FlowOut:
    """A flow as the API shows it."""
    return FlowOut(
        path=flow.path,
        endpoint=f"{ctx.settings.public_url}/t/{subdomain}/http/{flow.path}",
        required_role=flow.required_role,
        auth=list(flow.auth),
        mode=flow.mode,
        receiver_url=flow.receiver_url,
        timeout_seconds=flow.timeout_seconds,
        max_bytes=flow.max_bytes,
        enabled=flow.enabled,
        description=flow.description,
    )


def message_out(m: Message) -> MessageOut:
    """An MPL entry as the API shows it."""
    return MessageOut(
        message_id=m.id,
        flow=m.flow_path,
        sender=m.sender,
        credential_id=m.credential_id,
        auth_method=m.auth_method,
        status=m.status,
        size=m.size,
        content_type=m.content_type,
        business_id=m.business_id,
        client_address=m.client_address,
        received_at=m.received_at,
        duration_ms=m.duration_ms,
        detail=m.detail,
    )


@router.post("/flows", status_code=201, response_model=FlowOut)
def create_flow(subdomain: str, body: FlowIn, ctx: Ctx, principal: Caller) -> FlowOut:
    """Create an integration flow at ``/t/{subdomain}/http/{path}``."""
    with authorized(ctx, principal, subdomain, Permission.flows_write, write=True) as (
        session,
        subaccount,
        _,
    ):
        flow = flow_service.create(
            session,
            clock=ctx.clock,
            actor=principal.user_id,
            subaccount=subaccount,
            path=body.path,
            required_role=body.required_role,
            auth=[a.value for a in body.auth],
            mode=body.mode,
            receiver_url=body.receiver_url,
            timeout_seconds=body.timeout_seconds,
            max_bytes=body.max_bytes,
            enabled=body.enabled,
            description=body.description,
        )
        return flow_out(ctx, subdomain, flow)


@router.get("/flows", response_model=Page[FlowOut])
def list_flows(
    subdomain: str, ctx: Ctx, principal: Caller, limit: Limit = 50, cursor: Cursor = None
) -> Page[FlowOut]:
    """The flows of a sub-account."""
    from ostiary.api.deps import paginate

    with authorized(ctx, principal, subdomain, Permission.flows_read, write=False) as (
        session,
        subaccount,
        _,
    ):
        items = [
            flow_out(ctx, subdomain, f)
            for f in flow_service.list_flows(session, subaccount=subaccount)
        ]
    return paginate(items, key=lambda f: f.path, limit=limit, cursor=cursor)


@router.get("/flows/{path:path}", response_model=FlowOut)
def get_flow(subdomain: str, path: str, ctx: Ctx, principal: Caller) -> FlowOut:
    """One flow."""
    with authorized(ctx, principal, subdomain, Permission.flows_read, write=False) as (
        session,
        subaccount,
        _,
    ):
        return flow_out(ctx, subdomain, flow_service.get(session, subaccount=subaccount, path=path))


@router.patch("/flows/{path:path}", response_model=FlowOut)
def change_flow(subdomain: str, path: str, body: FlowPatch, ctx: Ctx, principal: Caller) -> FlowOut:
    """Change a flow (enable/disable, role, methods, mode)."""
    with authorized(ctx, principal, subdomain, Permission.flows_write, write=True) as (
        session,
        subaccount,
        _,
    ):
        fields = body.model_dump(exclude_unset=True)
        if "auth" in fields and fields["auth"] is not None:
            fields["auth"] = [AuthMethod(a).value for a in fields["auth"]]
        flow = flow_service.change(
            session,
            clock=ctx.clock,
            actor=principal.user_id,
            subaccount=subaccount,
            path=path,
            **fields,
        )
        return flow_out(ctx, subdomain, flow)


@router.delete("/flows/{path:path}", status_code=204)
def delete_flow(subdomain: str, path: str, ctx: Ctx, principal: Caller) -> None:
    """Delete a flow; its messages stay in the MPL."""
    with authorized(ctx, principal, subdomain, Permission.flows_write, write=True) as (
        session,
        subaccount,
        _,
    ):
        flow_service.delete(
            session, clock=ctx.clock, actor=principal.user_id, subaccount=subaccount, path=path
        )


@router.get("/messages", response_model=Page[MessageOut])
def list_messages(
    subdomain: str,
    ctx: Ctx,
    principal: Caller,
    limit: Limit = 50,
    cursor: Cursor = None,
    flow: Annotated[str | None, Query(max_length=200)] = None,
    sender: Annotated[str | None, Query(max_length=32)] = None,
    status: MessageStatus | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Page[MessageOut]:
    """The message processing log, newest first; filter by flow, sender, status, time."""
    with authorized(ctx, principal, subdomain, Permission.messages_read, write=False) as (
        session,
        subaccount,
        _,
    ):
        page = mpl.list_messages(
            session,
            subaccount=subaccount,
            flow=flow,
            sender=sender,
            status=status,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )
    return Page[MessageOut](
        items=[message_out(m) for m in page.items], next_cursor=page.next_cursor
    )


@router.get("/messages/{message_id}", response_model=MessageOut)
def get_message(subdomain: str, message_id: str, ctx: Ctx, principal: Caller) -> MessageOut:
    """One MPL entry."""
    with authorized(ctx, principal, subdomain, Permission.messages_read, write=False) as (
        session,
        subaccount,
        _,
    ):
        return message_out(mpl.get_message(session, subaccount=subaccount, message_id=message_id))


@router.get(
    "/messages/{message_id}/payload",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def get_payload(subdomain: str, message_id: str, ctx: Ctx, principal: Caller) -> Response:
    """The stored payload, with the content type it was sent with."""
    with authorized(ctx, principal, subdomain, Permission.messages_read, write=False) as (
        session,
        subaccount,
        _,
    ):
        message = mpl.get_message(
            session, subaccount=subaccount, message_id=message_id, payload=True
        )
        if message.payload is None:
            raise NotFound(f"message {message_id} kept no payload (forward mode)")
        return Response(
            message.payload, media_type=message.content_type or "application/octet-stream"
        )


@router.get("/access/explain", response_model=ExplanationOut)
def explain_access(
    subdomain: str,
    ctx: Ctx,
    principal: Caller,
    user_id: Annotated[str, Query(min_length=1, max_length=32)],
    flow: Annotated[str, Query(min_length=1, max_length=200)],
) -> ExplanationOut:
    """Why a user may or may not call a flow: the chain, or the missing link."""
    with authorized(ctx, principal, subdomain, Permission.assignments_read, write=False) as (
        _session,
        subaccount,
        _,
    ):
        result = explain(
            ctx.grants.refresh(),
            user_id=user_id,
            subdomain=subaccount.subdomain,
            path=flow,
            now=ctx.clock.now(),
        )
    return ExplanationOut(
        user_id=user_id,
        flow=flow,
        decision=result.decision,
        missing_link=result.missing_link,
        chain=result.chain,
        role_collections=result.role_collections,
        roles=result.roles,
        required_role=result.required_role,
        paths=result.paths,
    )
