"""Security → OAuth clients in the console, in-process (contract C6): member roles guard every form,
a client secret appears once (in the POST answer) and works at ``/oauth/token``, rotation
overlaps, and Disable stops the client."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from ostiary.clock import FrozenClock
from ostiary.context import AppContext
from tests import factories as f
from tests.test_console_tenancy import SECRET, sign_in, subaccount_with

PAGE = "/console/subaccounts/acme-test/security/oauth-clients"
CLIENT_ID = re.compile(r'<code id="client-id" class="secret">(oc-[0-9a-f]+)</code>')
SECRET_ROW = re.compile(r'<tr id="secret-([0-9a-f-]{36})">')


def technical_user(client: TestClient, auth: dict[str, str]) -> str:
    """A technical user at home in ``acme-test``, made through the admin API."""
    made = client.post(
        "/api/v1/technical-users",
        headers=auth,
        json={"subdomain": "acme-test", "display_name": "ERP sender"},
    )
    assert made.status_code == 201, made.text
    return str(made.json()["user_id"])


def issued(answer: Any) -> tuple[str, str]:
    """Client ID and secret from a page that shows a new secret once."""
    assert answer.status_code == 200, answer.text
    assert "will not be shown again" in answer.text
    assert answer.headers["cache-control"] == "no-store"
    client_id, secret = CLIENT_ID.search(answer.text), SECRET.search(answer.text)
    assert client_id and secret, "no client ID or secret on the page"
    assert secret.group(1) not in answer.headers.get("set-cookie", "")
    assert secret.group(1) not in str(answer.url)
    return client_id.group(1), secret.group(1)


def create_form(client: TestClient, token: str, user_id: str, **form: str) -> Any:
    """POST the "New OAuth client" form and return the answer, whatever it is."""
    return client.post(PAGE, data={"csrf_token": token, "technical_user": user_id, **form})


def create(client: TestClient, token: str, user_id: str, **form: str) -> tuple[str, str]:
    """Create a client through the console form; its ID and the secret shown once."""
    return issued(create_form(client, token, user_id, description="orders", **form))


def token_status(client: TestClient, client_id: str, secret: str) -> int:
    """The status of a client-credentials token request (``client_secret_post``)."""
    answer = client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
        },
    )
    if answer.status_code == 200:
        assert answer.json()["token_type"] == "Bearer"
    return int(answer.status_code)


def act(client: TestClient, token: str, client_id: str, action: str, **form: str) -> Any:
    """POST one action of a client's detail page."""
    return client.post(f"{PAGE}/{client_id}", data={"csrf_token": token, "action": action, **form})


def test_viewer_sees_the_list_but_gets_403_creating_a_client(
    client: TestClient, ctx: AppContext
) -> None:
    viewer = f.person(ctx)
    auth = subaccount_with(client, ctx, **{viewer.user_id: "Viewer"})
    user_id = technical_user(client, auth)
    listed = client.post(
        "/api/v1/subaccounts/acme-test/oauth-clients", headers=auth, json={"user_id": user_id}
    ).json()
    token = sign_in(client, viewer)

    page = client.get(PAGE)
    assert page.status_code == 200, page.text
    assert listed["client_id"] in page.text and user_id in page.text
    assert "New OAuth client" not in page.text
    detail = client.get(f"{PAGE}/{listed['client_id']}")
    assert detail.status_code == 200
    assert "Rotate secret" not in detail.text and "Delete client" not in detail.text

    refused = client.post(PAGE, data={"csrf_token": token, "technical_user": user_id})
    assert refused.status_code == 403
    assert "Access denied" in refused.text and "subaccount:credentials:write" in refused.text
    assert "will not be shown again" not in refused.text
    assert act(client, token, listed["client_id"], "disable").status_code == 403
    clients = client.get("/api/v1/subaccounts/acme-test/oauth-clients", headers=auth).json()
    assert [c["client_id"] for c in clients["items"]] == [listed["client_id"]]
    assert clients["items"][0]["status"] == "active"


def test_administrator_creates_a_client_and_sees_the_secret_exactly_once(
    client: TestClient, ctx: AppContext
) -> None:
    boss = f.person(ctx)
    auth = subaccount_with(client, ctx, **{boss.user_id: "Administrator"})
    user_id = technical_user(client, auth)
    token = sign_in(client, boss)

    overview = client.get("/console/subaccounts/acme-test")
    assert f'href="{PAGE}"' in overview.text, "no one-click link from the overview"
    form = client.get(PAGE)
    assert "New OAuth client" in form.text
    assert f'<option value="{user_id}">' in form.text  # the inventory's technical users

    client_id, secret = create(client, token, user_id, expires_on="2099-12-31")
    assert token_status(client, client_id, secret) == 200

    for path in (PAGE, f"{PAGE}/{client_id}"):
        page = client.get(path)
        assert page.status_code == 200, page.text
        assert client_id in page.text and user_id in page.text
        assert secret not in page.text, f"the secret is shown again on {path}"
    listed = client.get(PAGE).text
    assert f'href="/console/technical-users/{user_id}"' in listed
    assert "2099-12-31" in listed


def test_rotation_shows_a_new_secret_and_both_work_during_the_overlap(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    boss = f.person(ctx)
    auth = subaccount_with(client, ctx, **{boss.user_id: "Administrator"})
    token = sign_in(client, boss)
    client_id, old = create(client, token, technical_user(client, auth))

    rotated = act(client, token, client_id, "rotate", old_valid_hours="1")
    assert issued(rotated)[0] == client_id
    new = issued(rotated)[1]
    assert new != old and old not in rotated.text
    assert 'id="overlap"' in rotated.text
    assert token_status(client, client_id, old) == 200
    assert token_status(client, client_id, new) == 200

    clock.advance(timedelta(hours=2))
    assert token_status(client, client_id, old) == 401
    assert token_status(client, client_id, new) == 200
    detail = client.get(f"{PAGE}/{client_id}").text
    assert new not in detail
    assert detail.count('badge-ok">active</span></td>') == 1 and "retired" in detail

    # The last working secret cannot be retired: the page says why, with a 400.
    current = SECRET_ROW.findall(detail)[-1]
    refused = act(client, token, client_id, "retire", secret_id=current)
    assert refused.status_code == 400
    assert "last working secret" in refused.text
    assert token_status(client, client_id, new) == 200


def test_retire_now_ends_one_secret_at_once(client: TestClient, ctx: AppContext) -> None:
    boss = f.person(ctx)
    auth = subaccount_with(client, ctx, **{boss.user_id: "Administrator"})
    token = sign_in(client, boss)
    client_id, old = create(client, token, technical_user(client, auth))
    _, new = issued(act(client, token, client_id, "rotate"))  # default: 24 h overlap

    first = SECRET_ROW.findall(client.get(f"{PAGE}/{client_id}").text)[0]
    retired = act(client, token, client_id, "retire", secret_id=first)
    assert retired.status_code == 200 and "The secret was retired" in retired.text
    assert token_status(client, client_id, old) == 401
    assert token_status(client, client_id, new) == 200


def test_disable_makes_the_token_endpoint_answer_invalid_client(
    client: TestClient, ctx: AppContext
) -> None:
    boss = f.person(ctx)
    auth = subaccount_with(client, ctx, **{boss.user_id: "Administrator"})
    token = sign_in(client, boss)
    client_id, secret = create(client, token, technical_user(client, auth))

    disabled = act(client, token, client_id, "disable")
    assert disabled.status_code == 200 and disabled.url.path == f"{PAGE}/{client_id}"
    assert "The OAuth client is disabled" in disabled.text and "Enable client" in disabled.text
    refused = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert "www-authenticate" in refused.headers

    assert act(client, token, client_id, "enable").status_code == 200
    assert token_status(client, client_id, secret) == 200
    deleted = act(client, token, client_id, "delete")
    assert deleted.url.path == PAGE and "was deleted" in deleted.text
    assert client_id not in deleted.text
    assert token_status(client, client_id, secret) == 401


def test_bad_input_gets_a_page_with_its_status_never_a_500(
    client: TestClient, ctx: AppContext
) -> None:
    boss = f.person(ctx)
    auth = subaccount_with(client, ctx, **{boss.user_id: "Administrator"})
    user_id = technical_user(client, auth)
    token = sign_in(client, boss)
    client_id, _ = create(client, token, user_id)

    cases = [
        (client.post(PAGE, data={"csrf_token": token}), 400, "choose the technical user"),
        (client.post(PAGE, data={"csrf_token": token, "user_id": "T999999"}), 404, "T999999"),
        (client.post(PAGE, data={"csrf_token": token, "user_id": boss.user_id}), 400, "technical"),
        (create_form(client, token, user_id, expires_on="31.12.2030"), 400, "a date"),
        (create_form(client, token, user_id, expires_on="2001-01-01"), 400, "future"),
        (client.post(PAGE, data={"csrf_token": "forged", "user_id": user_id}), 403, "expired"),
        (act(client, token, client_id, "explode"), 400, "unknown action"),
        (act(client, token, client_id, "rotate", old_valid_hours="1e308"), 400, "hours"),
        (act(client, token, client_id, "rotate", old_valid_hours="nan"), 400, "hours"),
        (act(client, token, client_id, "retire", secret_id="nope"), 400, "secret"),
        (act(client, token, "oc-unknown", "disable"), 404, "oc-unknown"),
        (client.get(f"{PAGE}/oc-unknown"), 404, "oc-unknown"),
        (client.get("/console/subaccounts/nowhere/security/oauth-clients"), 404, "nowhere"),
    ]
    for answer, status, words in cases:
        assert answer.status_code == status, (answer.request.url, answer.text)
        assert answer.headers["content-type"].startswith("text/html")
        assert words in answer.text, (answer.request.url, words)
        assert "will not be shown again" not in answer.text
    kept = client.get("/api/v1/subaccounts/acme-test/oauth-clients", headers=auth).json()
    assert [c["client_id"] for c in kept["items"]] == [client_id]
