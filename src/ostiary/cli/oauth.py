"""CLI for OAuth clients, signing keys, and fetching a token for scripts."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

import httpx
import typer

from ostiary.cli.common import CLI_ACTOR, JsonFlag, console, err, output, settings, write
from ostiary.identity import service as identity
from ostiary.oauth import clients
from ostiary.oauth import keys as signing
from ostiary.tenancy import service as tenancy

client_app = typer.Typer(help="OAuth clients acting as technical users.", no_args_is_help=True)
keys_app = typer.Typer(help="Token signing keys.", no_args_is_help=True)


def _issued(as_json: bool, client_id: str, secret: str) -> None:
    output(
        [{"client_id": client_id, "client_secret": secret}],
        as_json=as_json,
        title="OAuth client (the secret is shown only now)",
    )


@client_app.command("create")
def client_create(
    subdomain: str,
    user_id: Annotated[str, typer.Option("--user", help="Technical user it acts as.")],
    description: Annotated[str, typer.Option(help="What it is for.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Create a client; its secret is printed once."""
    with write() as (session, ctx):
        s = tenancy.get(session, subdomain=subdomain)
        issued = clients.create(
            session,
            ctx,
            actor=CLI_ACTOR,
            subaccount=s,
            user=identity.get_user(session, user_id=user_id),
            description=description,
        )
    _issued(as_json, issued.client.client_id, issued.secret)


@client_app.command("rotate")
def client_rotate(
    subdomain: str,
    client_id: str,
    overlap_hours: Annotated[
        float, typer.Option(help="How long the old secret keeps working.")
    ] = 24.0,
    as_json: JsonFlag = False,
) -> None:
    """Add a new secret (printed once); the old one works for OVERLAP_HOURS more."""
    with write() as (session, ctx):
        s = tenancy.get(session, subdomain=subdomain)
        client = clients.get(session, subaccount=s, client_id=client_id)
        issued = clients.rotate(
            session,
            ctx,
            actor=CLI_ACTOR,
            subaccount=s,
            client=client,
            old_valid_until=ctx.clock.now() + timedelta(hours=overlap_hours),
        )
    _issued(as_json, client_id, issued.secret)


@client_app.command("retire")
def client_retire(subdomain: str, client_id: str, secret_id: uuid.UUID) -> None:
    """End one secret now (see `list` for secret IDs)."""
    with write() as (session, ctx):
        s = tenancy.get(session, subdomain=subdomain)
        client = clients.get(session, subaccount=s, client_id=client_id)
        clients.retire(
            session, ctx, actor=CLI_ACTOR, subaccount=s, client=client, secret_id=secret_id
        )
    typer.echo(f"retired secret {secret_id} of {client_id}")


@client_app.command("list")
def client_list(subdomain: str, as_json: JsonFlag = False) -> None:
    """List clients with their secrets' IDs and validity."""
    with write() as (session, ctx):
        s = tenancy.get(session, subdomain=subdomain)
        now = ctx.clock.now()
        rows: list[dict[str, Any]] = []
        for c, u in clients.list_clients(session, subaccount=s):
            secrets = []
            for x in clients.secrets_of(session, client=c):
                live = x.expires_at is None or x.expires_at > now
                secrets.append(f"{x.id} ({'active' if live else 'retired'})")
            rows.append(
                {
                    "client_id": c.client_id,
                    "acts_as": u.user_id,
                    "status": c.status.value,
                    "secrets": secrets,
                    "description": c.description,
                }
            )
    output(rows, as_json=as_json, title=f"OAuth clients of {subdomain}")


@keys_app.command("rotate")
def keys_rotate(
    grace_minutes: Annotated[
        float, typer.Option(help="Publish now, sign with the new key after this long.")
    ] = 10.0,
) -> None:
    """Rotate the token signing key (old keys stay in JWKS until their tokens expired)."""
    with write() as (session, ctx):
        key = signing.rotate(
            session,
            secret_key=ctx.secret_key,
            clock=ctx.clock,
            grace=timedelta(minutes=grace_minutes),
            token_lifetime=timedelta(seconds=ctx.settings.token_lifetime_seconds),
        )
        from ostiary.audit.actions import AuditAction
        from ostiary.audit.service import record

        record(
            session,
            clock=ctx.clock,
            actor=CLI_ACTOR,
            action=AuditAction.signing_key_rotated,
            target=key.kid,
            after={"signs_from": key.signs_from},
        )
    console.print(f"new key [bold]{key.kid}[/bold] published; signs from {key.signs_from}")


@keys_app.command("list")
def keys_list(as_json: JsonFlag = False) -> None:
    """List signing keys."""
    with write() as (session, ctx):
        now = ctx.clock.now()
        rows = [
            {
                "kid": k.kid,
                "alg": k.alg,
                "signs_from": k.signs_from.isoformat(),
                "published_until": k.published_until.isoformat() if k.published_until else None,
                "published": k.published_until is None or k.published_until > now,
            }
            for k in signing.list_keys(session)
        ]
    output(rows, as_json=as_json, title="Signing keys")


def token(
    client_id: Annotated[str, typer.Option("--client-id", envvar="OSTIARY_CLIENT_ID")],
    client_secret: Annotated[
        str,
        typer.Option(
            "--client-secret",
            envvar="OSTIARY_CLIENT_SECRET",
            help="Better passed in the environment.",
        ),
    ],
    scope: Annotated[str | None, typer.Option(help="Roles to narrow the token to.")] = None,
    url: Annotated[
        str | None, typer.Option(help="Ostiary's URL (default: OSTIARY_PUBLIC_URL).")
    ] = None,
) -> None:
    """Fetch an access token for a client and print it (for scripts)."""
    base = (url or settings().public_url).rstrip("/")
    form = {"grant_type": "client_credentials"}
    if scope:
        form["scope"] = scope
    try:
        answer = httpx.post(
            f"{base}/oauth/token", data=form, auth=(client_id, client_secret), timeout=10
        )
    except httpx.HTTPError as exc:
        err.print(f"[red]cannot reach {base}:[/red] {exc}")
        raise typer.Exit(2) from exc
    if answer.status_code != 200:
        err.print(f"[red]{answer.status_code}[/red] {answer.text}")
        raise typer.Exit(1)
    typer.echo(answer.json()["access_token"])
