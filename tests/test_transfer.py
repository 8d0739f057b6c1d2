"""Sub-account export and import through the admin API, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from ostiary.access import versions
from ostiary.audit.models import AuditEvent
from ostiary.context import AppContext
from ostiary.db import transaction
from ostiary.tenancy.models import Subaccount
from tests import factories as f
from tests.transfer_world import API, World, build


@pytest.fixture
def world(client: TestClient, ctx: AppContext) -> World:
    return build(client, ctx)


def events(ctx: AppContext) -> int:
    with transaction(ctx.read_sessions) as session:
        return int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def grants_version(ctx: AppContext) -> int:
    with transaction(ctx.read_sessions) as session:
        return versions.current(session)


def exists(ctx: AppContext, subdomain: str) -> bool:
    with transaction(ctx.read_sessions) as session:
        return (
            session.scalar(select(Subaccount).where(Subaccount.subdomain == subdomain)) is not None
        )


def comparable(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k not in {"exported_at", "source_subdomain"}}


def test_export_then_import_as_a_new_subaccount_reproduces_the_configuration(world: World) -> None:
    exported = world.export()
    assert exported["format"] == "ostiary.subaccount/1"
    assert [r["name"] for r in exported["roles"]] == ["Orders.send"]
    assert [c["name"] for c in exported["role_collections"]] == ["Order Senders", "Readers"]
    assert exported["flows"][0]["path"] == "orders/v1"
    assert exported["assignments"] == [
        {"user_id": world.bot, "role_collections": ["Order Senders"]}
    ]
    assert exported["group_assignments"][0]["group_id"] == world.group_id
    assert exported["trusted_cas"][0]["mapping_rules"] == [
        {"subject_dn": "CN=orders,O=Partner", "user_id": world.bot}
    ]
    assert exported["settings"]["message_retention_days"] == 14

    result = world.import_(exported)
    assert result["dry_run"] is False
    assert result["counts"]["update"] == 0 and result["counts"]["unchanged"] == 0
    assert {c["action"] for c in result["changes"]} == {"create"}
    assert comparable(world.export("acme-prod")) == comparable(exported)

    world.ctx.grants.refresh()
    check = world.client.get(
        f"{API}/subaccounts/acme-prod/access/check",
        headers=world.auth,
        params={"user_id": world.bot, "role": "Orders.send"},
    ).json()
    assert check["decision"] == "allow"
    call = world.client.post(
        "/t/acme-prod/http/orders/v1", headers=f.basic(world.bot, world.secret), content=b"<o/>"
    )
    assert call.status_code == 200, call.text


def test_a_second_import_is_an_empty_diff_and_writes_nothing(world: World) -> None:
    exported = world.export()
    world.import_(exported)
    before = (events(world.ctx), grants_version(world.ctx))
    again = world.import_(exported)
    assert again["counts"]["create"] == 0 and again["counts"]["update"] == 0
    assert {c["action"] for c in again["changes"]} == {"unchanged"}
    assert (events(world.ctx), grants_version(world.ctx)) == before


def test_a_dry_run_shows_the_diff_and_keeps_nothing(world: World) -> None:
    exported = world.export()
    before = (events(world.ctx), grants_version(world.ctx))
    dry = world.import_(exported, dry_run=True)
    assert dry["dry_run"] is True
    assert dry["counts"]["create"] == len(dry["changes"]) > 5
    assert not exists(world.ctx, "acme-prod")
    assert (events(world.ctx), grants_version(world.ctx)) == before

    world.import_(exported)
    changed = copy.deepcopy(exported)
    changed["flows"][0]["max_bytes"] = 4096
    changed["role_collections"][1]["description"] = "read only"
    before = (events(world.ctx), grants_version(world.ctx))
    diff = world.import_(changed, dry_run=True)
    updates = {
        (c["kind"], c["name"]): c["fields"] for c in diff["changes"] if c["action"] == "update"
    }
    assert updates == {
        ("flow", "orders/v1"): ["max_bytes"],
        ("role collection", "Readers"): ["description"],
    }
    assert (events(world.ctx), grants_version(world.ctx)) == before
    flow = world.client.get(f"{API}/subaccounts/acme-prod/flows/orders/v1", headers=world.auth)
    assert flow.json()["max_bytes"] != 4096


def test_an_import_updates_what_the_file_names_audits_it_and_deletes_nothing(world: World) -> None:
    exported = world.export()
    world.import_(exported)
    extra = world.client.post(
        f"{API}/subaccounts/acme-prod/flows", headers=world.auth, json={"path": "only-in-prod"}
    )
    assert extra.status_code == 201
    changed = copy.deepcopy(exported)
    changed["flows"][0]["max_bytes"] = 4096
    changed["flows"] = changed["flows"][:1]
    changed["roles"][0]["description"] = "sends orders to prod"
    changed["members"] = []
    result = world.import_(changed)
    assert result["counts"]["update"] == 2
    paths = [
        x["path"]
        for x in world.client.get(f"{API}/subaccounts/acme-prod/flows", headers=world.auth).json()[
            "items"
        ]
    ]
    assert sorted(paths) == ["only-in-prod", "orders/v1"]
    members = world.client.get(f"{API}/subaccounts/acme-prod/members", headers=world.auth).json()
    assert world.dev.user_id in {m["user_id"] for m in members["items"]}
    audit = world.client.get(
        f"{API}/audit-events", headers=world.auth, params={"subdomain": "acme-prod", "limit": 5}
    ).json()["items"]
    actions = {(e["action"], e["actor"]) for e in audit}
    assert ("subaccount:flow:changed", world.root.user_id) in actions
    assert ("subaccount:role:changed", world.root.user_id) in actions


def test_a_failed_import_leaves_nothing_behind(world: World) -> None:
    exported = world.export()
    broken = copy.deepcopy(exported)
    broken["role_collections"].append({"name": "Ghosts", "roles": ["No.such.role"]})
    before = (events(world.ctx), grants_version(world.ctx))
    answer = world.import_(broken, status=400)
    assert "No.such.role" in answer["detail"]
    assert not exists(world.ctx, "acme-prod")
    assert (events(world.ctx), grants_version(world.ctx)) == before


def test_unknown_user_ids_are_refused_with_their_list(world: World) -> None:
    exported = world.export()
    exported["members"].append({"user_id": "P999999", "roles": ["Viewer"]})
    exported["assignments"].append({"user_id": "T999998", "role_collections": ["Readers"]})
    answer = world.import_(exported, status=422)
    assert answer["error"] == "unknown_users"
    assert "P999999" in answer["detail"] and "T999998" in answer["detail"]
    assert not exists(world.ctx, "acme-prod")


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.update(format="ostiary.subaccount/2"), "unsupported version"),
        (lambda d: d.update(format="keycloak.realm"), "not a sub-account export"),
        (lambda d: d["flows"][0].update(max_bytes="big"), "flows.0.max_bytes"),
        (lambda d: d.update(passwords=["x"]), "passwords"),
        (lambda d: d.pop("settings"), "settings"),
        (lambda d: d["roles"].extend([{"name": f"R{i}"} for i in range(10_001)]), "roles"),
        (lambda d: d["roles"].append(dict(d["roles"][0])), "appears twice"),
    ],
)
def test_an_invalid_file_is_a_422_with_the_reason(world: World, mutate: Any, reason: str) -> None:
    document = world.export()
    mutate(document)
    answer = world.import_(document, status=422)
    assert answer["error"] == "invalid_document"
    assert reason in answer["detail"]


def test_the_import_takes_json_only(world: World) -> None:
    for body, kind in ((b"{}", "text/plain"), (b"format=x", "application/x-www-form-urlencoded")):
        answer = world.client.post(
            f"{API}/subaccounts/acme-prod/import",
            headers={**world.auth, "Content-Type": kind},
            content=body,
        )
        assert answer.status_code == 415, answer.text
    garbage = world.client.post(
        f"{API}/subaccounts/acme-prod/import",
        headers={**world.auth, "Content-Type": "application/json"},
        content=b"{not json",
    )
    assert garbage.status_code == 422 and "not JSON" in garbage.json()["detail"]


def test_viewers_export_only_administrators_import_and_only_platform_admins_create(
    world: World,
) -> None:
    exported = world.export()
    viewer, boss = f.person(world.ctx), f.person(world.ctx)
    world.import_(exported)
    for user, role in ((viewer, "Viewer"), (boss, "Administrator")):
        added = world.client.post(
            f"{API}/subaccounts/acme-prod/members",
            headers=world.auth,
            json={"user_id": user.user_id, "roles": [role]},
        )
        assert added.status_code == 201, added.text
    world.ctx.grants.refresh()
    assert world.export("acme-prod", auth=f.basic(viewer.user_id))["format"]
    denied = world.import_(exported, auth=f.basic(viewer.user_id), status=403)
    assert "subaccount:" in denied["detail"]
    dev = world.import_(exported, auth=f.basic(world.dev.user_id), status=403)
    assert dev["error"] == "forbidden"
    outsider = f.person(world.ctx)
    out = world.client.get(f"{API}/subaccounts/acme-prod/export", headers=f.basic(outsider.user_id))
    assert out.status_code == 403
    assert world.import_(exported, auth=f.basic(boss.user_id))["counts"]["create"] == 0
    world.import_(exported, "acme-new", auth=f.basic(boss.user_id), status=403)
    assert not exists(world.ctx, "acme-new")
    audit = world.client.get(
        f"{API}/audit-events", headers=world.auth, params={"action": "access:denied"}
    ).json()["items"]
    assert any(e["actor"] == viewer.user_id for e in audit)


def test_the_export_holds_no_secret_material(world: World) -> None:
    text_ = world.client.get(f"{API}/subaccounts/acme-test/export", headers=world.auth).text
    with transaction(world.ctx.read_sessions) as session:
        stored = [
            str(v)
            for query in (
                "SELECT password_hash FROM users WHERE password_hash IS NOT NULL",
                "SELECT secret_hash FROM technical_user_secrets",
                "SELECT secret_hash FROM oauth_client_secrets",
                "SELECT private_key_encrypted FROM certificate_authorities",
            )
            for v in session.execute(text(query)).scalars()
        ]
    assert len(stored) >= 3
    for secret in (world.secret, world.client_secret, *stored):
        assert secret not in text_
    for marker in ("PRIVATE KEY", "$argon2", "password", "secret"):
        assert marker not in text_
