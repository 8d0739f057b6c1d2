"""The seed path's first half through a real server process, real SMTP and a real database."""

from __future__ import annotations

import pytest

from tests.conftest import SmtpSink, body_of, link_token
from tests.e2e.conftest import Server
from tests.factories import basic

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"


def test_registered_user_activated_by_mailed_link_reads_me_by_user_id_and_email(
    server: Server, smtp: SmtpSink
) -> None:
    with server.client() as http:
        answer = http.post(
            "/api/v1/registrations",
            json={
                "email": "Grace.Hopper@Example.com",
                "given_name": "Grace",
                "family_name": "Hopper",
                "password": PASSWORD,
            },
        )
        assert answer.status_code == 202, answer.text
        mail = smtp.wait_for("Grace.Hopper@Example.com", subject="Activate")
        assert f"{server.url}/console/activate?token=" in body_of(mail)

        before = http.get("/api/v1/me", headers=basic("grace.hopper@example.com", PASSWORD))
        assert before.status_code == 401
        assert "WWW-Authenticate" in before.headers

        activated = http.post("/api/v1/activations", json={"token": link_token(mail)})
        assert activated.status_code == 200, activated.text
        user_id = activated.json()["user_id"]

        for identifier in (user_id, "grace.hopper@example.com"):
            me = http.get("/api/v1/me", headers=basic(identifier, PASSWORD))
            assert me.status_code == 200, me.text
            assert me.json()["user_id"] == user_id
            assert me.json()["email"].lower() == "grace.hopper@example.com"
            assert (me.json()["given_name"], me.json()["family_name"]) == ("Grace", "Hopper")
            assert (me.json()["kind"], me.json()["status"]) == ("person", "active")

        reused = http.post("/api/v1/activations", json={"token": link_token(mail)})
        assert 400 <= reused.status_code < 500, reused.text
