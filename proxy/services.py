"""Writes to an organization's model routes and deployments, each one audited.

The proxy reads routes through a per-process cache (``ROUTE_CACHE_SECONDS``); this
process forgets it at once, the others within that time.
"""

from __future__ import annotations

from django.db import transaction

from accounts.models import Organization, ProviderCredential, User
from accounts.services import audit_record
from common.errors import InvalidRequest
from proxy.models import Deployment, ModelRoute
from proxy.routing import route_cache_forget

PROVIDERS = [choice for choice, _label in Deployment._meta.get_field("provider").choices]


def _forget_routes() -> None:
    transaction.on_commit(route_cache_forget)


@transaction.atomic
def model_route_create(
    *, organization: Organization, public_name: str, description: str = "", actor: User | None
) -> ModelRoute:
    if ModelRoute.objects.filter(organization=organization, public_name=public_name).exists():
        raise InvalidRequest(f"A route named {public_name!r} exists.", param="public_name")
    route = ModelRoute.objects.create(
        organization=organization, public_name=public_name, description=description
    )
    audit_record(
        organization=organization,
        actor=actor,
        event="model_route.created",
        target=route,
        details={"public_name": public_name},
    )
    _forget_routes()
    return route


@transaction.atomic
def model_route_update(*, route: ModelRoute, actor: User | None, **changes) -> ModelRoute:
    unknown = set(changes) - {"description", "enabled"}
    if unknown:
        raise InvalidRequest(f"Unknown route fields: {', '.join(sorted(unknown))}")
    before = {field: getattr(route, field) for field in changes}
    for field, value in changes.items():
        setattr(route, field, value)
    route.save(update_fields=list(changes))
    audit_record(
        organization=route.organization,
        actor=actor,
        event="model_route.changed",
        target=route,
        details={"before": before, "after": changes},
    )
    _forget_routes()
    return route


@transaction.atomic
def model_route_delete(*, route: ModelRoute, actor: User | None) -> None:
    audit_record(
        organization=route.organization,
        actor=actor,
        event="model_route.deleted",
        target=route,
        details={"public_name": route.public_name},
    )
    route.delete()
    _forget_routes()


def _credential_check(route: ModelRoute, provider: str, credential: ProviderCredential | None):
    if provider not in PROVIDERS:
        raise InvalidRequest(
            f"Unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}.",
            param="provider",
        )
    if credential is None:
        return
    if credential.organization_id != route.organization_id:
        raise InvalidRequest("No such provider key in this organization.", param="credential")
    if credential.provider != provider:
        raise InvalidRequest(
            f"That provider key is for {credential.provider}, not {provider}.",
            param="credential",
        )


@transaction.atomic
def deployment_create(
    *,
    route: ModelRoute,
    provider: str,
    upstream_model: str,
    credential: ProviderCredential | None = None,
    weight: int = 1,
    priority: int = 0,
    actor: User | None,
) -> Deployment:
    _credential_check(route, provider, credential)
    deployment = Deployment.objects.create(
        route=route,
        provider=provider,
        upstream_model=upstream_model,
        credential=credential,
        weight=weight,
        priority=priority,
    )
    audit_record(
        organization=route.organization,
        actor=actor,
        event="deployment.created",
        target=deployment,
        details={"route": route.public_name, "provider": provider, "model": upstream_model},
    )
    _forget_routes()
    return deployment


@transaction.atomic
def deployment_update(*, deployment: Deployment, actor: User | None, **changes) -> Deployment:
    unknown = set(changes) - {"upstream_model", "weight", "priority", "enabled", "credential"}
    if unknown:
        raise InvalidRequest(f"Unknown deployment fields: {', '.join(sorted(unknown))}")
    if "credential" in changes:
        _credential_check(deployment.route, deployment.provider, changes["credential"])
    before = {field: str(getattr(deployment, field)) for field in changes}
    for field, value in changes.items():
        setattr(deployment, field, value)
    deployment.save(update_fields=list(changes))
    audit_record(
        organization=deployment.route.organization,
        actor=actor,
        event="deployment.changed",
        target=deployment,
        details={"before": before, "after": {field: str(v) for field, v in changes.items()}},
    )
    _forget_routes()
    return deployment


@transaction.atomic
def deployment_delete(*, deployment: Deployment, actor: User | None) -> None:
    audit_record(
        organization=deployment.route.organization,
        actor=actor,
        event="deployment.deleted",
        target=deployment,
    )
    deployment.delete()
    _forget_routes()
