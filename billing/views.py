"""Management API views for usage: parse, call one report, serialize."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import Principal, organization_caller_get
from billing import attribution, reports
from billing.attribution import EVENT_GROUPS
from billing.serializers import UsageQuerySerializer, UsageResponseSerializer


def _scope(request) -> tuple[int, str, int | None]:
    """The caller's organization, and the one member they may see unless they are admin.

    The organization is the API key's (``request.auth``); a user signed in to the admin
    names one of theirs with ``?organization=<slug>``.
    """
    caller = organization_caller_get(
        user=request.user,
        principal=request.auth if isinstance(request.auth, Principal) else None,
        organization_slug=request.query_params.get("organization", ""),
    )
    # An organization's spending is its admins' business; a member sees their own.
    user_id = None if caller.is_admin else caller.user.pk
    return caller.organization.pk, caller.organization.slug, user_id


class UsageView(APIView):
    @extend_schema(
        parameters=[
            UsageQuerySerializer,
            OpenApiParameter("export", str, enum=["csv"], required=False),
            OpenApiParameter(
                "organization",
                str,
                required=False,
                description="Slug, for a signed-in user; API keys act in their organization.",
            ),
        ],
        responses=UsageResponseSerializer,
        summary=(
            "Usage and cost of the caller's organization, grouped by model, user, key, day, "
            "end user or tag"
        ),
    )
    def get(self, request):
        organization_id, slug, user_id = _scope(request)
        query = UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        start, end, group_by = (query.validated_data[name] for name in ("start", "end", "group_by"))
        end_user, tag = query.validated_data.get("end_user"), query.validated_data.get("tag")
        scope = {
            "organization_id": organization_id,
            "start": start,
            "end": end,
            "user_id": user_id,
        }
        # The rollups have no end-user or tag dimension: those read the events.
        by_event = group_by in EVENT_GROUPS or end_user is not None or tag is not None
        if by_event:
            if group_by not in EVENT_GROUPS:
                raise ValidationError(
                    {"group_by": "with end_user or tag filters, group by end_user or tag."}
                )
            attributed = {**scope, "end_user": end_user, "tag": tag}
            rows = attribution.attributed_grouped(**attributed, group_by=group_by)
        else:
            rows = reports.usage_grouped(**scope, group_by=group_by)
        if request.query_params.get("export") == "csv":
            response = HttpResponse(
                reports.rows_csv(rows, group_by=group_by), content_type="text/csv; charset=utf-8"
            )
            response["Content-Disposition"] = (
                f'attachment; filename="usage-{slug}-{start}-{end}-{group_by}.csv"'
            )
            return response
        if by_event:
            totals = attribution.attributed_totals(**attributed)
        else:
            totals = reports.usage_totals(**scope)
        body = {
            "object": "list",
            "organization": slug,
            "start": start,
            "end": end,
            "group_by": group_by,
            "totals": totals,
            "data": rows,
        }
        return Response(UsageResponseSerializer(body).data)
