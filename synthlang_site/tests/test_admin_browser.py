"""The admin in a real browser (headless Chromium via Selenium) against a real server.

One Daphne process serves the test database (``common.testing.live_server``); the test
process creates the cast, drives the browser and calls the API like any client.
Screenshots of every page land in ``test-output/screenshots/``.

The module also holds the admin pages' permission tests that need no browser.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from accounts.models import ApiKey
from billing.models import DailyUsageRollup

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = Path(settings.BASE_DIR) / "test-output" / "screenshots"
WAIT_SECONDS = 20


# --- Without a browser: who may open the pages --------------------------------------------


@pytest.mark.django_db
def test_basic_member_cannot_open_the_playground_or_the_feed(bob):
    client = Client()
    client.force_login(bob)
    for url in ("/admin/playground/", "/admin/live/"):
        response = client.get(url)
        # Not staff: the admin sends them to its login page, like any admin URL.
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_organization_admin_cannot_create_a_playground_key_in_another_organization(
    alice, org_b, charlie
):
    client = Client()
    client.force_login(alice)
    response = client.post("/admin/playground/key/", {"organization": org_b.slug})
    assert response.status_code == 404
    assert not ApiKey.objects.filter(organization=org_b, user=alice).exists()


@pytest.mark.django_db
def test_new_playground_key_expires_within_the_hour_and_revokes_the_previous_one(alice, org_a):
    client = Client()
    client.force_login(alice)
    first = client.post("/admin/playground/key/", {"organization": org_a.slug}).json()
    second = client.post("/admin/playground/key/", {"organization": org_a.slug}).json()
    assert first["key"] != second["key"]
    keys = ApiKey.objects.filter(organization=org_a, user=alice, name__startswith="Playground")
    assert keys.count() == 2
    assert keys.filter(revoked_at__isnull=True).count() == 1
    active = keys.get(revoked_at__isnull=True)
    assert active.expires_at is not None
    assert (active.expires_at - active.created_at).total_seconds() <= 3600 + 5


@pytest.mark.django_db
def test_playground_cost_is_computed_with_the_price_in_force(alice):
    from django.utils import timezone

    from billing.models import Price

    Price.objects.create(
        model_pattern="priced-model",
        effective_from=timezone.now() - timezone.timedelta(days=1),
        input_per_mtok_micros=2_000_000,
        output_per_mtok_micros=8_000_000,
    )
    client = Client()
    client.force_login(alice)
    response = client.post(
        "/admin/playground/cost/",
        json.dumps({"model": "priced-model", "prompt_tokens": 1000, "completion_tokens": 500}),
        content_type="application/json",
    )
    # 1000 * $2/M + 500 * $8/M = $0.006
    assert response.json()["cost_micros"] == 6000
    assert response.json()["price_unknown"] is False


@pytest.mark.django_db
def test_playground_cost_prices_prompt_cache_reads_and_writes_as_billing_does(alice):
    from django.utils import timezone

    from billing.models import Price
    from billing.selectors import price_cache_forget

    Price.objects.create(
        model_pattern="cached-model",
        effective_from=timezone.now() - timezone.timedelta(days=1),
        input_per_mtok_micros=3_000_000,
        cached_input_per_mtok_micros=300_000,
        cache_write_per_mtok_micros=3_750_000,
        output_per_mtok_micros=15_000_000,
    )
    price_cache_forget()  # this process may hold the table from before the row existed
    client = Client()
    client.force_login(alice)
    counts = {"prompt_tokens": 3540, "completion_tokens": 50, "cached_tokens": 3000}
    response = client.post(
        "/admin/playground/cost/",
        json.dumps({"model": "cached-model", **counts, "cache_write_tokens": 500}),
        content_type="application/json",
    )
    # 40 fresh ($3), 3000 read ($0.30), 500 written ($3.75), 50 out ($15) per Mtok.
    assert response.json()["cost_micros"] == 120 + 900 + 1875 + 750
    assert response.json()["prompt_cache_saved_usd"] == "0.007725"


@pytest.mark.django_db
def test_dashboard_on_the_index_shows_only_the_admins_organization(alice, charlie, org_a, org_b):
    from datetime import UTC, datetime

    today = datetime.now(UTC).date()
    DailyUsageRollup.objects.create(day=today, organization=org_a, model="m-a", requests=7)
    DailyUsageRollup.objects.create(day=today, organization=org_b, model="m-b", requests=500)
    client = Client()
    client.force_login(alice)
    # Even asking for org_b by slug shows org_a's figures.
    page = client.get("/admin/", {"organization": org_b.slug, "days": 7}).content.decode()
    assert 'id="synthlang-dashboard"' in page
    assert '<div class="figure">7</div>' in page
    assert "500" not in page and "Org B" not in page


# --- In the browser -----------------------------------------------------------------------


def _post_json(url: str, payload: dict, key: str) -> tuple[int, dict, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"{}")


def _get_status(url: str, key: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _chat(base_url: str, key: str, text: str) -> dict:
    status, headers, body = _post_json(
        f"{base_url}/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]},
        key,
    )
    assert status == 200, body
    return headers


@pytest.fixture
def browser(tmp_path):
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        pytest.skip(f"headless browser tests need {' and '.join(missing)} (Debian's chromium)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Never let Selenium Manager look for (or download) a browser or driver.
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1100",
        f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def server(transactional_db, tmp_path):
    from common.testing import live_server

    with live_server(log_path=tmp_path / "server.log") as base_url:
        yield base_url


def _screenshot(driver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # The whole page, not only the first screenful.
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(max(height + 40, 800), 4000))
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
    driver.set_window_size(1400, 1100)


def _wait(driver, condition, message: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_SECONDS).until(condition, message=message)


def _usable_by_the_server(user) -> None:
    """Re-hash the cast's password with a hasher the server process has: the test
    process's fast MD5 hasher is a test setting the server does not share. Few PBKDF2
    iterations keep it fast; the hash records them, so the server verifies it as is."""
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    hasher = PBKDF2PasswordHasher()
    user.password = hasher.encode(f"{user.username}-password-1", hasher.salt(), iterations=1000)
    user.save(update_fields=["password"])


def _login(driver, base_url: str, username: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base_url}/admin/login/?next=/admin/")
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(f"{username}-password-1")
    _screenshot(driver, "01-login")
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    _wait(driver, lambda d: d.find_elements(By.ID, "synthlang-dashboard"), "no dashboard")


def _wait_for_rollups(organization, requests: int) -> None:
    """The server process flushes usage in the background; with Redis the Celery worker
    would, so this process flushes the shared buffer itself."""
    from django.db.models import Sum

    from billing.usage import usage_flush_run

    deadline = time.monotonic() + WAIT_SECONDS
    total = 0
    while time.monotonic() < deadline:
        if settings.REDIS_URL:
            usage_flush_run()
        total = (
            DailyUsageRollup.objects.filter(organization=organization).aggregate(
                total=Sum("requests")
            )["total"]
            or 0
        )
        if total >= requests:
            return
        time.sleep(0.25)
    raise AssertionError(f"only {total} of {requests} requests reached the rollups")


@pytest.mark.browser
@pytest.mark.live
def test_admin_in_a_browser(browser, server, org_a, alice, alice_key, charlie, charlie_key):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    # Real usage: requests through the API, flushed into events and rollups.
    for index in range(3):
        _chat(server, alice_key, f"Hello number {index}, tell me about caching.")
    _wait_for_rollups(org_a, 3)

    # Log in; the landing page is the dashboard, with charts from those requests.
    _usable_by_the_server(alice)
    _login(browser, server, "alice")
    dashboard = browser.find_element(By.ID, "synthlang-dashboard")
    assert "Org A" in dashboard.text
    requests_figure = dashboard.find_element(By.CSS_SELECTOR, "[data-figure=requests] .figure")
    assert int(requests_figure.text) >= 3
    charts = dashboard.find_elements(By.CSS_SELECTOR, "svg.billing-chart")
    captions = [caption.text for caption in dashboard.find_elements(By.TAG_NAME, "figcaption")]
    assert len(charts) == len(captions) == 8
    assert "Input read from the provider's prompt cache" in captions
    bars = dashboard.find_elements(By.CSS_SELECTOR, "svg.billing-chart rect")
    assert any(float(bar.get_attribute("height")) > 0 for bar in bars)
    # The app list is still there below it (the admin's own index).
    assert browser.find_elements(By.CSS_SELECTOR, "#content-main .app-accounts")
    _screenshot(browser, "02-dashboard")
    browser.find_element(By.CSS_SELECTOR, "button[name=days][value='7']").click()
    _wait(browser, lambda d: "last 7 days" in d.page_source, "period did not change")

    # The cost breakdown: spend by end user and by tag for the organization (no end user
    # and no tag in those chats: one "-" row each, with every request).
    browser.get(f"{server}/admin/billing/dailyusagerollup/dashboard/?days=7")
    by_end_user = browser.find_element(By.ID, "spend-by-end-user")
    assert by_end_user.find_elements(By.CSS_SELECTOR, "svg rect")
    first_row = by_end_user.find_elements(By.CSS_SELECTOR, "tbody tr td")
    assert first_row[0].text == "-" and int(first_row[1].text) >= 3
    assert browser.find_element(By.ID, "spend-by-tag")

    # Create a key: shown once, then it works against the API.
    browser.get(f"{server}/admin/accounts/apikey/add/")
    Select(browser.find_element(By.NAME, "organization")).select_by_visible_text("Org A")
    Select(browser.find_element(By.NAME, "user")).select_by_visible_text("alice")
    browser.find_element(By.NAME, "name").send_keys("browser-made key")
    _screenshot(browser, "03-key-add")
    browser.find_element(By.NAME, "_save").click()
    plaintext = _wait(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, ".api-key-plaintext").text,
        "the new key was not shown",
    )
    assert plaintext.startswith("sk-syn-")
    assert browser.find_elements(By.CSS_SELECTOR, "button[data-copy-target]")
    _screenshot(browser, "04-key-created")
    assert _get_status(f"{server}/v1/models", plaintext) == 200
    created = ApiKey.objects.get(name="browser-made key")
    browser.get(f"{server}/admin/accounts/apikey/{created.pk}/change/")
    assert created.masked in browser.page_source
    assert plaintext not in browser.page_source  # never shown again

    # Charlie's objects answer 404 to alice, whatever their URL.
    charlie_key_row = ApiKey.objects.get(user=charlie)
    for url in (
        f"/admin/accounts/apikey/{charlie_key_row.pk}/change/",
        f"/admin/accounts/organization/{charlie_key_row.organization_id}/change/",
    ):
        browser.get(f"{server}{url}")
        assert "Page not found" in browser.title or "Not Found" in browser.page_source
        assert "charlie" not in browser.page_source
    _screenshot(browser, "05-other-organization-404")

    # The playground: a chat through /v1 with its own short-lived key.
    browser.get(f"{server}/admin/playground/")
    _wait(
        browser,
        lambda d: d.find_element(By.ID, "playground-model").is_enabled(),
        "models did not load",
    )
    browser.find_element(By.ID, "playground-send").click()
    _wait(
        browser,
        lambda d: d.find_element(By.ID, "playground-compressed").text,
        "no compressed prompt",
    )
    assert browser.find_element(By.ID, "playground-answer").text
    assert browser.find_element(By.ID, "fact-cache").text in {"hit", "miss", "off"}
    _wait(browser, lambda d: "$" in d.find_element(By.ID, "fact-cost").text, "no cost")
    assert "tokens" in browser.find_element(By.ID, "compressed-tokens").text
    _screenshot(browser, "06-playground")

    # The live feed: a request made through the API appears on the open page.
    browser.get(f"{server}/admin/live/")
    _wait(
        browser,
        lambda d: d.find_element(By.ID, "live-status").get_attribute("data-state") == "open",
        "the feed did not connect",
    )
    headers = _chat(server, alice_key, "Live feed, are you there?")
    request_id = headers.get("x-request-id") or headers.get("X-Request-Id")
    row_selector = f"#live-feed tr[data-request-id='{request_id}']"
    row = _wait(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, row_selector),
        "the request did not appear in the feed",
    )[0]
    assert "gpt-4o-mini" in row.text and "200" in row.text
    # Charlie's traffic never shows on alice's page.
    _chat(server, charlie_key, "Charlie's private request")
    time.sleep(1)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#live-feed tbody tr")) == 1
    _screenshot(browser, "07-live-feed")
