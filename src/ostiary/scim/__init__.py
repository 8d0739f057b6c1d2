"""SCIM 2.0 (RFC 7643, RFC 7644): provisioning the directory from an identity provider.

See docs/scim.md for what is served, which attributes map where, and why.
"""
