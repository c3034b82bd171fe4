"""Admin pages that belong to no single model: the playground and the live request feed.

They are plain views wrapped in ``admin.site.admin_view`` (login, ``is_staff``, CSRF,
no-cache) and mounted under ``/admin/`` by ``synthlang_site.urls``, so they look and
behave like the rest of the admin. Who may use them is the admin's own rule: platform
staff and organization admins; which organizations they act on comes from
``administered_organization_ids``, the same scoping every admin page uses.
"""

from __future__ import annotations

import json
from datetime import timedelta

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from accounts import services as account_services
from accounts.admin_scoping import administered_organization_ids
from accounts.models import ApiKey, Organization
from billing import pricing
from billing.selectors import price_for
from common.errors import DomainError

PLAYGROUND_KEY_NAME = "Playground (expires after 1 hour)"
PLAYGROUND_KEY_LIFETIME = timedelta(hours=1)


def _require_admin(request) -> frozenset[int] | None:
    """Staff (``None``: every organization) or an organization admin; anyone else 403."""
    ids = administered_organization_ids(request)
    if ids is not None and not ids:
        raise PermissionDenied
    return ids


def _playground_organizations(request) -> list[Organization]:
    """Organizations the page may act in: administered ones where the user is a member,
    since an API key always belongs to a member (staff included)."""
    ids = _require_admin(request)
    organizations = Organization.objects.filter(memberships__user=request.user)
    if ids is not None:
        organizations = organizations.filter(pk__in=ids)
    return list(organizations.order_by("name").distinct())


def _context(request, **extra) -> dict:
    return {**admin.site.each_context(request), **extra}


def playground(request):
    organizations = _playground_organizations(request)
    return TemplateResponse(
        request,
        "admin/synthlang/playground.html",
        _context(request, title="Playground", organizations=organizations),
    )


@require_POST
def playground_key(request):
    """A key for the page's own calls to ``/v1``: it expires after an hour, and the
    user's previous playground keys in that organization are revoked, so playground
    keys never pile up as live credentials."""
    slug = request.POST.get("organization", "")
    organization = next(
        (org for org in _playground_organizations(request) if org.slug == slug), None
    )
    if organization is None:
        raise Http404("No such organization.")
    now = timezone.now()
    previous = ApiKey.objects.filter(
        organization=organization, user=request.user, name=PLAYGROUND_KEY_NAME
    ).active(now)
    for api_key in previous:
        account_services.api_key_revoke(api_key=api_key, actor=request.user)
    try:
        api_key, plaintext = account_services.api_key_create(
            organization=organization,
            user=request.user,
            name=PLAYGROUND_KEY_NAME,
            expires_at=now + PLAYGROUND_KEY_LIFETIME,
            actor=request.user,
        )
    except DomainError as error:
        return JsonResponse({"error": error.message}, status=400)
    response = JsonResponse({"key": plaintext, "expires_at": api_key.expires_at.isoformat()})
    response["Cache-Control"] = "no-store"
    return response


def _int_param(data, name: str) -> int:
    try:
        return max(int(data.get(name, 0) or 0), 0)
    except (TypeError, ValueError):
        raise Http404(f"{name} must be an integer.") from None


@require_POST
def playground_cost(request):
    """What a request with these token counts costs at today's price (server-side maths,
    so the page shows exactly what billing will record)."""
    _require_admin(request)
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    model = str(data.get("model", ""))[:200]
    price = price_for(model, timezone.now())
    tokens = pricing.token_counts(
        prompt_tokens=_int_param(data, "prompt_tokens"),
        completion_tokens=_int_param(data, "completion_tokens"),
        cache_read_tokens=_int_param(data, "cached_tokens"),
        cache_write_tokens=_int_param(data, "cache_write_tokens"),
    )
    cost = pricing.tokens_cost_micros(price=price, tokens=tokens)
    saved = pricing.tokens_value_micros(price=price, input_tokens=_int_param(data, "tokens_saved"))
    prompt_cache_saved = pricing.prompt_cache_saved_micros(price=price, tokens=tokens)
    return JsonResponse(
        {
            "model": model,
            "cost_micros": cost,
            "cost_usd": pricing.micros_to_usd(cost),
            "compression_saved_usd": pricing.micros_to_usd(saved),
            "prompt_cache_saved_usd": pricing.micros_to_usd(prompt_cache_saved),
            "price_unknown": price.unknown,
        }
    )


@require_GET
def live(request):
    ids = _require_admin(request)
    organizations = Organization.objects.order_by("name")
    if ids is not None:
        organizations = organizations.filter(pk__in=ids)
    names = {str(org.pk): org.name for org in organizations.only("pk", "name")}
    return TemplateResponse(
        request,
        "admin/synthlang/live.html",
        _context(request, title="Live requests", organization_names=names, platform=ids is None),
    )


def admin_urlpatterns() -> list:
    """Mounted before ``admin.site.urls``, whose catch-all would otherwise answer first."""
    wrap = admin.site.admin_view
    return [
        path("admin/playground/", wrap(playground), name="synthlang_playground"),
        path("admin/playground/key/", wrap(playground_key), name="synthlang_playground_key"),
        path("admin/playground/cost/", wrap(playground_cost), name="synthlang_playground_cost"),
        path("admin/live/", wrap(live), name="synthlang_live"),
    ]
