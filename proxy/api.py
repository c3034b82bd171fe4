"""The management API's model routes and deployments: an organization admin's own routes.

Platform routes (shared by every organization) stay with platform staff in the admin;
they are listed here read-only so a caller sees every model name its keys can ask for.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api import ERRORS, ORGANIZATION_PARAMETER, _caller
from accounts.models import ProviderCredential
from common.errors import InvalidRequest, NotFound, PermissionDenied
from proxy import services
from proxy.models import Deployment, ModelRoute

ADMINS_ONLY = {403: OpenApiResponse(description="Only organization admins may change routes.")}


class DeploymentSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    provider = serializers.ChoiceField(choices=services.PROVIDERS)
    upstream_model = serializers.CharField(max_length=200)
    credential = serializers.IntegerField(
        source="credential_id",
        required=False,
        allow_null=True,
        help_text="Id of one of the organization's provider keys; empty: the organization's "
        "key for the provider, else the platform's.",
    )
    weight = serializers.IntegerField(min_value=0, max_value=1_000_000, required=False, default=1)
    priority = serializers.IntegerField(min_value=0, max_value=100, required=False, default=0)
    enabled = serializers.BooleanField(required=False, default=True)


class DeploymentUpdateSerializer(DeploymentSerializer):
    provider = serializers.ChoiceField(choices=services.PROVIDERS, read_only=True)
    upstream_model = serializers.CharField(max_length=200, required=False)
    weight = serializers.IntegerField(min_value=0, max_value=1_000_000, required=False)
    priority = serializers.IntegerField(min_value=0, max_value=100, required=False)
    enabled = serializers.BooleanField(required=False)


class ModelRouteSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    object = serializers.SerializerMethodField()
    public_name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=200, required=False, default="")
    enabled = serializers.BooleanField(read_only=True)
    owner = serializers.SerializerMethodField()
    deployments = DeploymentSerializer(many=True, required=False, default=list)

    def get_object(self, route) -> str:
        return "model_route"

    def get_owner(self, route) -> str:
        return "platform" if route.organization_id is None else "organization"


class ModelRouteUpdateSerializer(serializers.Serializer):
    description = serializers.CharField(max_length=200, required=False)
    enabled = serializers.BooleanField(required=False)


def _admin(request):
    caller = _caller(request)
    if not caller.is_admin:
        raise PermissionDenied("Only organization admins can change model routes.")
    return caller


def _own_route(caller, route_id: int) -> ModelRoute:
    route = ModelRoute.objects.filter(organization=caller.organization, pk=route_id).first()
    if route is None:
        raise NotFound("No such model route in your organization.")
    return route


def _credential(caller, credential_id: int | None) -> ProviderCredential | None:
    if credential_id is None:
        return None
    credential = ProviderCredential.objects.filter(
        organization=caller.organization, pk=credential_id
    ).first()
    if credential is None:
        raise InvalidRequest("No such provider key in this organization.", param="credential")
    return credential


class ModelRouteListView(APIView):
    """``GET``: the routes the organization's keys see (its own and the platform's).
    ``POST`` (admins): a new route of the organization, with its deployments."""

    @extend_schema(
        operation_id="model_routes_list",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: ModelRouteSerializer(many=True), **ERRORS},
    )
    def get(self, request):
        caller = _caller(request)
        routes = ModelRoute.objects.visible_to(caller.organization.pk).prefetch_related(
            "deployments"
        )
        data = ModelRouteSerializer(routes, many=True).data
        for route in data:
            if route["owner"] == "platform":
                route["deployments"] = []  # the platform's upstreams are its own business
        return Response({"object": "list", "data": data})

    @extend_schema(
        operation_id="model_routes_create",
        parameters=[ORGANIZATION_PARAMETER],
        request=ModelRouteSerializer,
        responses={201: ModelRouteSerializer, **ADMINS_ONLY, **ERRORS},
    )
    def post(self, request):
        caller = _admin(request)
        payload = ModelRouteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        route = services.model_route_create(
            organization=caller.organization,
            public_name=data["public_name"],
            description=data["description"],
            actor=caller.user,
        )
        for deployment in data["deployments"]:
            services.deployment_create(
                route=route,
                provider=deployment["provider"],
                upstream_model=deployment["upstream_model"],
                credential=_credential(caller, deployment.get("credential_id")),
                weight=deployment["weight"],
                priority=deployment["priority"],
                actor=caller.user,
            )
        return Response(ModelRouteSerializer(route).data, status=status.HTTP_201_CREATED)


class ModelRouteDetailView(APIView):
    @extend_schema(
        operation_id="model_routes_retrieve",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: ModelRouteSerializer, **ERRORS},
    )
    def get(self, request, route_id: int):
        return Response(ModelRouteSerializer(_own_route(_caller(request), route_id)).data)

    @extend_schema(
        operation_id="model_routes_update",
        parameters=[ORGANIZATION_PARAMETER],
        request=ModelRouteUpdateSerializer,
        responses={200: ModelRouteSerializer, **ADMINS_ONLY, **ERRORS},
    )
    def patch(self, request, route_id: int):
        caller = _admin(request)
        route = _own_route(caller, route_id)
        payload = ModelRouteUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        route = services.model_route_update(
            route=route, actor=caller.user, **payload.validated_data
        )
        return Response(ModelRouteSerializer(route).data)

    @extend_schema(
        operation_id="model_routes_delete",
        parameters=[ORGANIZATION_PARAMETER],
        request=None,
        responses={204: None, **ADMINS_ONLY, **ERRORS},
    )
    def delete(self, request, route_id: int):
        caller = _admin(request)
        services.model_route_delete(route=_own_route(caller, route_id), actor=caller.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeploymentListView(APIView):
    @extend_schema(
        operation_id="deployments_create",
        parameters=[ORGANIZATION_PARAMETER],
        request=DeploymentSerializer,
        responses={201: DeploymentSerializer, **ADMINS_ONLY, **ERRORS},
    )
    def post(self, request, route_id: int):
        caller = _admin(request)
        route = _own_route(caller, route_id)
        payload = DeploymentSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        deployment = services.deployment_create(
            route=route,
            provider=data["provider"],
            upstream_model=data["upstream_model"],
            credential=_credential(caller, data.get("credential_id")),
            weight=data["weight"],
            priority=data["priority"],
            actor=caller.user,
        )
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_201_CREATED)


class DeploymentDetailView(APIView):
    def _deployment(self, caller, deployment_id: int) -> Deployment:
        deployment = (
            Deployment.objects.filter(route__organization=caller.organization, pk=deployment_id)
            .select_related("route")
            .first()
        )
        if deployment is None:
            raise NotFound("No such deployment in your organization.")
        return deployment

    @extend_schema(
        operation_id="deployments_update",
        parameters=[ORGANIZATION_PARAMETER],
        request=DeploymentUpdateSerializer,
        responses={200: DeploymentSerializer, **ADMINS_ONLY, **ERRORS},
    )
    def patch(self, request, deployment_id: int):
        caller = _admin(request)
        deployment = self._deployment(caller, deployment_id)
        payload = DeploymentUpdateSerializer(data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        changes = dict(payload.validated_data)
        if "credential_id" in changes:
            changes["credential"] = _credential(caller, changes.pop("credential_id"))
        deployment = services.deployment_update(deployment=deployment, actor=caller.user, **changes)
        return Response(DeploymentSerializer(deployment).data)

    @extend_schema(
        operation_id="deployments_delete",
        parameters=[ORGANIZATION_PARAMETER],
        request=None,
        responses={204: None, **ADMINS_ONLY, **ERRORS},
    )
    def delete(self, request, deployment_id: int):
        caller = _admin(request)
        services.deployment_delete(
            deployment=self._deployment(caller, deployment_id), actor=caller.user
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
