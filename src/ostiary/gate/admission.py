"""The admission chain: may this principal do this? ``admit`` decides, ``explain`` shows why.

Both walk the very same steps (``_flow_steps``), so an explanation can never disagree with
the decision it explains. A step yields a line of the chain, or a ``Refusal`` naming the
missing link; role decisions come from ``ostiary.access.decision.decide``.

Requirements:

- ``CallFlow(subdomain, path)`` — send a message to an integration flow (the runtime);
- ``Permit(subdomain, permission)`` — an admin permission in a sub-account (admin API,
  console); the caller may pass grants read from the database for a strongly consistent
  answer;
- ``UseConsole()`` — sign in to the console: persons only, never technical users.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

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
    """Use the console (SPEC: technical users never sign in there)."""


Requirement = CallFlow | Permit | UseConsole


@dataclass(frozen=True)
class Admitted:
    """The principal may; ``flow`` is the flow called (``CallFlow`` only)."""

    because: str
    flow: FlowFacts | None = None


def admit(
    snapshot: GrantSnapshot, principal: Principal, requirement: Requirement
) -> Admitted | Refusal:
    """Whether ``principal`` may meet ``requirement``, per ``snapshot``."""
    if isinstance(requirement, CallFlow):
        flow = snapshot.flows.get((requirement.subdomain, requirement.path))
        for step in _flow_steps(snapshot, principal.user, requirement, principal=principal):
            if isinstance(step, Refusal):
                return step
        assert flow is not None
        return Admitted(f"role {flow.required_role}", flow)
    refused = user_refusal(principal.user)
    if refused is not None:
        return refused
    if isinstance(requirement, UseConsole):
        if principal.kind is not UserKind.person:
            return Refusal(401, "technical users never sign in to the console", principal.user_id)
        return Admitted("a person")
    grants = requirement.grants or snapshot.grants(
        user_id=principal.user_id, subdomain=requirement.subdomain
    )
    if grants is None:
        return Refusal(404, f"no sub-account {requirement.subdomain}", principal.user_id)
    decision = decide(grants, requirement.permission)
    if isinstance(decision, Deny):
        return Refusal(403, decision.reason, principal.user_id)
    return Admitted(decision.because)


def _flow_steps(
    snapshot: GrantSnapshot,
    user: UserFacts | None,
    requirement: CallFlow,
    *,
    principal: Principal | None = None,
    named: str = "",
) -> Iterator[str | Refusal]:
    """The chain for calling a flow: a line per link that holds, a ``Refusal`` at the first
    that does not (then nothing more). Without a ``principal`` (an explanation for a user
    ID) the authentication method is not known, so only what no method can pass refuses."""
    subdomain, path = requirement.subdomain, requirement.path
    user_id = user.user_id if user is not None else None
    facts = snapshot.subaccount_facts.get(subdomain)
    flow = snapshot.flows.get((subdomain, path)) if facts is not None else None
    if facts is None or flow is None:
        yield Refusal(404, f"there is no flow {path} in {subdomain}", user_id)
        return
    yield (
        f"flow {flow.path} requires role {flow.required_role} "
        f"and accepts {', '.join(sorted(flow.auth))}"
    )
    refused = user_refusal(user, named=named)
    if refused is not None:
        if user is None:
            refused = Refusal(401, f"user {named} does not exist (deleted, or never created)")
        yield refused
        return
    assert user is not None
    yield f"user {user.user_id} is a {user.kind.value} user, {user.status.value}"
    basic_refused = not facts.basic_auth_allowed
    if principal is not None and principal.password_expired:
        yield Refusal(401, "the password has expired; it must be changed first", user_id)
        return
    if principal is not None:
        if principal.method.value not in flow.auth:
            yield Refusal(
                401,
                f"flow {path} does not accept {principal.method.value} authentication",
                user_id,
            )
            return
        if principal.method is Method.basic and basic_refused:
            yield Refusal(401, "basic authentication is forbidden by the sub-account", user_id)
            return
    elif basic_refused and flow.auth == frozenset({Method.basic.value}):
        yield Refusal(
            401,
            f"sub-account {subdomain} forbids basic authentication, "
            "the only method this flow accepts",
            user_id,
        )
        return
    elif basic_refused and Method.basic.value in flow.auth:
        yield f"sub-account {subdomain} forbids basic authentication"
    if not flow.enabled:
        yield Refusal(403, f"flow {path} is disabled", user_id)
        return
    grants = snapshot.grants(user_id=user.user_id, subdomain=subdomain)
    if grants is None:
        yield Refusal(403, "no grants", user_id)
        return
    if grants.collections:
        yield (
            f"user {user.user_id} holds role collection(s) "
            f"{', '.join(sorted(grants.collections))} in {subdomain}"
        )
        yield f"which give role(s) {', '.join(sorted(grants.roles)) or 'none'}"
    decision = decide(grants, RoleRequirement(flow.required_role))
    if isinstance(decision, Deny):
        yield Refusal(403, decision.reason, user_id)
        return
    yield decision.because
    scope = principal.scope if principal is not None else None
    if scope is not None and flow.required_role not in scope:
        yield Refusal(403, f"the token's scope does not include {flow.required_role}", user_id)


@dataclass
class Explanation:
    """The verdict and the chain behind it."""

    decision: str
    missing_link: str | None
    chain: list[str] = field(default_factory=list)
    role_collections: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    required_role: str | None = None


def explain(snapshot: GrantSnapshot, *, user_id: str, subdomain: str, path: str) -> Explanation:
    """Why ``user_id`` may or may not call the flow at ``path`` (SPEC C4), from the same
    steps ``admit`` takes."""
    requirement = CallFlow(subdomain, path.strip("/"))
    user = snapshot.users.get(user_id.strip().upper())
    result = Explanation(decision="allow", missing_link=None)
    flow = snapshot.flows.get((requirement.subdomain, requirement.path))
    result.required_role = flow.required_role if flow is not None else None
    for step in _flow_steps(snapshot, user, requirement, named=user_id.strip()):
        if isinstance(step, Refusal):
            result.decision, result.missing_link = "deny", step.reason
        else:
            result.chain.append(step)
    grants = snapshot.grants(user_id=user.user_id, subdomain=subdomain) if user else None
    if grants is not None:
        result.role_collections = sorted(grants.collections)
        result.roles = sorted(grants.roles)
    return result
