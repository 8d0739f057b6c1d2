"""Attacks on erasure: an erased person stays erased, whatever path tries to bring the user
ID back to life."""

from __future__ import annotations

from fastapi.testclient import TestClient

from ostiary.context import AppContext
from tests import factories as f

API = "/api/v1"


def test_an_erased_person_cannot_be_converted_into_a_technical_user(
    client: TestClient, ctx: AppContext
) -> None:
    root = f.admin(ctx)
    auth = f.basic(root.user_id)
    person = f.person(ctx)
    assert client.delete(f"{API}/users/{person.user_id}", headers=auth).status_code == 200
    converted = client.post(
        f"{API}/users/{person.user_id}/convert-to-technical",
        headers=auth,
        json={"owner_user_id": root.user_id},
    )
    assert converted.status_code == 400, converted.text
    shown = client.get(f"{API}/users?query={person.user_id}", headers=auth).json()["items"]
    assert [(u["kind"], u["status"]) for u in shown] == [("person", "erased")]
    reset = client.post(f"{API}/technical-users/{person.user_id}/password", headers=auth)
    assert reset.status_code == 400, reset.text
