"""Budget alert webhooks go where the outbound policy allows, and nowhere else."""

from __future__ import annotations

import json
import socket
import threading
from contextlib import contextmanager
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from billing import services
from billing.models import AlertKind, BudgetAlert
from billing.tasks import budget_alert_deliver
from billing.webhooks import UNREACHABLE
from common.errors import InvalidRequest


@contextmanager
def receiver(host: str = "127.0.0.1", *, redirect_to: str = ""):
    """A webhook receiver on ``host``: yields (base URL, [(path, payload)...])."""
    posted: list[tuple[str, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            posted.append((self.path, json.loads(self.rfile.read(length) or b"{}")))
            if redirect_to and not self.path.startswith("/landed"):
                self.send_response(307)
                self.send_header("Location", redirect_to)
            else:
                self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}", posted
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _eager_tasks(celery_eager):
    # The delivery task runs here, and a failed delivery is not queued for a retry.
    return celery_eager


def _alert_for(org, url: str) -> BudgetAlert:
    budget = services.budget_set(organization=org, monthly_limit_micros=10, soft_limit_micros=5)
    # Saved past the service's check, as a row from before the policy would be.
    type(budget).objects.filter(pk=budget.pk).update(webhook_url=url)
    return BudgetAlert.objects.create(
        budget=budget,
        organization=org,
        month=date(2026, 1, 1),
        kind=AlertKind.SOFT,
        spent_micros=6,
        limit_micros=5,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2:6379/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.8/hook",
        "https://hooks.example.com/hook#",
        "http://hooks.example.com/hook",
    ],
)
def test_a_budget_webhook_must_be_a_public_https_url(org_a, url, settings):
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    with pytest.raises(InvalidRequest) as refused:
        services.budget_set(organization=org_a, monthly_limit_micros=10, webhook_url=url)
    assert refused.value.param == "webhook_url"


@pytest.mark.django_db
def test_a_webhook_to_an_internal_address_is_not_posted_and_the_error_is_generic(
    org_a, settings, monkeypatch
):
    """A name that resolves to an internal address when the alert is sent (DNS
    rebinding): nothing reaches the address, and the admin learns nothing of its ports."""
    settings.OUTBOUND_ALLOW_HTTP = True
    real = socket.getaddrinfo
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, *a, **k: real("127.0.0.2" if host == "hooks.rebind.test" else host, *a, **k),
    )
    with receiver("127.0.0.2") as (url, posted):
        port = url.rsplit(":", 1)[1]
        alert = _alert_for(org_a, f"http://hooks.rebind.test:{port}/hook")
        budget_alert_deliver.delay(alert.pk)
    alert.refresh_from_db()
    assert posted == []
    assert alert.webhook_delivered_at is None
    assert alert.webhook_error == UNREACHABLE


@pytest.mark.django_db
def test_closed_and_open_ports_leave_the_same_error(org_a, settings):
    settings.OUTBOUND_ALLOW_HTTP = True
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    listener = socket.socket()  # accepts, then says nothing that is HTTP
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    open_port = listener.getsockname()[1]

    def answer_garbage():
        connection, _ = listener.accept()
        connection.recv(1000)
        connection.sendall(b"-ERR unknown command\r\n")
        connection.close()

    thread = threading.Thread(target=answer_garbage, daemon=True)
    thread.start()
    errors = []
    for port in (closed_port, open_port):
        alert = _alert_for(org_a, f"http://127.0.0.1:{port}/hook")
        budget_alert_deliver.delay(alert.pk)
        alert.refresh_from_db()
        errors.append(alert.webhook_error)
        BudgetAlert.objects.all().delete()
    listener.close()
    assert errors == [UNREACHABLE, UNREACHABLE]


@pytest.mark.django_db
def test_a_webhook_redirect_is_not_followed(org_a):
    with receiver(redirect_to="/landed") as (url, posted):
        alert = _alert_for(org_a, f"{url}/hook")
        budget_alert_deliver.delay(alert.pk)
    alert.refresh_from_db()
    assert [path for path, _payload in posted] == ["/hook"]
    assert alert.webhook_delivered_at is None
    assert "307" in alert.webhook_error


@pytest.mark.django_db
def test_the_budget_admin_explains_a_refused_webhook(client, alice, org_a):
    client.force_login(alice)
    response = client.post(
        "/admin/billing/budget/add/",
        {"organization": org_a.pk, "monthly_usd": "10", "webhook_url": "https://10.0.0.8/hook"},
    )
    assert response.status_code == 200
    assert "allow-list" in response.content.decode()


@pytest.mark.django_db
def test_a_budget_beyond_the_columns_range_is_a_form_error(client, alice, org_a):
    client.force_login(alice)
    response = client.post(
        "/admin/billing/budget/add/", {"organization": org_a.pk, "monthly_usd": "1e20"}
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
