"""The management API's provider keys (organization admins) and organizations (staff).

A provider key is written and replaced here, never read back: answers carry its last four
characters only. Organizations are created by platform staff; an organization admin
changes their own organization's settings.
"""

from __future__ import annotations

from django.db.models import ProtectedError
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import invitations, services
from accounts.api import ERRORS, ORGANIZATION_PARAMETER, _caller
from accounts.models import CacheScope, CompressionLevel, Organization, ProviderCredential
from accounts.serializers import (
    OrganizationCreateSerializer,
    OrganizationSerializer,
    ProviderKeySerializer,
    ProviderKeySetSerializer,
)
from common.errors import InvalidRequest, NotFound, PermissionDenied

STAFF_ONLY = {403: OpenApiResponse(description="Only platform staff may do this.")}
ADMINS_ONLY = {403: OpenApiResponse(description="Only organization admins may do this.")}


def _admin_caller(request):
    caller = _caller(request)
    if not caller.is_admin:
        raise PermissionDenied("Only organization admins can manage this.")
    return caller


def _staff(request):
    if not request.user.is_superuser:
        raise PermissionDenied("Only platform staff can manage organizations.")
    return request.user


class ProviderKeyListView(APIView):
    """``GET``: the organization's stored upstream keys (last four only). ``POST``: store
    a key for a provider and name, or replace it (a rotation: deployments using it switch
    at once)."""

    @extend_schema(
        operation_id="provider_keys_list",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: ProviderKeySerializer(many=True), **ADMINS_ONLY, **ERRORS},
    )
    def get(self, request):
        caller = _admin_caller(request)
        credentials = ProviderCredential.objects.filter(organization=caller.organization)
        return Response(
            {"object": "list", "data": ProviderKeySerializer(credentials, many=True).data}
        )

    @extend_schema(
        operation_id="provider_keys_set",
        parameters=[ORGANIZATION_PARAMETER],
        request=ProviderKeySetSerializer,
        responses={200: ProviderKeySerializer, **ADMINS_ONLY, **ERRORS},
    )
    def post(self, request):
        caller = _admin_caller(request)
        payload = ProviderKeySetSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        credential = services.provider_credential_set(
            organization=caller.organization,
            provider=data["provider"],
            key=data["key"],
            base_url=data["base_url"],
            name=data["name"],
            options=data["options"],
            actor=caller.user,
        )
        response = Response(ProviderKeySerializer(credential).data)
        response["Cache-Control"] = "no-store"
        return response


class ProviderKeyDetailView(APIView):
    def _credential(self, caller, credential_id: int) -> ProviderCredential:
        credential = ProviderCredential.objects.filter(
            organization=caller.organization, pk=credential_id
        ).first()
        if credential is None:
            raise NotFound("No such provider key.")
        return credential

    @extend_schema(
        operation_id="provider_keys_retrieve",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: ProviderKeySerializer, **ADMINS_ONLY, **ERRORS},
    )
    def get(self, request, credential_id: int):
        caller = _admin_caller(request)
        return Response(ProviderKeySerializer(self._credential(caller, credential_id)).data)

    @extend_schema(
        operation_id="provider_keys_delete",
        parameters=[ORGANIZATION_PARAMETER],
        request=None,
        responses={204: None, **ADMINS_ONLY, **ERRORS},
    )
    def delete(self, request, credential_id: int):
        caller = _admin_caller(request)
        credential = self._credential(caller, credential_id)
        try:
            services.provider_credential_delete(credential=credential, actor=caller.user)
        except ProtectedError as error:
            raise InvalidRequest(
                "Deployments still use this key; point them at another key first."
            ) from error
        return Response(status=status.HTTP_204_NO_CONTENT)


class OrganizationSettingsSerializer(serializers.Serializer):
    """The settings an organization admin may change (platform staff: cache_scope too)."""

    name = serializers.CharField(max_length=200, required=False)
    rpm_limit = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    tpm_limit = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    allowed_models = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False
    )
    compression_level = serializers.ChoiceField(
        choices=CompressionLevel.values, required=False, allow_blank=True
    )
    compression_tool_results = serializers.BooleanField(required=False)
    cache_enabled = serializers.BooleanField(required=False)
    cache_scope = serializers.ChoiceField(choices=CacheScope.values, required=False)
    trace_content = serializers.BooleanField(required=False)


class OrganizationCurrentView(APIView):
    """``GET``: the caller's organization. ``PATCH`` (admins): change its settings."""

    @extend_schema(
        operation_id="organization_retrieve",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: OrganizationSerializer, **ERRORS},
    )
    def get(self, request):
        return Response(OrganizationSerializer(_caller(request).organization).data)

    @extend_schema(
        operation_id="organization_update",
        parameters=[ORGANIZATION_PARAMETER],
        request=OrganizationSettingsSerializer,
        responses={200: OrganizationSerializer, **ADMINS_ONLY, **ERRORS},
    )
    def patch(self, request):
        caller = _admin_caller(request)
        payload = OrganizationSettingsSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        organization = services.organization_update_settings(
            organization=caller.organization, actor=caller.user, **payload.validated_data
        )
        return Response(OrganizationSerializer(organization).data)


class OrganizationListView(APIView):
    """Platform staff: ``GET`` every organization, ``POST`` create one (and invite its
    first admin by e-mail)."""

    @extend_schema(
        operation_id="organizations_list",
        responses={200: OrganizationSerializer(many=True), **STAFF_ONLY, **ERRORS},
    )
    def get(self, request):
        _staff(request)
        organizations = Organization.objects.order_by("name")
        return Response(
            {"object": "list", "data": OrganizationSerializer(organizations, many=True).data}
        )

    @extend_schema(
        operation_id="organizations_create",
        request=OrganizationCreateSerializer,
        responses={201: OrganizationSerializer, **STAFF_ONLY, **ERRORS},
    )
    def post(self, request):
        actor = _staff(request)
        payload = OrganizationCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        organization = services.organization_create(
            name=data["name"], slug=data["slug"], actor=actor
        )
        if data.get("admin_email"):
            invitations.member_invite(
                organization=organization,
                email=data["admin_email"],
                role="admin",
                actor=actor,
                accept_url=lambda token: request.build_absolute_uri(
                    reverse("invitation-accept", args=[token])
                ),
            )
        return Response(OrganizationSerializer(organization).data, status=status.HTTP_201_CREATED)


class OrganizationDetailView(APIView):
    @extend_schema(
        operation_id="organizations_retrieve",
        responses={200: OrganizationSerializer, **STAFF_ONLY, **ERRORS},
    )
    def get(self, request, slug: str):
        _staff(request)
        organization = Organization.objects.filter(slug=slug).first()
        if organization is None:
            raise NotFound("No such organization.")
        return Response(OrganizationSerializer(organization).data)
