import pytest


@pytest.mark.django_db
def test_metrics_endpoint_serves_prometheus_exposition(client):
    client.get("/admin/login/")  # a page, counted; the probes are answered before counting
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert "# TYPE django_http_requests_total_by_method_total counter" in text
    assert 'django_http_requests_total_by_method_total{method="GET"}' in text
