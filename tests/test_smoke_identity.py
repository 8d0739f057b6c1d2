"""The seed path's first half through the API: register, mail, activate, /me."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import SmtpSink, link_token
from tests.factories import basic

PASSWORD = "correct horse battery staple"


def test_register_activate_and_read_me_by_user_id_and_email(
    client: TestClient, smtp: SmtpSink
) -> None:
    answer = client.post(
        "/api/v1/registrations",
        json={
            "email": "Grace@Example.com",
            "given_name": "Grace",
            "family_name": "Hopper",
            "password": PASSWORD,
        },
    )
    assert answer.status_code == 202
    mail = smtp.wait_for("Grace@Example.com", subject="Activate")
    activated = client.post("/api/v1/activations", json={"token": link_token(mail)})
    assert activated.status_code == 200
    user_id = activated.json()["user_id"]
    assert user_id.startswith("P")
    for identifier in (user_id, "grace@example.com"):
        me = client.get("/api/v1/me", headers=basic(identifier, PASSWORD))
        assert me.status_code == 200, me.text
        assert me.json()["user_id"] == user_id
        assert me.json()["kind"] == "person"
        assert me.json()["status"] == "active"
