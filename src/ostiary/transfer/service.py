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

from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.runtime import flows
from ostiary.runtime.models import FlowMode
from ostiary.tenancy import service as tenancy
from ostiary.tenancy.models import Plan as SubaccountPlan
from ostiary.tenancy.models import Subaccount
from ostiary.transfer import plan as planning
from ostiary.transfer import steps
from ostiary.transfer.models import Document

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
    steps.roles(session, ctx, actor, target, plan, document)
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
            # Only what differs: the file's receiver URL lacks the password of the stored
            # one (``public_url``), which the import must not drop when it changes another
            # setting.
            changed = {k: fields[k] for k in plan.fields("flow", path)}
            if "mode" in changed:
                changed["mode"] = mode
            flows.change(session, clock=clock, actor=actor, subaccount=target, path=path, **changed)
    steps.people(session, ctx, actor, target, plan, document)
    for trusted in document.trusted_cas:
        steps.trusted_ca(session, ctx, actor, target, plan, trusted)
    return plan.changes
