"""The serverless adapters (AWS Lambda, Google Cloud Functions) answer like the server."""

from __future__ import annotations

import json

import pytest

from synthlang_site.tests.deployment_files import ROOT

API_HOST = "abc123.execute-api.us-east-1.amazonaws.com"


def _http_api_event(method: str, path: str, headers: dict[str, str] | None = None) -> dict:
    """An API Gateway HTTP API (payload format 2.0) event, as Lambda receives it."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "host": API_HOST,
            "user-agent": "test-client",
            "x-forwarded-for": "203.0.113.7",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
            **(headers or {}),
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": API_HOST,
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "test-client",
            },
            "requestId": "test-request",
            "routeKey": "$default",
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": 1767225600000,
        },
        "isBase64Encoded": False,
    }


class _LambdaContext:
    function_name = "synthlang-proxy"
    aws_request_id = "test-request"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


@pytest.fixture
def api_gateway_hosts(settings):
    # What template.yaml sets by default.
    settings.ALLOWED_HOSTS = [".execute-api.us-east-1.amazonaws.com"]
    # Importing the ASGI module (the Lambda entry) starts a server's usage flusher thread:
    # in this process it would drain the buffer under later tests' feet.
    settings.USAGE_FLUSH_IN_BACKGROUND = False


@pytest.mark.django_db(transaction=True)
def test_lambda_handler_answers_health(api_gateway_hosts):
    from synthlang_site.serverless import lambda_handler

    response = lambda_handler(_http_api_event("GET", "/health"), _LambdaContext())

    assert response["statusCode"] == 200
    assert response["headers"]["content-type"] == "application/json"
    body = json.loads(response["body"])
    assert body["components"]["database"]["status"] == "ok"
    assert response["headers"]["x-request-id"]


@pytest.mark.django_db(transaction=True)
def test_lambda_handler_answers_after_asyncio_run_left_the_thread_without_a_loop(
    api_gateway_hosts,
):
    import asyncio

    from synthlang_site.serverless import lambda_handler

    # The first invocation imports the application (which may set up a loop itself).
    assert lambda_handler(_http_api_event("GET", "/livez"), _LambdaContext())["statusCode"] == 200
    asyncio.run(asyncio.sleep(0))  # ends with set_event_loop(None), as any asyncio.run does

    response = lambda_handler(_http_api_event("GET", "/health"), _LambdaContext())

    assert response["statusCode"] == 200


@pytest.mark.django_db(transaction=True)
def test_lambda_handler_answers_models_without_a_key_with_an_openai_error(api_gateway_hosts):
    from synthlang_site.serverless import lambda_handler

    response = lambda_handler(_http_api_event("GET", "/v1/models"), _LambdaContext())

    assert response["statusCode"] == 401
    error = json.loads(response["body"])["error"]
    assert set(error) == {"message", "type", "param", "code"}


@pytest.mark.django_db(transaction=True)
def test_lambda_handler_lists_models_for_a_valid_key(api_gateway_hosts, alice_key):
    from synthlang_site.serverless import lambda_handler

    event = _http_api_event("GET", "/v1/models", {"authorization": f"Bearer {alice_key}"})
    response = lambda_handler(event, _LambdaContext())

    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert body["object"] == "list"
    assert "gpt-4o" in {model["id"] for model in body["data"]}


@pytest.fixture
def cloud_function_client(settings):
    functions_framework = pytest.importorskip("functions_framework")
    settings.ALLOWED_HOSTS = ["synthlang-proxy-abc123-ew.a.run.app"]
    # Loaded exactly as the platform does: main.py from the source root, by target name.
    app = functions_framework.create_app(target="synthlang_proxy", source=str(ROOT / "main.py"))
    return app.test_client()


_RUN_APP_HEADERS = {"Host": "synthlang-proxy-abc123-ew.a.run.app", "X-Forwarded-Proto": "https"}


@pytest.mark.django_db(transaction=True)
def test_cloud_function_entry_answers_health(cloud_function_client):
    response = cloud_function_client.get("/health", headers=_RUN_APP_HEADERS)

    assert response.status_code == 200
    assert response.get_json()["components"]["database"]["status"] == "ok"


@pytest.mark.django_db(transaction=True)
def test_cloud_function_entry_answers_the_api_without_a_key_with_an_openai_error(
    cloud_function_client,
):
    response = cloud_function_client.post(
        "/v1/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        headers=_RUN_APP_HEADERS,
    )

    assert response.status_code == 401
    assert set(response.get_json()["error"]) == {"message", "type", "param", "code"}
