"""Factories for test data: made through the services, never by copying rows by hand."""

from __future__ import annotations

import base64
import contextlib
import itertools
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from ostiary.context import AppContext
from ostiary.credentials.secrets import add_secret
from ostiary.db import transaction
from ostiary.identity import service as identity
from ostiary.identity.models import User, UserKind, UserStatus

_counter = itertools.count(1)
DEFAULT_PASSWORD = "Tr0ub4dor&3-horse-battery"


def person(
    ctx: AppContext,
    *,
    email: str | None = None,
    password: str = DEFAULT_PASSWORD,
    status: UserStatus = UserStatus.active,
    platform_admin: bool = False,
    given_name: str = "Ada",
    family_name: str = "Lovelace",
) -> User:
    """A person in the directory, active unless told otherwise."""
    n = next(_counter)
    email = email or f"person{n}-{uuid.uuid4().hex[:6]}@example.com"
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        user = User(
            id=uuid.uuid4(),
            user_id=identity.allocate_user_id(session, kind=UserKind.person),
            kind=UserKind.person,
            status=status,
            email=email,
            email_normalized=identity.normalize_email(email),
            given_name=given_name,
            family_name=family_name,
            display_name=f"{given_name} {family_name}",
            password_hash=ctx.passwords.hash(password),
            password_changed_at=now,
            is_platform_admin=platform_admin,
            created_at=now,
            updated_at=now,
            activated_at=now if status is UserStatus.active else None,
        )
        session.add(user)
    return user


def basic(identifier: str, password: str = DEFAULT_PASSWORD) -> dict[str, str]:
    """An Authorization header for HTTP Basic."""
    token = base64.b64encode(f"{identifier}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def technical_user(
    ctx: AppContext,
    *,
    owner: User,
    status: UserStatus = UserStatus.active,
    display_name: str = "Order sender",
) -> tuple[User, str]:
    """A technical user owned by ``owner`` and its generated secret (a keyed hash in a row of
    ``technical_user_secrets``, made by the credentials service)."""
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        user = User(
            id=uuid.uuid4(),
            user_id=identity.allocate_user_id(session, kind=UserKind.technical),
            kind=UserKind.technical,
            status=status,
            email=None,
            email_normalized=None,
            given_name="",
            family_name="",
            display_name=display_name,
            password_hash=None,
            password_changed_at=now,
            owner_id=owner.id,
            created_at=now,
            updated_at=now,
            activated_at=now if status is UserStatus.active else None,
        )
        session.add(user)
        session.flush()
        secret = add_secret(session, ctx, user=user).secret
    return user, secret


def admin(ctx: AppContext, **kwargs: object) -> User:
    """A platform administrator."""
    return person(ctx, platform_admin=True, given_name="Pat", family_name="Admin", **kwargs)  # type: ignore[arg-type]


@contextmanager
def messages_table_away(ctx: AppContext) -> Iterator[None]:
    """The message table cannot be written for a while (renamed away and back)."""
    with ctx.engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE messages RENAME TO messages_away")
    try:
        yield
    finally:
        with ctx.engine.begin() as connection:
            connection.exec_driver_sql("ALTER TABLE messages_away RENAME TO messages")


class TcpForwarder:
    """A TCP forwarder to ``upstream`` on a local port, which a test can cut and restore:
    a database server that goes away and comes back. Cut, new connections are refused
    (nothing listens on the port) and open ones end at once; restored, the same port
    forwards again."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.port = 0
        self.restore()

    def restore(self) -> None:
        """Listen (again) on the forwarder's port."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.port = int(listener.getsockname()[1])
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Stop listening and end every forwarded connection."""
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._open = self._open, set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            listener.close()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)  # its pump closes it

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self._upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    client.close()
                    server.close()
                    return
                self._open |= {client, server}
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):  # the other direction's pump wakes up and ends
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._open.discard(source)
            source.close()


def forwarded(url: str, forwarder: TcpForwarder) -> str:
    """``url`` (``postgresql+psycopg://user@host:port/db``) through ``forwarder``."""
    head, _, rest = url.partition("@")
    _, _, database = rest.partition("/")
    return f"{head}@127.0.0.1:{forwarder.port}/{database}"


def forwarder_for(url: str) -> TcpForwarder:
    """A forwarder to the server of the PostgreSQL ``url``."""
    address = url.partition("@")[2].partition("/")[0]
    host, _, port = address.partition(":")
    return TcpForwarder(host or "127.0.0.1", int(port or 5432))
