"""Two ``ostiary serve`` processes started at the same moment on one fresh database."""

from __future__ import annotations

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from ostiary.identity.models import UserKind
from ostiary.migrate import alembic_config, check
from tests.e2e.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, StartServer
from tests.factories import basic

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("admin", ["configured", "generated"])
def test_two_servers_started_at_once_on_a_fresh_database_both_serve_with_one_admin(
    start_server: StartServer, fresh_database_url: str, admin: str
) -> None:
    servers = [start_server(admin=admin == "configured") for _ in range(2)]
    for server in servers:
        server.wait_ready()

    engine = create_engine(fresh_database_url)
    try:
        with engine.connect() as conn:
            admins = conn.execute(
                text("SELECT user_id, email FROM users WHERE is_platform_admin")
            ).all()
            versions = list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
            policies = sorted(conn.execute(text("SELECT kind FROM password_policies")).scalars())
            keys = conn.execute(text("SELECT count(*) FROM signing_keys")).scalar()
    finally:
        engine.dispose()

    assert len(admins) == 1, admins
    head = ScriptDirectory.from_config(alembic_config(fresh_database_url)).get_current_head()
    assert versions == [head]
    check(fresh_database_url)  # the schema the servers made is exactly the models'
    assert policies == sorted(kind.value for kind in UserKind)
    assert keys == 1  # both servers' workers ran ensure_key; the lock let one create it

    printed = [s for s in servers if "one-time password" in " ".join(s.stderr.read_text().split())]
    if admin == "configured":
        assert admins[0].email == ADMIN_EMAIL
        assert printed == []
        credentials = basic(ADMIN_EMAIL, ADMIN_PASSWORD)
    else:
        assert len(printed) == 1, [s.output() for s in servers]
        user_id, password = printed[0].one_time_password()
        assert admins[0].user_id == user_id
        credentials = basic(user_id, password)
    for server in servers:
        with server.client() as http:
            me = http.get("/api/v1/me", headers=credentials)
        if admin == "configured":
            assert me.status_code == 200, me.text
            assert me.json()["user_id"] == admins[0].user_id
        else:
            # The one-time password is already expired: the API says so, on both servers.
            assert me.status_code in {401, 403}, me.text
