"""The management API's budgets (organization admins) and prices (platform staff).

Money is in integer micro-dollars everywhere ($1.50 = 1500000), as in the database.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors as account_selectors
from accounts.api import ERRORS, ORGANIZATION_PARAMETER, _caller
from billing import services
from billing.models import Budget, BudgetScope, Price
from common.errors import InvalidRequest, NotFound, PermissionDenied

ADMINS_ONLY = {403: OpenApiResponse(description="Only organization admins may change budgets.")}
STAFF_ONLY = {403: OpenApiResponse(description="Only platform staff may set prices.")}
MICROS_MAX = 10**15


class BudgetSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    object = serializers.SerializerMethodField()
    scope = serializers.ChoiceField(choices=BudgetScope.values)
    user = serializers.CharField(
        source="user.username", required=False, allow_null=True, help_text="scope=member"
    )
    api_key = serializers.IntegerField(
        source="api_key_id", required=False, allow_null=True, help_text="scope=key: the key's id"
    )
    monthly_limit_micros = serializers.IntegerField(
        min_value=0, max_value=MICROS_MAX, allow_null=True, required=False, default=None
    )
    soft_limit_micros = serializers.IntegerField(
        min_value=0, max_value=MICROS_MAX, allow_null=True, required=False, default=None
    )
    webhook_url = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default=""
    )
    updated_at = serializers.DateTimeField(read_only=True)

    def get_object(self, budget) -> str:
        return "budget"


class PriceSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    object = serializers.SerializerMethodField()
    model_pattern = serializers.CharField(max_length=200)
    effective_from = serializers.DateTimeField(required=False)
    input_per_mtok_micros = serializers.IntegerField(min_value=0, max_value=MICROS_MAX)
    output_per_mtok_micros = serializers.IntegerField(min_value=0, max_value=MICROS_MAX)
    cached_input_per_mtok_micros = serializers.IntegerField(
        min_value=0, max_value=MICROS_MAX, required=False, allow_null=True, default=None
    )
    cache_write_per_mtok_micros = serializers.IntegerField(
        min_value=0, max_value=MICROS_MAX, required=False, allow_null=True, default=None
    )
    source = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")

    def get_object(self, price) -> str:
        return "price"


def _admin(request):
    caller = _caller(request)
    if not caller.is_admin:
        raise PermissionDenied("Only organization admins can change budgets.")
    return caller


class BudgetListView(APIView):
    """``GET``: the organization's budgets. ``POST`` (admins): set the budget of the
    organization, of a member (``user``) or of a key (``api_key``); setting it again
    changes it."""

    @extend_schema(
        operation_id="budgets_list",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: BudgetSerializer(many=True), **ERRORS},
    )
    def get(self, request):
        caller = _caller(request)
        budgets = Budget.objects.filter(organization=caller.organization).select_related("user")
        return Response({"object": "list", "data": BudgetSerializer(budgets, many=True).data})

    @extend_schema(
        operation_id="budgets_set",
        parameters=[ORGANIZATION_PARAMETER],
        request=BudgetSerializer,
        responses={200: BudgetSerializer, **ADMINS_ONLY, **ERRORS},
    )
    def post(self, request):
        caller = _admin(request)
        payload = BudgetSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        scope = data["scope"]
        user = api_key = None
        if scope == BudgetScope.MEMBER:
            username = (data.get("user") or {}).get("username")
            membership = (
                account_selectors.members_for_org(organization=caller.organization)
                .filter(user__username=username)
                .first()
            )
            if membership is None:
                raise InvalidRequest("scope=member needs the username of a member.", param="user")
            user = membership.user
        elif scope == BudgetScope.KEY:
            key_id = data.get("api_key_id")
            api_key = account_selectors.api_keys_for_org(organization=caller.organization).filter(
                pk=key_id
            )
            api_key = api_key.first() if key_id is not None else None
            if api_key is None:
                raise InvalidRequest("scope=key needs the id of one of your keys.", param="api_key")
        budget = services.budget_set(
            organization=caller.organization,
            user=user,
            api_key=api_key,
            monthly_limit_micros=data["monthly_limit_micros"],
            soft_limit_micros=data["soft_limit_micros"],
            webhook_url=data["webhook_url"],
            actor=caller.user,
        )
        return Response(BudgetSerializer(budget).data)


class BudgetDetailView(APIView):
    @extend_schema(
        operation_id="budgets_delete",
        parameters=[ORGANIZATION_PARAMETER],
        request=None,
        responses={204: None, **ADMINS_ONLY, **ERRORS},
    )
    def delete(self, request, budget_id: int):
        caller = _admin(request)
        budget = Budget.objects.filter(organization=caller.organization, pk=budget_id).first()
        if budget is None:
            raise NotFound("No such budget.")
        services.budget_delete(budget=budget, actor=caller.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PriceListView(APIView):
    """``GET``: every price row (anyone with a key: prices are public list prices).
    ``POST`` (platform staff): a new price from ``effective_from`` (default: now)."""

    @extend_schema(
        operation_id="prices_list", responses={200: PriceSerializer(many=True), **ERRORS}
    )
    def get(self, request):
        _caller(request)
        return Response(
            {"object": "list", "data": PriceSerializer(Price.objects.all(), many=True).data}
        )

    @extend_schema(
        operation_id="prices_create",
        request=PriceSerializer,
        responses={201: PriceSerializer, **STAFF_ONLY, **ERRORS},
    )
    def post(self, request):
        if not request.user.is_superuser:
            raise PermissionDenied("Only platform staff can set prices.")
        payload = PriceSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        data.setdefault("effective_from", timezone.now())
        price = services.price_create(actor=request.user, **data)
        return Response(PriceSerializer(price).data, status=status.HTTP_201_CREATED)
