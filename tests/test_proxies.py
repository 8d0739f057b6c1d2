"""Trusted proxies: whose forwarding headers are believed, and what the app then sees."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from ostiary.app import create_app
from ostiary.clock import FrozenClock
from ostiary.context import AppContext, build_context
from ostiary.gate.proxies import (
    ProxyHeadersMiddleware,
    TrustedProxies,
    client_from_forwarded,
    client_from_x_forwarded_for,
    parse_address,
)
from ostiary.settings import Settings
from tests import factories as f
from tests.test_runtime import API, Tenant

TRUSTED = TrustedProxies(
    ipaddress.ip_network(n) for n in ("127.0.0.1", "10.0.0.0/8", "2001:db8:ffff::/48")
)

# ---------------------------------------------------------------- X-Forwarded-For


@pytest.mark.parametrize(
    ("header", "client"),
    [
        ("203.0.113.7", "203.0.113.7"),
        # The client wrote the left part; the proxies appended to the right.
        ("198.51.100.1, 203.0.113.7", "203.0.113.7"),
        ("198.51.100.1, 203.0.113.7, 10.1.2.3", "203.0.113.7"),
        ("203.0.113.7,10.0.0.1,127.0.0.1", "203.0.113.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("2001:DB8:0:0::1, 2001:db8:ffff::2", "2001:db8::1"),
        ("[2001:db8::1]:4711", "2001:db8::1"),
        ("203.0.113.7:4711", "203.0.113.7"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("203.0.113.7, , ", "203.0.113.7"),  # empty list elements (RFC 9110 §5.6.1)
        # Only proxies on the way: the request began at the furthest of them.
        ("10.0.0.5, 127.0.0.1", "10.0.0.5"),
    ],
)
def test_the_client_is_the_rightmost_address_that_is_not_a_trusted_proxy(
    header: str, client: str
) -> None:
    assert client_from_x_forwarded_for(header, TRUSTED) == client


@pytest.mark.parametrize(
    "header",
    [
        "",
        " , ",
        "unknown",
        "203.0.113.7, garbage",  # a proxy that wrote garbage: reading on would believe the client
        "203.0.113.7, unknown, 10.0.0.1",
        "203.0.113.7, 300.1.2.3",
        "203.0.113.7, fe80::1%eth0",
        "203.0.113.7, [2001:db8::1",
        "203.0.113.7, 1.2.3.4:port",
        "203.0.113.7, 1.2.3.4:\u00b2",
        "\x00\xff" * 50,
    ],
)
def test_garbage_on_the_proxies_side_yields_no_client(header: str) -> None:
    assert client_from_x_forwarded_for(header, TRUSTED) is None


def test_garbage_written_by_the_client_itself_is_never_read() -> None:
    assert client_from_x_forwarded_for("garbage, 203.0.113.7, 10.0.0.1", TRUSTED) == "203.0.113.7"


# ---------------------------------------------------------------- Forwarded (RFC 7239)


@pytest.mark.parametrize(
    ("header", "client", "proto"),
    [
        ("for=203.0.113.7", "203.0.113.7", None),
        ("For=203.0.113.7;Proto=https", "203.0.113.7", "https"),
        ('for="[2001:db8::1]:4711";proto=https', "2001:db8::1", "https"),
        ('for="203.0.113.7:80"', "203.0.113.7", None),
        (
            "for=198.51.100.1, for=203.0.113.7;proto=https, for=10.0.0.1;proto=http",
            "203.0.113.7",
            "https",
        ),
        ('for=203.0.113.7;by="[2001:db8:ffff::1]";host="a,b;c"', "203.0.113.7", None),
        ("for=192.0.2.60;proto=http;by=203.0.113.43, , for=203.0.113.7", "203.0.113.7", None),
        ("for=10.0.0.9, for=127.0.0.1", "10.0.0.9", None),
    ],
)
def test_forwarded_names_the_rightmost_untrusted_node(
    header: str, client: str, proto: str | None
) -> None:
    assert client_from_forwarded(header, TRUSTED) == (client, proto)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "for=unknown",
        "for=_hidden",  # obfuscated identifiers, RFC 7239 §6.3
        "for=203.0.113.7, for=_gazonk",
        "for=203.0.113.7, proto=https",  # an element without for=
        "for=2001:db8::1",  # IPv6 must be quoted and bracketed
        'for="[2001:db8::1"',
        'for="203.0.113.7',
        "for",
        "for=203.0.113.7;;",
        "=;=,=",
        '"""',
    ],
)
def test_forwarded_that_says_nothing_usable_yields_no_client(header: str) -> None:
    assert client_from_forwarded(header, TRUSTED) is None


def test_lookups_are_cached_and_unparseable_peers_are_untrusted() -> None:
    trusted = TrustedProxies([ipaddress.ip_network("127.0.0.0/8")])
    assert trusted.trusts("127.0.0.1") and trusted.trusts("::ffff:127.0.0.2")
    assert not trusted.trusts("testclient") and not trusted.trusts("198.51.100.1")
    assert trusted._cache == {
        "127.0.0.1": ("127.0.0.1", True),
        "::ffff:127.0.0.2": ("127.0.0.2", True),
        "testclient": (None, False),
        "198.51.100.1": ("198.51.100.1", False),
    }
    assert not trusted.trusts("1" * 65) and "1" * 65 not in trusted._cache
    assert parse_address("  203.0.113.7 ") == ipaddress.ip_address("203.0.113.7")


# ---------------------------------------------------------------- the middleware


def _seen(peer: str | None, headers: list[tuple[str, str]], kind: str = "http") -> dict[str, Any]:
    """The scope the application behind the middleware receives."""
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.update(scope)

    scope = {
        "type": kind,
        "scheme": "ws" if kind == "websocket" else "http",
        "client": None if peer is None else (peer, 50000),
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
    }

    async def nothing() -> Any:
        return {}

    async def ignore(message: Any) -> None:
        return None

    asyncio.run(ProxyHeadersMiddleware(app, TRUSTED)(scope, nothing, ignore))
    return seen


def test_a_trusted_peer_sets_client_and_scheme() -> None:
    seen = _seen(
        "127.0.0.1",
        [
            ("X-Forwarded-For", "198.51.100.1, 203.0.113.7"),
            ("X-Forwarded-For", "10.0.0.1"),  # a second line continues the list
            ("X-Forwarded-Proto", "https"),
        ],
    )
    assert seen["client"] == ("203.0.113.7", 0)
    assert seen["scheme"] == "https"


def test_an_untrusted_peer_is_not_believed() -> None:
    seen = _seen(
        "198.51.100.9",
        [
            ("X-Forwarded-For", "203.0.113.7"),
            ("Forwarded", "for=203.0.113.8;proto=https"),
            ("X-Forwarded-Proto", "https"),
        ],
    )
    assert seen["client"] == ("198.51.100.9", 50000)
    assert seen["scheme"] == "http"


def test_x_forwarded_for_wins_over_a_forwarded_header_the_proxy_passed_through() -> None:
    seen = _seen(
        "127.0.0.1",
        [("Forwarded", "for=198.51.100.66"), ("X-Forwarded-For", "203.0.113.7")],
    )
    assert seen["client"] == ("203.0.113.7", 0)


def test_forwarded_alone_names_client_and_scheme() -> None:
    seen = _seen("10.9.8.7", [("Forwarded", 'for="[2001:db8::7]:1";proto=HTTPS')])
    assert seen["client"] == ("2001:db8::7", 0)
    assert seen["scheme"] == "https"


@pytest.mark.parametrize("proto", ["gopher", "", " , ", "https\x00"])
def test_an_unknown_scheme_is_ignored(proto: str) -> None:
    seen = _seen("127.0.0.1", [("X-Forwarded-Proto", proto)])
    assert seen["scheme"] == "http"
    assert seen["client"] == ("127.0.0.1", 50000)


def test_the_rightmost_forwarded_proto_is_the_one_our_proxy_set() -> None:
    assert _seen("127.0.0.1", [("X-Forwarded-Proto", "http, https")])["scheme"] == "https"


def test_garbage_keeps_the_peer_and_never_raises() -> None:
    seen = _seen(
        "127.0.0.1",
        [("X-Forwarded-For", "\xff\xfe, 203.0.113.7, )(*&"), ("Forwarded", '"\\')],
    )
    assert seen["client"] == ("127.0.0.1", 50000)


def test_websockets_get_ws_schemes() -> None:
    seen = _seen("127.0.0.1", [("X-Forwarded-Proto", "https")], kind="websocket")
    assert seen["scheme"] == "wss"


CERT_HEADERS = [
    ("X-SSL-Client-Cert", "-----BEGIN CERTIFICATE-----forged"),
    ("Client-Cert", ":Zm9yZ2Vk:"),
    ("X-Forwarded-Client-Cert", "Hash=forged"),
]


@pytest.mark.parametrize("peer", ["198.51.100.9", "testclient", None])
def test_client_certificate_headers_from_untrusted_peers_are_removed(peer: str | None) -> None:
    seen = _seen(peer, [("Host", "ostiary"), *CERT_HEADERS, ("Accept", "*/*")])
    assert seen["headers"] == [(b"host", b"ostiary"), (b"accept", b"*/*")]


def test_client_certificate_headers_from_trusted_proxies_are_kept() -> None:
    seen = _seen("10.0.0.1", CERT_HEADERS)
    assert [name for name, _ in seen["headers"]] == [
        b"x-ssl-client-cert",
        b"client-cert",
        b"x-forwarded-client-cert",
    ]


# ---------------------------------------------------------------- the setting


def test_trusted_proxies_setting_reads_a_comma_separated_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OSTIARY_TRUSTED_PROXIES", " 127.0.0.1, 10.0.0.0/8,,::1 ")
    assert [str(n) for n in Settings().trusted_proxies] == ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]
    monkeypatch.setenv("OSTIARY_TRUSTED_PROXIES", "")
    assert Settings().trusted_proxies == ()


@pytest.mark.parametrize("entry", ["nginx", "10.0.0.1/8", "1.2.3.4/33", "127.0.0.1;10.0.0.1"])
def test_a_bad_trusted_proxy_entry_refuses_to_start(
    entry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OSTIARY_TRUSTED_PROXIES", f"127.0.0.1,{entry}")
    with pytest.raises(ValidationError, match=r"OSTIARY_TRUSTED_PROXIES: .* is not an IPv4/IPv6"):
        Settings()


# ---------------------------------------------------------------- through the application


def test_without_trusted_proxies_the_middleware_is_not_installed(client: TestClient) -> None:
    stack = client.app.build_middleware_stack()  # type: ignore[attr-defined]
    while stack is not None:  # the whole chain of middleware down to the router
        assert not isinstance(stack, ProxyHeadersMiddleware)
        stack = getattr(stack, "app", None)


@pytest.fixture
def behind_proxy(settings: Settings, clock: FrozenClock) -> Iterator[tuple[TestClient, AppContext]]:
    """The app trusting 127.0.0.1, called from 127.0.0.1 (a proxy)."""
    trusting = settings.model_copy(update={"trusted_proxies": (ipaddress.ip_network("127.0.0.1"),)})
    context = build_context(trusting, clock=clock)
    app = create_app(trusting, ctx=context)
    with TestClient(app, raise_server_exceptions=False, client=("127.0.0.1", 40000)) as c:
        yield c, context
    context.engine.dispose()


def test_message_log_and_audit_name_the_forwarded_caller(
    behind_proxy: tuple[TestClient, AppContext],
) -> None:
    client, context = behind_proxy
    tenant = Tenant(client, context)
    sent = tenant.send(tenant.sender, tenant.secret, **{"X-Forwarded-For": "203.0.113.7"})
    assert sent.status_code == 200, sent.text
    refused = tenant.send(tenant.sender, "wrong", **{"X-Forwarded-For": "203.0.113.9"})
    assert refused.status_code == 401
    entries = client.get(f"{API}/acme/messages", headers=tenant.root).json()["items"]
    assert [e["client_address"] for e in entries] == ["203.0.113.7"]
    assert tenant.denial_reasons(tenant.sender)
    events = client.get(
        "/api/v1/audit-events",
        headers=tenant.root,
        params={"action": "runtime:denied", "actor": tenant.sender},
    ).json()["items"]
    assert [e["detail"]["after"]["client_address"] for e in events] == ["203.0.113.9"]


def _cookie(answer: Any, name: str) -> str:
    """The Set-Cookie line of ``name`` in an answer."""
    lines = [v for k, v in answer.headers.multi_items() if k == "set-cookie"]
    return next(v for v in lines if v.startswith(f"{name}="))


def _console_cookies(client: TestClient, context: AppContext, **headers: str) -> list[str]:
    """The anonymous CSRF, session and flash cookies a console visit hands out."""
    client.cookies.clear()
    user = f.person(context)
    form = client.get("/console/signin", headers=headers)
    token = form.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    # Sent by hand: the client keeps a Secure cookie from going back over plain http.
    anon = _cookie(form, "ostiary_csrf").split(";", 1)[0]
    client.cookies.clear()
    signed_in = client.post(
        "/console/signin",
        follow_redirects=False,
        headers={**headers, "Cookie": anon},
        data={"csrf_token": token, "identifier": user.user_id, "password": f.DEFAULT_PASSWORD},
    )
    assert signed_in.status_code == 303, signed_in.text
    client.cookies.clear()
    signed_out = client.post("/console/signout", headers=headers, follow_redirects=False)
    assert signed_out.status_code == 303, signed_out.text
    return [
        _cookie(form, "ostiary_csrf"),
        _cookie(signed_in, "ostiary_session"),
        _cookie(signed_out, "ostiary_flash"),
    ]


def test_https_at_a_trusted_proxy_makes_console_cookies_secure(
    behind_proxy: tuple[TestClient, AppContext],
) -> None:
    client, context = behind_proxy
    assert not any("Secure" in c for c in _console_cookies(client, context))
    https = _console_cookies(client, context, **{"X-Forwarded-Proto": "https"})
    assert all("Secure" in c for c in https), https


def test_x_forwarded_proto_from_an_untrusted_peer_keeps_cookies_plain(
    client: TestClient, ctx: AppContext
) -> None:
    cookies = _console_cookies(client, ctx, **{"X-Forwarded-Proto": "https"})
    assert not any("Secure" in c for c in cookies), cookies
