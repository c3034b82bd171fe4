"""Management API for tools (``/api/tools/``): members read, organization admins write.
Same conventions as ``accounts.api``: the caller's organization, 404 outside it, audited
writes through ``tools.services``."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api import ERRORS, ORGANIZATION_PARAMETER, _caller
from common.errors import NotFound, PermissionDenied
from tools import selectors, services
from tools.serializers import (
    ToolAttachRuleCreateSerializer,
    ToolAttachRuleSerializer,
    ToolCreateSerializer,
    ToolListSerializer,
    ToolSerializer,
    ToolUpdateSerializer,
)

FORBIDDEN = {403: OpenApiResponse(description="Only organization admins may change tools.")}


def _admin_caller(request):
    caller = _caller(request)
    if not caller.is_admin:
        raise PermissionDenied("Only organization admins can change tools.")
    return caller


def _written():
    # This process's own snapshot is dropped at once; others' expire within seconds.
    selectors.organization_tools_forget()


class ToolListCreateView(APIView):
    @extend_schema(
        operation_id="tools_list",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: ToolListSerializer, **ERRORS},
    )
    def get(self, request):
        caller = _caller(request)
        tools = selectors.tools_for_org(organization_id=caller.organization.pk).prefetch_related(
            "attach_rules"
        )
        return Response({"object": "list", "data": ToolSerializer(tools, many=True).data})

    @extend_schema(
        operation_id="tools_create",
        parameters=[ORGANIZATION_PARAMETER],
        request=ToolCreateSerializer,
        responses={201: ToolSerializer, **FORBIDDEN, **ERRORS},
    )
    def post(self, request):
        caller = _admin_caller(request)
        payload = ToolCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        tool = services.tool_create(
            organization=caller.organization, actor=caller.user, **payload.validated_data
        )
        _written()
        return Response(ToolSerializer(tool).data, status=status.HTTP_201_CREATED)


class ToolDetailView(APIView):
    @extend_schema(
        operation_id="tools_retrieve",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: ToolSerializer, **ERRORS},
    )
    def get(self, request, tool_id: int):
        caller = _caller(request)
        tool = selectors.tool_get_for_org(organization_id=caller.organization.pk, tool_id=tool_id)
        return Response(ToolSerializer(tool).data)

    @extend_schema(
        operation_id="tools_update",
        parameters=[ORGANIZATION_PARAMETER],
        request=ToolUpdateSerializer,
        responses={200: ToolSerializer, **FORBIDDEN, **ERRORS},
    )
    def patch(self, request, tool_id: int):
        caller = _caller(request)
        tool = selectors.tool_get_for_org(organization_id=caller.organization.pk, tool_id=tool_id)
        _admin_caller(request)
        payload = ToolUpdateSerializer(data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        tool = services.tool_update(tool=tool, actor=caller.user, **payload.validated_data)
        _written()
        return Response(ToolSerializer(tool).data)

    @extend_schema(
        operation_id="tools_delete",
        parameters=[ORGANIZATION_PARAMETER],
        responses={204: None, **FORBIDDEN, **ERRORS},
    )
    def delete(self, request, tool_id: int):
        caller = _caller(request)
        tool = selectors.tool_get_for_org(organization_id=caller.organization.pk, tool_id=tool_id)
        _admin_caller(request)
        services.tool_delete(tool=tool, actor=caller.user)
        _written()
        return Response(status=status.HTTP_204_NO_CONTENT)


class ToolRuleCreateView(APIView):
    @extend_schema(
        operation_id="tools_rules_create",
        parameters=[ORGANIZATION_PARAMETER],
        request=ToolAttachRuleCreateSerializer,
        responses={201: ToolAttachRuleSerializer, **FORBIDDEN, **ERRORS},
    )
    def post(self, request, tool_id: int):
        caller = _caller(request)
        tool = selectors.tool_get_for_org(organization_id=caller.organization.pk, tool_id=tool_id)
        _admin_caller(request)
        payload = ToolAttachRuleCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        rule = services.tool_attach_rule_create(
            tool=tool, actor=caller.user, **payload.validated_data
        )
        _written()
        return Response(ToolAttachRuleSerializer(rule).data, status=status.HTTP_201_CREATED)


class ToolRuleDetailView(APIView):
    @extend_schema(
        operation_id="tools_rules_delete",
        parameters=[ORGANIZATION_PARAMETER],
        responses={204: None, **FORBIDDEN, **ERRORS},
    )
    def delete(self, request, tool_id: int, rule_id: int):
        caller = _caller(request)
        rule = selectors.attach_rule_get_for_org(
            organization_id=caller.organization.pk, rule_id=rule_id
        )
        if rule.tool_id != tool_id:
            raise NotFound("No such tool rule in your organization.")
        _admin_caller(request)
        services.tool_attach_rule_delete(rule=rule, actor=caller.user)
        _written()
        return Response(status=status.HTTP_204_NO_CONTENT)
