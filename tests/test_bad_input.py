"""Bad input on every endpoint gets a 4xx with a reason, never a 500.

The API answers JSON ``{error, detail}``; console forms answer a page, but never a 5xx.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from ostiary.context import AppContext
from tests.factories import DEFAULT_PASSWORD, basic, person


@dataclass(frozen=True)
class Endpoint:
    """A JSON endpoint of the API and a body it accepts."""

    method: str
    path: str
    body: dict[str, Any]
    auth: str = ""  # "", "user" or "admin"
    extra: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


JSON_ENDPOINTS = [
    Endpoint(
        "POST",
        "/api/v1/registrations",
        {
            "email": "new@example.com",
            "given_name": "Ada",
            "family_name": "Lovelace",
            "password": "a long enough passphrase",
        },
    ),
    Endpoint("POST", "/api/v1/activations", {"token": "A" * 43}),
    Endpoint(
        "POST",
        "/api/v1/me/password",
        {"current_password": DEFAULT_PASSWORD, "new_password": "another long passphrase"},
        auth="user",
    ),
    Endpoint("POST", "/api/v1/password-resets", {"email": "someone@example.com"}),
    Endpoint(
        "POST",
        "/api/v1/password-resets/confirm",
        {"token": "A" * 43, "new_password": "another long passphrase"},
    ),
    Endpoint(
        "PATCH",
        "/api/v1/password-policies/person",
        {"min_length": 12, "check_common": True, "history_count": 3, "expiry_days": 30},
        auth="admin",
    ),
]
GET_ENDPOINTS = ["/api/v1/me", "/api/v1/password-policies"]
CONSOLE_FORMS = [
    ("/console/register", ["email", "given_name", "family_name", "password"]),
    ("/console/activate", ["token"]),
    ("/console/signin", ["identifier", "password"]),
    ("/console/password-reset", ["email"]),
    ("/console/password-reset/confirm", ["token", "new_password", "confirm_password"]),
    ("/console/account/password", ["current_password", "new_password", "confirm_password"]),
    ("/console/signout", []),
]
# Values of the wrong type, by the type of the valid value (pydantic's lax mode accepts
# e.g. 1 for True, so only values no mode accepts are listed).
WRONG_VALUES: dict[type, list[Any]] = {
    str: [123, 1.5, True, None, [], {}, ["a"], {"a": "b"}],
    int: ["twelve", 1.5, "1e400", [], {}, [12], {"a": 1}],
    bool: ["maybe", 123, 1.5, [], {}, [True]],
}
NOT_OBJECTS = ["[]", '"text"', "1", "null", "true"]
INVALID_JSON = [b"{", b"{'email': 'x'}", b'{"email": }', b"", b"\x00", b'{"a": 1}{"b": 2}']
NON_UTF8 = [b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\x80abc"]
# Strings that pass JSON parsing but no database or hasher should ever see.
HOSTILE_STRINGS = ["a\x00b", "\ud800", "x\udfff@example.com", "\x00", " ", "\u202e", "😀" * 300]


def assert_api_error(answer: Response, *, context: object = "") -> None:
    """A 4xx in the API's error shape."""
    assert 400 <= answer.status_code < 500, (context, answer.status_code, answer.text)
    body = answer.json()
    assert set(body) == {"error", "detail"}, (context, body)
    assert isinstance(body["error"], str) and body["error"]
    assert body["detail"], context


@pytest.fixture
def callers(ctx: AppContext) -> dict[str, dict[str, str]]:
    """Authorization headers per kind of caller."""
    user = person(ctx)
    admin = person(ctx, platform_admin=True)
    return {"": {}, "user": basic(user.user_id), "admin": basic(admin.user_id)}


def send(
    client: TestClient,
    endpoint: Endpoint,
    headers: dict[str, str],
    *,
    content: bytes | Iterator[bytes] | None = None,
    json_body: Any = None,
    content_type: str = "application/json",
) -> Response:
    """Send a raw or JSON body to ``endpoint``."""
    if content is None:
        content = json.dumps(json_body).encode()
    return client.request(
        endpoint.method,
        endpoint.path,
        content=content,
        headers={**headers, "Content-Type": content_type},
    )


# ---------------------------------------------------------------- JSON endpoints


def test_valid_bodies_are_not_refused_for_their_shape(
    client: TestClient, callers: dict[str, dict[str, str]]
) -> None:
    """The baseline the other tests bend: these bodies parse (no 413/422)."""
    for endpoint in JSON_ENDPOINTS:
        answer = send(client, endpoint, callers[endpoint.auth], json_body=endpoint.body)
        assert answer.status_code not in (413, 422), (str(endpoint), answer.text)
        assert answer.status_code < 500, (str(endpoint), answer.text)


def test_missing_fields_are_named_in_a_422(
    client: TestClient, callers: dict[str, dict[str, str]]
) -> None:
    for endpoint in JSON_ENDPOINTS:
        if endpoint.method == "PATCH":
            continue  # every policy field is optional
        answer = send(client, endpoint, callers[endpoint.auth], json_body={})
        assert_api_error(answer, context=endpoint)
        assert answer.status_code == 422
        assert answer.json()["error"] == "invalid_request"
        missing = {tuple(item["loc"])[-1] for item in answer.json()["detail"]}
        assert missing == set(endpoint.body), (str(endpoint), missing)


def test_wrong_types_in_every_field_get_a_4xx(
    client: TestClient, callers: dict[str, dict[str, str]]
) -> None:
    for endpoint in JSON_ENDPOINTS:
        for name, valid in endpoint.body.items():
            for wrong in WRONG_VALUES[type(valid)]:
                if endpoint.method == "PATCH" and wrong is None:
                    continue  # null is a meaningful value there (expiry off, or "unchanged")
                body = {**endpoint.body, name: wrong}
                answer = send(client, endpoint, callers[endpoint.auth], json_body=body)
                assert_api_error(answer, context=(str(endpoint), name, wrong))
                locs = [item["loc"] for item in answer.json()["detail"]]
                assert any(name in loc for loc in locs), (str(endpoint), name, wrong, locs)


def test_bodies_that_are_not_json_objects_get_a_4xx(
    client: TestClient, callers: dict[str, dict[str, str]]
) -> None:
    for endpoint in JSON_ENDPOINTS:
        headers = callers[endpoint.auth]
        for raw in [*NOT_OBJECTS, *(b.decode("latin-1") for b in INVALID_JSON)]:
            answer = send(client, endpoint, headers, content=raw.encode("latin-1"))
            assert_api_error(answer, context=(str(endpoint), raw))


def test_non_utf8_bodies_get_a_4xx(client: TestClient, callers: dict[str, dict[str, str]]) -> None:
    for endpoint in JSON_ENDPOINTS:
        for name in endpoint.body:
            for raw in NON_UTF8:
                for content in (b'{"' + name.encode() + b'": "' + raw + b'"}', raw):
                    answer = send(client, endpoint, callers[endpoint.auth], content=content)
                    assert_api_error(answer, context=(str(endpoint), content))


def test_other_content_types_get_a_4xx(
    client: TestClient, callers: dict[str, dict[str, str]]
) -> None:
    for endpoint in JSON_ENDPOINTS:
        headers = callers[endpoint.auth]
        form = "&".join(f"{k}={v}" for k, v in endpoint.body.items()).encode()
        for content_type, raw in [
            ("application/x-www-form-urlencoded", form),
            ("text/plain", b"hello"),
            ("multipart/form-data; boundary=x", b"--x--"),
        ]:
            answer = send(client, endpoint, headers, content=raw, content_type=content_type)
            assert_api_error(answer, context=(str(endpoint), content_type))


def test_hostile_strings_in_every_field_never_cause_a_server_error(
    client: TestClient, ctx: AppContext
) -> None:
    user, admin = person(ctx), person(ctx, platform_admin=True)
    password = DEFAULT_PASSWORD  # the user's current one; an accepted change moves it on
    fresh = itertools.count()
    for endpoint in JSON_ENDPOINTS:
        for name, value in endpoint.body.items():
            if not isinstance(value, str):
                continue
            for hostile in HOSTILE_STRINGS:
                for variant in (hostile, value + hostile):
                    body = {**endpoint.body, name: variant}
                    if name != "email" and "email" in body:
                        # A fresh address each time, or the names would never reach the table.
                        body["email"] = f"fresh{next(fresh)}@example.com"
                    if name != "current_password" and "current_password" in body:
                        body["current_password"] = password
                    headers = {
                        "": {},
                        "user": basic(user.user_id, password),
                        "admin": basic(admin.user_id),
                    }[endpoint.auth]
                    answer = send(client, endpoint, headers, json_body=body)
                    context = (str(endpoint), name, variant, answer.text)
                    assert answer.status_code < 500, context
                    assert answer.status_code != 401, context  # the input got past sign-in
                    if answer.status_code >= 400:
                        assert_api_error(answer, context=context)
                    elif endpoint.path == "/api/v1/me/password":
                        password = body["new_password"]


def test_nul_characters_are_refused_with_the_field_named(client: TestClient) -> None:
    endpoint = JSON_ENDPOINTS[0]
    for n, name in enumerate(("given_name", "family_name", "password")):
        body = {**endpoint.body, "email": f"nul{n}@example.com", name: "Ada\x00Eve-long-enough"}
        answer = send(client, endpoint, {}, json_body=body)
        assert_api_error(answer, context=name)
        assert answer.status_code == 422
        assert [item["loc"] for item in answer.json()["detail"]] == [["body", name]]


def test_body_over_the_limit_gets_413(
    client: TestClient, ctx: AppContext, callers: dict[str, dict[str, str]]
) -> None:
    limit = ctx.settings.max_request_bytes
    huge = json.dumps({"email": "x" * limit, "token": "y"}).encode()
    assert len(huge) > limit
    for endpoint in JSON_ENDPOINTS:
        answer = send(client, endpoint, callers[endpoint.auth], content=huge)
        assert_api_error(answer, context=endpoint)
        assert answer.status_code == 413
        assert answer.json()["error"] == "payload_too_large"


def test_body_over_the_limit_without_content_length_gets_413(
    client: TestClient, ctx: AppContext, callers: dict[str, dict[str, str]]
) -> None:
    limit = ctx.settings.max_request_bytes
    chunk = b" " * 65536

    def chunks() -> Iterator[bytes]:
        yield b'{"email": "'
        for _ in range(limit // len(chunk) + 2):
            yield chunk
        yield b'"}'

    for endpoint in JSON_ENDPOINTS:
        answer = send(client, endpoint, callers[endpoint.auth], content=chunks())
        assert_api_error(answer, context=endpoint)
        assert answer.status_code == 413, (str(endpoint), answer.text)


def test_unparseable_content_length_gets_400(client: TestClient) -> None:
    answer = client.post(
        "/api/v1/activations",
        content=b'{"token": "x"}',
        headers={"Content-Length": "lots", "Content-Type": "application/json"},
    )
    assert_api_error(answer)
    assert answer.status_code == 400


def test_body_just_under_the_limit_is_parsed(client: TestClient, ctx: AppContext) -> None:
    limit = ctx.settings.max_request_bytes
    padding = " " * (limit - 100)
    raw = ('{"token": "' + "A" * 43 + '"' + padding + "}").encode()
    assert len(raw) <= limit
    answer = client.post(
        "/api/v1/activations", content=raw, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_token"


def test_unknown_policy_kind_and_unknown_paths_and_methods_get_json_4xx(
    client: TestClient, callers: dict[str, dict[str, str]]
) -> None:
    admin = callers["admin"]
    for method, path in [
        ("PATCH", "/api/v1/password-policies/robot"),
        ("PATCH", "/api/v1/password-policies/%00"),
        ("PATCH", "/api/v1/password-policies/" + "x" * 5000),
        ("GET", "/api/v1/nothing-here"),
        ("DELETE", "/api/v1/me"),
        ("PUT", "/api/v1/registrations"),
    ]:
        answer = client.request(method, path, json={"min_length": 12}, headers=admin)
        assert_api_error(answer, context=(method, path))


# ---------------------------------------------------------------- Basic headers


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


MALFORMED_AUTHORIZATION: list[str | bytes] = [
    "",
    "Basic",
    "Basic ",
    "Basic    ",
    "Basic !!!not-base64!!!",
    "Basic " + _b64(b"P000001")[:-1],  # truncated padding
    "Basic " + _b64(b"no-colon-at-all"),
    "Basic " + _b64(b":password-without-user"),
    "Basic " + _b64(b"user-without-password:"),
    "Basic " + _b64(b"\xff\xfe:\xfa\xfb"),
    "Basic " + _b64(b"P000001:\xc3\x28"),
    "Basic " + _b64(b"a\x00@example.com:password"),
    "Basic " + _b64(b"P000001\n:password"),
    "Basic " + _b64(b"P000001\x00:password"),
    "Basic " + _b64("\u202e@example.com:pw".encode()),
    "Basic " + _b64(b"x" * 5000 + b":" + b"y" * 5000),
    "Basicdm9pZDp2b2lk",
    "basic " + _b64(b"nobody@example.com:wrong"),
    "Digest username=x",
    "Negotiate",
    "Basic " + _b64(b"nobody@example.com:wrong") + " trailing",
    b"Basic \xff\xfe\xfd",
    b"\xc3\x28",
]


def test_malformed_basic_headers_get_the_generic_401(
    client: TestClient, callers: dict[str, dict[str, str]]
) -> None:
    reference = client.get("/api/v1/me")
    assert reference.status_code == 401
    for path in GET_ENDPOINTS:
        for value in MALFORMED_AUTHORIZATION:
            answer = client.get(path, headers={"Authorization": value})  # type: ignore[dict-item]
            assert answer.status_code == 401, (path, value, answer.text)
            assert answer.content == reference.content, (path, value)
            assert answer.headers["www-authenticate"] == reference.headers["www-authenticate"]


MALFORMED_BEARER = ["Bearer abc.def.ghi", "Bearer ", "Bearer " + "x" * 9000, "bearer a.b"]


def test_malformed_bearer_tokens_get_the_same_invalid_token_401(client: TestClient) -> None:
    """Bearer is a supported scheme: a bad token gets RFC 6750's challenge, always the same."""
    for path in GET_ENDPOINTS:
        answers = [client.get(path, headers={"Authorization": v}) for v in MALFORMED_BEARER]
        assert {a.status_code for a in answers} == {401}, path
        assert len({a.content for a in answers}) == 1, path
        for answer in answers:
            assert 'error="invalid_token"' in answer.headers["www-authenticate"]


def test_malformed_basic_headers_on_unsafe_endpoints_get_a_4xx(client: TestClient) -> None:
    endpoints = [e for e in JSON_ENDPOINTS if e.auth]
    for endpoint in endpoints:
        for value in MALFORMED_AUTHORIZATION:
            answer = send(
                client,
                endpoint,
                {"Authorization": value},  # type: ignore[dict-item]
                json_body=endpoint.body,
            )
            assert answer.status_code == 401, (str(endpoint), value, answer.text)
            assert_api_error(answer, context=(str(endpoint), value))


# ---------------------------------------------------------------- console forms


CSRF = "c" * 32


def test_console_forms_never_answer_5xx_to_bad_input(client: TestClient, ctx: AppContext) -> None:
    person(ctx, email="known@example.com")
    client.cookies.set("ostiary_csrf", CSRF)
    limit = ctx.settings.max_request_bytes
    for path, fields in CONSOLE_FORMS:
        bodies: list[tuple[str, bytes]] = [
            ("application/x-www-form-urlencoded", b""),
            (
                "application/x-www-form-urlencoded",
                b"csrf_token=" + CSRF.encode() + b"&\xff\xfe=%ff",
            ),
            ("application/json", b'{"email": 1}'),
            ("multipart/form-data; boundary=zz", b"--zz\r\nbroken"),
            ("application/x-www-form-urlencoded", b"a=" + b"b" * (limit + 1)),
        ]
        for hostile in ("a\x00b", "%ED%A0%80", "%00", "x" * 3000):
            form = "&".join([f"csrf_token={CSRF}", *(f"{name}={hostile}" for name in fields)])
            bodies.append(("application/x-www-form-urlencoded", form.encode()))
        for content_type, raw in bodies:
            answer = client.post(
                path,
                content=raw,
                headers={"Content-Type": content_type},
                follow_redirects=False,
            )
            assert answer.status_code < 500, (path, raw[:80], answer.status_code, answer.text)
            if len(raw) > limit:
                assert answer.status_code == 413


def test_console_pages_never_answer_5xx_to_hostile_query_strings(client: TestClient) -> None:
    for path in ("/console/activate", "/console/password-reset/confirm"):
        for token in ("%00", "%ff%fe", "%ED%A0%80", "x" * 5000, "a%00b"):
            answer = client.get(f"{path}?token={token}", follow_redirects=False)
            assert answer.status_code < 500, (path, token, answer.text)
