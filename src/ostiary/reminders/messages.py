"""The text of an expiry reminder: who, which credential, where, when, and how to rotate it."""

from __future__ import annotations

from datetime import datetime

from ostiary.credentials.models import CredentialKind
from ostiary.credentials.service import CredentialInfo
from ostiary.identity.models import User

#: How to replace each kind before it ends (docs/credentials.md, "Overlap rotation").
HOW_TO_ROTATE = {
    CredentialKind.technical_user_secret: (
        "Rotate it with an overlap, so senders switch without an outage:\n"
        "  console: technical-user page of {user} -> Rotate secret\n"
        "  API:     POST {url}/api/v1/technical-users/{user}/secrets "
        '{{"old_valid_until": "..."}}\n'
        "  CLI:     ostiary credentials rotate {user} --as YOUR-USER-ID --old-valid-until-days 7"
    ),
    CredentialKind.client_secret: (
        "Rotate the client secret with an overlap:\n"
        "  API: POST {url}/api/v1/subaccounts/{subaccount}/oauth-clients/{client}/secrets "
        '{{"old_valid_until": "..."}}'
    ),
    CredentialKind.client_key: (
        "Add the new public key before this one ends:\n"
        "  API: POST {url}/api/v1/subaccounts/{subaccount}/oauth-clients/{client}/keys "
        '{{"jwk": {{...}}, "old_valid_until": "..."}}\n'
        "  (keys published at a jwks_uri are rotated there)"
    ),
    CredentialKind.certificate: (
        "Issue the new client certificate before this one's end (certificates overlap by "
        "nature), install it in the sender, then let the old one expire."
    ),
}


def reminder_mail(
    credential: CredentialInfo, *, technical_user: User, now: datetime, public_url: str
) -> tuple[str, str]:
    """Subject and body of the reminder for ``credential``."""
    assert credential.expires_at is not None
    days = max((credential.expires_at - now).days, 0)
    when = credential.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    name = technical_user.display_name or technical_user.user_id
    subject = (
        f"Credential {credential.credential_id} of {credential.user_id} expires on "
        f"{credential.expires_at:%Y-%m-%d}"
    )
    rotate = HOW_TO_ROTATE[credential.kind].format(
        url=public_url,
        user=credential.user_id,
        subaccount=credential.subaccount or "SUBDOMAIN",
        client=credential.client_id or "CLIENT",
    )
    body = (
        f"A credential of technical user {credential.user_id} ({name}) expires soon.\n\n"
        f"Technical user: {credential.user_id} ({name})\n"
        f"Credential ID:  {credential.credential_id} ({credential.kind.value})\n"
        f"Sub-account:    {credential.subaccount or '-'}\n"
        f"Expires:        {when} (in {days} days)\n\n"
        f"After that it stops working everywhere.\n\n{rotate}\n\n"
        "More in Ostiary's documentation: docs/credentials.md, 'Overlap rotation'.\n"
    )
    return subject, body
