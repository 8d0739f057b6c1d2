"""Groups: members, role collections through a group, the group path in decisions (issue 12)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from ostiary.access import service as access
from ostiary.access.decision import Allow, Deny, RoleRequirement, decide
from ostiary.access.snapshot import load
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.errors import Conflict, InvalidInput, NotFound
from ostiary.groups import assignments, ownership
from ostiary.groups import service as groups
from ostiary.identity.models import User, UserStatus
from ostiary.tenancy import service as tenancy
from ostiary.tenancy.models import Plan
from tests import factories as f

ACTOR = "test"


def _user(session: Session, user: User) -> User:
    found = session.get(User, user.id)
    assert found is not None
    return found


@pytest.fixture
def senders(ctx: AppContext) -> None:
    """Sub-account ``acme`` with a role collection Senders holding ESBMessaging.send."""
    with transaction(ctx.sessions) as s:
        sub = tenancy.create(
            s, clock=ctx.clock, actor=ACTOR, subdomain="acme", display_name="A", plan=Plan.trial
        )
        access.create_collection(
            s,
            clock=ctx.clock,
            actor=ACTOR,
            subaccount=sub,
            name="Senders",
            roles=["ESBMessaging.send"],
        )


def test_group_ids_are_allocated_and_names_are_unique(ctx: AppContext) -> None:
    with transaction(ctx.sessions) as s:
        first = groups.create(s, clock=ctx.clock, actor=ACTOR, name="Integration Team")
        second = groups.create(s, clock=ctx.clock, actor=ACTOR, name="Ops", description="d")
        assert (first.group_id, second.group_id) == ("G000001", "G000002")
        with pytest.raises(Conflict):
            groups.create(s, clock=ctx.clock, actor=ACTOR, name="Ops")
        with pytest.raises(InvalidInput):
            groups.create(s, clock=ctx.clock, actor=ACTOR, name="  ")
        assert [g.name for g in groups.list_groups(s, query="int")] == ["Integration Team"]
        assert groups.find(s, reference="Ops").group_id == "G000002"
        with pytest.raises(Conflict):
            groups.update_group(
                s, clock=ctx.clock, actor=ACTOR, group=second, name="Integration Team"
            )
    with transaction(ctx.sessions) as s, pytest.raises(NotFound):
        groups.get(s, group_id="G999999")


def test_a_member_holds_the_groups_role_collection_and_the_path_names_the_group(
    ctx: AppContext, senders: None
) -> None:
    owner = f.person(ctx)
    bot, _ = f.technical_user(ctx, owner=owner)
    with transaction(ctx.sessions) as s:
        team = groups.create(s, clock=ctx.clock, actor=ACTOR, name="Integration Team")
        assert groups.add_member(s, clock=ctx.clock, actor=ACTOR, group=team, user=_user(s, bot))
        assert not groups.add_member(
            s, clock=ctx.clock, actor=ACTOR, group=team, user=_user(s, bot)
        )
        sub = tenancy.get(s, subdomain="acme")
        assignments.set_group_collections(
            s, clock=ctx.clock, actor=ACTOR, subaccount=sub, group=team, names=["Senders"]
        )
    with transaction(ctx.sessions) as s:
        from_db = access.load_grants(
            s, user=_user(s, bot), subaccount=tenancy.get(s, subdomain="acme")
        )
        snapshot = load(s)
    from_snapshot = snapshot.grants(user_id=bot.user_id, subdomain="acme")
    assert from_snapshot is not None
    path = f"{bot.user_id} → group Integration Team → role collection Senders → ESBMessaging.send"
    for grants in (from_db, from_snapshot):
        assert grants.paths("ESBMessaging.send") == [path]
        decision = decide(grants, RoleRequirement("ESBMessaging.send"))
        assert isinstance(decision, Allow) and path in decision.because
    with transaction(ctx.sessions) as s:
        team = groups.get(s, group_id="G000001")
        assert [u.user_id for u in groups.members(s, group=team)] == [bot.user_id]
        assert groups.remove_member(s, clock=ctx.clock, actor=ACTOR, group=team, user=_user(s, bot))
        assert not groups.remove_member(
            s, clock=ctx.clock, actor=ACTOR, group=team, user=_user(s, bot)
        )
    with transaction(ctx.sessions) as s:
        after = load(s).grants(user_id=bot.user_id, subdomain="acme")
    assert after is not None
    assert isinstance(decide(after, RoleRequirement("ESBMessaging.send")), Deny)


def test_direct_and_group_paths_are_both_named(ctx: AppContext, senders: None) -> None:
    person = f.person(ctx)
    with transaction(ctx.sessions) as s:
        sub = tenancy.get(s, subdomain="acme")
        team = groups.create(s, clock=ctx.clock, actor=ACTOR, name="Team")
        groups.add_member(s, clock=ctx.clock, actor=ACTOR, group=team, user=_user(s, person))
        assignments.set_group_collections(
            s, clock=ctx.clock, actor=ACTOR, subaccount=sub, group=team, names=["Senders"]
        )
        access.set_user_collections(
            s,
            clock=ctx.clock,
            actor=ACTOR,
            subaccount=sub,
            user=_user(s, person),
            names=["Senders"],
        )
    with transaction(ctx.sessions) as s:
        grants = load(s).grants(user_id=person.user_id, subdomain="acme")
    assert grants is not None
    assert grants.paths("ESBMessaging.send") == [
        f"{person.user_id} → role collection Senders → ESBMessaging.send",
        f"{person.user_id} → group Team → role collection Senders → ESBMessaging.send",
    ]


def test_a_group_owning_technical_users_cannot_be_deleted_and_members_manage_them(
    ctx: AppContext,
) -> None:
    creator = f.person(ctx)
    colleague = f.person(ctx)
    stranger = f.person(ctx)
    bot, _ = f.technical_user(ctx, owner=creator)
    with transaction(ctx.sessions) as s:
        team = groups.create(s, clock=ctx.clock, actor=ACTOR, name="Team")
        groups.set_members(
            s,
            clock=ctx.clock,
            actor=ACTOR,
            group=team,
            users=[_user(s, creator), _user(s, colleague)],
        )
        ownership.give_to_group(
            s, clock=ctx.clock, actor=_user(s, creator), user=_user(s, bot), group=team
        )
        assert _user(s, bot).owner_id is None
        assert ownership.managed_through_group(s, actor=_user(s, colleague), user=_user(s, bot))
        assert not ownership.managed_through_group(s, actor=_user(s, stranger), user=_user(s, bot))
        assert groups.active_member_emails(s, group=team) == sorted(
            [creator.email or "", colleague.email or ""]
        )
        _user(s, colleague).status = UserStatus.disabled
        assert groups.active_member_emails(s, group=team) == [creator.email]
        with pytest.raises(Conflict, match=bot.user_id):
            groups.delete_group(s, clock=ctx.clock, actor=ACTOR, group=team)
