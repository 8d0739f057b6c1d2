"""The API docs: offline pages (no CDN), their own CSP, and an OpenAPI document whose
security schemes say what each operation really accepts (README "API documentation")."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ostiary.api.authn import CSRF_HEADER, SESSION_COOKIE
from ostiary.context import AppContext
from tests import factories as f
from tests.test_console_tenancy import sign_in
from tests.test_oauth import Setup

PAGES = ["/api/docs", "/api/redoc"]
#: Every URL a page names: src=, href=, ReDoc's spec-url= and Swagger UI's ``url: '...'``.
ASSET = re.compile(r"""(?:src|href|spec-url|url:)\s*=?\s*["']([^"']+)["']""")
METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
SAFE = {"get", "head", "options"}


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) of every operation in ``document``."""
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    answer = client.get("/openapi.json")
    assert answer.status_code == 200
    found: dict[str, Any] = answer.json()
    return found


@pytest.mark.parametrize("url", PAGES)
def test_docs_pages_load_only_what_ostiary_serves(client: TestClient, url: str) -> None:
    page = client.get(url)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "http://" not in page.text and "https://" not in page.text
    assets = ASSET.findall(page.text)
    assert len(assets) >= 3, assets  # script, favicon, the OpenAPI document (and CSS)
    for asset in assets:
        assert asset.startswith("/") and not asset.startswith("//"), asset
        fetched = client.get(asset)
        assert fetched.status_code == 200, asset
        assert len(fetched.content) > 1000, asset


@pytest.mark.parametrize("url", PAGES)
def test_docs_pages_allow_their_inline_script_by_hash_only(client: TestClient, url: str) -> None:
    page = client.get(url)
    policy = dict(
        part.strip().split(" ", 1) for part in page.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    scripts = policy["script-src"].split()
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts
    inline = re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL)
    wanted = {
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in inline
    }
    assert set(scripts) == {"'self'", *wanted}
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"


def test_static_assets_are_served_with_their_types(client: TestClient) -> None:
    js = client.get("/api/docs/static/swagger-ui-bundle.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    css = client.get("/api/docs/static/swagger-ui.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert client.get("/api/docs/static/../../openapi.json").status_code == 404
    assert client.get("/api/docs/static/nothing.js").status_code == 404


def test_the_document_declares_basic_bearer_session_and_csrf(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["basic"]["type"] == "http" and schemes["basic"]["scheme"] == "basic"
    assert schemes["bearer"]["type"] == "http" and schemes["bearer"]["scheme"] == "bearer"
    assert schemes["bearer"]["bearerFormat"] == "JWT"
    assert schemes["session"] | {"description": ""} == {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "",
    }
    assert schemes["csrf"]["type"] == "apiKey" and schemes["csrf"]["in"] == "header"
    assert schemes["csrf"]["name"] == CSRF_HEADER


def test_a_session_needs_the_csrf_header_on_unsafe_methods_only(document: dict[str, Any]) -> None:
    secured = [(m, p, o["security"]) for m, p, o in operations(document) if "security" in o]
    assert len(secured) > 90
    for method, path, security in secured:
        session = {"session": []} if method in SAFE else {"session": [], "csrf": []}
        assert security == [{"basic": []}, {"bearer": []}, session], (method, path)


def test_every_operation_that_refuses_anonymous_callers_declares_security(
    client: TestClient, document: dict[str, Any]
) -> None:
    """Each operation, called with no credential: a 401 exactly where security is declared."""
    wrong = []
    for method, path, operation in operations(document):
        url = re.sub(r"\{[^}]+\}", "x", path)
        answer = client.request(method.upper(), url)
        assert answer.status_code < 500, (method, path, answer.text)
        if (answer.status_code == 401) != ("security" in operation):
            wrong.append((method, path, answer.status_code))
    assert not wrong, wrong


@pytest.fixture
def callers(client: TestClient, ctx: AppContext) -> dict[str, dict[str, str]]:
    """Headers for each declared requirement: a person's Basic, a technical user's Bearer
    token, a person's console session with and without its CSRF token."""
    bearer = Setup(client, ctx).token()
    person = f.person(ctx)
    csrf = sign_in(client, person)
    cookie = client.cookies[SESSION_COOKIE]
    client.cookies.clear()
    session = {"Cookie": f"{SESSION_COOKIE}={cookie}"}
    return {
        "basic": f.basic(person.user_id),
        "bearer": {"Authorization": f"Bearer {bearer}"},
        "session": session,
        "session+csrf": {**session, CSRF_HEADER: csrf},
    }


def requirement_name(requirement: dict[str, list[str]]) -> str:
    return "+".join(sorted(requirement, key=lambda n: n != "session"))


@pytest.mark.parametrize(
    ("method", "url", "path"),
    [
        ("GET", "/api/v1/me", "/api/v1/me"),
        ("GET", "/api/v1/me/sessions", "/api/v1/me/sessions"),
        ("DELETE", "/api/v1/me/sessions?keep_current=true", "/api/v1/me/sessions"),
    ],
)
def test_each_declared_requirement_is_accepted_alone(
    client: TestClient,
    document: dict[str, Any],
    callers: dict[str, dict[str, str]],
    method: str,
    url: str,
    path: str,
) -> None:
    declared = document["paths"][path][method.lower()]["security"]
    names = [requirement_name(r) for r in declared]
    assert len(names) == 3
    if method == "DELETE":
        # The session alone is not a declared requirement of an unsafe method: refused.
        assert "session" not in names
        refused = client.request(method, url, headers=callers["session"])
        assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    # The session first: a DELETE by another credential signs the person out everywhere.
    for name in sorted(names, key=lambda n: not n.startswith("session")):
        answer = client.request(method, url, headers=callers[name])
        assert answer.status_code == 200, (name, answer.text)
    assert client.request(method, url).status_code == 401
