"""The steps of an import that go through several services: roles and role collections,
members and assignments, trusted CAs and their mapping rules. Each create or update is
the service call a manual change makes; ``unchanged`` items are not touched."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ostiary.access import service as access
from ostiary.access.models import Role
from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.certificates import trust, verification
from ostiary.context import AppContext
from ostiary.errors import NotFound
from ostiary.groups import assignments as group_assignments
from ostiary.groups import service as groups
from ostiary.identity.models import User
from ostiary.tenancy import service as tenancy
from ostiary.tenancy.models import Subaccount
from ostiary.transfer import plan as planning
from ostiary.transfer.models import Document, TrustedCADoc


def roles(
    session: Session,
    ctx: AppContext,
    actor: str,
    target: Subaccount,
    plan: planning.Plan,
    document: Document,
) -> None:
    """Create and update the file's custom roles, then its role collections."""
    clock = ctx.clock
    for role in document.roles:
        action = plan.action("role", role.name)
        if action == "create":
            access.create_role(
                session,
                clock=clock,
                actor=actor,
                subaccount=target,
                name=role.name,
                description=role.description,
            )
        elif action == "update":
            found = session.scalar(
                select(Role).where(Role.subaccount_id == target.id, Role.name == role.name)
            )
            assert found is not None  # the plan found it
            before = {"description": found.description}
            found.description = role.description
            record(
                session,
                clock=clock,
                actor=actor,
                action=AuditAction.role_changed,
                target=role.name,
                subdomain=target.subdomain,
                before=before,
                after={"description": role.description},
            )
    for doc in document.role_collections:
        action = plan.action("role collection", doc.name)
        if action == "create":
            access.create_collection(
                session,
                clock=clock,
                actor=actor,
                subaccount=target,
                name=doc.name,
                roles=doc.roles,
                description=doc.description,
            )
        elif action == "update":
            access.change_collection(
                session,
                clock=clock,
                actor=actor,
                subaccount=target,
                name=doc.name,
                roles=doc.roles,
                description=doc.description,
            )


def _user(session: Session, user_id: str) -> User:
    user = session.scalar(select(User).where(User.user_id == user_id))
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


def people(
    session: Session,
    ctx: AppContext,
    actor: str,
    target: Subaccount,
    plan: planning.Plan,
    document: Document,
) -> None:
    """Create and update members; add the file's role collections to users and groups."""
    clock = ctx.clock
    for doc in document.members:
        action = plan.action("member", doc.user_id)
        if action == "unchanged":
            continue
        user = _user(session, doc.user_id)
        if action == "create":
            tenancy.add_member(
                session,
                clock=clock,
                actor=actor,
                subaccount=target,
                user=user,
                roles=doc.roles,
                description=doc.description,
            )
        else:
            tenancy.change_member(
                session,
                clock=clock,
                actor=actor,
                subaccount=target,
                user=user,
                roles=doc.roles,
                description=doc.description,
            )
    for assignment in document.assignments:
        if plan.action("assignment", assignment.user_id) == "unchanged":
            continue
        user = _user(session, assignment.user_id)
        held = access.user_collections(session, subaccount=target, user=user)
        access.set_user_collections(
            session,
            clock=clock,
            actor=actor,
            subaccount=target,
            user=user,
            names=[*held, *assignment.role_collections],
        )
    for given in document.group_assignments:
        if plan.action("group assignment", given.group_id) == "unchanged":
            continue
        group = groups.get(session, group_id=given.group_id)
        held = group_assignments.group_collections(session, subaccount=target, group=group)
        group_assignments.set_group_collections(
            session,
            clock=clock,
            actor=actor,
            subaccount=target,
            group=group,
            names=[*held, *given.role_collections],
        )


def trusted_ca(
    session: Session,
    ctx: AppContext,
    actor: str,
    target: Subaccount,
    plan: planning.Plan,
    doc: TrustedCADoc,
) -> None:
    """Trust the file's CA (or update its description), then create or replace its rules."""
    fp = planning.ca_fingerprint(doc)
    action = plan.action("trusted CA", fp)
    if action == "create":
        trusted = trust.add_trusted_ca(
            session,
            ctx,
            actor=actor,
            subaccount=target,
            certificate_pem=doc.certificate_pem,
            description=doc.description,
        )
    else:
        found = next(
            t
            for t in trust.list_trusted_cas(session, subaccount=target)
            if t.fingerprint_sha256 == fp
        )
        trusted = found
        if action == "update":
            before = {"description": trusted.description}
            trusted.description = doc.description
            record(
                session,
                clock=ctx.clock,
                actor=actor,
                action=AuditAction.trusted_ca_changed,
                target=trusted.trusted_ca_id,
                subdomain=target.subdomain,
                before=before,
                after={"description": doc.description},
            )
    existing = {
        rule.subject_dn: rule.rule_id
        for rule, _, _ in trust.list_mapping_rules(session, subaccount=target, trusted=trusted)
    }
    for rule in doc.mapping_rules:
        dn = verification.normalise_dn(rule.subject_dn)
        rule_action = plan.action("mapping rule", planning.rule_name(fp, dn))
        if rule_action == "unchanged":
            continue
        if rule_action == "update":  # the subject maps to another user now
            trust.delete_mapping_rule(
                session, ctx, actor=actor, subaccount=target, rule_id=existing[dn], trusted=trusted
            )
            session.flush()
        trust.add_mapping_rule(
            session,
            ctx,
            actor=actor,
            subaccount=target,
            trusted=trusted,
            subject_dn=dn,
            user=_user(session, rule.user_id),
        )
