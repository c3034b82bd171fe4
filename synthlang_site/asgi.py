"""ASGI entry served by Daphne: HTTP through Django, websockets through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synthlang_site.settings")

# Django must be set up before anything imports models (the websocket routes do).
django_http = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from synthlang_site.api_handler import ApiASGIHandler, PathRouter  # noqa: E402
from synthlang_site.routing import websocket_urlpatterns  # noqa: E402
from synthlang_site.staticfiles import StaticFilesRouter  # noqa: E402


def _warm_up() -> None:
    """Load at start what the first request would otherwise pay for: the URLconf (and
    with it the proxy's modules) and the tokenizers' merge tables."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - the access imports every view module
    from proxy.tokens import count_tokens

    for encoding in ("o200k_base", "cl100k_base"):
        count_tokens("warm up", encoding=encoding)


_warm_up()

from proxy.response_cache import cache_warm_start  # noqa: E402

# In a background thread: the embedding model and the recent scopes' cache indexes.
cache_warm_start()

application = ProtocolTypeRouter(
    {
        "http": PathRouter(api=ApiASGIHandler(), site=StaticFilesRouter(django_http)),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
