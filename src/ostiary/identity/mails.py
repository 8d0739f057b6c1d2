"""The texts of the identity mails."""

from __future__ import annotations


def activation(*, name: str, link: str, hours: int) -> tuple[str, str]:
    """Subject and body of the activation mail."""
    return (
        "Activate your Ostiary account",
        f"Hello {name},\n\nplease activate your Ostiary account by opening this link:\n\n"
        f"{link}\n\nThe link works once and expires in {hours} hours. If you did not register,"
        " ignore this mail.\n",
    )


def already_registered(*, name: str, signin_link: str, reset_link: str) -> tuple[str, str]:
    """Subject and body of the notice sent when someone registers a taken e-mail (contract C3)."""
    return (
        "Someone tried to register your e-mail address",
        f"Hello {name},\n\nsomeone (perhaps you) tried to register a new Ostiary account with "
        "this e-mail address, which already belongs to your account. No new account was made.\n\n"
        "If you need an identity for another system to call integration flows, you do not need "
        "a second mailbox: sign in and create a technical user under Technical users -> New. "
        "It is owned by you, needs no e-mail address and its credentials never expire "
        "unexpectedly.\n\n"
        f"Sign in: {signin_link}\nForgot your password? {reset_link}\n",
    )


def password_reset(*, name: str, link: str, minutes: int) -> tuple[str, str]:
    """Subject and body of the password-reset mail."""
    return (
        "Reset your Ostiary password",
        f"Hello {name},\n\nset a new password by opening this link:\n\n{link}\n\n"
        f"The link works once and expires in {minutes} minutes. If you did not ask for this,"
        " ignore this mail; your password stays as it is.\n",
    )
