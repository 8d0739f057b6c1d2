"""Authorization server metadata, RFC 8414 §2 (also served at the OpenID discovery path).

RFC 8705 adds ``tls_client_auth`` and ``self_signed_tls_client_auth`` to the methods
(§2.1.1, §2.2.1) and ``tls_client_certificate_bound_access_tokens`` (§3.3: "indicating
server support for mutual-TLS client certificate-bound access tokens"). No
``mtls_endpoint_aliases`` (§5): the same endpoints accept mTLS and plain requests."""

from __future__ import annotations

from typing import Any

from ostiary.oauth.client_auth import ASSERTION_ALGORITHMS
from ostiary.oauth.keys import ALGORITHM
from ostiary.oauth.rfc8705_mtls import METHODS as MTLS_METHODS

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", *MTLS_METHODS]


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
        "tls_client_certificate_bound_access_tokens": True,
    }
