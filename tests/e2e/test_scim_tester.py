"""scim2-tester, an outside SCIM 2.0 conformance suite, against a real ``ostiary serve``.

Every check it runs must pass; the ones it skips are listed in docs/scim.md with the reason,
and this test fails if a check is skipped that the list does not name.

scim2-tester (0.5) runs its whole create/read/replace/delete/PATCH suite on every resource
type ``/ResourceTypes`` publishes, each check starting with a POST, whatever the schema's
``mutability`` says. So the suite gets the resource types whose schema has a writable
attribute (``resource_types=``, which skips nothing, it leaves a type out), chosen from what
the server publishes; the read-only ``TechnicalUser`` has its discovery documents checked by
scim2-tester, and its reads and refused writes checked below through scim2-client, which
validates each answer against the published schema (docs/scim.md, "scim2-tester").
"""

from __future__ import annotations

import httpx2
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import Error, ListResponse, Resource
from scim2_tester import Status, check_server

from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, Server
from tests.factories import basic

pytestmark = pytest.mark.e2e

#: Checks scim2-tester may skip, and why (docs/scim.md, "scim2-tester").
EXPECTED_SKIPS: dict[str, str] = {}


def scim_token(server: Server) -> str:
    """A fresh SCIM token from the admin API."""
    with server.client() as http:
        answer = http.post(
            "/api/v1/scim-tokens",
            json={"description": "scim2-tester"},
            headers=basic(ADMIN_EMAIL, ADMIN_PASSWORD),
        )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["token"])


def scim_http(server: Server) -> httpx2.Client:
    """An HTTP client for ``/scim/v2`` with a fresh SCIM token."""
    return httpx2.Client(
        base_url=f"{server.url}/scim/v2",
        headers={"Authorization": f"Bearer {scim_token(server)}"},
        timeout=30.0,
    )


def writable_resource_types(http: httpx2.Client) -> list[str]:
    """The published resource types whose schema has an attribute that is not readOnly."""
    schemas = {s["id"]: s for s in http.get("/Schemas").json()["Resources"]}
    return [
        t["name"]
        for t in http.get("/ResourceTypes").json()["Resources"]
        if any(a["mutability"] != "readOnly" for a in schemas[t["schema"]]["attributes"])
    ]


def test_scim2_tester_passes_every_check_it_runs(server: Server) -> None:
    with scim_http(server) as http:
        writable = writable_resource_types(http)
        assert writable == ["User", "Group"]
        results = check_server(
            SyncSCIMClient(http), raise_exceptions=False, resource_types=writable
        )
    assert results, "scim2-tester ran no checks"
    failed = [r for r in results if r.status not in (Status.SUCCESS, Status.SKIPPED)]
    skipped = {f"{r.resource_type or ''}:{r.title}" for r in results if r.status is Status.SKIPPED}
    report = "\n".join(
        f"{r.status.name} {r.resource_type or ''} {r.title}: {r.reason}" for r in failed
    )
    assert not failed, f"{len(failed)} of {len(results)} checks failed:\n{report}"
    assert skipped <= set(EXPECTED_SKIPS), f"unexpected skips: {skipped - set(EXPECTED_SKIPS)}"
    passed = sum(r.status is Status.SUCCESS for r in results)
    print(f"scim2-tester: {passed} passed, {len(skipped)} skipped")


def test_technical_users_are_read_and_refused_writes_through_scim2_client(
    server: Server,
) -> None:
    with server.client() as api:
        made = api.post(
            "/api/v1/technical-users",
            json={"display_name": "Order sender", "description": "ERP to shop"},
            headers=basic(ADMIN_EMAIL, ADMIN_PASSWORD),
        )
    assert made.status_code == 201, made.text
    robot = made.json()["user_id"]
    with scim_http(server) as http:
        client = SyncSCIMClient(http)
        client.discover()
        model = client.provider.model_for("TechnicalUser")
        assert model is not None and issubclass(model, Resource)
        one = client.query(model, robot)  # validated against the published schema
        assert isinstance(one, model) and one.id == robot
        assert one.display_name == "Order sender" and one.owner.type == "person"
        listed = client.query(model, query_parameters={"filter": f'id eq "{robot}"'})
        assert isinstance(listed, ListResponse) and [r.id for r in listed.resources] == [robot]
        refusals = [
            client.create(model(), raise_scim_errors=False, expected_status_codes=[405]),
            client.delete(model, robot, raise_scim_errors=False, expected_status_codes=[405]),
        ]
        assert all(isinstance(r, Error) and r.status == 405 for r in refusals), refusals
        assert client.query(model, robot).id == robot
