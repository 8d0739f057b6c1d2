"""The export document on its own: strict parsing, and no secret in a receiver URL."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from ostiary.context import AppContext
from ostiary.transfer.export import public_url
from ostiary.transfer.models import FORMAT, InvalidDocument, parse
from tests.pki import make, name
from tests.transfer_world import API, build

MINIMAL = {"format": FORMAT, "settings": {"display_name": "Acme"}}


def test_a_minimal_document_parses_with_defaults() -> None:
    document = parse(json.dumps(MINIMAL))
    assert document.settings.plan == "trial" and document.flows == []


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("[]", "one JSON object"),
        ("{", "not JSON"),
        ("[" * 50_000, "nests too deeply"),
        (json.dumps({**MINIMAL, "settings": {"display_name": 7}}), "settings.display_name"),
        (json.dumps({**MINIMAL, "format": "ostiary.subaccount/0"}), "unsupported version"),
        (json.dumps({**MINIMAL, "members": [{"user_id": "P1", "roles": ["Owner"]}]}), "members.0"),
    ],
)
def test_a_bad_document_names_the_reason(raw: str, reason: str) -> None:
    with pytest.raises(InvalidDocument) as caught:
        parse(raw)
    assert reason in caught.value.detail


def test_a_trusted_ca_with_a_private_key_is_refused() -> None:
    ca = make(name("Root"), ca=True)
    document = {**MINIMAL, "trusted_cas": [{"certificate_pem": ca.pem + ca.key_pem}]}
    with pytest.raises(InvalidDocument) as caught:
        parse(json.dumps(document))
    assert "private key" in caught.value.detail


def test_an_oversize_document_is_refused_before_parsing() -> None:
    with pytest.raises(InvalidDocument) as caught:
        parse(b" " * (16 * 1024 * 1024 + 1))
    assert "at most" in caught.value.detail


def test_a_receiver_url_loses_its_password_only() -> None:
    assert (
        public_url("https://bob:s3cret@erp.example:8443/in?x=1")
        == "https://bob@erp.example:8443/in?x=1"
    )
    assert public_url("https://erp.example/in") == "https://erp.example/in"
    assert public_url(None) is None


def test_a_forward_flow_exports_without_the_password_and_reimports_unchanged(
    client: TestClient, ctx: AppContext
) -> None:
    world = build(client, ctx)
    made = client.post(
        f"{API}/subaccounts/acme-test/flows",
        headers=world.auth,
        json={
            "path": "relay",
            "mode": "forward",
            "receiver_url": "https://bob:hunter2-secret@erp.example/in",
        },
    )
    assert made.status_code == 201, made.text
    exported = world.export()
    assert "hunter2-secret" not in json.dumps(exported)
    relay = next(x for x in exported["flows"] if x["path"] == "relay")
    assert relay["receiver_url"] == "https://bob@erp.example/in"
    again = world.import_(exported, "acme-test")
    assert again["counts"]["create"] == again["counts"]["update"] == 0
    kept = client.get(f"{API}/subaccounts/acme-test/flows/relay", headers=world.auth).json()
    assert "hunter2-secret" in kept["receiver_url"]


def _leaf_pem() -> str:
    return make(name("leaf"), ca=False).pem


BAD_VALUES = {
    "garbage PEM": lambda d: d["trusted_cas"][0].update(certificate_pem="-----BEGIN nonsense"),
    "a leaf as CA": lambda d: d["trusted_cas"][0].update(certificate_pem=_leaf_pem()),
    "bad DN": lambda d: d["trusted_cas"][0]["mapping_rules"][0].update(subject_dn="=,=,=="),
    "NUL in a role": lambda d: d["roles"].append({"name": "Bad\u0000Role"}),
    "forward without URL": lambda d: d["flows"][0].update(mode="forward", receiver_url=None),
    "unknown collection": lambda d: d["assignments"][0]["role_collections"].append("Nope"),
    "same CA twice": lambda d: d["trusted_cas"].append(dict(d["trusted_cas"][0])),
    "bad path": lambda d: d["flows"][0].update(path="a//b"),
    "bad subdomain": None,
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_bad_values_in_a_valid_file_are_a_4xx_with_a_reason_and_leave_nothing(
    client: TestClient, ctx: AppContext, case: str
) -> None:
    world = build(client, ctx)
    document = world.export()
    mutate = BAD_VALUES[case]
    target = "Not_A_Subdomain" if mutate is None else "acme-prod"
    if mutate is not None:
        mutate(document)
    answer = client.post(f"{API}/subaccounts/{target}/import", headers=world.auth, json=document)
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.json()["detail"]
    assert client.get(f"{API}/subaccounts/{target}", headers=world.auth).status_code == 404
