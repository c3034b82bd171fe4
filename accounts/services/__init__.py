"""Every write to accounts data goes through here, and every one leaves an audit entry.

One module per subject; callers import from ``accounts.services``, which names the whole
service layer in one place.
"""

from __future__ import annotations

from accounts.services.api_keys import (
    LIMIT_MAX,
    ROTATION_GRACE_MAX_SECONDS,
    api_key_create,
    api_key_expiry,
    api_key_narrowed_to_parent,
    api_key_revoke,
    api_key_rotate,
    api_key_touch,
    api_key_update_limits,
    limits_check,
)
from accounts.services.audit import (
    audit_record,
)
from accounts.services.organizations import (
    ORGANIZATION_SETTINGS,
    member_add,
    member_remove,
    member_role_change,
    membership_remove,
    membership_set,
    organization_create,
    organization_delete,
    organization_update_settings,
    role_limit_delete,
    role_limit_set,
    roles_apply_from_settings,
    user_get_or_create,
)
from accounts.services.provider_keys import (
    _API_VERSION,
    provider_credential_delete,
    provider_credential_set,
    provider_credential_update,
    provider_settings_check,
    secrets_reencrypt,
)

__all__ = [
    "LIMIT_MAX",
    "ORGANIZATION_SETTINGS",
    "ROTATION_GRACE_MAX_SECONDS",
    "_API_VERSION",
    "api_key_create",
    "api_key_expiry",
    "api_key_narrowed_to_parent",
    "api_key_revoke",
    "api_key_rotate",
    "api_key_touch",
    "api_key_update_limits",
    "audit_record",
    "limits_check",
    "member_add",
    "member_remove",
    "member_role_change",
    "membership_remove",
    "membership_set",
    "organization_create",
    "organization_delete",
    "organization_update_settings",
    "provider_credential_delete",
    "provider_credential_set",
    "provider_credential_update",
    "provider_settings_check",
    "role_limit_delete",
    "role_limit_set",
    "roles_apply_from_settings",
    "secrets_reencrypt",
    "user_get_or_create",
]
