"""Admin permissions as a sorted string enum ``scope:resource:action``, and who holds them."""

from __future__ import annotations

from enum import StrEnum

from ostiary.tenancy.models import MemberRole


class Permission(StrEnum):
    """What a caller may do in one sub-account's admin API and console."""

    assignments_read = "subaccount:assignments:read"
    assignments_write = "subaccount:assignments:write"
    audit_read = "subaccount:audit:read"
    credentials_read = "subaccount:credentials:read"
    credentials_write = "subaccount:credentials:write"
    flows_read = "subaccount:flows:read"
    flows_write = "subaccount:flows:write"
    members_read = "subaccount:members:read"
    members_write = "subaccount:members:write"
    messages_read = "subaccount:messages:read"
    role_collections_read = "subaccount:role_collections:read"
    role_collections_write = "subaccount:role_collections:write"
    roles_read = "subaccount:roles:read"
    roles_write = "subaccount:roles:write"
    subaccount_read = "subaccount:settings:read"
    subaccount_write = "subaccount:settings:write"
    technical_users_read = "subaccount:technical_users:read"
    technical_users_write = "subaccount:technical_users:write"


READ = frozenset(p for p in Permission if p.value.endswith(":read"))

#: What Developers and Viewers read: everything but the audit trail (issue 11: the
#: sub-account's Administrators read its events; they name people and denial reasons).
_MEMBER_READ = READ - {Permission.audit_read}

#: Administrator manages everything; Developer manages flows and reads the rest; Viewer reads.
MEMBER_ROLE_PERMISSIONS: dict[MemberRole, frozenset[Permission]] = {
    MemberRole.administrator: frozenset(Permission),
    MemberRole.developer: _MEMBER_READ | {Permission.flows_write},
    MemberRole.viewer: _MEMBER_READ,
}


def permissions_of(member_roles: frozenset[str]) -> frozenset[Permission]:
    """The permissions that a set of member role names grants."""
    granted: set[Permission] = set()
    for name in member_roles:
        try:
            granted |= MEMBER_ROLE_PERMISSIONS[MemberRole(name)]
        except ValueError:
            continue
    return frozenset(granted)
