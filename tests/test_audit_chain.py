"""The keyed audit chain (issue 11 item 7): every kind of tampering is named by
``ostiary audit verify``, on SQLite and PostgreSQL, and erasure keeps it verifying."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from typer.testing import CliRunner

from ostiary.audit import checkpoints
from ostiary.audit import service as audit
from ostiary.audit.actions import AuditAction
from ostiary.audit.chain import ChainKeys, Content
from ostiary.audit.models import AuditCheckpoint, AuditEvent
from ostiary.audit.verify import verify_chain
from ostiary.cli.main import app
from ostiary.clock import FrozenClock
from ostiary.context import AppContext, build_context
from ostiary.db import transaction
from ostiary.errors import Conflict, InvalidInput

Run = Callable[..., str]


@pytest.fixture
def cli(ctx: AppContext, tmp_path: Path) -> Run:
    runner = CliRunner()
    env = {
        "OSTIARY_DATABASE_URL": ctx.settings.resolved_database_url,
        "OSTIARY_DATA_DIR": str(tmp_path / "cli"),
        "OSTIARY_SECRET_KEY": ctx.settings.secret_key or "",
        "OSTIARY_SMTP_URL": "",
    }

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == code, result.output
        return result.output

    return run


def _events(ctx: AppContext, clock: FrozenClock, count: int) -> list[int]:
    ids = []
    for n in range(count):
        clock.advance(timedelta(seconds=1))
        with transaction(ctx.sessions) as session:
            event = audit.record(
                session,
                clock=ctx.clock,
                actor=f"P{n:06d}",
                action=AuditAction.member_added,
                target=f"member-{n}",
                subdomain="acme",
                after={"roles": ["Viewer"], "n": n},
            )
            ids.append(event.id)
    return ids


def _sql(ctx: AppContext, statement: str, **params: object) -> None:
    with ctx.engine.begin() as conn:
        conn.execute(text(statement), params)


def _rechain_from(ctx: AppContext, first_id: int, keys: ChainKeys | None) -> None:
    """What a forger does: recompute the MACs of every event from ``first_id`` on, with
    ``keys`` (``None``: the old unkeyed SHA-256 scheme)."""
    import hashlib

    with transaction(ctx.sessions) as session:
        rows = list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))
        prev = "0" * 64
        for event in rows:
            if event.id >= first_id:
                content = audit.content_of(event)
                if keys is None:
                    mac = hashlib.sha256(content.canonical()).hexdigest()
                    link = hashlib.sha256(f"{prev}:{mac}".encode()).hexdigest()
                else:
                    mac = keys.content_mac(content)
                    link = keys.link(prev, mac)
                event.content_mac, event.prev_hash, event.hash = mac, prev, link
                session.flush()
            prev = event.hash


def test_an_untouched_chain_verifies_with_and_without_a_checkpoint(
    ctx: AppContext, clock: FrozenClock, cli: Run, tmp_path: Path
) -> None:
    _events(ctx, clock, 3)
    assert "intact" in cli("audit", "verify") and "no checkpoint" in cli("audit", "verify")
    out = tmp_path / "cp.json"
    cli("audit", "checkpoint", "--out", str(out))
    exported = json.loads(out.read_text())
    assert exported["event_count"] == 3 and exported["algorithm"] == "ES256"
    _events(ctx, clock, 2)  # growing after a checkpoint is what a chain does
    assert "(5 events, checkpoint" in cli("audit", "verify", "--checkpoint", str(out))


def test_an_edited_event_is_named(ctx: AppContext, clock: FrozenClock, cli: Run) -> None:
    ids = _events(ctx, clock, 5)
    _sql(ctx, "UPDATE audit_events SET target = 'someone-else' WHERE id = :id", id=ids[2])
    out = cli("audit", "verify", code=1)
    assert f"broken at event {ids[2]}" in out and "was changed" in out


def test_a_deleted_event_in_the_middle_names_the_one_after_it(
    ctx: AppContext, clock: FrozenClock, cli: Run
) -> None:
    ids = _events(ctx, clock, 5)
    _sql(ctx, "DELETE FROM audit_events WHERE id = :id", id=ids[2])
    out = cli("audit", "verify", code=1)
    assert f"broken at event {ids[3]}" in out
    assert f"does not follow event {ids[1]}" in out and "missing" in out


def test_a_cut_tail_is_found_against_the_stored_checkpoint(
    ctx: AppContext, clock: FrozenClock, cli: Run
) -> None:
    ids = _events(ctx, clock, 5)
    cli("audit", "checkpoint")
    _sql(ctx, "DELETE FROM audit_events WHERE id >= :id", id=ids[3])
    out = cli("audit", "verify", code=1)
    assert f"events after event {ids[2]} are missing" in out
    assert f"up to event {ids[4]}" in out and "the chain has 3" in out


def test_a_cut_tail_with_the_checkpoints_gone_is_found_against_the_exported_file(
    ctx: AppContext, clock: FrozenClock, cli: Run, tmp_path: Path
) -> None:
    ids = _events(ctx, clock, 5)
    out = tmp_path / "kept-elsewhere.json"
    cli("audit", "checkpoint", "--out", str(out))
    _sql(ctx, "DELETE FROM audit_events WHERE id >= :id", id=ids[4])
    _sql(ctx, "DELETE FROM audit_checkpoints")
    assert "intact" in cli("audit", "verify")  # nothing inside the database can tell
    found = cli("audit", "verify", "--checkpoint", str(out), code=1)
    assert f"events after event {ids[3]} are missing" in found


def test_a_cut_tail_followed_by_new_events_is_found_against_the_checkpoint(
    ctx: AppContext, clock: FrozenClock, cli: Run
) -> None:
    ids = _events(ctx, clock, 4)
    cli("audit", "checkpoint")
    _sql(ctx, "DELETE FROM audit_events WHERE id >= :id", id=ids[2])
    later = _events(ctx, clock, 3)  # the chain grows on past the cut, links intact
    out = cli("audit", "verify", code=1)
    assert f"broken at event {later[1]}" in out and "rewritten" in out


@pytest.mark.parametrize("scheme", ["unkeyed sha-256", "a guessed key"])
def test_a_forged_event_rechained_without_the_key_is_named(
    ctx: AppContext, clock: FrozenClock, cli: Run, scheme: str
) -> None:
    ids = _events(ctx, clock, 5)
    _sql(ctx, "UPDATE audit_events SET actor = 'P999999' WHERE id = :id", id=ids[1])
    keys = None if scheme == "unkeyed sha-256" else ChainKeys(b"not-the-installation-key")
    _rechain_from(ctx, ids[1], keys)
    out = cli("audit", "verify", code=1)
    assert f"broken at event {ids[1]}" in out


def test_a_rechain_with_the_key_is_found_against_the_exported_checkpoint(
    ctx: AppContext, clock: FrozenClock, cli: Run, tmp_path: Path
) -> None:
    ids = _events(ctx, clock, 5)
    out = tmp_path / "kept-elsewhere.json"
    cli("audit", "checkpoint", "--out", str(out))
    _sql(ctx, "UPDATE audit_events SET target = 'forged' WHERE id = :id", id=ids[1])
    _rechain_from(ctx, ids[1], ChainKeys(ctx.secret_key))  # an insider with the secret key
    _sql(ctx, "DELETE FROM audit_checkpoints")
    assert "intact" in cli("audit", "verify")
    found = cli("audit", "verify", "--checkpoint", str(out), code=1)
    assert f"broken at event {ids[4]}" in found and "rewritten" in found


def test_a_checkpoint_is_not_written_over_a_broken_chain(
    ctx: AppContext, clock: FrozenClock, cli: Run
) -> None:
    ids = _events(ctx, clock, 3)
    with transaction(ctx.sessions) as session:
        checkpoints.write(session, ctx)
    more = _events(ctx, clock, 2)
    _sql(ctx, "UPDATE audit_events SET target = 'x' WHERE id = :id", id=more[0])
    with pytest.raises(Conflict, match=f"event {more[0]}"), transaction(ctx.sessions) as s:
        checkpoints.write(s, ctx)
    _sql(ctx, "DELETE FROM audit_events WHERE id = :id", id=ids[0])  # inside the signed part
    assert "event" in cli("audit", "checkpoint", code=1)
    with transaction(ctx.read_sessions) as session:
        assert session.scalar(select(AuditCheckpoint.event_count)) == 3  # only the first


def test_a_checkpoint_signed_elsewhere_or_edited_is_refused(
    ctx: AppContext, clock: FrozenClock, cli: Run, tmp_path: Path
) -> None:
    _events(ctx, clock, 2)
    with transaction(ctx.sessions) as session:
        row = checkpoints.write(session, ctx)
        document = checkpoints.export(row, ctx)
    other = build_context(
        ctx.settings.model_copy(update={"secret_key": "another-installation-secret-key"})
    )
    try:
        with pytest.raises(InvalidInput):
            checkpoints.load(document, other)
    finally:
        other.engine.dispose()
    edited = json.loads(document)
    head, claims, signature = edited["checkpoint"].split(".")
    edited["checkpoint"] = ".".join([head, claims[:-2] + "AA", signature])
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(edited))
    assert "not a valid checkpoint" in cli("audit", "verify", "--checkpoint", str(path), code=1)
    assert checkpoints.load(document, ctx).event_count == 2


def test_erasure_removes_a_persons_data_and_the_chain_still_verifies(
    ctx: AppContext, clock: FrozenClock, cli: Run, tmp_path: Path
) -> None:
    _events(ctx, clock, 2)
    with transaction(ctx.sessions) as session:
        audit.record(
            session,
            clock=ctx.clock,
            actor="P000042",
            action=AuditAction.member_added,
            target="Ada.Lovelace@Example.test",
            subdomain="acme",
            after={"name": "Ada Lovelace", "notes": ["mail ada.lovelace@example.test"]},
        )
        checkpoints.write(session, ctx)
    with transaction(ctx.sessions) as session:
        changed = audit.pseudonymise(
            session, ctx, user_id="P000042", personal=["ada.lovelace@example.test", "Ada Lovelace"]
        )
    assert changed == 1
    with transaction(ctx.read_sessions) as session:
        dump = json.dumps(
            [audit.content_of(e).canonical().decode() for e in audit.iter_events(session)]
        )
        assert "lovelace" not in dump.lower()
        assert "[erased P000042]" in dump
        assert verify_chain(session, checkpoint=checkpoints.latest(session, ctx)).ok
        erased = session.scalar(
            select(AuditEvent).where(AuditEvent.action == "audit:personal_data:pseudonymised")
        )
        assert erased is not None and erased.detail == {"after": {"events": 1}}
    assert "intact" in cli("audit", "verify")
    # A rewritten event is still guarded: editing it again without the key is found.
    _sql(ctx, "UPDATE audit_events SET target = 'tampered' WHERE target LIKE '[erased%'")
    assert "was changed" in cli("audit", "verify", code=1)


def test_export_writes_every_event_as_json_lines(
    ctx: AppContext, clock: FrozenClock, cli: Run
) -> None:
    ids = _events(ctx, clock, 3)
    lines = [json.loads(line) for line in cli("audit", "export").splitlines()]
    assert [line["id"] for line in lines] == ids
    assert lines[0]["detail"] == {"after": {"roles": ["Viewer"], "n": 0}}
    assert all(len(line["hash"]) == 64 for line in lines)


def test_content_macs_cover_every_field(ctx: AppContext, clock: FrozenClock) -> None:
    keys = ChainKeys(ctx.secret_key)
    base = Content(clock.now(), "P1", "a:b", "acme", "t", {"k": 1})
    variants = [
        Content(clock.now() + timedelta(microseconds=1), "P1", "a:b", "acme", "t", {"k": 1}),
        Content(clock.now(), "P2", "a:b", "acme", "t", {"k": 1}),
        Content(clock.now(), "P1", "a:c", "acme", "t", {"k": 1}),
        Content(clock.now(), "P1", "a:b", None, "t", {"k": 1}),
        Content(clock.now(), "P1", "a:b", "acme", "u", {"k": 1}),
        Content(clock.now(), "P1", "a:b", "acme", "t", {"k": 2}),
    ]
    assert len({keys.content_mac(c) for c in [base, *variants]}) == 7


def test_the_admin_api_verifies_against_the_stored_checkpoint(
    ctx: AppContext, clock: FrozenClock, client: TestClient
) -> None:
    from tests import factories as f

    root = f.basic(f.admin(ctx).user_id)
    ids = _events(ctx, clock, 3)
    with transaction(ctx.sessions) as session:
        checkpoints.write(session, ctx)
    assert client.get("/api/v1/audit-events/verify", headers=root).json()["ok"] is True
    _sql(ctx, "DELETE FROM audit_events WHERE id = :id", id=ids[2])
    check = client.get("/api/v1/audit-events/verify", headers=root).json()
    assert check["ok"] is False and check["first_broken_id"] == ids[2]
    assert f"events after event {ids[1]} are missing" in check["reason"]
