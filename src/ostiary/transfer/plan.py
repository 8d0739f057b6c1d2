"""Compare an export document with a sub-account: what an import would create, update or
leave unchanged, item by item, in the order it applies them. Reads only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from ostiary.access import service as access
from ostiary.access.models import Role, RoleCollection
from ostiary.certificates import trust, verification
from ostiary.certificates.models import TrustedCA
from ostiary.errors import InvalidInput
from ostiary.groups import assignments as group_assignments
from ostiary.groups.models import Group
from ostiary.identity.models import User, UserStatus
from ostiary.runtime import flows
from ostiary.tenancy.models import Member, Subaccount
from ostiary.transfer.export import public_url
from ostiary.transfer.models import Document, FlowDoc, TrustedCADoc

Action = Literal["create", "update", "unchanged"]


class UnknownReferences(InvalidInput):
    """The file names user or group IDs this directory does not have (422, listing them)."""

    status_code = 422
    code = "unknown_users"


@dataclass(frozen=True)
class Change:
    """One item of the file and what importing it does: ``fields`` names what an update
    changes."""

    kind: str
    name: str
    action: Action
    fields: tuple[str, ...] = ()


@dataclass
class Plan:
    """Every item of the file, in the order the import applies them."""

    changes: list[Change] = field(default_factory=list)
    _index: dict[tuple[str, str], Change] = field(default_factory=dict, repr=False)

    def add(self, kind: str, name: str, fields: list[str] | None) -> None:
        """``fields`` ``None``: create; empty: unchanged; else update of those fields."""
        if fields is None:
            change = Change(kind, name, "create")
        else:
            change = Change(kind, name, "update" if fields else "unchanged", tuple(fields))
        self.changes.append(change)
        self._index[(kind, name)] = change

    def action(self, kind: str, name: str) -> Action:
        """What the import does with one item."""
        return self._index[(kind, name)].action

    def fields(self, kind: str, name: str) -> tuple[str, ...]:
        """What an update of one item changes."""
        return self._index[(kind, name)].fields

    @property
    def empty(self) -> bool:
        """Whether the import changes nothing."""
        return all(c.action == "unchanged" for c in self.changes)


def _differ(pairs: dict[str, tuple[object, object]]) -> list[str]:
    return [name for name, (now, wanted) in pairs.items() if now != wanted]


def flow_fields(flow: FlowDoc) -> dict[str, object]:
    """A flow of the file as ``flows.describe`` shows a stored one (without the path)."""
    return {
        "required_role": flow.required_role,
        "auth": sorted(set(flow.auth)),
        "mode": flow.mode,
        "receiver_url": flow.receiver_url if flow.mode == "forward" else None,
        "timeout_seconds": flow.timeout_seconds,
        "max_bytes": flow.max_bytes,
        "enabled": flow.enabled,
        "description": flow.description,
    }


def ca_fingerprint(doc: TrustedCADoc) -> str:
    """The fingerprint of the issuing CA of an uploaded bundle, as ``add_trusted_ca`` sees it."""
    certs = verification.parse_pem_certificates(doc.certificate_pem)
    return verification.fingerprint(verification.order_ca_bundle(certs)[0])


def rule_name(fingerprint: str, subject_dn: str) -> str:
    """How the diff names a mapping rule: its CA's fingerprint (short) and the subject."""
    return f"{fingerprint[:16]} {subject_dn}"


def check_references(session: Session, document: Document) -> None:
    """``UnknownReferences`` listing every user and group ID of the file that is missing."""
    users = {m.user_id for m in document.members} | {a.user_id for a in document.assignments}
    users |= {r.user_id for ca in document.trusted_cas for r in ca.mapping_rules}
    found = set(
        session.scalars(
            select(User.user_id).where(
                User.user_id.in_(sorted(users)), User.status != UserStatus.erased
            )
        )
    )
    groups = {g.group_id for g in document.group_assignments}
    found_groups = set(session.scalars(select(Group.group_id).where(Group.group_id.in_(groups))))
    missing = sorted(users - found) + sorted(groups - found_groups)
    if missing:
        raise UnknownReferences(
            f"the file names user or group IDs this directory does not have: "
            f"{', '.join(missing)}; create them, or remove them from the file"
        )


def compute(session: Session, *, subaccount: Subaccount | None, document: Document) -> Plan:
    """The plan of importing ``document`` into ``subaccount`` (``None``: it is created)."""
    check_references(session, document)
    plan = Plan()
    wanted = document.settings
    if subaccount is None:
        plan.add("sub-account", "settings", None)
    else:
        plan.add(
            "sub-account",
            "settings",
            _differ(
                {
                    "basic_auth_allowed": (
                        subaccount.basic_auth_allowed,
                        wanted.basic_auth_allowed,
                    ),
                    "message_retention_days": (
                        subaccount.message_retention_days,
                        wanted.message_retention_days,
                    ),
                }
            ),
        )
    here = subaccount.id if subaccount is not None else None
    roles = {r.name: r for r in session.scalars(select(Role).where(Role.subaccount_id == here))}
    for role in document.roles:
        found = roles.get(role.name)
        plan.add(
            "role",
            role.name,
            None
            if found is None
            else _differ({"description": (found.description, role.description)}),
        )
    collections = {
        c.name: c
        for c in session.scalars(select(RoleCollection).where(RoleCollection.subaccount_id == here))
    }
    for doc in document.role_collections:
        col = collections.get(doc.name)
        plan.add(
            "role collection",
            doc.name,
            None
            if col is None
            else _differ(
                {
                    "description": (col.description, doc.description),
                    "roles": (
                        access.collection_roles(session, collection=col),
                        sorted(set(doc.roles)),
                    ),
                }
            ),
        )
    stored = (
        {f.path: f for f in flows.list_flows(session, subaccount=subaccount)} if subaccount else {}
    )
    for flow in document.flows:
        path = flow.path.strip("/")
        existing = stored.get(path)
        if existing is None:
            plan.add("flow", path, None)
            continue
        now = flows.describe(existing)
        # An export holds the URL without its password (``public_url``): compare like with
        # like, unless the file was given a password (then it is compared, and set).
        if public_url(flow.receiver_url) == flow.receiver_url:
            now["receiver_url"] = public_url(now["receiver_url"])
        plan.add("flow", path, _differ({k: (now[k], v) for k, v in flow_fields(flow).items()}))
    _people(session, plan, subaccount, document)
    _trust(session, plan, subaccount, document)
    return plan


def _people(
    session: Session, plan: Plan, subaccount: Subaccount | None, document: Document
) -> None:
    """Members, users' and groups' role collections (assignments only ever add)."""
    members: dict[str, Member] = {}
    if subaccount is not None:
        members = {
            u.user_id: m
            for m, u in session.execute(
                select(Member, User)
                .join(User, User.id == Member.user_id)
                .where(Member.subaccount_id == subaccount.id)
            )
        }
    for doc in document.members:
        member = members.get(doc.user_id)
        plan.add(
            "member",
            doc.user_id,
            None
            if member is None
            else _differ(
                {
                    "roles": (sorted(member.roles), sorted(set(doc.roles))),
                    "description": (member.description, doc.description),
                }
            ),
        )
    for assignment in document.assignments:
        held: list[str] = []
        if subaccount is not None:
            user = session.scalar(select(User).where(User.user_id == assignment.user_id))
            assert user is not None  # check_references found it
            held = access.user_collections(session, subaccount=subaccount, user=user)
        _additive(plan, "assignment", assignment.user_id, held, assignment.role_collections)
    for given in document.group_assignments:
        held = []
        if subaccount is not None:
            group = session.scalar(select(Group).where(Group.group_id == given.group_id))
            assert group is not None
            held = group_assignments.group_collections(session, subaccount=subaccount, group=group)
        _additive(plan, "group assignment", given.group_id, held, given.role_collections)


def _additive(plan: Plan, kind: str, name: str, held: list[str], wanted: list[str]) -> None:
    if not held and wanted:
        plan.add(kind, name, None)
    else:
        plan.add(kind, name, ["role_collections"] if set(wanted) - set(held) else [])


def _trust(session: Session, plan: Plan, subaccount: Subaccount | None, document: Document) -> None:
    """Trusted CAs (by fingerprint) and their mapping rules (by subject)."""
    stored: dict[str, TrustedCA] = {}
    if subaccount is not None:
        stored = {
            t.fingerprint_sha256: t for t in trust.list_trusted_cas(session, subaccount=subaccount)
        }
    for doc in document.trusted_cas:
        fp = ca_fingerprint(doc)
        found = stored.get(fp)
        plan.add(
            "trusted CA",
            fp,
            None
            if found is None
            else _differ({"description": (found.description, doc.description)}),
        )
        rules: dict[str, str] = {}
        if found is not None and subaccount is not None:
            rules = {
                rule.subject_dn: user.user_id
                for rule, _, user in trust.list_mapping_rules(
                    session, subaccount=subaccount, trusted=found
                )
            }
        for rule in doc.mapping_rules:
            dn = verification.normalise_dn(rule.subject_dn)
            mapped = rules.get(dn)
            plan.add(
                "mapping rule",
                rule_name(fp, dn),
                None if mapped is None else _differ({"user_id": (mapped, rule.user_id)}),
            )
