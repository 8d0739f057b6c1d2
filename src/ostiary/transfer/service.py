"""Import an export document into a sub-account: compute the plan, then apply each create
and update through the same service a manual change uses (so each is audited like it).

The import is authoritative for what the file names and never deletes what it leaves out;
assignments only ever add. The whole import is one transaction: a failure leaves nothing,
and a dry run is the real import rolled back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ostiary.access import service as access
from ostiary.access.models import Role
from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.certificates import trust, verification
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.errors import NotFound
from ostiary.groups import assignments as group_assignments
from ostiary.groups import service as groups
from ostiary.identity.models import User
from ostiary.runtime import flows
from ostiary.runtime.models import FlowMode
from ostiary.tenancy import service as tenancy
from ostiary.tenancy.models import Plan as SubaccountPlan
from ostiary.tenancy.models import Subaccount
from ostiary.transfer import plan as planning
from ostiary.transfer.models import Document, TrustedCADoc

#: Called in the import's transaction with the target (``None``: it will be created);
#: raises to refuse (the edges check permissions here).
Authorize = Callable[[Session, Subaccount | None], None]


@dataclass(frozen=True)
class ImportResult:
    """What an import did (or, in a dry run, would do)."""

    subdomain: str
    dry_run: bool
    changes: list[planning.Change]

    def counts(self) -> dict[str, int]:
        """How many items are created, updated and unchanged."""
        found = {"create": 0, "update": 0, "unchanged": 0}
        for change in self.changes:
            found[change.action] += 1
        return found


class _RolledBack(Exception):
    def __init__(self, result: ImportResult) -> None:
        super().__init__("dry run")
        self.result = result


def run(
    sessions: sessionmaker[Session],
    ctx: AppContext,
    *,
    actor: str,
    subdomain: str,
    document: Document,
    dry_run: bool,
    authorize: Authorize,
) -> ImportResult:
    """Import in one transaction of ``sessions``: committed, or rolled back for a dry run."""
    try:
        with transaction(sessions) as session:
            target = session.scalar(select(Subaccount).where(Subaccount.subdomain == subdomain))
            authorize(session, target)
            changes = apply(
                session, ctx, actor=actor, subdomain=subdomain, target=target, document=document
            )
            result = ImportResult(subdomain=subdomain, dry_run=dry_run, changes=changes)
            if dry_run:
                raise _RolledBack(result)
    except _RolledBack as done:
        return done.result
    return result


def apply(
    session: Session,
    ctx: AppContext,
    *,
    actor: str,
    subdomain: str,
    target: Subaccount | None,
    document: Document,
) -> list[planning.Change]:
    """Apply ``document`` to ``target`` (created when ``None``) in the caller's transaction."""
    plan = planning.compute(session, subaccount=target, document=document)
    clock = ctx.clock
    wanted = document.settings
    if target is None:
        target = tenancy.create(
            session,
            clock=clock,
            actor=actor,
            subdomain=subdomain,
            display_name=wanted.display_name,
            plan=SubaccountPlan(wanted.plan),
            description=wanted.description,
        )
    if plan.action("sub-account", "settings") != "unchanged" and (
        target.basic_auth_allowed != wanted.basic_auth_allowed
        or target.message_retention_days != wanted.message_retention_days
    ):
        tenancy.update(
            session,
            clock=clock,
            actor=actor,
            subaccount=target,
            basic_auth_allowed=wanted.basic_auth_allowed,
            message_retention_days=wanted.message_retention_days,
        )
    _apply_roles(session, ctx, actor, target, plan, document)
    for doc in document.flows:
        path = doc.path.strip("/")
        action = plan.action("flow", path)
        fields = planning.flow_fields(doc)
        mode = FlowMode(doc.mode)
        if action == "create":
            flows.create(
                session,
                clock=clock,
                actor=actor,
                subaccount=target,
                path=path,
                required_role=doc.required_role,
                auth=doc.auth,
                mode=mode,
                receiver_url=doc.receiver_url,
                timeout_seconds=doc.timeout_seconds,
                max_bytes=doc.max_bytes,
                enabled=doc.enabled,
                description=doc.description,
            )
        elif action == "update":
            fields["mode"] = mode
            flows.change(session, clock=clock, actor=actor, subaccount=target, path=path, **fields)
    _apply_people(session, ctx, actor, target, plan, document)
    for trusted in document.trusted_cas:
        _apply_trusted(session, ctx, actor, target, plan, trusted)
    return plan.changes


def _apply_roles(
    session: Session,
    ctx: AppContext,
    actor: str,
    target: Subaccount,
    plan: planning.Plan,
    document: Document,
) -> None:
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


def _apply_people(
    session: Session,
    ctx: AppContext,
    actor: str,
    target: Subaccount,
    plan: planning.Plan,
    document: Document,
) -> None:
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


def _apply_trusted(
    session: Session,
    ctx: AppContext,
    actor: str,
    target: Subaccount,
    plan: planning.Plan,
    doc: TrustedCADoc,
) -> None:
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
