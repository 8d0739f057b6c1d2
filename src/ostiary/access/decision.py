"""The one access decision: a caller's grants in a sub-account against a requirement.

Every part of Ostiary (admin API, console, runtime, OAuth) calls ``decide``. It returns
``Allow`` or ``Deny(reason)``; the reason goes to the audit log and the access
explanation, never to a runtime caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ostiary.access.permissions import Permission, permissions_of
from ostiary.identity.models import UserStatus


@dataclass(frozen=True)
class RoleRequirement:
    """An application role of the tenant, e.g. ``ESBMessaging.send``."""

    name: str


@dataclass(frozen=True)
class Grants:
    """What one user holds in one sub-account, from the database or a snapshot."""

    user_id: str
    status: UserStatus
    is_platform_admin: bool
    subdomain: str
    member_roles: frozenset[str] = frozenset()
    #: Application role name → the role collections that give it.
    roles: dict[str, frozenset[str]] = field(default_factory=dict)
    #: Every role collection assigned to the user here, also those giving no role.
    collections: frozenset[str] = frozenset()
    #: Role collection → the groups through which the user holds it here (issue 12).
    via_groups: dict[str, frozenset[str]] = field(default_factory=dict)
    #: The role collections assigned to the user itself; ``None``: all of ``collections``.
    direct: frozenset[str] | None = None

    def paths(self, role: str) -> list[str]:
        """Every path that gives ``role``: "T000004 → group Integration Team → role
        collection Senders → ESBMessaging.send", one per group or direct assignment."""
        found = []
        for collection in sorted(self.roles.get(role, ())):
            if self.direct is None or collection in self.direct:
                found.append(f"{self.user_id} → role collection {collection} → {role}")
            for group in sorted(self.via_groups.get(collection, ())):
                found.append(
                    f"{self.user_id} → group {group} → role collection {collection} → {role}"
                )
        return found


@dataclass(frozen=True)
class Allow:
    """Access granted; ``because`` says through what."""

    because: str


@dataclass(frozen=True)
class Deny:
    """Access refused; ``reason`` names the missing link (for audit and explanation only)."""

    reason: str


Decision = Allow | Deny


def decide(grants: Grants, requirement: Permission | RoleRequirement) -> Decision:
    """Whether ``grants`` satisfy ``requirement`` in their sub-account."""
    if grants.status is not UserStatus.active:
        return Deny(f"user {grants.user_id} is {grants.status.value}, not active")
    if isinstance(requirement, RoleRequirement):
        collections = grants.roles.get(requirement.name)
        if not collections:
            held = grants.collections | frozenset().union(*grants.roles.values())
            if not held:
                return Deny(
                    f"user {grants.user_id} holds no role collection in {grants.subdomain} "
                    "(never assigned, unassigned, or removed as member)"
                )
            return Deny(
                f"none of the role collections {', '.join(sorted(held))} of user "
                f"{grants.user_id} in {grants.subdomain} contains {requirement.name}"
            )
        if grants.via_groups:
            return Allow(
                f"role {requirement.name} through {'; '.join(grants.paths(requirement.name))}"
            )
        return Allow(
            f"role {requirement.name} through role collection(s) {', '.join(sorted(collections))}"
        )
    if grants.is_platform_admin:
        return Allow("platform administrator")
    if not grants.member_roles:
        return Deny(f"user {grants.user_id} is not a member of sub-account {grants.subdomain}")
    if requirement in permissions_of(grants.member_roles):
        return Allow(f"member role(s) {', '.join(sorted(grants.member_roles))}")
    return Deny(
        f"member role(s) {', '.join(sorted(grants.member_roles))} of {grants.user_id} "
        f"in {grants.subdomain} do not include {requirement.value}"
    )
