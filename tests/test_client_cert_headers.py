"""Client certificates forwarded by a trusted proxy: the three header formats, the middleware
that believes exactly one of them, and what the gate can audit when it did not."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from ostiary.app import create_app
from ostiary.gate.client_cert_headers import ENVOY, NGINX, RFC9440, RFC9440_CHAIN, parse
from ostiary.gate.client_certs import (
    PresentedCertificate,
    certificate_error,
    extension,
    ignored_header,
    presented,
)
from ostiary.gate.proxies import ProxyHeadersMiddleware, TrustedProxies
from ostiary.settings import ClientCertHeader, Settings
from tests.tls_pki import issue

CA = issue("Acme Test CA", ca=True)
LEAF = issue("sender-1", CA)


def nginx_escaped(pem: str) -> bytes:
    """What nginx's ``$ssl_client_escaped_cert`` makes of a PEM (URL-escaped)."""
    return quote(pem, safe="").encode()


def sf_binary(der: bytes) -> bytes:
    return b":" + base64.b64encode(der) + b":"


# ---------------------------------------------------------------- the formats


def test_nginx_escaped_pem() -> None:
    assert parse(NGINX, [nginx_escaped(LEAF.pem)]).chain == (LEAF.der,)
    # More blocks are the chain, leaf first; nginx's older tab-folded $ssl_client_cert too.
    assert parse(NGINX, [nginx_escaped(LEAF.pem + CA.pem)]).chain == (LEAF.der, CA.der)
    folded = LEAF.pem.replace("\n", "\n\t").encode()
    assert parse(NGINX, [folded]).chain == (LEAF.der,)


def test_rfc9440_byte_sequence_with_its_chain() -> None:
    assert parse(RFC9440, [sf_binary(LEAF.der)]).chain == (LEAF.der,)
    assert parse(RFC9440, [b" " + sf_binary(LEAF.der) + b";x=1 "]).chain == (LEAF.der,)
    unpadded = b":" + base64.b64encode(LEAF.der).rstrip(b"=") + b":"
    assert parse(RFC9440, [unpadded]).chain == (LEAF.der,)
    middle = issue("Acme Issuing CA", CA, ca=True)
    chained = parse(
        RFC9440, [sf_binary(LEAF.der)], [sf_binary(middle.der), b" " + sf_binary(CA.der)]
    )
    assert chained.chain == (LEAF.der, middle.der, CA.der)


def test_envoy_reads_the_element_the_nearest_proxy_appended() -> None:
    other = issue("client-of-the-outer-proxy", CA)
    outer = f'By=spiffe://outer;Hash=ab;Cert="{quote(other.pem, safe="")}"'
    ours = (
        f'By=spiffe://acme/ostiary;Hash=cd;Cert="{quote(LEAF.pem, safe="")}";'
        f'Chain="{quote(LEAF.pem + CA.pem, safe="")}";Subject="/CN=sender-1";'
        "URI=spiffe://acme/sender;DNS=sender.example"
    )
    assert parse(ENVOY, [f"{outer},{ours}".encode()]).chain == (LEAF.der, CA.der)
    assert parse(ENVOY, [f"{ours}, {outer}".encode()]).chain == (other.der,)
    escaped_quotes = f'Subject="a \\"quoted\\" ;,name";Cert="{quote(LEAF.pem, safe="")}"'
    assert parse(ENVOY, [escaped_quotes.encode()]).chain == (LEAF.der,)


@pytest.mark.parametrize(
    ("name", "values", "reason"),
    [
        (NGINX, [b"-----BEGIN CERTIFICATE-----forged"], "no PEM certificate"),
        (NGINX, [b""], "no PEM certificate"),
        (NGINX, [nginx_escaped(LEAF.pem)] * 2, "sent more than once"),
        (NGINX, [b"%ff%fe"], "x-ssl-client-cert"),
        (
            NGINX,
            [b"-----BEGIN CERTIFICATE-----\nZm9yZ2Vk\n-----END CERTIFICATE-----"],
            "not an X.509 certificate",
        ),
        (
            NGINX,
            [b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----"],
            "invalid base64",
        ),
        (NGINX, [b"x" * 70_000], "longer than 64 KiB"),
        (RFC9440, [b":Zm9yZ2Vk:"], "not an X.509 certificate"),
        (RFC9440, [b"Zm9yZ2Vk"], "byte sequence"),
        (RFC9440, [b":Zm9y Z2Vk:"], "byte sequence"),
        (RFC9440, [b"::"], "an empty certificate"),
        (RFC9440, [sf_binary(LEAF.der) + b", :AA==:"], "byte sequence"),
        (ENVOY, [b"Hash=forged"], "no Cert"),
        (ENVOY, [b""], "no element"),
        (ENVOY, [b'Cert="unterminated'], "unterminated"),
        (ENVOY, [b"Cert"], "Key=value"),
        (ENVOY, [f'Cert="{quote(LEAF.pem + CA.pem)}"'.encode()], "more than one"),
    ],
)
def test_malformed_values_give_no_certificate_and_a_reason(
    name: bytes, values: list[bytes], reason: str
) -> None:
    parsed = parse(name, values)
    assert parsed.chain == ()
    assert parsed.error is not None and reason in parsed.error
    assert parsed.error.startswith(name.decode())


def test_a_malformed_chain_header_spoils_the_certificate() -> None:
    parsed = parse(RFC9440, [sf_binary(LEAF.der)], [b":Zm9yZ2Vk:"])
    assert parsed.chain == () and parsed.error is not None


def test_an_overlong_chain_is_refused() -> None:
    parsed = parse(RFC9440, [sf_binary(LEAF.der)], [sf_binary(CA.der)] * 10)
    assert parsed.error is not None and "more than 10" in parsed.error


@given(name=st.sampled_from([NGINX, RFC9440, ENVOY]), values=st.lists(st.binary(), max_size=3))
def test_no_input_makes_the_parser_raise(name: bytes, values: list[bytes]) -> None:
    parsed = parse(name, values, values)
    assert (parsed.chain == ()) == (parsed.error is not None)


@given(text=st.text(alphabet=st.sampled_from('Cert=";,\\%-ABC:/ \t'), max_size=80))
def test_no_xfcc_like_text_makes_the_parser_raise(text: str) -> None:
    assert parse(ENVOY, [text.encode()]).chain == ()


# ---------------------------------------------------------------- the middleware

TRUSTED = TrustedProxies([ipaddress.ip_network("10.0.0.0/8")])


def _seen(
    peer: str, headers: list[tuple[bytes, bytes]], cert_header: bytes | None = NGINX, **scope: Any
) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def app(inner: Any, receive: Any, send: Any) -> None:
        seen.update(inner)

    async def nothing() -> Any:
        return {}

    async def ignore(message: Any) -> None:
        return None

    full = {"type": "http", "scheme": "http", "client": (peer, 1), "headers": headers, **scope}
    middleware = ProxyHeadersMiddleware(app, TRUSTED, cert_header=cert_header)
    asyncio.run(middleware(full, nothing, ignore))
    return seen


def test_a_trusted_proxy_forwards_the_certificate_into_the_tls_extension() -> None:
    seen = _seen("10.0.0.1", [(NGINX, nginx_escaped(LEAF.pem))])
    cert = presented(seen)
    assert cert == PresentedCertificate(chain=(LEAF.der,), source="proxy")
    assert seen["extensions"]["tls"]["client_cert_chain"] == [LEAF.pem]
    assert ignored_header(seen) is None and certificate_error(seen) is None


@pytest.mark.parametrize(
    ("cert_header", "headers"),
    [
        (RFC9440, [(RFC9440, sf_binary(LEAF.der)), (RFC9440_CHAIN, sf_binary(CA.der))]),
        (ENVOY, [(ENVOY, f'Cert="{quote(LEAF.pem)}"'.encode())]),
    ],
)
def test_each_format_through_the_middleware(
    cert_header: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    cert = presented(_seen("10.0.0.1", headers, cert_header))
    assert cert is not None and cert.leaf == LEAF.der and cert.source == "proxy"


def test_a_malformed_header_from_a_trusted_proxy_gives_a_reason_not_an_exception() -> None:
    seen = _seen("10.0.0.1", [(NGINX, b"garbage")])
    assert presented(seen) is None
    assert certificate_error(seen) == "x-ssl-client-cert: no PEM certificate"


def test_only_the_configured_header_is_believed_the_others_are_named() -> None:
    # nginx sets X-SSL-Client-Cert and passes a client's own Client-Cert through untouched.
    forged = issue("someone-else", CA)
    headers = [(RFC9440, sf_binary(forged.der)), (NGINX, nginx_escaped(LEAF.pem))]
    seen = _seen("10.0.0.1", headers)
    assert presented(seen) == PresentedCertificate(chain=(LEAF.der,), source="proxy")
    assert ignored_header(seen) == "client-cert"
    # The client had no certificate, so nginx sent no header: the forged one is still not read.
    alone = _seen("10.0.0.1", [(RFC9440, sf_binary(forged.der))])
    assert presented(alone) is None and ignored_header(alone) == "client-cert"
    # No header configured: none is believed.
    unset = _seen("10.0.0.1", [(NGINX, nginx_escaped(LEAF.pem))], cert_header=None)
    assert presented(unset) is None and ignored_header(unset) == "x-ssl-client-cert"


def test_an_untrusted_peer_gets_no_certificate_and_the_header_is_named() -> None:
    seen = _seen("198.51.100.9", [(b"host", b"x"), (NGINX, nginx_escaped(LEAF.pem))])
    assert presented(seen) is None
    assert seen["headers"] == [(b"host", b"x")]
    assert ignored_header(seen) == "x-ssl-client-cert"


def test_without_the_middleware_the_raw_header_is_named() -> None:
    scope = {"type": "http", "headers": [(b"host", b"x"), (ENVOY, b"Hash=1")]}
    assert presented(scope) is None and ignored_header(scope) == "x-forwarded-client-cert"
    assert ignored_header({"type": "http", "headers": [(b"host", b"x")]}) is None


def test_a_trusted_proxys_own_tls_certificate_is_not_the_callers() -> None:
    own = extension((issue("the-proxy", CA).der,), "tls")
    seen = _seen("10.0.0.1", [], extensions={"tls": own})
    assert presented(seen) is None
    with_header = _seen("10.0.0.1", [(NGINX, nginx_escaped(LEAF.pem))], extensions={"tls": own})
    assert presented(with_header) == PresentedCertificate(chain=(LEAF.der,), source="proxy")


def test_a_keep_alive_caller_is_parsed_once_and_gets_its_own_dict() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["extensions"]["tls"])

    middleware = ProxyHeadersMiddleware(app, TRUSTED, cert_header=NGINX)

    async def twice() -> None:
        for _ in range(2):
            scope = {
                "type": "http",
                "client": ("10.0.0.1", 1),
                "headers": [(NGINX, nginx_escaped(LEAF.pem))],
            }
            await middleware(scope, None, None)  # type: ignore[arg-type]

    asyncio.run(twice())
    first, second = seen
    assert first is not second  # an app changing its scope cannot reach the next request
    assert first["ostiary.presented"] is second["ostiary.presented"]  # parsed once


# ---------------------------------------------------------------- the setting


def test_the_header_setting_takes_any_case_and_refuses_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OSTIARY_CLIENT_CERT_HEADER", " X-SSL-Client-Cert ")
    assert Settings().client_cert_header is ClientCertHeader.nginx
    monkeypatch.setenv("OSTIARY_CLIENT_CERT_HEADER", "")
    assert Settings().client_cert_header is None
    monkeypatch.setenv("OSTIARY_CLIENT_CERT_HEADER", "X-Client-Cert")
    with pytest.raises(ValidationError):
        Settings()


def test_the_app_hands_the_setting_to_the_middleware(settings: Settings) -> None:
    configured = settings.model_copy(
        update={
            "trusted_proxies": (ipaddress.ip_network("127.0.0.1"),),
            "client_cert_header": ClientCertHeader.envoy,
        }
    )
    stack = create_app(configured).build_middleware_stack()
    assert isinstance(stack, ProxyHeadersMiddleware)  # outermost, before the hot paths
    assert stack.cert_header == ENVOY
