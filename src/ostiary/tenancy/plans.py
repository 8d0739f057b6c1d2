"""What each plan allows. Plans differ only in these limits; every plan has members and
authorizations (contract C2)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ostiary.tenancy.models import Plan


@dataclass(frozen=True)
class Limits:
    """Upper bounds for one sub-account."""

    members: int
    technical_users: int
    custom_roles: int
    role_collections: int
    flows: int

    def as_dict(self) -> dict[str, int]:
        """The limits as a plain mapping, for the API and the console."""
        return asdict(self)


PLAN_LIMITS: dict[Plan, Limits] = {
    Plan.trial: Limits(
        members=25, technical_users=10, custom_roles=25, role_collections=25, flows=10
    ),
    Plan.standard: Limits(
        members=5000, technical_users=1000, custom_roles=500, role_collections=500, flows=2000
    ),
}
