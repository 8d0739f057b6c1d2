"""Audit event tags, ``scope:object:verb``."""

from __future__ import annotations

from enum import StrEnum


class AuditAction(StrEnum):
    """Every kind of audit event Ostiary writes."""

    subaccount_created = "subaccount:created"
    subaccount_updated = "subaccount:updated"
    subaccount_deleted = "subaccount:deleted"
    member_added = "subaccount:member:added"
    member_changed = "subaccount:member:changed"
    member_removed = "subaccount:member:removed"
    role_created = "subaccount:role:created"
    role_deleted = "subaccount:role:deleted"
    role_collection_created = "subaccount:role_collection:created"
    role_collection_changed = "subaccount:role_collection:changed"
    role_collection_deleted = "subaccount:role_collection:deleted"
    assignments_changed = "subaccount:assignments:changed"
    technical_user_created = "user:technical:created"
    technical_user_password_reset = "user:technical:password_reset"
    technical_user_deleted = "user:technical:deleted"
    technical_user_owner_changed = "user:technical:owner_changed"
    user_converted = "user:converted_to_technical"
    user_status_changed = "user:status_changed"
    flow_created = "subaccount:flow:created"
    flow_changed = "subaccount:flow:changed"
    flow_deleted = "subaccount:flow:deleted"
    oauth_client_created = "subaccount:oauth_client:created"
    oauth_client_rotated = "subaccount:oauth_client:rotated"
    oauth_client_retired = "subaccount:oauth_client:secret_retired"
    oauth_client_status = "subaccount:oauth_client:status_changed"
    oauth_client_deleted = "subaccount:oauth_client:deleted"
    token_revoked = "oauth:token:revoked"
    token_denied = "oauth:token:denied"
    signing_key_rotated = "oauth:signing_key:rotated"
    runtime_denied = "runtime:denied"
    access_denied = "access:denied"
    authentication_failed = "access:authentication:failed"
