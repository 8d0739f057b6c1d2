"""The admission chain: may this principal do this? ``admit`` decides, ``explain`` shows why.

Both walk the very same chain (``_flow_chain``), so an explanation can never disagree with
the decision it explains: it ends at the same ``Refusal`` naming the missing link, and an
explanation also collects a line per link that holds. Role decisions come from
``ostiary.access.decision.decide``.

Requirements:

- ``CallFlow(subdomain, path)`` — send a message to an integration flow (the runtime);
- ``Permit(subdomain, permission)`` — an admin permission in a sub-account (admin API,
  console); the caller may pass grants read from the database for a strongly consistent
  answer;
- ``UseConsole()`` — sign in to the console: persons only, never technical users.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from ostiary.access.decision import Deny, Grants, RoleRequirement, decide
from ostiary.access.permissions import Permission
from ostiary.access.snapshot import FlowFacts, GrantSnapshot, UserFacts
from ostiary.gate.credentials import user_refusal
from ostiary.gate.principal import Method, Principal, Refusal
from ostiary.identity.models import UserKind


@dataclass(frozen=True)
class CallFlow:
    """Call the flow at ``path`` of ``subdomain``'s tenant."""

    subdomain: str
    path: str


@dataclass(frozen=True)
class Permit:
    """Hold ``permission`` in ``subdomain`` (``grants``: as read by the caller, else the
    read model's)."""

    subdomain: str
    permission: Permission
    grants: Grants | None = None


@dataclass(frozen=True)
class UseConsole:
    """Use the console (contract: technical users never sign in there)."""


Requirement = CallFlow | Permit | UseConsole


@dataclass(frozen=True)
class Admitted:
    """The principal may; ``flow`` is the flow called (``CallFlow`` only)."""

    flow: FlowFacts | None = None


def admit(
    snapshot: GrantSnapshot, principal: Principal, requirement: Requirement
) -> Admitted | Refusal:
    """Whether ``principal`` may meet ``requirement``, per ``snapshot``."""
    if isinstance(requirement, CallFlow):
        flow = _flow_chain(snapshot, principal.user, requirement, principal=principal)
        if isinstance(flow, Refusal):
            return flow
        return Admitted(flow)
    refused = user_refusal(principal.user)
    if refused is not None:
        return refused
    if isinstance(requirement, UseConsole):
        if principal.kind is not UserKind.person:
            return Refusal(401, "technical users never sign in to the console", principal.user_id)
        return Admitted()
    grants = requirement.grants or snapshot.grants(
        user_id=principal.user_id, subdomain=requirement.subdomain
    )
    if grants is None:
        return Refusal(404, f"no sub-account {requirement.subdomain}", principal.user_id)
    decision = decide(grants, requirement.permission)
    if isinstance(decision, Deny):
        return Refusal(403, decision.reason, principal.user_id)
    return Admitted()


def _flow_chain(
    snapshot: GrantSnapshot,
    user: UserFacts | None,
    requirement: CallFlow,
    *,
    principal: Principal | None = None,
    named: str = "",
    lines: list[str] | None = None,
    now: datetime | None = None,
) -> FlowFacts | Refusal:
    """The chain for calling a flow: the flow if every link holds, else a ``Refusal`` at the
    first that does not. ``lines`` (an explanation) collects a line per link that holds;
    ``admit`` passes none, so the hot path formats no text. Without a ``principal`` (an
    explanation for a user ID) the authentication method is not known, so only what no
    method can pass refuses."""
    subdomain, path = requirement.subdomain, requirement.path
    user_id = user.user_id if user is not None else None
    facts = snapshot.subaccount_facts.get(subdomain)
    flow = snapshot.flows.get((subdomain, path)) if facts is not None else None
    if facts is None or flow is None:
        return Refusal(404, f"there is no flow {path} in {subdomain}", user_id)
    if lines is not None:
        lines.append(
            f"flow {flow.path} requires role {flow.required_role} "
            f"and accepts {', '.join(sorted(flow.auth))}"
        )
    refused = user_refusal(user, named=named)
    if refused is not None:
        if user is None:
            return Refusal(401, f"user {named} does not exist (deleted, or never created)")
        return refused
    assert user is not None
    if lines is not None:
        lines.append(f"user {user.user_id} is a {user.kind.value} user, {user.status.value}")
    basic_refused = not facts.basic_auth_allowed
    if principal is not None:
        if principal.password_expired:
            return Refusal(401, "the password has expired; it must be changed first", user_id)
        if principal.method.value not in flow.auth:
            return Refusal(
                401, f"flow {path} does not accept {principal.method.value} authentication", user_id
            )
        if principal.method is Method.basic and basic_refused:
            return Refusal(401, "basic authentication is forbidden by the sub-account", user_id)
    elif basic_refused and flow.auth == frozenset({Method.basic.value}):
        return Refusal(
            401,
            f"sub-account {subdomain} forbids basic authentication, "
            "the only method this flow accepts",
            user_id,
        )
    elif basic_refused and Method.basic.value in flow.auth and lines is not None:
        lines.append(f"sub-account {subdomain} forbids basic authentication")
    if Method.certificate.value in flow.auth and principal is None:
        links = snapshot.certificates.links(user.user_id, subdomain, at=now or datetime.now(UTC))
        if links and lines is not None:
            lines.append(f"user {user.user_id} may present {'; '.join(links)}")
        elif not links and flow.auth == frozenset({Method.certificate.value}):
            return Refusal(
                401,
                f"user {user.user_id} has no active client certificate and no mapping rule "
                f"in {subdomain}, and a certificate is the only method this flow accepts",
                user_id,
            )
    if not flow.enabled:
        return Refusal(403, f"flow {path} is disabled", user_id)
    grants = snapshot.grants(user_id=user.user_id, subdomain=subdomain)
    if grants is None:
        return Refusal(403, "no grants", user_id)
    if lines is not None and grants.collections:
        lines.append(
            f"user {user.user_id} holds role collection(s) "
            f"{', '.join(sorted(grants.collections))} in {subdomain}"
        )
        lines.append(f"which give role(s) {', '.join(sorted(grants.roles)) or 'none'}")
    decision = decide(grants, RoleRequirement(flow.required_role))
    if isinstance(decision, Deny):
        return Refusal(403, decision.reason, user_id)
    if lines is not None:
        lines.append(decision.because)
    scope = principal.scope if principal is not None else None
    if scope is not None and flow.required_role not in scope:
        return Refusal(403, f"the token's scope does not include {flow.required_role}", user_id)
    return flow


@dataclass
class Explanation:
    """The verdict and the chain behind it."""

    decision: str
    missing_link: str | None
    chain: list[str] = field(default_factory=list)
    role_collections: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    required_role: str | None = None
    #: Every path giving the required role, e.g. "T000004 → group Integration Team → role
    #: collection Senders → ESBMessaging.send" (issue 12).
    paths: list[str] = field(default_factory=list)


def explain(
    snapshot: GrantSnapshot,
    *,
    user_id: str,
    subdomain: str,
    path: str,
    now: datetime | None = None,
) -> Explanation:
    """Why ``user_id`` may or may not call the flow at ``path`` (contract C4), from the same
    steps ``admit`` takes (``now`` decides which certificates are valid)."""
    requirement = CallFlow(subdomain, path.strip("/"))
    user = snapshot.users.get(user_id.strip().upper())
    result = Explanation(decision="allow", missing_link=None)
    flow = snapshot.flows.get((requirement.subdomain, requirement.path))
    result.required_role = flow.required_role if flow is not None else None
    outcome = _flow_chain(
        snapshot, user, requirement, named=user_id.strip(), lines=result.chain, now=now
    )
    if isinstance(outcome, Refusal):
        result.decision, result.missing_link = "deny", outcome.reason
    grants = snapshot.grants(user_id=user.user_id, subdomain=subdomain) if user else None
    if grants is not None:
        result.role_collections = sorted(grants.collections)
        result.roles = sorted(grants.roles)
        if result.required_role is not None:
            result.paths = grants.paths(result.required_role)
    return result
