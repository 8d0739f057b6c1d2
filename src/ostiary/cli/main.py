"""The ``ostiary`` command line: serve, migrate, and administer the installation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ostiary.cli import audit as _audit_commands  # noqa: F401  (registers verify, checkpoint, export)
from ostiary.cli import credentials_expiring  # noqa: F401  (adds `credentials expiring`)
from ostiary.cli import transfer as _transfer_commands  # noqa: F401  (subaccount export, import)
from ostiary.cli.backup import register as register_backup
from ostiary.cli.certificates import cert_app
from ostiary.cli.credentials import credentials_app
from ostiary.cli.groups import group_app, invite_app
from ostiary.cli.oauth import client_app, keys_app, token
from ostiary.cli.people import user_app
from ostiary.cli.review import findings_command
from ostiary.cli.runtime import access_app, flow_app, message_app
from ostiary.cli.scim import scim_token_app
from ostiary.cli.tenancy import assign_app, collection_app, member_app, subaccount_app
from ostiary.cli.users import audit_app, technical_app
from ostiary.identity.models import UserKind
from ostiary.settings import Settings

app = typer.Typer(
    help="Ostiary: identity and access for integration platforms.\n\n"
    "Every command reads its configuration from OSTIARY_* environment variables "
    "(see README's configuration table).",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
db_app = typer.Typer(help="Database schema: migrate and check.", no_args_is_help=True)
policy_app = typer.Typer(help="Password policies per user kind.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(policy_app, name="policy")
app.add_typer(subaccount_app, name="subaccount")
app.add_typer(member_app, name="member")
app.add_typer(collection_app, name="role-collection")
app.add_typer(assign_app, name="assign")
app.add_typer(technical_app, name="technical-user")
app.add_typer(audit_app, name="audit")
app.add_typer(flow_app, name="flow")
app.add_typer(access_app, name="access")
app.add_typer(message_app, name="messages")
app.add_typer(client_app, name="oauth-client")
app.add_typer(keys_app, name="keys")
app.add_typer(cert_app, name="cert")
app.add_typer(credentials_app, name="credentials")
app.add_typer(scim_token_app, name="scim-token")
app.add_typer(group_app, name="group")
app.add_typer(invite_app, name="invite")
app.add_typer(user_app, name="user")
app.command("token")(token)
app.command("findings")(findings_command)
register_backup(app)
console = Console()
err = Console(stderr=True)


def _settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:
        err.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    tls_certfile: Annotated[
        Optional[Path],  # noqa: UP045 (typer reads the annotation at runtime)
        typer.Option(help="Serve HTTPS with this PEM certificate (chain); OSTIARY_TLS_CERTFILE."),
    ] = None,
    tls_keyfile: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="Its private key, unless in the certificate file; OSTIARY_TLS_KEYFILE."),
    ] = None,
) -> None:
    """Migrate the database, create the first administrator, and serve everything.

    API under /api/v1, console under /console, docs at /api/docs. With a TLS certificate:
    HTTPS only, asking for an optional client certificate (README, *Serving TLS directly*).
    """
    import uvicorn

    from ostiary.bootstrap import bootstrap
    from ostiary.context import build_context
    from ostiary.files import loose_file_warnings
    from ostiary.http_protocol import CoalescingHttpToolsProtocol
    from ostiary.logs import configure
    from ostiary.tls.serving import uvicorn_options

    settings = _settings()
    if tls_certfile is not None or tls_keyfile is not None:
        settings = settings.model_copy(
            update={
                "tls_certfile": tls_certfile or settings.tls_certfile,
                "tls_keyfile": tls_keyfile or settings.tls_keyfile,
            }
        )
    if settings.tls_keyfile is not None and settings.tls_certfile is None:
        err.print("[red]configuration error:[/red] a TLS key file needs a certificate file")
        raise typer.Exit(2)
    try:
        tls = uvicorn_options(settings.tls_certfile, settings.tls_keyfile)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        err.print(f"[red]configuration error:[/red] TLS certificate or key: {exc}")
        raise typer.Exit(2) from exc
    configure(settings.log_level)
    for warning in loose_file_warnings(settings.data_dir, settings.resolved_database_url):
        err.print(f"[bold yellow]{escape(warning)}[/bold yellow]", soft_wrap=True)
    _upgrade(settings)
    ctx = build_context(settings)
    generated = bootstrap(ctx)
    ctx.engine.dispose()
    if generated is not None:
        # Printed once, to the terminal only (not the log): it is a secret.
        err.print(
            f"[bold yellow]First start:[/bold yellow] platform administrator "
            f"[bold]{generated.user_id}[/bold] ({generated.email}), one-time password "
            f"[bold]{generated.password}[/bold] (it must be changed at first sign-in).",
            # One line even when stderr is a log file: a wrapped secret is easy to mis-copy.
            soft_wrap=True,
        )
    uvicorn.run(
        "ostiary.asgi:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        # Small answers in one write; over TLS the protocol also fills the TLS extension.
        **({"http": CoalescingHttpToolsProtocol} | tls),
    )


def _upgrade(settings: Settings, revision: str = "head") -> None:
    """Migrate, turning a refused upgrade (nothing committed) into a message and exit 1."""
    from ostiary.migrate import MigrationFailed, upgrade

    try:
        upgrade(settings.resolved_database_url, revision, secret_key=settings.resolved_secret_key())
    except MigrationFailed as exc:
        err.print(f"[red]upgrade failed, nothing was changed:[/red] {exc}")
        raise typer.Exit(1) from exc


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations (safe while other processes do the same)."""
    _upgrade(_settings(), revision)
    console.print(f"database at [bold]{revision}[/bold]")


@db_app.command("check")
def db_check() -> None:
    """Fail if the models and the migrations differ."""
    from ostiary.migrate import check

    check(_settings().resolved_database_url)
    console.print("models and migrations agree")


@app.command()
def outbox(
    limit: Annotated[int, typer.Option(help="How many mails.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show the newest mails in the outbox (the dev outbox when no SMTP is set)."""
    from ostiary.context import build_context
    from ostiary.db import transaction
    from ostiary.mail.service import recent

    ctx = build_context(_settings())
    with transaction(ctx.sessions) as session:
        mails = recent(session, limit=limit)
    if as_json:
        console.print_json(
            json.dumps(
                [
                    {
                        "to": m.recipient,
                        "subject": m.subject,
                        "body": m.body,
                        "created_at": m.created_at.isoformat(),
                        "sent": m.sent_at is not None,
                    }
                    for m in mails
                ]
            )
        )
        return
    for m in mails:
        console.rule(f"{m.subject} → {m.recipient}")
        console.print(m.body, markup=False, highlight=False)


def _policy_table(rows: list[dict[str, object]]) -> Table:
    table = Table(title="Password policies")
    for column in ("kind", "min_length", "check_common", "history_count", "expiry_days"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            *(
                str(row[c]) if row[c] is not None else "never"
                for c in ("kind", "min_length", "check_common", "history_count", "expiry_days")
            )
        )
    return table


@policy_app.command("show")
def policy_show(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show the password policy of each user kind."""
    from ostiary.context import build_context
    from ostiary.db import transaction
    from ostiary.identity.policy import get_policy

    ctx = build_context(_settings())
    with transaction(ctx.sessions) as session:
        rows: list[dict[str, object]] = [
            {
                "kind": p.kind.value,
                "min_length": p.min_length,
                "check_common": p.check_common,
                "history_count": p.history_count,
                "expiry_days": p.expiry_days,
            }
            for p in (get_policy(session, kind=k, clock=ctx.clock) for k in UserKind)
        ]
    if as_json:
        console.print_json(json.dumps(rows))
    else:
        console.print(_policy_table(rows))


@policy_app.command("set")
def policy_set(
    kind: Annotated[UserKind, typer.Argument(help="person or technical")],
    min_length: Annotated[Optional[int], typer.Option(help="Minimum length.")] = None,  # noqa: UP045 typer needs Optional
    check_common: Annotated[Optional[bool], typer.Option(help="Refuse common passwords.")] = None,  # noqa: UP045
    history: Annotated[Optional[int], typer.Option(help="Passwords remembered.")] = None,  # noqa: UP045
    expiry_days: Annotated[Optional[int], typer.Option(help="Days until expiry.")] = None,  # noqa: UP045
    no_expiry: Annotated[bool, typer.Option("--no-expiry", help="Passwords never expire.")] = False,
) -> None:
    """Change the password policy of one user kind."""
    from ostiary.context import build_context
    from ostiary.db import transaction
    from ostiary.errors import OstiaryError
    from ostiary.identity.policy import update_policy

    ctx = build_context(_settings())
    try:
        with transaction(ctx.sessions) as session:
            p = update_policy(
                session,
                kind=kind,
                clock=ctx.clock,
                actor="cli",
                min_length=min_length,
                check_common=check_common,
                history_count=history,
                expiry_days=expiry_days,
                clear_expiry=no_expiry,
            )
            row: dict[str, object] = {
                "kind": p.kind.value,
                "min_length": p.min_length,
                "check_common": p.check_common,
                "history_count": p.history_count,
                "expiry_days": p.expiry_days,
            }
    except OstiaryError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from exc
    console.print(_policy_table([row]))


def run() -> None:
    """Console-script entry point."""
    app()
