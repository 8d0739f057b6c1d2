"""The grants version moves by itself, once per transaction that changes the read model
(issue 9): no service bumps it by hand, so none can forget to."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import Column, delete, event, insert, select, text, update
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql import visitors

from ostiary.access import service as access
from ostiary.access import versions
from ostiary.access.models import RoleCollection, RoleCollectionAssignment
from ostiary.access.snapshot import READ_MODEL, load
from ostiary.audit.actions import AuditAction
from ostiary.audit.service import record
from ostiary.context import AppContext
from ostiary.db import add_unique, make_session_factory, transaction
from ostiary.errors import Conflict
from ostiary.groups import assignments as group_assignments
from ostiary.groups import service as groups
from ostiary.identity import admin as identity_admin
from ostiary.identity import service as identity
from ostiary.identity import sessions as console_sessions
from ostiary.identity import technical
from ostiary.identity.models import User, UserKind, UserStatus
from ostiary.mail import service as mail
from ostiary.models import Base
from ostiary.oauth import clients, keys
from ostiary.oauth.models import ClientStatus, OAuthClient
from ostiary.oauth.rfc7009_revocation import revoke
from ostiary.oauth.rfc9068_jwt import AccessToken
from ostiary.runtime import flows
from ostiary.runtime.models import Message, MessageStatus
from ostiary.runtime.usage import LastUse
from ostiary.runtime.writer import BatchWriter
from ostiary.tenancy import service as tenancy
from ostiary.tenancy.models import MemberRole, Plan, Subaccount
from tests import factories as f

ACTOR = "test"


@dataclass(frozen=True)
class World:
    """A sub-account with a member, a technical user holding a role collection, a flow and
    an OAuth client with two secrets (all built through the services)."""

    admin: User
    person: User
    bot: User
    subaccount: Subaccount
    client: OAuthClient


@pytest.fixture
def world(ctx: AppContext) -> World:
    """The world, committed."""
    root = f.admin(ctx)
    person = f.person(ctx)
    with transaction(ctx.sessions) as s:
        sub = tenancy.create(
            s, clock=ctx.clock, actor=ACTOR, subdomain="acme", display_name="Acme", plan=Plan.trial
        )
        bot = technical.create(s, ctx, creator=root, display_name="bot", home=sub).user
        tenancy.add_member(
            s,
            clock=ctx.clock,
            actor=ACTOR,
            subaccount=sub,
            user=person,
            roles=[MemberRole.viewer.value],
        )
        for name in ("Senders", "Readers"):
            access.create_collection(
                s,
                clock=ctx.clock,
                actor=ACTOR,
                subaccount=sub,
                name=name,
                roles=["ESBMessaging.send"],
            )
        access.add_user_collection(
            s, clock=ctx.clock, actor=ACTOR, subaccount=sub, user=bot, name="Senders"
        )
        flows.create(s, clock=ctx.clock, actor=ACTOR, subaccount=sub, path="orders")
        client = clients.create(s, ctx, actor=ACTOR, subaccount=sub, user=bot).client
        clients.rotate(
            s,
            ctx,
            actor=ACTOR,
            subaccount=sub,
            client=client,
            old_valid_until=ctx.clock.now() + timedelta(days=1),
        )
        keys.ensure_key(s, secret_key=ctx.secret_key, clock=ctx.clock)
    return World(root, person, bot, sub, client)


def _version(ctx: AppContext) -> int:
    with transaction(ctx.read_sessions) as session:
        return versions.current(session)


def _here(session: Session, obj: object) -> object:
    """``obj`` (detached after the world's commit) as loaded in ``session``."""
    found = session.get(type(obj), obj.id)  # type: ignore[attr-defined]
    assert found is not None
    return found


Change = Callable[[Session, AppContext, World], object]


def _u(s: Session, user: User) -> User:
    found = _here(s, user)
    assert isinstance(found, User)
    return found


def _sub(s: Session, w: World) -> Subaccount:
    found = _here(s, w.subaccount)
    assert isinstance(found, Subaccount)
    return found


def _client(s: Session, w: World) -> OAuthClient:
    found = _here(s, w.client)
    assert isinstance(found, OAuthClient)
    return found


def _revoke(s: Session, ctx: AppContext, w: World) -> None:
    now = int(ctx.clock.now().timestamp())
    token = AccessToken(
        subject=w.bot.user_id,
        client_id=w.client.client_id,
        subdomain="acme",
        audience="acme",
        scope=frozenset(),
        jti=uuid.uuid4().hex,
        expires_at=now + 600,
        issued_at=now,
        claims={},
    )
    revoke(s, clock=ctx.clock, access=token)


def _retire(s: Session, ctx: AppContext, w: World) -> None:
    client = _client(s, w)
    oldest = min(clients.secrets_of(s, client=client), key=lambda row: row.created_at)
    clients.retire(s, ctx, actor=ACTOR, subaccount=_sub(s, w), client=client, secret_id=oldest.id)


READ_MODEL_CHANGES: dict[str, Change] = {
    "create a group": lambda s, ctx, w: groups.create(s, clock=ctx.clock, actor=ACTOR, name="G"),
    "put a technical user in a group": lambda s, ctx, w: groups.add_member(
        s,
        clock=ctx.clock,
        actor=ACTOR,
        group=groups.create(s, clock=ctx.clock, actor=ACTOR, name="G"),
        user=_u(s, w.bot),
    ),
    "assign a role collection to a group": lambda s, ctx, w: (
        group_assignments.set_group_collections(
            s,
            clock=ctx.clock,
            actor=ACTOR,
            subaccount=_sub(s, w),
            group=groups.create(s, clock=ctx.clock, actor=ACTOR, name="G"),
            names=[c.name for c in s.scalars(select(RoleCollection))][:1],
        )
    ),
    "create a technical user": lambda s, ctx, w: technical.create(
        s, ctx, creator=_u(s, w.admin), display_name="another", home=_sub(s, w)
    ),
    "register a person": lambda s, ctx, w: identity.register(
        s,
        ctx,
        email="new.person@example.com",
        given_name="New",
        family_name="Person",
        password=f.DEFAULT_PASSWORD,
    ),
    "create the first administrator": lambda s, ctx, w: identity.ensure_admin(
        s, ctx, email="root2@example.com", password=f.DEFAULT_PASSWORD
    ),
    "change a user's status": lambda s, ctx, w: identity_admin.change_status(
        s, ctx, actor=_u(s, w.admin), user=_u(s, w.person), status=UserStatus.disabled
    ),
    "reset a technical user's secret": lambda s, ctx, w: technical.reset_secret(
        s, ctx, actor=_u(s, w.admin), user=_u(s, w.bot)
    ),
    "convert a person to a technical user": lambda s, ctx, w: technical.convert(
        s, ctx, actor=_u(s, w.admin), person=_u(s, w.person), owner=_u(s, w.admin)
    ),
    "delete a technical user": lambda s, ctx, w: technical.delete(
        s, ctx, actor=_u(s, w.admin), user=_u(s, w.bot)
    ),
    "create a sub-account": lambda s, ctx, w: tenancy.create(
        s, clock=ctx.clock, actor=ACTOR, subdomain="beta", display_name="B", plan=Plan.trial
    ),
    "forbid Basic auth in a sub-account": lambda s, ctx, w: tenancy.update(
        s, clock=ctx.clock, actor=ACTOR, subaccount=_sub(s, w), basic_auth_allowed=False
    ),
    "delete a sub-account": lambda s, ctx, w: tenancy.delete_subaccount(
        s, clock=ctx.clock, actor=ACTOR, subaccount=_sub(s, w), confirm="acme"
    ),
    "add a member": lambda s, ctx, w: tenancy.add_member(
        s,
        clock=ctx.clock,
        actor=ACTOR,
        subaccount=_sub(s, w),
        user=_u(s, w.bot),
        roles=[MemberRole.developer.value],
    ),
    "change a member's roles": lambda s, ctx, w: tenancy.change_member(
        s,
        clock=ctx.clock,
        actor=ACTOR,
        subaccount=_sub(s, w),
        user=_u(s, w.person),
        roles=[MemberRole.developer.value],
    ),
    "remove a member": lambda s, ctx, w: tenancy.remove_member(
        s, clock=ctx.clock, actor=ACTOR, subaccount=_sub(s, w), user=_u(s, w.person)
    ),
    "create a role collection": lambda s, ctx, w: access.create_collection(
        s, clock=ctx.clock, actor=ACTOR, subaccount=_sub(s, w), name="New", roles=[]
    ),
    "change a role collection's roles": lambda s, ctx, w: access.change_collection(
        s, clock=ctx.clock, actor=ACTOR, subaccount=_sub(s, w), name="Senders", roles=[]
    ),
    "delete a role collection": lambda s, ctx, w: access.delete_collection(
        s, clock=ctx.clock, actor=ACTOR, subaccount=_sub(s, w), name="Senders"
    ),
    "assign a role collection": lambda s, ctx, w: access.add_user_collection(
        s, clock=ctx.clock, actor=ACTOR, subaccount=_sub(s, w), user=_u(s, w.bot), name="Readers"
    ),
    "unassign a role collection": lambda s, ctx, w: access.remove_user_collection(
        s, clock=ctx.clock, actor=ACTOR, subaccount=_sub(s, w), user=_u(s, w.bot), name="Senders"
    ),
    "create a flow": lambda s, ctx, w: flows.create(
        s, clock=ctx.clock, actor=ACTOR, subaccount=_sub(s, w), path="invoices"
    ),
    "disable a flow": lambda s, ctx, w: flows.change(
        s, clock=ctx.clock, actor=ACTOR, subaccount=_sub(s, w), path="orders", enabled=False
    ),
    "delete a flow": lambda s, ctx, w: flows.delete(
        s, clock=ctx.clock, actor=ACTOR, subaccount=_sub(s, w), path="orders"
    ),
    "create an OAuth client": lambda s, ctx, w: clients.create(
        s, ctx, actor=ACTOR, subaccount=_sub(s, w), user=_u(s, w.bot)
    ),
    "disable an OAuth client": lambda s, ctx, w: clients.set_status(
        s,
        ctx,
        actor=ACTOR,
        subaccount=_sub(s, w),
        client=_client(s, w),
        status=ClientStatus.disabled,
    ),
    "delete an OAuth client": lambda s, ctx, w: clients.delete(
        s, ctx, actor=ACTOR, subaccount=_sub(s, w), client=_client(s, w)
    ),
    "add a client secret": lambda s, ctx, w: clients.rotate(
        s,
        ctx,
        actor=ACTOR,
        subaccount=_sub(s, w),
        client=_client(s, w),
        old_valid_until=ctx.clock.now() + timedelta(hours=1),
    ),
    "retire a client secret": _retire,
    "revoke a token": _revoke,
    "rotate the signing keys": lambda s, ctx, w: keys.rotate(
        s,
        secret_key=ctx.secret_key,
        clock=ctx.clock,
        grace=timedelta(minutes=5),
        token_lifetime=timedelta(hours=1),
    ),
    # Statements that bypass the unit of work: ORM bulk, Core on the table, raw SQL.
    "bulk ORM update of a status": lambda s, ctx, w: s.execute(
        update(User).where(User.id == w.person.id).values(status=UserStatus.locked)
    ),
    "Core update of a read column": lambda s, ctx, w: s.execute(
        update(User.__table__)  # type: ignore[arg-type]
        .where(User.__table__.c.id == w.person.id)
        .values(is_platform_admin=True)
    ),
    "bulk ORM delete of assignments": lambda s, ctx, w: s.execute(
        delete(RoleCollectionAssignment).where(RoleCollectionAssignment.user_id == w.bot.id)
    ),
    "Core insert of an assignment": lambda s, ctx, w: s.execute(
        insert(RoleCollectionAssignment).values(
            collection_id=s.scalar(
                select(RoleCollection.id).where(RoleCollection.name == "Readers")
            ),
            user_id=w.bot.id,
            assigned_at=ctx.clock.now(),
        )
    ),
    "raw SQL that writes": lambda s, ctx, w: s.execute(
        text("UPDATE subaccounts SET basic_auth_allowed = :no"), {"no": False}
    ),
}


@pytest.mark.parametrize("change", READ_MODEL_CHANGES.values(), ids=READ_MODEL_CHANGES.keys())
def test_each_change_of_the_read_model_bumps_the_version_once(
    ctx: AppContext, world: World, change: Change
) -> None:
    before = _version(ctx)
    with transaction(ctx.sessions) as session:
        change(session, ctx, world)
    assert _version(ctx) == before + 1


def _message(s: Session, ctx: AppContext, w: World) -> None:
    s.add(
        Message(
            id=str(uuid.uuid4()),
            subaccount_id=w.subaccount.id,
            flow_id=None,
            flow_path="orders",
            sender=w.bot.user_id,
            credential_id="pwd",
            auth_method="basic",
            status=MessageStatus.stored,
            size=0,
            received_at=ctx.clock.now(),
        )
    )


OTHER_CHANGES: dict[str, Change] = {
    "store a message": _message,
    "record an audit event": lambda s, ctx, w: record(
        s, clock=ctx.clock, actor=ACTOR, action=AuditAction.flow_created, target="x"
    ),
    "flush last use of a user and a client": lambda s, ctx, w: LastUse.flush(
        s,
        {
            w.bot.user_id: ctx.clock.now() + timedelta(seconds=5),
            f"client:{w.client.client_id}": ctx.clock.now() + timedelta(seconds=5),
        },
    ),
    "open a console session": lambda s, ctx, w: console_sessions.start(
        s, ctx, user=_u(s, w.person), must_change_password=False
    ),
    "queue a mail": lambda s, ctx, w: mail.enqueue(
        s, clock=ctx.clock, recipient="a@example.com", subject="s", body="b"
    ),
    "allocate a user ID": lambda s, ctx, w: identity.allocate_user_id(s, kind=UserKind.person),
    "rename a user": lambda s, ctx, w: setattr(_u(s, w.person), "display_name", "Renamed"),
    "describe a sub-account": lambda s, ctx, w: tenancy.update(
        s, clock=ctx.clock, actor=ACTOR, subaccount=_sub(s, w), description="new words"
    ),
    "describe a member": lambda s, ctx, w: tenancy.change_member(
        s,
        clock=ctx.clock,
        actor=ACTOR,
        subaccount=_sub(s, w),
        user=_u(s, w.person),
        description="new words",
    ),
    "create a custom role": lambda s, ctx, w: access.create_role(
        s, clock=ctx.clock, actor=ACTOR, subaccount=_sub(s, w), name="Custom.role"
    ),
    "set a read column to the value it has": lambda s, ctx, w: setattr(
        _u(s, w.person), "status", UserStatus.active
    ),
    "read only": lambda s, ctx, w: load(s),
}


@pytest.mark.parametrize("change", OTHER_CHANGES.values(), ids=OTHER_CHANGES.keys())
def test_changes_outside_the_read_model_leave_the_version_alone(
    ctx: AppContext, world: World, change: Change
) -> None:
    before = _version(ctx)
    with transaction(ctx.sessions) as session:
        change(session, ctx, world)
    assert _version(ctx) == before


def test_one_transaction_with_many_changes_bumps_once(ctx: AppContext, world: World) -> None:
    before = _version(ctx)
    with transaction(ctx.sessions) as s:
        for name in ("create a flow", "assign a role collection", "create an OAuth client"):
            READ_MODEL_CHANGES[name](s, ctx, world)
            s.flush()  # each change in its own flush: still one bump for the transaction
        READ_MODEL_CHANGES["bulk ORM update of a status"](s, ctx, world)
        READ_MODEL_CHANGES["revoke a token"](s, ctx, world)
    assert _version(ctx) == before + 1


def test_a_rolled_back_change_bumps_nothing_and_leaves_the_next_transaction_clean(
    ctx: AppContext, world: World
) -> None:
    before = _version(ctx)
    with pytest.raises(RuntimeError), transaction(ctx.sessions) as s:
        READ_MODEL_CHANGES["disable a flow"](s, ctx, world)
        s.flush()
        raise RuntimeError("abandon")
    assert _version(ctx) == before
    with ctx.sessions() as s:
        with s.begin():
            READ_MODEL_CHANGES["disable a flow"](s, ctx, world)
            s.rollback()
        with s.begin():  # the same session: nothing pending carried over from the rollback
            OTHER_CHANGES["queue a mail"](s, ctx, world)
    assert _version(ctx) == before


def test_a_change_in_a_savepoint_that_failed_still_counts_for_the_rest(
    ctx: AppContext, world: World
) -> None:
    """A change after a rolled-back savepoint bumps; one inside a released savepoint too."""
    before = _version(ctx)
    with transaction(ctx.sessions) as s:
        sub = _sub(s, world)
        with pytest.raises(Conflict):  # the same subdomain again: the savepoint rolls back
            add_unique(
                s,
                Subaccount(subdomain="acme", display_name="dup", plan=Plan.trial, **_stamps(ctx)),
                conflict="taken",
            )
        sub.basic_auth_allowed = False
    assert _version(ctx) == before + 1
    with transaction(ctx.sessions) as s, s.begin_nested():
        _sub(s, world).basic_auth_allowed = True
    assert _version(ctx) == before + 2


def _stamps(ctx: AppContext) -> dict[str, object]:
    return {"created_at": ctx.clock.now(), "updated_at": ctx.clock.now()}


def test_this_process_reloads_at_once_and_others_see_the_new_version(
    ctx: AppContext, world: World
) -> None:
    """The hook sets the flag ``AppContext`` reads after commit: no poll interval to wait."""
    assert ctx.grants.get().subaccount_facts["acme"].basic_auth_allowed is True
    with transaction(ctx.sessions) as s:
        _sub(s, world).basic_auth_allowed = False
    assert ctx.grants.get().subaccount_facts["acme"].basic_auth_allowed is False
    assert ctx.grants.get().version == _version(ctx)


def test_every_session_of_the_process_is_hooked(ctx: AppContext, world: World) -> None:
    """API, console and CLI use ``ctx.sessions``/``ctx.read_sessions``; the runtime's
    writer thread commits through ``ctx.sessions`` too."""
    assert versions.tracked(ctx.sessions) and versions.tracked(ctx.read_sessions)
    assert versions.tracked(make_session_factory(ctx.engine))  # any other factory too
    assert not hasattr(versions, "bump")  # nobody can call it by hand any more
    before = _version(ctx)

    def disable(session: Session) -> None:
        _u(session, world.person).status = UserStatus.disabled

    async def through_the_writer() -> None:
        writer = BatchWriter(ctx.sessions)
        await writer.start()
        try:
            await writer.write(disable)
        finally:
            await writer.stop()

    asyncio.run(through_the_writer())
    assert _version(ctx) == before + 1


# ---------------------------------------------------------------- the list matches the loader


@pytest.fixture
def statements_of_load(ctx: AppContext, world: World) -> Iterator[list[object]]:
    """Every statement ``load`` runs (and a check that none bypassed the session)."""
    seen: list[object] = []
    cursor_runs: list[str] = []

    def on_execute(state: ORMExecuteState) -> None:
        seen.append(state.statement)

    def on_cursor(*args: object) -> None:
        cursor_runs.append(str(args[2]))

    with transaction(ctx.read_sessions) as session:
        event.listen(session, "do_orm_execute", on_execute)
        connection = session.connection()
        event.listen(connection, "before_cursor_execute", on_cursor)
        try:
            load(session)
        finally:
            event.remove(connection, "before_cursor_execute", on_cursor)
        yield seen
    assert len(cursor_runs) == len(seen), "load() ran SQL the session did not see"


def _columns(statement: object) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    parts = [statement, *getattr(statement, "selected_columns", ())]
    for part in parts:
        for element in visitors.iterate(part):  # type: ignore[arg-type]
            if isinstance(element, Column) and element.table is not None:
                found.add((element.table.name, element.name))
    return found


def test_the_hook_watches_exactly_what_the_loader_reads(statements_of_load: list[object]) -> None:
    """A table or column ``load`` starts to read must be added to ``READ_MODEL``, or a
    change to it would not reach the other workers; one it stops reading should go."""
    read: dict[str, set[str]] = {}
    for statement in statements_of_load:
        for table, column in _columns(statement):
            read.setdefault(table, set()).add(column)
    assert read.pop("id_counters") == {"name", "value"}  # the version itself
    assert read == {table: set(columns) for table, columns in READ_MODEL.items()}


def test_the_read_model_names_real_tables_and_columns() -> None:
    for table, columns in READ_MODEL.items():
        assert table in Base.metadata.tables, table
        assert columns <= set(Base.metadata.tables[table].columns.keys()), table


def test_last_use_columns_are_outside_the_read_model() -> None:
    """Last use is flushed every few seconds by every busy worker: if it bumped, every
    flush would reload every process's snapshot."""
    assert "last_used_at" not in READ_MODEL["users"]
    assert "last_used_at" not in READ_MODEL["oauth_clients"]


def test_grants_are_made_once_per_snapshot_and_unknown_names_are_not_remembered(
    ctx: AppContext,
) -> None:
    from tests import factories as f

    user = f.admin(ctx)
    with ctx.sessions() as session:
        old = load(session)
    assert old.grants(user_id=user.user_id, subdomain="nowhere") is None
    assert old.grants(user_id="T999999", subdomain="nowhere") is None
    assert old._grants == {}
    # A sub-account appears: a new snapshot answers, the old one keeps its own answer.
    from ostiary.tenancy import service as tenancy
    from ostiary.tenancy.models import Plan

    with transaction(ctx.sessions) as session:
        tenancy.create(
            session,
            clock=ctx.clock,
            actor=user.user_id,
            subdomain="acme",
            display_name="Acme",
            plan=Plan.standard,
        )
    with ctx.sessions() as session:
        new = load(session)
    first = new.grants(user_id=user.user_id, subdomain="acme")
    assert first is not None and first.subdomain == "acme"
    assert new.grants(user_id=user.user_id, subdomain="acme") is first
    assert old.grants(user_id=user.user_id, subdomain="acme") is None
