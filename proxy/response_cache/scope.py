"""Which cache scope a request reads and writes.

An organization's entries are its own (``org:<id>``), or an API key's (``key:<id>``). Sharing
across organizations (``cache_scope=platform``, which only platform staff can set) is
narrower than the setting's name: organizations share a scope only when their route for the
model is the same upstream (provider, base URL, platform credential, upstream model), and
never when any deployment of the route uses an organization's own provider key. An answer
one tenant obtained through an upstream it controls can thus never reach another tenant:
such a route falls back to the organization's own scope.
"""

from __future__ import annotations

import hashlib
import json

from django.conf import settings

from accounts.selectors import Principal
from proxy import routing


def own_scope(principal: Principal) -> str:
    if principal.cache_scope == "key":
        return f"key:{principal.key_id}"
    return f"org:{principal.organization_id}"


def shared_scope_for(plan: routing.RoutePlan) -> str | None:
    """The platform scope of a route, or None when an organization's own key is in it."""
    upstreams = []
    for deployment in plan.deployments:
        if deployment.organization_owned:
            return None
        if deployment.credential_id is not None:
            credential = f"credential:{deployment.credential_id}"
        elif deployment.platform_key:
            credential = "OPENAI_API_KEY"
        else:
            credential = "none"
        upstreams.append(
            [deployment.provider, deployment.base_url, credential, deployment.upstream_model]
        )
    digest = hashlib.sha256(json.dumps(sorted(upstreams)).encode()).hexdigest()[:32]
    return f"platform:{digest}"


async def scope_for(principal: Principal, body: dict) -> tuple[str, bool]:
    """The scope of this request, and whether it is shared by several organizations."""
    if principal.cache_scope != "platform":
        return own_scope(principal), False
    model = str(body.get("model") or settings.DEFAULT_MODEL)
    plan = await routing.resolve_route(principal.organization_id, model)
    shared = shared_scope_for(plan)
    if shared is None:
        return own_scope(principal), False
    return shared, True
