"""scim2-tester, an outside SCIM 2.0 conformance suite, against a real ``ostiary serve``.

Every check it runs must pass; the ones it skips are listed in docs/scim.md with the reason,
and this test fails if a check is skipped that the list does not name.
"""

from __future__ import annotations

import httpx2
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
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


def test_scim2_tester_passes_every_check_it_runs(server: Server) -> None:
    token = scim_token(server)
    http = httpx2.Client(
        base_url=f"{server.url}/scim/v2",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30.0,
    )
    with http:
        results = check_server(SyncSCIMClient(http), raise_exceptions=False)
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
