"""Integration flows of a sub-account: create, change, list, delete (audited; each change
bumps the grants version so every runtime worker sees it within a second)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from ostiary.access.service import role_names
from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.clock import Clock
from ostiary.db import add_unique
from ostiary.errors import InvalidInput, NotFound
from ostiary.runtime.models import DEFAULT_MAX_BYTES, DEFAULT_ROLE, AuthMethod, Flow, FlowMode
from ostiary.tenancy.models import Subaccount
from ostiary.tenancy.service import check_limit

FLOW_PATH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]*(/[A-Za-z0-9._~-]+)*$")
MAX_FLOW_BYTES = 100 * 1024 * 1024


def describe(flow: Flow) -> dict[str, Any]:
    """A flow's settings, for the audit trail and the API."""
    return {
        "path": flow.path,
        "required_role": flow.required_role,
        "auth": list(flow.auth),
        "mode": flow.mode.value,
        "receiver_url": flow.receiver_url,
        "timeout_seconds": flow.timeout_seconds,
        "max_bytes": flow.max_bytes,
        "enabled": flow.enabled,
        "description": flow.description,
    }


def _check(
    session: Session,
    subaccount: Subaccount,
    *,
    path: str | None = None,
    required_role: str | None = None,
    auth: Sequence[str] | None = None,
    mode: FlowMode | None = None,
    receiver_url: str | None = None,
    timeout_seconds: float | None = None,
    max_bytes: int | None = None,
) -> None:
    if path is not None and (len(path) > 200 or not FLOW_PATH.match(path)):
        raise InvalidInput(
            "path must be 1-200 characters of letters, digits, '.', '_', '~', '-' "
            "in '/'-separated segments, e.g. orders/v1"
        )
    if required_role is not None and required_role not in role_names(
        session, subaccount=subaccount
    ):
        raise InvalidInput(
            f"unknown role {required_role} in {subaccount.subdomain}; define it "
            "under Security → Roles first"
        )
    if auth is not None:
        if not auth:
            raise InvalidInput("a flow accepts at least one sender authentication method")
        for method in auth:
            try:
                AuthMethod(method)
            except ValueError as exc:
                raise InvalidInput(
                    f"unknown authentication method {method!r}; use basic, oauth or certificate"
                ) from exc
    if mode is FlowMode.forward:
        parts = urlsplit(receiver_url or "")
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise InvalidInput("forward mode needs an http(s) receiver_url")
    if timeout_seconds is not None and not 0.1 <= timeout_seconds <= 300:
        raise InvalidInput("timeout_seconds must be between 0.1 and 300")
    if max_bytes is not None and not 1 <= max_bytes <= MAX_FLOW_BYTES:
        raise InvalidInput(f"max_bytes must be between 1 and {MAX_FLOW_BYTES}")


def create(
    session: Session,
    *,
    clock: Clock,
    actor: str,
    subaccount: Subaccount,
    path: str,
    required_role: str = DEFAULT_ROLE,
    auth: Sequence[str] = ("basic",),
    mode: FlowMode = FlowMode.store,
    receiver_url: str | None = None,
    timeout_seconds: float = 30.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    enabled: bool = True,
    description: str = "",
) -> Flow:
    """Create a flow."""
    path = path.strip("/")
    _check(
        session,
        subaccount,
        path=path,
        required_role=required_role,
        auth=auth,
        mode=mode,
        receiver_url=receiver_url,
        timeout_seconds=timeout_seconds,
        max_bytes=max_bytes,
    )
    check_limit(session, subaccount=subaccount, what="flows")
    now = clock.now()
    flow = Flow(
        id=uuid.uuid4(),
        subaccount_id=subaccount.id,
        path=path,
        required_role=required_role,
        auth=sorted(set(auth)),
        mode=mode,
        receiver_url=receiver_url if mode is FlowMode.forward else None,
        timeout_seconds=timeout_seconds,
        max_bytes=max_bytes,
        enabled=enabled,
        description=description,
        created_at=now,
        updated_at=now,
    )
    add_unique(session, flow, conflict=f"flow {path} already exists in {subaccount.subdomain}")
    record(
        session,
        clock=clock,
        actor=actor,
        action=AuditAction.flow_created,
        target=path,
        subdomain=subaccount.subdomain,
        after=describe(flow),
    )
    return flow


def get(session: Session, *, subaccount: Subaccount, path: str) -> Flow:
    """The flow at ``path``, or ``NotFound``."""
    flow = session.scalar(
        select(Flow).where(Flow.subaccount_id == subaccount.id, Flow.path == path.strip("/"))
    )
    if flow is None:
        raise NotFound(f"no flow {path} in {subaccount.subdomain}")
    return flow


def change(
    session: Session, *, clock: Clock, actor: str, subaccount: Subaccount, path: str, **fields: Any
) -> Flow:
    """Change some settings of a flow (``None`` values are left alone)."""
    flow = get(session, subaccount=subaccount, path=path)
    before = describe(flow)
    given = {k: v for k, v in fields.items() if v is not None}
    mode = FlowMode(given.get("mode", flow.mode))
    receiver = given.get("receiver_url", flow.receiver_url)
    _check(
        session,
        subaccount,
        required_role=given.get("required_role"),
        auth=given.get("auth"),
        mode=mode,
        receiver_url=receiver,
        timeout_seconds=given.get("timeout_seconds"),
        max_bytes=given.get("max_bytes"),
    )
    for key in ("required_role", "timeout_seconds", "max_bytes", "enabled", "description"):
        if key in given:
            setattr(flow, key, given[key])
    if "auth" in given:
        flow.auth = sorted(set(given["auth"]))
    flow.mode = mode
    flow.receiver_url = receiver if mode is FlowMode.forward else None
    flow.updated_at = clock.now()
    record(
        session,
        clock=clock,
        actor=actor,
        action=AuditAction.flow_changed,
        target=flow.path,
        subdomain=subaccount.subdomain,
        before=before,
        after=describe(flow),
    )
    return flow


def delete(
    session: Session, *, clock: Clock, actor: str, subaccount: Subaccount, path: str
) -> None:
    """Delete a flow; its messages stay in the MPL."""
    flow = get(session, subaccount=subaccount, path=path)
    record(
        session,
        clock=clock,
        actor=actor,
        action=AuditAction.flow_deleted,
        target=flow.path,
        subdomain=subaccount.subdomain,
        before=describe(flow),
    )
    session.delete(flow)


def list_flows(session: Session, *, subaccount: Subaccount) -> list[Flow]:
    """The flows of a sub-account by path."""
    return list(
        session.scalars(select(Flow).where(Flow.subaccount_id == subaccount.id).order_by(Flow.path))
    )
