"""The one typed settings object, read from ``OSTIARY_*`` environment variables.

Built once (by the CLI or a test) and passed into ``create_app(settings)``; nothing
imports it as a global.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from enum import StrEnum
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: Values that look like a secret but are published somewhere (docs, examples, tests).
KNOWN_DEFAULT_SECRETS = frozenset(
    {"", "changeme", "change-me", "secret", "dev", "development", "ostiary", "insecure", "test"}
)


class Environment(StrEnum):
    """How the installation is run; development relaxes a few safety checks."""

    development = "development"
    production = "production"


class ClientCertHeader(StrEnum):
    """The header a trusted TLS-terminating proxy puts the caller's certificate in."""

    nginx = "x-ssl-client-cert"
    rfc9440 = "client-cert"
    envoy = "x-forwarded-client-cert"


class Settings(BaseSettings):
    """Every ``OSTIARY_*`` setting. README's configuration table lists the same."""

    model_config = SettingsConfigDict(env_prefix="OSTIARY_", extra="ignore")

    env: Environment = Environment.production
    data_dir: Path = Path("./ostiary-data")
    database_url: str | None = None
    public_url: str = "http://127.0.0.1:8080"
    smtp_url: str | None = None
    mail_from: str = "Ostiary <no-reply@ostiary.local>"
    secret_key: str | None = None
    admin_email: str | None = None
    admin_password: str | None = None
    log_level: str = "INFO"
    activation_ttl_hours: int = Field(default=24, ge=1, le=24 * 30)
    reset_ttl_minutes: int = Field(default=60, ge=5, le=24 * 60)
    #: How long an invitation link works (issue 12).
    invitation_ttl_hours: int = Field(default=24 * 7, ge=1, le=24 * 90)
    session_ttl_hours: int = Field(default=12, ge=1, le=24 * 30)
    max_request_bytes: int = Field(default=1024 * 1024, ge=1024)
    argon2_memory_kib: int = Field(default=19 * 1024, ge=8)
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_parallelism: int = Field(default=1, ge=1)
    argon2_concurrency: int = Field(default=4, ge=1)
    # The throttle's numbers; ostiary.gate.throttle explains the policy behind them.
    signin_failures_per_account: int = Field(default=10, ge=1)
    signin_failures_per_account_ceiling: int = Field(default=100, ge=1)
    signin_failures_per_address: int = Field(default=100, ge=1)
    auth_failures_per_address: int = Field(default=100, ge=1)
    signin_window_seconds: int = Field(default=900, ge=1)
    token_lifetime_seconds: int = Field(default=3600, ge=60, le=24 * 3600)
    # NoDecode: the variable is a comma-separated list, not the JSON pydantic-settings expects.
    trusted_proxies: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = ()
    # Read only from trusted proxies, and only this one: a proxy passes the others through.
    client_cert_header: ClientCertHeader | None = None
    # HTTPS with optional client certificates when set (ostiary.tls); the key may also sit
    # in the certificate file. `ostiary serve --tls-*` override them; it refuses a key alone.
    tls_certfile: Path | None = None
    tls_keyfile: Path | None = None
    # Self-registration only for these e-mail domains (comma-separated); empty: any domain.
    registration_domains: Annotated[tuple[str, ...], NoDecode] = ()
    # The scheduler inside `ostiary serve` (ostiary.scheduler); 0 turns it off on this node.
    scheduler_interval_seconds: int = Field(default=60, ge=0, le=24 * 3600)
    # Days before a credential's end when its people are mailed (docs/reminders.md).
    expiry_reminder_days: str = "30,7,1"
    # How often the scheduler signs an audit checkpoint, when events came since the last one.
    audit_checkpoint_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)

    @field_validator("client_cert_header", mode="before")
    @classmethod
    def _lower_header(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip().lower() or None
        return value

    @field_validator("registration_domains", mode="before")
    @classmethod
    def _parse_domains(cls, value: Any) -> Any:
        entries = value.split(",") if isinstance(value, str) else value
        if isinstance(entries, list | tuple):
            return tuple(
                d for d in (str(e).strip().lower().lstrip("@").rstrip(".") for e in entries) if d
            )
        return value

    @field_validator("expiry_reminder_days")
    @classmethod
    def _check_reminder_days(cls, value: str) -> str:
        from ostiary.reminders.thresholds import parse_thresholds

        parse_thresholds(value)
        return value

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_trusted_proxies(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_networks(value.split(","))
        if isinstance(value, list | tuple):
            return parse_networks(value)
        return value

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> Settings:
        if (
            self.secret_key is not None
            and self.secret_key.strip().lower() in KNOWN_DEFAULT_SECRETS
            and self.env is not Environment.development
        ):
            raise ValueError(
                "OSTIARY_SECRET_KEY is a published default; set a random value "
                "(or unset it to have one generated in OSTIARY_DATA_DIR)"
            )
        if (
            self.secret_key is not None
            and len(self.secret_key) < 16
            and (self.env is not Environment.development)
        ):
            raise ValueError("OSTIARY_SECRET_KEY must be at least 16 characters")
        return self

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite inside the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ostiary.db').resolve()}"

    @property
    def secure_cookies(self) -> bool:
        """Cookies carry ``Secure`` when the public URL is https."""
        return self.public_url.startswith("https://")

    def resolved_secret_key(self) -> bytes:
        """The secret key; generated once and kept in the data dir when unset."""
        if self.secret_key:
            return self.secret_key.encode()
        from ostiary.files import private_dir

        path = self.data_dir / "secret_key"
        private_dir(self.data_dir)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip().encode()
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        return path.read_text().strip().encode()


def parse_networks(entries: Any) -> tuple[IPv4Network | IPv6Network, ...]:
    """Addresses and CIDRs (``10.0.0.0/8``, ``::1``) as networks; a bad entry is refused.

    A CIDR with host bits set (``10.0.0.1/8``) is refused rather than widened, because
    for a list of whom to believe the ambiguity matters: it could mean one host or the
    whole network.
    """
    networks: list[IPv4Network | IPv6Network] = []
    for entry in entries:
        if isinstance(entry, IPv4Network | IPv6Network):
            networks.append(entry)
            continue
        text = str(entry).strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=True))
        except ValueError as exc:
            raise ValueError(
                f"OSTIARY_TRUSTED_PROXIES: {text!r} is not an IPv4/IPv6 address or CIDR "
                f"({exc}); use comma-separated entries such as 127.0.0.1,10.0.0.0/8,::1"
            ) from None
    return tuple(networks)
