"""E-mail addresses as enterprises have them: syntax is checked, the domain is not.

Internal and special-use domains (``corp.local``, ``example.test``) are accepted; whether
mail arrives is what the activation mail proves (README, *E-mail addresses*). Self-
registration may be limited to some domains (``OSTIARY_REGISTRATION_DOMAINS``).
"""

from __future__ import annotations

import re
from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, Field

from ostiary.errors import InvalidInput

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
#: A stand-in domain under which email-validator checks only the local part.
_PROBE_DOMAIN = "example.com"


def _check_domain(domain: str) -> None:
    """RFC 1123 host name syntax, internationalised names through IDNA; no list of names.

    email-validator refuses special-use domains (``.local``, ``.test``) whatever its
    options, so the domain is checked here and only the local part is handed to it."""
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise InvalidInput("not a valid e-mail address: the domain is not valid") from None
    labels = ascii_domain.split(".")
    if len(ascii_domain) > 253 or not all(_LABEL.match(label) for label in labels):
        raise InvalidInput("not a valid e-mail address: the domain is not valid")


def parse_email(value: str) -> str:
    """The address as given (trimmed) if its syntax is valid; ``InvalidInput`` otherwise."""
    text = value.strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        raise InvalidInput("not a valid e-mail address: it needs one @ and a domain")
    _check_domain(domain)
    try:
        validate_email(
            f"{local}@{_PROBE_DOMAIN}",
            check_deliverability=False,
            allow_display_name=False,
            allow_domain_literal=False,
        )
    except EmailNotValidError as exc:
        raise InvalidInput(f"not a valid e-mail address: {exc}") from None
    if len(text) > 320:
        raise InvalidInput("not a valid e-mail address: it is too long")
    return text


def _pydantic(value: str) -> str:
    try:
        return parse_email(value)
    except InvalidInput as exc:
        raise ValueError(exc.detail) from None


#: An e-mail address in a request body (any syntactically valid address).
Email = Annotated[str, Field(min_length=3, max_length=320), AfterValidator(_pydantic)]


def domain_of(email: str) -> str:
    """The domain part, lower-cased (the part after the last ``@``)."""
    return email.rsplit("@", 1)[-1].strip().lower().rstrip(".")


def may_self_register(email: str, *, allowed: tuple[str, ...]) -> bool:
    """Whether self-registration is open to this address: no allow-list, or its domain is
    on it. Exact domains only: ``corp.example`` does not open ``eu.corp.example``, so an
    allow-list never grows by itself."""
    return not allowed or domain_of(email) in allowed
