"""ASGI entry served by Daphne: HTTP through Django, websockets through Channels."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synthlang_site.settings")

# Django must be set up before anything imports models (the websocket routes do).
django_http = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from common.access_log import RequestContextMiddleware  # noqa: E402
from common.tracing import TracingMiddleware, tracing_setup  # noqa: E402
from synthlang_site.api_handler import ApiASGIHandler, PathRouter  # noqa: E402
from synthlang_site.routing import websocket_urlpatterns  # noqa: E402
from synthlang_site.staticfiles import StaticFilesRouter  # noqa: E402
from tools.mcp_route import McpRouter  # noqa: E402


def _warm_up() -> None:
    """Load at start what the first request would otherwise pay for: the URLconf (and
    with it the proxy's modules) and the tokenizers' merge tables."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - the access imports every view module
    from proxy.tokens import count_tokens

    for encoding in ("o200k_base", "cl100k_base"):
        count_tokens("warm up", encoding=encoding)


def _tune_garbage_collector() -> None:
    """Keep the cyclic garbage collector's pauses off the request path.

    Django, the tokenizers and the embedding runtime leave some 170,000 objects that live as
    long as the process; every full collection walked them all (about 90 ms, measured here),
    and young collections ran every eight requests or so. Frozen after start-up, they are
    never walked again; a larger first threshold makes young collections rarer. Cycles are
    still collected; what a request frees by reference counting was never the collector's.
    Importing this module is starting a server (Daphne, the serverless entry), so it runs
    here; a test that imports the module gets the same settings, which change no result.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 50)


_warm_up()
_tune_garbage_collector()
# Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set; the Lambda entry serves this module too.
tracing_setup()

from synthlang_site import daphne_tuning  # noqa: E402

daphne_tuning.install()

from proxy.response_cache.services import cache_warm_start  # noqa: E402

# In a background thread: the embedding model and the recent scopes' cache indexes.
cache_warm_start()

from billing.usage import usage_flusher_start  # noqa: E402

# Usage a previous process spooled to disk (the database was down) is written now.
usage_flusher_start()


class AllowedHostsOriginValidator:
    """Channels' check of a websocket's Origin against ALLOWED_HOSTS, read per connection.

    Channels' own class copies ALLOWED_HOSTS once, when this module is imported; reading
    it per connection keeps the check in step with the settings in force.
    """

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        allowed = settings.ALLOWED_HOSTS
        if settings.DEBUG and not allowed:
            allowed = ["localhost", "127.0.0.1", "[::1]"]
        return await OriginValidator(self.application, allowed)(scope, receive, send)


application = ProtocolTypeRouter(
    {
        # Outermost: the request id and the access line cover the whole response. With the
        # fast paths off, /v1/ goes through Django's stock handler like the rest.
        # Then the server span, which carries the request id given just outside it; /mcp is
        # the MCP server of registered tools (tools/mcp_route.py loads it on first use).
        "http": RequestContextMiddleware(
            TracingMiddleware(
                McpRouter(
                    PathRouter(
                        api=ApiASGIHandler() if settings.SYNTHLANG_FAST_PATHS else django_http,
                        site=StaticFilesRouter(django_http),
                    )
                )
            )
        ),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
