"""What every service call may need, built once from the settings by ``create_app``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from ostiary.access import versions
from ostiary.access.snapshot import SnapshotCache
from ostiary.audit import chain as audit_chain
from ostiary.clock import Clock, SystemClock
from ostiary.crypto import KeyedHasher
from ostiary.db import WriteGate, make_engine, make_session_factory
from ostiary.gate.recheck import Recheck
from ostiary.gate.throttle import Limits, Throttle
from ostiary.identity.credential_cache import VerifiedCredentialCache
from ostiary.identity.passwords import PasswordHasher
from ostiary.mail.transport import MailTransport, OutboxOnlyTransport, SmtpTransport
from ostiary.oauth.keys import KeyRing
from ostiary.oauth.rfc9068_jwt import TokenValidator
from ostiary.settings import Environment, Settings


@dataclass
class AppContext:
    """The ports and shared objects of one running Ostiary process."""

    settings: Settings
    engine: Engine
    #: Sessions for transactions that write (on SQLite they take the write lock up front).
    sessions: sessionmaker[Session]
    #: Sessions for transactions that only read (never block on a writer).
    read_sessions: sessionmaker[Session]
    clock: Clock
    passwords: PasswordHasher
    secret_key: bytes
    transport: MailTransport
    throttle: Throttle
    grants: SnapshotCache = field(init=False)
    #: Re-reads the grants version before a refusal (runtime, token endpoint).
    recheck: Recheck = field(init=False)
    verified: VerifiedCredentialCache = field(init=False)
    keyring: KeyRing = field(init=False)
    tokens: TokenValidator = field(init=False)
    token_hasher: KeyedHasher = field(init=False)
    secret_hasher: KeyedHasher = field(init=False)

    def __post_init__(self) -> None:
        self.token_hasher = KeyedHasher(self.secret_key, "link-token")
        self.secret_hasher = KeyedHasher(self.secret_key, "generated-secret")
        self.grants = SnapshotCache(self.read_sessions)
        self.recheck = Recheck(lambda: self.grants.refresh())
        # A change of the read model bumps the grants version in its own transaction and
        # sets the flag read here, so this process reloads at once. Factories made by
        # db.make_session_factory are hooked already (``track`` is idempotent).
        for factory in (self.sessions, self.read_sessions):
            versions.track(factory)
            event.listen(factory, "after_commit", self._after_commit)
            audit_chain.attach(factory, self.secret_key)  # every session can write the audit
        self.verified = VerifiedCredentialCache(KeyedHasher(self.secret_key, "verified-cache"))
        self.keyring = KeyRing(self.secret_key)
        self.tokens = TokenValidator(self.keyring, issuer=self.settings.public_url)

    def _after_commit(self, session: Session) -> None:
        if session.info.pop(versions.CHANGED, False):
            self.grants.mark_stale()

    @property
    def development(self) -> bool:
        """Whether the installation runs in development mode."""
        return self.settings.env is Environment.development


def build_context(
    settings: Settings, *, clock: Clock | None = None, transport: MailTransport | None = None
) -> AppContext:
    """Build the context from settings; tests may swap the clock and the mail transport."""
    url = settings.resolved_database_url
    engine = make_engine(url, immediate=True)
    read_engine = make_engine(url) if url.startswith("sqlite") else engine
    if transport is None:
        transport = (
            SmtpTransport(settings.smtp_url, settings.mail_from)
            if settings.smtp_url
            else OutboxOnlyTransport(log_bodies=settings.env is Environment.development)
        )
    clock = clock or SystemClock()
    sessions, read_sessions = make_session_factory(engine), make_session_factory(read_engine)
    return AppContext(
        settings=settings,
        engine=engine,
        sessions=sessions,
        read_sessions=read_sessions,
        clock=clock,
        passwords=PasswordHasher(
            memory_kib=settings.argon2_memory_kib,
            time_cost=settings.argon2_time_cost,
            parallelism=settings.argon2_parallelism,
            concurrency=settings.argon2_concurrency,
        ),
        secret_key=settings.resolved_secret_key(),
        transport=transport,
        throttle=Throttle(
            sessions=sessions,
            read_sessions=read_sessions,
            clock=clock,
            limits=Limits(
                per_account_address=settings.signin_failures_per_account,
                per_account=settings.signin_failures_per_account_ceiling,
                per_address=settings.signin_failures_per_address,
                machine_per_address=settings.auth_failures_per_address,
                window=timedelta(seconds=settings.signin_window_seconds),
            ),
            # Its writer takes turns with the runtime's writers on SQLite (ostiary.db).
            gate=WriteGate(url),
        ),
    )
