"""Management API of guardrails: the organization's PII mode, a key's, and the rules.

Organization admins only (a member gets 403): these settings decide what leaves the
organization. Writes go through ``guardrails.services``, which validates and audits.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors as account_selectors
from accounts.api import ERRORS, ORGANIZATION_PARAMETER, _caller
from common.errors import PermissionDenied
from guardrails import selectors, services
from guardrails.serializers import (
    GuardrailRuleListSerializer,
    GuardrailRuleSerializer,
    GuardrailSettingsSerializer,
    KeyGuardrailSettingsSerializer,
)

ADMIN_ERRORS = {
    **ERRORS,
    403: OpenApiResponse(description="Only organization admins manage guardrails."),
}


def _admin(request):
    caller = _caller(request)
    if not caller.is_admin:
        raise PermissionDenied("Only organization admins can manage guardrails.")
    return caller


class GuardrailSettingsView(APIView):
    """The organization's PII mode (``off``, ``mask`` or ``block``) and its moderation
    model (blank: no moderation check)."""

    @extend_schema(
        operation_id="guardrails_retrieve",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: GuardrailSettingsSerializer, **ADMIN_ERRORS},
    )
    def get(self, request):
        caller = _admin(request)
        row = selectors.guardrails_settings_get(organization_id=caller.organization.pk)
        return Response(GuardrailSettingsSerializer(row).data)

    @extend_schema(
        operation_id="guardrails_update",
        parameters=[ORGANIZATION_PARAMETER],
        request=GuardrailSettingsSerializer,
        responses={200: GuardrailSettingsSerializer, **ADMIN_ERRORS},
    )
    def put(self, request):
        caller = _admin(request)
        payload = GuardrailSettingsSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        row = services.organization_guardrails_update(
            organization=caller.organization, actor=caller.user, **payload.validated_data
        )
        return Response(GuardrailSettingsSerializer(row).data)


class KeyGuardrailSettingsView(APIView):
    """A key's own PII mode; it only ever tightens the organization's."""

    @extend_schema(
        operation_id="guardrails_key_retrieve",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: KeyGuardrailSettingsSerializer, **ADMIN_ERRORS},
    )
    def get(self, request, key_id: int):
        caller = _admin(request)
        api_key = account_selectors.api_key_get_manageable(caller=caller, key_id=key_id)
        return Response(
            KeyGuardrailSettingsSerializer(selectors.key_guardrails_get(api_key=api_key)).data
        )

    @extend_schema(
        operation_id="guardrails_key_update",
        parameters=[ORGANIZATION_PARAMETER],
        request=KeyGuardrailSettingsSerializer,
        responses={200: KeyGuardrailSettingsSerializer, **ADMIN_ERRORS},
    )
    def put(self, request, key_id: int):
        caller = _admin(request)
        api_key = account_selectors.api_key_get_manageable(caller=caller, key_id=key_id)
        payload = KeyGuardrailSettingsSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        row = services.api_key_guardrails_update(
            api_key=api_key, pii_mode=payload.validated_data["pii_mode"], actor=caller.user
        )
        return Response(KeyGuardrailSettingsSerializer(row).data)


class GuardrailRuleListCreateView(APIView):
    @extend_schema(
        operation_id="guardrail_rules_list",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: GuardrailRuleListSerializer, **ADMIN_ERRORS},
    )
    def get(self, request):
        caller = _admin(request)
        rules = selectors.guardrail_rules_for_org(organization_id=caller.organization.pk)
        return Response({"object": "list", "data": GuardrailRuleSerializer(rules, many=True).data})

    @extend_schema(
        operation_id="guardrail_rules_create",
        parameters=[ORGANIZATION_PARAMETER],
        request=GuardrailRuleSerializer,
        responses={201: GuardrailRuleSerializer, **ADMIN_ERRORS},
    )
    def post(self, request):
        caller = _admin(request)
        payload = GuardrailRuleSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        rule = services.guardrail_rule_create(
            organization=caller.organization, actor=caller.user, **payload.validated_data
        )
        return Response(GuardrailRuleSerializer(rule).data, status=status.HTTP_201_CREATED)


class GuardrailRuleDetailView(APIView):
    @extend_schema(
        operation_id="guardrail_rules_retrieve",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: GuardrailRuleSerializer, **ADMIN_ERRORS},
    )
    def get(self, request, rule_id: int):
        caller = _admin(request)
        rule = selectors.guardrail_rule_get(organization_id=caller.organization.pk, rule_id=rule_id)
        return Response(GuardrailRuleSerializer(rule).data)

    @extend_schema(
        operation_id="guardrail_rules_update",
        parameters=[ORGANIZATION_PARAMETER],
        request=GuardrailRuleSerializer(partial=True),
        responses={200: GuardrailRuleSerializer, **ADMIN_ERRORS},
    )
    def patch(self, request, rule_id: int):
        caller = _admin(request)
        rule = selectors.guardrail_rule_get(organization_id=caller.organization.pk, rule_id=rule_id)
        payload = GuardrailRuleSerializer(data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        rule = services.guardrail_rule_update(
            rule=rule, actor=caller.user, **payload.validated_data
        )
        return Response(GuardrailRuleSerializer(rule).data)

    @extend_schema(
        operation_id="guardrail_rules_delete",
        parameters=[ORGANIZATION_PARAMETER],
        responses={204: None, **ADMIN_ERRORS},
    )
    def delete(self, request, rule_id: int):
        caller = _admin(request)
        rule = selectors.guardrail_rule_get(organization_id=caller.organization.pk, rule_id=rule_id)
        services.guardrail_rule_delete(rule=rule, actor=caller.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
