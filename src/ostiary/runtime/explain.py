"""The access explanation: why a user may or may not call a flow (SPEC C4).

It walks the chain user → status → role collections in this sub-account → roles → the
flow's required role, and names the first missing link. It reads the database, so it
shows the truth even in the second before a change reaches every worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from ostiary.access.service import load_grants, user_collections
from ostiary.identity.models import User, UserStatus
from ostiary.runtime.models import Flow
from ostiary.tenancy.models import Subaccount


@dataclass
class Explanation:
    """The verdict and the chain behind it."""

    decision: str
    missing_link: str | None
    chain: list[str] = field(default_factory=list)
    role_collections: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    required_role: str | None = None


def explain(
    session: Session, *, subaccount: Subaccount, user_id: str, flow_path: str
) -> Explanation:
    """Explain whether ``user_id`` may call ``flow_path`` in ``subaccount``."""
    result = Explanation(decision="deny", missing_link=None)
    chain = result.chain
    flow = session.scalar(
        select(Flow).where(Flow.subaccount_id == subaccount.id, Flow.path == flow_path.strip("/"))
    )
    if flow is None:
        result.missing_link = f"there is no flow {flow_path} in {subaccount.subdomain}"
        return result
    result.required_role = flow.required_role
    chain.append(
        f"flow {flow.path} requires role {flow.required_role} and accepts {', '.join(flow.auth)}"
    )
    user = session.scalar(select(User).where(User.user_id == user_id.strip().upper()))
    if user is None:
        result.missing_link = f"user {user_id} does not exist (deleted, or never created)"
        return result
    chain.append(f"user {user.user_id} is a {user.kind.value} user, {user.status.value}")
    if user.status is not UserStatus.active:
        result.missing_link = f"user {user.user_id} is {user.status.value}, not active"
        return result
    if not flow.enabled:
        result.missing_link = f"flow {flow.path} is disabled"
        return result
    if not subaccount.basic_auth_allowed and flow.auth == ["basic"]:
        result.missing_link = (
            f"sub-account {subaccount.subdomain} forbids basic "
            "authentication, the only method this flow accepts"
        )
        return result
    if "basic" in flow.auth and not subaccount.basic_auth_allowed:
        chain.append(f"sub-account {subaccount.subdomain} forbids basic authentication")
    grants = load_grants(session, user=user, subaccount=subaccount)
    result.role_collections = user_collections(session, subaccount=subaccount, user=user)
    result.roles = sorted(grants.roles)
    if not result.role_collections:
        result.missing_link = (
            f"user {user.user_id} holds no role collection in "
            f"{subaccount.subdomain} (never assigned, unassigned, or "
            "removed as member)"
        )
        return result
    chain.append(
        f"user {user.user_id} holds role collection(s) "
        f"{', '.join(result.role_collections)} in {subaccount.subdomain}"
    )
    chain.append(f"which give role(s) {', '.join(result.roles) or 'none'}")
    collections = grants.roles.get(flow.required_role)
    if not collections:
        result.missing_link = f"none of these role collections contains {flow.required_role}"
        return result
    chain.append(f"{flow.required_role} comes from {', '.join(sorted(collections))}")
    result.decision = "allow"
    return result
