"""Authorization server metadata, RFC 8414 §2 (also served at the OpenID discovery path)."""

from __future__ import annotations

from typing import Any

from ostiary.oauth.client_auth import ASSERTION_ALGORITHMS
from ostiary.oauth.keys import ALGORITHM

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]


def metadata(issuer: str) -> dict[str, Any]:
    """The metadata document for ``issuer``."""
    return {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/oauth/token",
        "jwks_uri": f"{issuer}/oauth/jwks",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "access_token_signing_alg_values_supported": [ALGORITHM],
    }
