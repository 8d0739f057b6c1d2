"""Attacks on sub-account export/import and on the offline API docs, on SQLite and
PostgreSQL: an import may do no more than the importer could do by hand, bad files are a
4xx with the reason (never a 500), a dry run keeps nothing, and the docs pages stay locked.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ostiary.cli.main import app
from ostiary.context import AppContext
from ostiary.identity.models import User
from tests import factories as f
from tests.pki import make, name
from tests.test_console_tenancy import sign_in
from tests.test_transfer import events, exists, grants_version
from tests.transfer_world import API, World, build


@pytest.fixture
def world(client: TestClient, ctx: AppContext) -> World:
    return build(client, ctx)


def post(world: World, url: str, body: Any, method: str = "POST") -> Any:
    answer = world.client.request(method, f"{API}{url}", headers=world.auth, json=body)
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def admin_of_prod(world: World) -> tuple[Any, User]:
    """``acme-prod`` imported from ``acme-test`` by the platform admin, and a person who
    is Administrator of ``acme-prod`` only."""
    exported = world.export()
    world.import_(exported)
    boss = f.person(world.ctx)
    post(
        world,
        "/subaccounts/acme-prod/members",
        {"user_id": boss.user_id, "roles": ["Administrator"]},
    )
    world.ctx.grants.refresh()
    return exported, boss


def raw_import(world: World, body: bytes, subdomain: str = "acme-prod") -> Any:
    return world.client.post(
        f"{API}/subaccounts/{subdomain}/import",
        headers={**world.auth, "Content-Type": "application/json"},
        content=body,
    )


# ---------------------------------------------------------------- privilege


def test_an_administrator_of_one_subaccount_cannot_import_into_another(world: World) -> None:
    exported, boss = admin_of_prod(world)
    hostile = copy.deepcopy(exported)
    hostile["members"].append({"user_id": boss.user_id, "roles": ["Administrator"]})
    hostile["flows"][0]["max_bytes"] = 7
    before = (events(world.ctx), grants_version(world.ctx))
    world.import_(hostile, "acme-test", auth=f.basic(boss.user_id), status=403)
    world.import_(hostile, "acme-test", auth=f.basic(boss.user_id), dry_run=True, status=403)
    assert grants_version(world.ctx) == before[1]
    assert events(world.ctx) == before[0] + 2  # the two refusals, audited as access:denied
    members = world.client.get(f"{API}/subaccounts/acme-test/members", headers=world.auth).json()
    assert boss.user_id not in {m["user_id"] for m in members["items"]}


def test_unknown_users_are_told_only_to_who_may_import(world: World) -> None:
    """The ``unknown_users`` list tells which user IDs exist: it comes after the permission
    check, so only an Administrator of the target learns it (as adding a member by hand
    answers ``no user ...``)."""
    exported, boss = admin_of_prod(world)
    exported["members"].append({"user_id": "P999999", "roles": ["Viewer"]})
    outsider = f.person(world.ctx)
    for subdomain in ("acme-prod", "acme-nowhere"):
        answer = world.import_(exported, subdomain, auth=f.basic(outsider.user_id), status=403)
        assert "P999999" not in json.dumps(answer)
    told = world.import_(exported, auth=f.basic(boss.user_id), dry_run=True, status=422)
    assert told["error"] == "unknown_users" and "P999999" in told["detail"]
    by_hand = world.client.post(
        f"{API}/subaccounts/acme-prod/members",
        headers=f.basic(boss.user_id),
        json={"user_id": "P999999", "roles": ["Viewer"]},
    )
    assert by_hand.status_code == 404 and "P999999" in by_hand.text


def test_an_import_cannot_map_certificates_onto_a_platform_admin_or_a_person(
    world: World,
) -> None:
    exported, boss = admin_of_prod(world)
    for victim in (world.root.user_id, boss.user_id, world.dev.user_id):
        hostile = copy.deepcopy(exported)
        hostile["trusted_cas"][0]["mapping_rules"].append(
            {"subject_dn": f"CN=evil-{victim},O=Partner", "user_id": victim}
        )
        before = (events(world.ctx), grants_version(world.ctx))
        answer = world.import_(hostile, auth=f.basic(boss.user_id), status=400)
        assert "not a technical user" in answer["detail"]
        assert (events(world.ctx), grants_version(world.ctx)) == before
    fresh = copy.deepcopy(exported)
    other_ca = make(name("Evil Root"), ca=True, days=365)
    fresh["trusted_cas"].append(
        {
            "certificate_pem": other_ca.pem,
            "mapping_rules": [{"subject_dn": "CN=root,O=Evil", "user_id": world.root.user_id}],
        }
    )
    world.import_(fresh, auth=f.basic(boss.user_id), status=400)
    cas = world.client.get(f"{API}/subaccounts/acme-prod/trusted-cas", headers=world.auth).json()
    assert len(cas["items"]) == 1  # the new CA went with the refused rule


def test_an_import_cannot_take_in_a_technical_user_of_another_subaccount(world: World) -> None:
    exported, boss = admin_of_prod(world)
    post(world, "/subaccounts", {"subdomain": "elsewhere", "display_name": "Elsewhere"})
    foreign = post(world, "/technical-users", {"display_name": "theirs", "subdomain": "elsewhere"})
    post(world, "/subaccounts/elsewhere/role-collections", {"name": "Theirs", "roles": []})
    post(
        world,
        f"/subaccounts/elsewhere/users/{foreign['user_id']}/role-collections",
        {"role_collections": ["Theirs"]},
        "PUT",
    )
    tid = foreign["user_id"]
    attempts = [
        lambda d: d["members"].append({"user_id": tid, "roles": ["Viewer"]}),
        lambda d: d["assignments"].append({"user_id": tid, "role_collections": ["Readers"]}),
        lambda d: d["trusted_cas"][0]["mapping_rules"].append(
            {"subject_dn": "CN=theirs,O=Partner", "user_id": tid}
        ),
    ]
    for attempt in attempts:
        hostile = copy.deepcopy(exported)
        attempt(hostile)
        before = (events(world.ctx), grants_version(world.ctx))
        answer = world.client.post(
            f"{API}/subaccounts/acme-prod/import", headers=f.basic(boss.user_id), json=hostile
        )
        assert answer.status_code in (400, 403), answer.text
        assert tid in answer.json()["detail"]
        assert grants_version(world.ctx) == before[1]
        assert events(world.ctx) <= before[0] + 1  # at most the refusal itself
    # The operator may (the CLI and a platform admin manage every technical user).
    hostile = copy.deepcopy(exported)
    attempts[0](hostile)
    assert world.import_(hostile)["counts"]["create"] == 1


# ---------------------------------------------------------------- what an update keeps


def test_updating_a_flow_keeps_the_receiver_password_the_file_cannot_hold(world: World) -> None:
    post(
        world,
        "/subaccounts/acme-test/flows",
        {
            "path": "fwd",
            "required_role": "Orders.send",
            "mode": "forward",
            "receiver_url": "https://bob:s3cret-pw@erp.example/in?x=1",
        },
    )
    exported = world.export()
    flow = next(x for x in exported["flows"] if x["path"] == "fwd")
    assert flow["receiver_url"] == "https://bob@erp.example/in?x=1"
    assert "s3cret-pw" not in json.dumps(exported)
    world.import_(exported, "acme-test")  # back into the source: nothing changes
    flow["max_bytes"] = 4096
    result = world.import_(exported, "acme-test")
    assert [c["fields"] for c in result["changes"] if c["action"] == "update"] == [["max_bytes"]]
    stored = world.client.get(f"{API}/subaccounts/acme-test/flows/fwd", headers=world.auth).json()
    assert stored["max_bytes"] == 4096
    assert stored["receiver_url"] == "https://bob:s3cret-pw@erp.example/in?x=1"
    # A file given the (new) password by hand sets it, once: the next import is empty.
    flow["receiver_url"] = "https://bob:n3w-pw@erp.example/in?x=1"
    assert world.import_(exported, "acme-test")["counts"]["update"] == 1
    assert world.import_(exported, "acme-test")["counts"]["update"] == 0
    stored = world.client.get(f"{API}/subaccounts/acme-test/flows/fwd", headers=world.auth).json()
    assert stored["receiver_url"] == "https://bob:n3w-pw@erp.example/in?x=1"


# ---------------------------------------------------------------- dry run


def test_dry_runs_leave_the_audit_chain_whole(world: World) -> None:
    exported = world.export()
    before = (events(world.ctx), grants_version(world.ctx))
    world.import_(exported, dry_run=True)
    broken = copy.deepcopy(exported)
    broken["role_collections"].append({"name": "Ghosts", "roles": ["No.such.role"]})
    world.import_(broken, status=400)
    assert (events(world.ctx), grants_version(world.ctx)) == before
    assert not exists(world.ctx, "acme-prod")
    world.import_(exported)
    chain = world.client.get(f"{API}/audit-events/verify", headers=world.auth).json()
    assert chain["ok"] is True, chain
    assert chain["events"] == events(world.ctx)


# ---------------------------------------------------------------- bad input


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def _duplicate_settings(document: dict[str, Any]) -> bytes:
    text = _json(document).decode()
    evil = json.dumps({**document["settings"], "basic_auth_allowed": False})
    return ('{"settings": ' + evil + ", " + text[1:]).encode()


BAD: list[tuple[str, Any]] = [
    ("duplicate key", _duplicate_settings),
    ("deep", lambda d: b'{"format": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"),
    (
        "NUL in a description",
        lambda d: _json({**d, "roles": [{**d["roles"][0], "description": "a\x00b"}]}),
    ),
    (
        "NUL in a name",
        lambda d: _json({**d, "role_collections": [{"name": "Ev\x00il", "roles": []}]}),
    ),
    ("lone surrogate", lambda d: _json(d).replace(b'"send orders"', b'"\\ud800 orders"')),
    ("unicode path", lambda d: _json({**d, "flows": [{**d["flows"][0], "path": "ord\u0435rs"}]})),
    (
        "bidi name",
        lambda d: _json({**d, "role_collections": [{"name": "Readers\u202e", "roles": []}]}),
    ),
    ("garbage PEM", lambda d: _json({**d, "trusted_cas": [{"certificate_pem": "hello"}]})),
    (
        "half a PEM",
        lambda d: _json(
            {
                **d,
                "trusted_cas": [{"certificate_pem": d["trusted_cas"][0]["certificate_pem"][:300]}],
            }
        ),
    ),
    (
        "garbage DN",
        lambda d: _json(
            {
                **d,
                "trusted_cas": [
                    {
                        **d["trusted_cas"][0],
                        "mapping_rules": [
                            {"subject_dn": "=,=\\", "user_id": d["assignments"][0]["user_id"]}
                        ],
                    }
                ],
            }
        ),
    ),
    ("same CA twice", lambda d: _json({**d, "trusted_cas": d["trusted_cas"] * 2})),
    ("huge number", lambda d: _json({**d, "flows": [{**d["flows"][0], "max_bytes": 10**40}]})),
    ("NaN", lambda d: _json(d).replace(b'"timeout_seconds": 30.0', b'"timeout_seconds": NaN')),
    ("not UTF-8", lambda d: b'{"format": "\xff\xfe"}'),
    ("a list", lambda d: b"[]"),
    ("empty", lambda d: b""),
    (
        "lower-case user ID",
        lambda d: _json({**d, "members": [{"user_id": "p000001", "roles": ["Viewer"]}]}),
    ),
]


@pytest.mark.parametrize(("label", "make_body"), BAD, ids=[b[0] for b in BAD])
def test_a_hostile_file_is_a_4xx_with_a_reason_and_leaves_nothing(
    world: World, label: str, make_body: Any
) -> None:
    exported = world.export()
    before = (events(world.ctx), grants_version(world.ctx))
    answer = raw_import(world, make_body(exported))
    assert 400 <= answer.status_code < 500, (label, answer.status_code, answer.text)
    problem = answer.json()
    assert problem["error"] and problem["detail"], problem
    assert (events(world.ctx), grants_version(world.ctx)) == before
    assert not exists(world.ctx, "acme-prod")


def test_duplicate_keys_are_refused_not_silently_resolved(world: World) -> None:
    """A file whose reviewer sees one ``settings`` and whose import applies another."""
    answer = raw_import(world, _duplicate_settings(world.export()))
    assert answer.status_code == 422, answer.text
    assert "settings" in answer.json()["detail"] and "twice" in answer.json()["detail"]


def test_a_body_over_the_request_limit_is_413(world: World) -> None:
    limit = world.ctx.settings.max_request_bytes
    answer = raw_import(world, b'{"format": "' + b"x" * (limit + 10) + b'"}')
    assert answer.status_code == 413, answer.text


# ---------------------------------------------------------------- API docs


def test_the_docs_pages_allow_no_inline_script_but_their_own_and_no_framing(
    client: TestClient,
) -> None:
    for url in ("/api/docs", "/api/redoc"):
        page = client.get(url)
        assert page.status_code == 200
        policy = page.headers["content-security-policy"]
        script = next(p for p in policy.split(";") if p.strip().startswith("script-src"))
        assert "'unsafe-inline'" not in script and "'unsafe-eval'" not in script
        assert "*" not in script and "data:" not in script and "http" not in script
        assert "frame-ancestors 'none'" in policy
        assert page.headers["x-frame-options"] == "DENY"
    asset = client.get("/api/docs/static/swagger-ui-bundle.js")
    assert asset.status_code == 200
    assert asset.headers["content-type"].startswith(("text/javascript", "application/javascript"))


@pytest.mark.parametrize(
    "path",
    [
        "/api/docs/static/../../../../etc/passwd",
        "/api/docs/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/api/docs/static/..%2f..%2f..%2fetc%2fpasswd",
        "/api/docs/static/%2e%2e%2f__init__.py",
        "/api/docs/static//etc/passwd",
        "/api/docs/static/..\\..\\__init__.py",
    ],
)
def test_the_docs_assets_do_not_leave_their_folder(client: TestClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code in (400, 404), (path, answer.status_code)
    assert "root:" not in answer.text and "import" not in answer.text


def test_declaring_the_security_schemes_changed_no_credential_rule(world: World) -> None:
    """``any_credential`` only documents: a session still needs its CSRF token on unsafe
    methods, and nothing is accepted without a credential."""
    exported = world.export()
    bare = world.client.post(f"{API}/subaccounts/acme-prod/import", json=exported)
    assert bare.status_code == 401
    token = sign_in(world.client, world.root)
    assert world.client.get(f"{API}/subaccounts/acme-test/export").status_code == 200
    url = f"{API}/subaccounts/acme-prod/import"
    no_csrf = world.client.post(url, json=exported)
    assert no_csrf.status_code == 403 and "CSRF" in no_csrf.text
    wrong = world.client.post(url, headers={"X-CSRF-Token": token[:-2] + "xx"}, json=exported)
    assert wrong.status_code == 403
    assert not exists(world.ctx, "acme-prod")
    right = world.client.post(url, headers={"X-CSRF-Token": token}, json=exported)
    assert right.status_code == 200, right.text


# ---------------------------------------------------------------- the command line


def test_the_cli_prints_names_from_the_file_as_text_not_markup(
    world: World, ctx: AppContext, tmp_path: Path
) -> None:
    """A subject DN (or a name in an error) is the file's text: ``[/bold]`` in it must not
    crash the table after the import was committed, nor style the operator's terminal."""
    env = {
        "OSTIARY_DATABASE_URL": ctx.settings.resolved_database_url,
        "OSTIARY_DATA_DIR": str(tmp_path / "cli"),
        "OSTIARY_SECRET_KEY": ctx.settings.secret_key or "",
        "OSTIARY_SMTP_URL": "",
        "COLUMNS": "300",
    }
    exported = world.export()
    exported["trusted_cas"][0]["mapping_rules"][0]["subject_dn"] = "CN=[/bold][red]x,O=Partner"
    file = tmp_path / "acme.json"
    file.write_text(json.dumps(exported))
    runner = CliRunner()
    done = runner.invoke(
        app, ["subaccount", "import", str(file), "--subdomain", "acme-prod"], env=env
    )
    assert done.exit_code == 0, done.output
    assert "CN=[/bold][red]x,O=Partner" in done.output
    exported["role_collections"].append(dict(exported["role_collections"][0], name="[/x]"))
    exported["role_collections"].append(dict(exported["role_collections"][0], name="[/x]"))
    file.write_text(json.dumps(exported))
    refused = runner.invoke(
        app, ["subaccount", "import", str(file), "--subdomain", "acme-prod"], env=env
    )
    assert refused.exit_code == 1, refused.output
    assert "'[/x]' appears twice" in refused.output
