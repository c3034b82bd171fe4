"""Wire shapes of the management API. Keys are shown masked; the plaintext only once."""

from __future__ import annotations

from django.utils import timezone
from rest_framework import serializers

from accounts.models import Provider, Role
from accounts.services import LIMIT_MAX


class ApiKeySerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    object = serializers.SerializerMethodField()
    name = serializers.CharField(read_only=True)
    masked_key = serializers.CharField(source="masked", read_only=True)
    user = serializers.CharField(source="user.username", read_only=True)
    status = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField(read_only=True)
    expires_at = serializers.DateTimeField(read_only=True, allow_null=True)
    revoked_at = serializers.DateTimeField(read_only=True, allow_null=True)
    last_used_at = serializers.DateTimeField(read_only=True, allow_null=True)
    allowed_models = serializers.ListField(child=serializers.CharField(), read_only=True)
    rpm_limit = serializers.IntegerField(read_only=True, allow_null=True)
    tpm_limit = serializers.IntegerField(read_only=True, allow_null=True)

    def get_object(self, api_key) -> str:
        return "api_key"

    def get_status(self, api_key) -> str:
        if api_key.revoked_at is not None:
            return "revoked"
        if api_key.expires_at is not None and api_key.expires_at <= timezone.now():
            return "expired"
        return "active"


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(
        read_only=True, help_text="The full key. Shown in this response only; store it now."
    )


class ApiKeyListSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = ApiKeySerializer(many=True)


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    user = serializers.CharField(
        max_length=150,
        required=False,
        help_text="Username of the key's owner; only organization admins may name another "
        "member. Defaults to the caller.",
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    allowed_models = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, default=list
    )
    rpm_limit = serializers.IntegerField(
        min_value=0, max_value=LIMIT_MAX, required=False, allow_null=True
    )
    tpm_limit = serializers.IntegerField(
        min_value=0, max_value=LIMIT_MAX, required=False, allow_null=True
    )

    def validate_expires_at(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("The expiry must be in the future.")
        return value


class MemberSerializer(serializers.Serializer):
    username = serializers.CharField(source="user.username")
    role = serializers.CharField()
    joined_at = serializers.DateTimeField(source="created_at")


class MemberListSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = MemberSerializer(many=True)


class MemberInviteSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(
        choices=["admin", "premium", "basic"],
        required=False,
        help_text="Defaults to DEFAULT_ROLE.",
    )


class InvitationSerializer(serializers.Serializer):
    object = serializers.CharField(default="invitation")
    email = serializers.EmailField()
    role = serializers.CharField()
    status = serializers.CharField(default="sent")
    expires_at = serializers.DateTimeField()


class ApiKeyRotateSerializer(serializers.Serializer):
    grace_seconds = serializers.IntegerField(
        min_value=0,
        max_value=30 * 24 * 3600,
        required=False,
        default=0,
        help_text="How long the old key keeps working beside the new one (0: revoked now).",
    )


class ApiKeyRotatedSerializer(ApiKeyCreatedSerializer):
    replaces = ApiKeySerializer(read_only=True, help_text="The old key, as it is now.")


class MemberRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.values)


class ProviderKeySerializer(serializers.Serializer):
    """A stored upstream key as the API shows it: never the key, only its last four."""

    id = serializers.IntegerField(read_only=True)
    object = serializers.SerializerMethodField()
    provider = serializers.CharField(read_only=True)
    name = serializers.CharField(read_only=True)
    base_url = serializers.CharField(read_only=True)
    options = serializers.JSONField(read_only=True)
    last_four = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def get_object(self, credential) -> str:
        return "provider_key"


class ProviderKeySetSerializer(serializers.Serializer):
    provider = serializers.ChoiceField(choices=Provider.values)
    name = serializers.SlugField(max_length=100, required=False, default="default")
    key = serializers.CharField(max_length=500, write_only=True, trim_whitespace=True)
    base_url = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
    options = serializers.JSONField(required=False, default=dict)


class OrganizationSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    object = serializers.SerializerMethodField()
    name = serializers.CharField(read_only=True)
    slug = serializers.CharField(read_only=True)
    rpm_limit = serializers.IntegerField(read_only=True, allow_null=True)
    tpm_limit = serializers.IntegerField(read_only=True, allow_null=True)
    allowed_models = serializers.ListField(child=serializers.CharField(), read_only=True)
    compression_level = serializers.CharField(read_only=True)
    cache_enabled = serializers.BooleanField(read_only=True)
    cache_scope = serializers.CharField(read_only=True)
    trace_content = serializers.BooleanField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)

    def get_object(self, organization) -> str:
        return "organization"


class OrganizationCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    slug = serializers.SlugField(max_length=100, required=False, allow_blank=True, default="")
    admin_email = serializers.EmailField(
        required=False, help_text="Invited as the organization's first admin."
    )
