# The proxy's live-server fixtures (a fake upstream, the proxy process, routes to it).
from proxy.tests.conftest import (  # noqa: F401
    fake_upstream,
    live_db,
    proxy_url,
    route_to,
    upstream_credential,
)
