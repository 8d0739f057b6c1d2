"""A schemathesis run over /openapi.json: generated requests never get a server error.

Every operation of the document gets requests that fit its schema (positive) and requests
that break it (negative), sent by a platform administrator so they get past
authentication. One backend (SQLite) is enough here; the bad-input tests cover both. The
run is bounded and derandomised so the suite stays fast and repeatable, and argon2 runs
with cheap parameters because every generated request signs in.

Requests go through the test's own ``TestClient``: the app's lifespan (runtime writer,
grant listener) runs on that client's event loop, and schemathesis' ASGI transport would
start a second lifespan on a loop of its own. Its pytest plugin (``@schema.parametrize()``)
does not work with pytest 9 yet, so each operation runs as a plain Hypothesis test inside
a subtest.
"""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from httpx import Response
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import response_schema_conformance

from ostiary.api.authn import SESSION_COOKIE
from ostiary.context import AppContext
from ostiary.settings import Settings
from tests.factories import basic, person

#: Requests per operation and mode; enough to hit every field with odd values, few enough
#: that the run over every operation stays within seconds.
EXAMPLES = {GenerationMode.POSITIVE: 8, GenerationMode.NEGATIVE: 8}


@pytest.fixture
def backend() -> str:
    """Fuzz on SQLite only."""
    return "sqlite"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The usual test settings with cheap argon2 parameters."""
    return settings.model_copy(update={"argon2_memory_kib": 1024, "argon2_time_cost": 1})


def _has_body(operation: APIOperation) -> bool:  # type: ignore[type-arg]
    """Whether requests to ``operation`` carry a body (something to send broken)."""
    return bool(operation.body)


def send(client: TestClient, case: Case, headers: dict[str, str]) -> Response:
    """Send a generated case through ``client`` (schemathesis builds requests-style kwargs)."""
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url), headers=headers)
    # The one cookie is the session security scheme's, which schemathesis fills in with a
    # made-up value; the administrator's Basic header is what authenticates.
    cookies = kwargs.pop("cookies", None) or {}
    assert set(cookies) <= {SESSION_COOKIE}, "no operation takes other cookies"
    if "data" in kwargs:  # a raw body: requests calls it data, httpx content
        kwargs["content"] = kwargs.pop("data")
    return client.request(**kwargs)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_generated_request_gets_a_server_error(
    client: TestClient, ctx: AppContext, subtests: pytest.Subtests, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
    admin = basic(person(ctx, platform_admin=True).user_id)
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    labels = {operation.label for operation in operations}
    assert {"POST /api/v1/registrations", "PATCH /api/v1/password-policies/{kind}"} <= labels
    if mode is GenerationMode.NEGATIVE:
        # Schema-breaking data needs a body to break: any string fits a string path parameter,
        # so schemathesis cannot make one invalid, and a bare GET has nothing at all.
        operations = [operation for operation in operations if _has_body(operation)]

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis_settings(
            max_examples=EXAMPLES[mode],
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: Case) -> None:
            response = send(client, case, admin)
            case.validate_response(
                response, checks=[not_a_server_error, response_schema_conformance]
            )
            assert response.status_code < 500, response.text

        with subtests.test(msg=operation.label):
            fuzz()
