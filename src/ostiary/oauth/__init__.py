"""OAuth 2.0 for technical users: clients, tokens, keys, discovery, introspection, revocation."""
