"""The mail port: a transport takes one message and delivers it, or raises ``MailError``."""

from __future__ import annotations

import logging
import smtplib
import threading
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import unquote, urlsplit

log = logging.getLogger("ostiary.mail")


class MailError(Exception):
    """The transport could not hand the message over."""


class MailTransport(Protocol):
    """Delivers one plain-text mail."""

    def send(self, *, recipient: str, subject: str, body: str) -> None:
        """Deliver the mail or raise ``MailError``."""
        ...


class SmtpTransport:
    """Delivers over SMTP; ``smtp://`` (STARTTLS when offered) or ``smtps://`` URLs."""

    def __init__(self, url: str, sender: str, *, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
            raise ValueError("OSTIARY_SMTP_URL must look like smtp://host:port")
        self._tls = parts.scheme == "smtps"
        self._host = parts.hostname
        self._port = parts.port or (465 if self._tls else 25)
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._sender = sender
        self._timeout = timeout

    def send(self, *, recipient: str, subject: str, body: str) -> None:
        """Deliver one mail over a fresh SMTP connection."""
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = recipient
        message["Subject"] = subject
        message.set_content(body)
        try:
            smtp_class = smtplib.SMTP_SSL if self._tls else smtplib.SMTP
            with smtp_class(self._host, self._port, timeout=self._timeout) as smtp:
                if not self._tls:
                    smtp.ehlo()
                    if smtp.has_extn("starttls"):
                        smtp.starttls()
                        smtp.ehlo()
                if self._user and self._password:
                    smtp.login(self._user, self._password)
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"{type(exc).__name__}: {exc}") from exc


class OutboxOnlyTransport:
    """No SMTP configured: mails stay in the outbox and are announced in the log.

    In development the whole mail is logged so the link can be followed; otherwise only
    the recipient and subject are, because the body carries single-use secrets.
    """

    def __init__(self, *, log_bodies: bool) -> None:
        self._log_bodies = log_bodies

    def send(self, *, recipient: str, subject: str, body: str) -> None:
        """Log the mail instead of sending it."""
        if self._log_bodies:
            log.info("dev outbox: mail to %s: %s\n%s", recipient, subject, body)
        else:
            log.info(
                "dev outbox: mail to %s: %s (read it with `ostiary outbox`)", recipient, subject
            )


class MemoryTransport:
    """Keeps mails in a list; the in-memory fake for unit tests."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()

    def send(self, *, recipient: str, subject: str, body: str) -> None:
        """Remember the mail."""
        with self._lock:
            self.sent.append((recipient, subject, body))
