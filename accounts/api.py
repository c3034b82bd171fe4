"""The management API: thin views that parse, call one service or selector, and answer.

The organization is the API key's (``request.auth`` is its ``Principal``); a user
signed in to the admin names one of theirs with ``?organization=<slug>``. Any object
outside what the caller may manage answers 404 in OpenAI's error format.
"""

from __future__ import annotations

import logging

from django.templatetags.static import static
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularSwaggerView
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import (
    invitations,
    schema,  # noqa: F401 - registers the API key scheme with the schema
    selectors,
    services,
)
from accounts.selectors import OrganizationCaller, Principal
from accounts.serializers import (
    ApiKeyCreatedSerializer,
    ApiKeyCreateSerializer,
    ApiKeyListSerializer,
    ApiKeyRotatedSerializer,
    ApiKeyRotateSerializer,
    ApiKeySerializer,
    InvitationSerializer,
    MemberInviteSerializer,
    MemberListSerializer,
    MemberRoleSerializer,
    MemberSerializer,
)
from common.errors import InvalidRequest, NotFound, PermissionDenied

logger = logging.getLogger(__name__)

ORGANIZATION_PARAMETER = OpenApiParameter(
    "organization",
    str,
    description="Slug of the organization, for a user signed in to the admin site. "
    "Callers with an API key act in the key's organization.",
    required=False,
)
ERRORS = {
    401: OpenApiResponse(description="Missing, unknown, revoked or expired API key."),
    404: OpenApiResponse(description="No such object in your organization."),
}


def _caller(request) -> OrganizationCaller:
    principal = request.auth if isinstance(request.auth, Principal) else None
    return selectors.organization_caller_get(
        user=request.user,
        principal=principal,
        organization_slug=request.query_params.get("organization", ""),
    )


class ApiKeyListCreateView(APIView):
    """``GET``: the keys you may manage (an admin: all of the organization's; a member:
    their own). ``POST``: create a key (organization admins only); its plaintext is in
    that response only. A key created with an API key is never wider than that key
    (models, limits, expiry), spends from its key budget too and stops working when it
    is revoked."""

    @extend_schema(
        operation_id="api_keys_list",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: ApiKeyListSerializer, **ERRORS},
    )
    def get(self, request):
        api_keys = selectors.api_keys_manageable_by(caller=_caller(request))
        return Response({"object": "list", "data": ApiKeySerializer(api_keys, many=True).data})

    @extend_schema(
        operation_id="api_keys_create",
        parameters=[ORGANIZATION_PARAMETER],
        request=ApiKeyCreateSerializer,
        responses={
            201: ApiKeyCreatedSerializer,
            403: OpenApiResponse(description="Only organization admins may create keys."),
            **ERRORS,
        },
    )
    def post(self, request):
        caller = _caller(request)
        if not caller.is_admin:
            raise PermissionDenied("Only organization admins can create API keys.")
        payload = ApiKeyCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        owner = caller.user
        username = data.get("user")
        if username and username != caller.user.username:
            membership = (
                selectors.members_for_org(organization=caller.organization)
                .filter(user__username=username)
                .first()
            )
            if membership is None:
                raise InvalidRequest(
                    f"No member named {username!r} in this organization.", param="user"
                )
            owner = membership.user
        api_key, plaintext = services.api_key_create(
            organization=caller.organization,
            user=owner,
            name=data["name"],
            expires_at=data["expires_at"],
            allowed_models=data["allowed_models"],
            rpm_limit=data.get("rpm_limit"),
            tpm_limit=data.get("tpm_limit"),
            # A key made with a key hangs from it (never wider, revoked with it); staff
            # making a key in another organization make a root key of that organization.
            parent=(
                selectors.api_key_for_principal(principal=request.auth)
                if isinstance(request.auth, Principal)
                and request.auth.organization_id == caller.organization.pk
                else None
            ),
            actor=caller.user,
        )
        logger.info("api key %s created for %s by %s", api_key.masked, owner.username, caller.user)
        body = ApiKeySerializer(api_key).data
        body["key"] = plaintext
        response = Response(body, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response


class ApiKeyDetailView(APIView):
    @extend_schema(
        operation_id="api_keys_retrieve",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: ApiKeySerializer, **ERRORS},
    )
    def get(self, request, key_id: int):
        api_key = selectors.api_key_get_manageable(caller=_caller(request), key_id=key_id)
        return Response(ApiKeySerializer(api_key).data)


class ApiKeyRevokeView(APIView):
    @extend_schema(
        operation_id="api_keys_revoke",
        parameters=[ORGANIZATION_PARAMETER],
        request=None,
        responses={200: ApiKeySerializer, **ERRORS},
    )
    def post(self, request, key_id: int):
        caller = _caller(request)
        api_key = selectors.api_key_get_manageable(caller=caller, key_id=key_id)
        api_key = services.api_key_revoke(api_key=api_key, actor=caller.user)
        logger.info("api key %s revoked by %s", api_key.prefix, caller.user)
        return Response(ApiKeySerializer(api_key).data)


class ApiKeyRotateView(APIView):
    """Replace a key with a new one of the same settings. With ``grace_seconds`` both work
    until the grace period ends, so the services holding the old key can move one by one."""

    @extend_schema(
        operation_id="api_keys_rotate",
        parameters=[ORGANIZATION_PARAMETER],
        request=ApiKeyRotateSerializer,
        responses={
            201: ApiKeyRotatedSerializer,
            403: OpenApiResponse(description="Only organization admins may rotate keys."),
            **ERRORS,
        },
    )
    def post(self, request, key_id: int):
        caller = _caller(request)
        api_key = selectors.api_key_get_manageable(caller=caller, key_id=key_id)
        if not caller.is_admin:
            raise PermissionDenied("Only organization admins can rotate API keys.")
        payload = ApiKeyRotateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        new_key, plaintext = services.api_key_rotate(
            api_key=api_key,
            actor=caller.user,
            grace_seconds=payload.validated_data["grace_seconds"],
        )
        api_key.refresh_from_db()
        logger.info("api key %s rotated to %s by %s", api_key.masked, new_key.masked, caller.user)
        body = ApiKeySerializer(new_key).data
        body["key"] = plaintext
        body["replaces"] = ApiKeySerializer(api_key).data
        response = Response(body, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response


class MemberListView(APIView):
    """``GET``: the organization's members. ``POST`` (admins): invite an e-mail address.

    The answer to an invitation is the same whoever the address belongs to, or if it
    belongs to nobody: the admin learns nothing about users outside the organization.
    """

    @extend_schema(
        operation_id="members_invite",
        parameters=[ORGANIZATION_PARAMETER],
        request=MemberInviteSerializer,
        responses={
            202: InvitationSerializer,
            403: OpenApiResponse(description="Only organization admins may invite."),
            **ERRORS,
        },
    )
    def post(self, request):
        caller = _caller(request)
        if not caller.is_admin:
            raise PermissionDenied("Only organization admins can invite members.")
        payload = MemberInviteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        invitation = invitations.member_invite(
            organization=caller.organization,
            email=payload.validated_data["email"],
            role=payload.validated_data.get("role"),
            actor=caller.user,
            accept_url=lambda token: request.build_absolute_uri(
                reverse("invitation-accept", args=[token])
            ),
        )
        body = {
            "object": "invitation",
            "email": invitation.email,
            "role": invitation.role,
            "status": "sent",
            "expires_at": invitation.expires_at,
        }
        return Response(InvitationSerializer(body).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        operation_id="members_list",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: MemberListSerializer, **ERRORS},
    )
    def get(self, request):
        caller = _caller(request)
        members = selectors.members_for_org(organization=caller.organization)
        return Response({"object": "list", "data": MemberSerializer(members, many=True).data})


class MemberDetailView(APIView):
    """``PATCH``: change a member's role. ``DELETE``: remove them (their keys are revoked).
    Admins only; the organization always keeps at least one admin."""

    def _membership(self, caller, username: str):
        if not caller.is_admin:
            raise PermissionDenied("Only organization admins can change members.")
        membership = (
            selectors.members_for_org(organization=caller.organization)
            .filter(user__username=username)
            .first()
        )
        if membership is None:
            raise NotFound("No such member.")
        return membership

    @extend_schema(
        operation_id="members_update",
        parameters=[ORGANIZATION_PARAMETER],
        request=MemberRoleSerializer,
        responses={200: MemberSerializer, **ERRORS},
    )
    def patch(self, request, username: str):
        caller = _caller(request)
        membership = self._membership(caller, username)
        payload = MemberRoleSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        membership = services.member_role_change(
            membership=membership, role=payload.validated_data["role"], actor=caller.user
        )
        return Response(MemberSerializer(membership).data)

    @extend_schema(
        operation_id="members_remove",
        parameters=[ORGANIZATION_PARAMETER],
        request=None,
        responses={204: None, **ERRORS},
    )
    def delete(self, request, username: str):
        caller = _caller(request)
        membership = self._membership(caller, username)
        services.member_remove(membership=membership, actor=caller.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ApiDocsView(SpectacularSwaggerView):
    """Swagger UI from drf-spectacular-sidecar's bundled assets: no CDN, works offline."""

    url_name = "api-schema"

    @staticmethod
    def _swagger_ui_resource(filename):
        return static(f"drf_spectacular_sidecar/swagger-ui-dist/{filename}")

    @staticmethod
    def _swagger_ui_favicon():
        return static("drf_spectacular_sidecar/swagger-ui-dist/favicon-32x32.png")
