"""E-mail addresses as enterprises have them (issue 12 item 1): special-use domains are
accepted, and OSTIARY_REGISTRATION_DOMAINS limits self-registration without telling."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ostiary.app import create_app
from ostiary.clock import FrozenClock
from ostiary.context import AppContext, build_context
from ostiary.identity.emails import parse_email
from ostiary.identity.models import User, UserStatus
from ostiary.mail.models import OutboxMail
from ostiary.settings import Settings
from tests.conftest import SmtpSink, link_token

PASSWORD = "correct horse battery staple"


def register(client: TestClient, email: str) -> tuple[int, bytes]:
    answer = client.post(
        "/api/v1/registrations",
        json={"email": email, "given_name": "Grace", "family_name": "Hopper", "password": PASSWORD},
    )
    return answer.status_code, answer.content


def count(ctx: AppContext, model: type[User] | type[OutboxMail], where: object) -> int:
    with ctx.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(where)) or 0)


@pytest.mark.parametrize("email", ["grace@corp.local", "grace.hopper@example.test"])
def test_special_use_domains_register_and_activate_over_real_smtp(
    client: TestClient, ctx: AppContext, smtp: SmtpSink, email: str
) -> None:
    status, _ = register(client, email)
    assert status == 202
    token = link_token(smtp.wait_for(email, subject="Activate"))
    activated = client.post("/api/v1/activations", json={"token": token})
    assert activated.status_code == 200, activated.text
    with ctx.sessions() as session:
        user = session.scalar(select(User).where(User.email_normalized == email))
        assert user is not None and user.status is UserStatus.active


@pytest.mark.parametrize(
    "email", ["no-at-sign", "two@@corp.local", "a b@corp.local", "x@-corp.local", "x@corp..local"]
)
def test_malformed_addresses_get_422_with_a_reason(client: TestClient, email: str) -> None:
    answer = client.post(
        "/api/v1/registrations",
        json={"email": email, "given_name": "G", "family_name": "H", "password": PASSWORD},
    )
    assert answer.status_code == 422, answer.text
    assert "e-mail" in answer.text


def test_internationalised_and_single_label_domains_are_syntax_only() -> None:
    assert parse_email(" ü@müller.example ") == "ü@müller.example"
    assert parse_email("ops@intranet") == "ops@intranet"


@pytest.fixture
def limited(settings: Settings, clock: FrozenClock) -> Iterator[tuple[AppContext, TestClient]]:
    """An app whose self-registration is open to corp.local only."""
    ctx = build_context(
        settings.model_copy(update={"registration_domains": ("corp.local",)}), clock=clock
    )
    with TestClient(create_app(ctx.settings, ctx=ctx), raise_server_exceptions=False) as c:
        yield ctx, c
    ctx.engine.dispose()


def test_registration_outside_the_allow_list_answers_alike_and_creates_nothing(
    limited: tuple[AppContext, TestClient], smtp: SmtpSink
) -> None:
    ctx, client = limited
    inside = register(client, "grace@corp.local")
    outside = register(client, "grace@example.test")
    assert inside == outside
    assert inside[0] == 202
    smtp.wait_for("grace@corp.local", subject="Activate")
    assert count(ctx, User, User.email_normalized == "grace@example.test") == 0
    # The mail is enqueued in the registration's own transaction: no row, no mail ever.
    assert count(ctx, OutboxMail, OutboxMail.recipient == "grace@example.test") == 0


def test_registration_domains_are_parsed_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OSTIARY_REGISTRATION_DOMAINS", " Corp.Local, @example.test ,, ")
    assert Settings().registration_domains == ("corp.local", "example.test")


def test_the_console_registration_form_takes_a_special_use_domain(
    client: TestClient, ctx: AppContext, smtp: SmtpSink
) -> None:
    form = client.get("/console/register")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    answer = client.post(
        "/console/register",
        data={
            "csrf_token": token.group(1),
            "email": "linus@example.test",
            "given_name": "Linus",
            "family_name": "Pauling",
            "password": PASSWORD,
        },
    )
    assert answer.status_code == 200 and answer.url.path == "/console/signin"
    smtp.wait_for("linus@example.test", subject="Activate")
    bad = client.post(
        "/console/register",
        data={"csrf_token": token.group(1), "email": "linus@@x", "given_name": "L",
              "family_name": "P", "password": PASSWORD},
    )  # fmt: skip
    assert bad.status_code == 400 and "e-mail" in bad.text
