"""Credentials of technical users, every kind in one model (issue 11): technical-user
secrets, OAuth client secrets, client keys for ``private_key_jwt`` and certificates."""
