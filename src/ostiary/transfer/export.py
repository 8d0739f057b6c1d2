"""Build the export document of one sub-account: configuration only, sorted so two exports
of the same configuration are the same bytes (apart from ``exported_at``)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from ostiary.access import service as access
from ostiary.access.models import Role, RoleCollection, RoleCollectionAssignment
from ostiary.certificates import trust
from ostiary.clock import Clock
from ostiary.groups.assignments import groups_with_assignments
from ostiary.identity.models import User
from ostiary.runtime.flows import list_flows
from ostiary.tenancy import service as tenancy
from ostiary.tenancy.models import Subaccount
from ostiary.transfer.models import (
    FORMAT,
    AssignmentDoc,
    CollectionDoc,
    Document,
    FlowDoc,
    GroupAssignmentDoc,
    MappingRuleDoc,
    MemberDoc,
    RoleDoc,
    SettingsDoc,
    TrustedCADoc,
)


def public_url(url: str | None) -> str | None:
    """``url`` without a password in its user part: a receiver URL may carry one, and an
    export never holds a secret."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}@{host}"))


def _assignments(session: Session, subaccount: Subaccount) -> list[AssignmentDoc]:
    held: dict[str, list[str]] = {}
    for user_id, name in session.execute(
        select(User.user_id, RoleCollection.name)
        .join(RoleCollectionAssignment, RoleCollectionAssignment.user_id == User.id)
        .join(RoleCollection, RoleCollection.id == RoleCollectionAssignment.collection_id)
        .where(RoleCollection.subaccount_id == subaccount.id)
    ):
        held.setdefault(user_id, []).append(name)
    return [AssignmentDoc(user_id=u, role_collections=sorted(held[u])) for u in sorted(held)]


def build(session: Session, *, clock: Clock, subaccount: Subaccount) -> Document:
    """The export document of ``subaccount``."""
    roles = session.scalars(
        select(Role).where(Role.subaccount_id == subaccount.id).order_by(Role.name)
    )
    rules: dict[str, list[MappingRuleDoc]] = {}
    for rule, trusted, user in trust.list_mapping_rules(session, subaccount=subaccount):
        rules.setdefault(trusted.trusted_ca_id, []).append(
            MappingRuleDoc(subject_dn=rule.subject_dn, user_id=user.user_id)
        )
    return Document(
        format=FORMAT,
        exported_at=clock.now().isoformat(),
        source_subdomain=subaccount.subdomain,
        settings=SettingsDoc(
            display_name=subaccount.display_name,
            description=subaccount.description,
            plan=subaccount.plan.value,
            basic_auth_allowed=subaccount.basic_auth_allowed,
            message_retention_days=subaccount.message_retention_days,
        ),
        roles=[RoleDoc(name=r.name, description=r.description) for r in roles],
        role_collections=[
            CollectionDoc(name=c.name, description=c.description, roles=names)
            for c, names, _ in access.list_collections(session, subaccount=subaccount)
        ],
        flows=[
            FlowDoc(
                path=f.path,
                description=f.description,
                required_role=f.required_role,
                auth=sorted(f.auth),  # type: ignore[arg-type]  # stored as AuthMethod values
                mode=f.mode.value,
                receiver_url=public_url(f.receiver_url),
                timeout_seconds=f.timeout_seconds,
                max_bytes=f.max_bytes,
                enabled=f.enabled,
            )
            for f in list_flows(session, subaccount=subaccount)
        ],
        trusted_cas=[
            TrustedCADoc(
                certificate_pem=t.certificate_pem,
                description=t.description,
                subject_dn=t.subject_dn,
                fingerprint_sha256=t.fingerprint_sha256,
                mapping_rules=sorted(
                    rules.get(t.trusted_ca_id, []), key=lambda r: (r.subject_dn, r.user_id)
                ),
            )
            for t in sorted(
                trust.list_trusted_cas(session, subaccount=subaccount),
                key=lambda t: t.fingerprint_sha256,
            )
        ],
        members=[
            MemberDoc(
                user_id=u.user_id,
                roles=sorted(m.roles),  # type: ignore[arg-type]  # MemberRole values
                description=m.description,
            )
            for m, u in tenancy.list_members(session, subaccount=subaccount)
        ],
        assignments=_assignments(session, subaccount),
        group_assignments=[
            GroupAssignmentDoc(group_id=g.group_id, name=g.name, role_collections=sorted(names))
            for g, names in sorted(
                groups_with_assignments(session, subaccount=subaccount),
                key=lambda pair: pair[0].group_id,
            )
        ],
    )
