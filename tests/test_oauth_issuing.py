"""The token endpoint's own fast paths: compact JWS signing and form parsing."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from typing import Any
from urllib.parse import parse_qsl

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm
from starlette.requests import Request

from ostiary.context import AppContext
from ostiary.oauth import rfc9068_jwt
from ostiary.oauth.endpoints import MAX_FORM_BYTES, _body, _pairs
from ostiary.oauth.errors import InvalidRequest


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def test_issued_tokens_are_compact_es256_jws_with_a_raw_signature(
    client: TestClient, ctx: AppContext
) -> None:
    snapshot, now = ctx.grants.get(), ctx.clock.now()
    key = rfc9068_jwt.signing_key(snapshot, now)
    token, jti = rfc9068_jwt.issue(
        snapshot,
        ctx.keyring,
        issuer="http://testserver",
        subdomain="acme",
        user_id="T000001",
        client_id="oc-1",
        scope=["A", "B"],
        now=now,
        lifetime=600,
    )
    header, payload, signature = token.split(".")
    assert "=" not in token
    assert json.loads(_unb64(header)) == {"alg": "ES256", "kid": key.kid, "typ": "at+jwt"}
    stamp = int(now.timestamp())
    assert json.loads(_unb64(payload)) == {
        "iss": "http://testserver",
        "sub": "T000001",
        "aud": "http://testserver/t/acme",
        "client_id": "oc-1",
        "iat": stamp,
        "nbf": stamp,
        "exp": stamp + 600,
        "jti": jti,
        "scope": "A B",
        "tenant": "acme",
    }
    assert len(jti) == 32 and int(jti, 16) >= 0
    # RFC 7518 §3.4: r || s, 32 bytes each, verified here without PyJWT.
    raw = _unb64(signature)
    assert len(raw) == 64
    public = ECAlgorithm.from_jwk(json.dumps(key.public_jwk))
    assert isinstance(public, ec.EllipticCurvePublicKey)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public.verify(der, f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
    assert ctx.tokens.validate(token, snapshot, now=now).jti == jti


@given(st.text(alphabet="ab=&%+2C é", max_size=24))
def test_form_pairs_are_parse_qsl_with_blank_values(body: str) -> None:
    expected = parse_qsl(body, keep_blank_values=True, strict_parsing=False)
    assert _pairs(body.encode()) == expected


def _request(messages: list[dict[str, Any]]) -> Request:
    pending = iter(messages)

    async def receive() -> dict[str, Any]:
        return next(pending)

    return Request({"type": "http", "method": "POST", "headers": []}, receive)


def test_the_body_is_gathered_from_several_messages() -> None:
    request = _request(
        [
            {"type": "http.request", "body": b"grant_type=", "more_body": True},
            {"type": "http.request", "body": b"client_credentials", "more_body": False},
        ]
    )
    assert asyncio.run(_body(request)) == b"grant_type=client_credentials"


def test_a_body_over_the_limit_is_refused_before_it_is_all_read() -> None:
    chunk = b"x" * (MAX_FORM_BYTES // 2 + 1)
    request = _request(
        [
            {"type": "http.request", "body": chunk, "more_body": True},
            {"type": "http.request", "body": chunk, "more_body": True},
            # never reached: receiving it would raise StopIteration instead
        ]
    )
    with pytest.raises(InvalidRequest, match="too large"):
        asyncio.run(_body(request))


def test_token_ids_are_unique_and_a_forked_worker_does_not_repeat_its_parents() -> None:
    first = rfc9068_jwt._new_jti()  # the buffer now holds bytes a child could inherit
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the worker: report its next ID and leave at once
        os.write(write, rfc9068_jwt._new_jti().encode())
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(child, 0)
    from_child = os.read(read, 64).decode()
    os.close(read)
    assert status == 0 and len(from_child) == 32
    ours = [rfc9068_jwt._new_jti() for _ in range(600)]  # past one 4 KiB refill
    assert len({first, from_child, *ours}) == 602


def test_requests_do_not_ask_opentelemetry_for_providers(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry import metrics, trace

    asked: list[str] = []
    for module, name in ((trace, "get_tracer_provider"), (metrics, "get_meter_provider")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda real=real, name=name: asked.append(name) or real())
    assert client.get("/healthz").status_code == 200
    answer = client.post("/oauth/token", data={"grant_type": "client_credentials"})
    assert answer.status_code == 401
    assert asked == []
