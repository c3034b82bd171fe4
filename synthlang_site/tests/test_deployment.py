"""The deployment files: each names real entry points and matches what its platform expects
(deployment_files.py reads them and checks the commands)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from synthlang_site.tests.deployment_files import (
    PROCESS_TYPES,
    ROOT,
    SCRIPTS,
    SYSTEMD_UNITS,
    deployment_commands,
    dockerfile_instruction,
    problems,
    procfile_processes,
    read_yaml,
    sam_template,
    systemd_unit,
)

# --- Compose -------------------------------------------------------------------------------


def _docker_compose_config(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    # Only PATH from the caller: a developer's SECRET_KEY or POSTGRES_* must not leak in.
    return subprocess.run(
        [
            binary,
            "--env-file",
            str(empty_env_file),
            "-f",
            str(ROOT / "docker-compose.yml"),
            "config",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), **env},
    )


def test_compose_file_validates_with_docker_compose_config(tmp_path):
    result = _docker_compose_config(
        tmp_path, SECRET_KEY="compose-check", ENCRYPTION_KEY="compose-check"
    )
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert set(services) == {"proxy", "worker", "beat", "migrate", "postgres", "redis"}
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    assert services["proxy"]["environment"]["DATABASE_URL"].endswith("@postgres:5432/synthlang")


def test_compose_refuses_to_start_without_the_secrets(tmp_path):
    result = _docker_compose_config(tmp_path)
    assert result.returncode != 0
    assert "set SECRET_KEY in .env" in result.stderr


def test_compose_starts_the_app_after_migrations_on_healthy_services():
    services = read_yaml("docker-compose.yml")["services"]
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]
    for name in ("proxy", "worker", "beat"):
        depends_on = services[name]["depends_on"]
        assert depends_on["migrate"] == {"condition": "service_completed_successfully"}, name
        assert depends_on["redis"] == {"condition": "service_healthy"}, name
        assert services[name]["environment"]["AUTO_MIGRATE"] == "0", name
    assert services["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    for name in ("postgres", "redis", "worker"):
        assert "test" in services[name]["healthcheck"], name
    # proxy keeps the image's HEALTHCHECK; worker and beat must not inherit it.
    assert "healthcheck" not in services["proxy"]
    assert services["beat"]["healthcheck"] == {"disable": True}
    volumes = read_yaml("docker-compose.yml")["volumes"]
    assert {"postgres-data", "redis-data", "app-data"} <= set(volumes)


# --- Every command names a real entry point ------------------------------------------------


@pytest.mark.parametrize(
    ("where", "command"), [pytest.param(*pair, id=pair[0]) for pair in deployment_commands()]
)
def test_every_deployment_command_names_a_real_entry_point(where, command):
    assert problems(command) == [], f"{where}: {command}"


def test_every_platform_runs_web_worker_beat_and_a_release_migration():
    procfile = procfile_processes()
    assert PROCESS_TYPES | {"release"} <= set(procfile)
    assert procfile["release"] == "python manage.py migrate --noinput"
    # The web process is the project's server: WEB_CONCURRENCY workers on $PORT, drained on
    # SIGTERM (Heroku sets both variables).
    assert procfile["web"] == "python -m synthlang_site"

    app_json = json.loads((ROOT / "app.json").read_text())
    assert set(app_json["formation"]) == PROCESS_TYPES

    fly = tomllib.loads((ROOT / "fly.toml").read_text())
    assert set(fly["processes"]) == PROCESS_TYPES
    assert fly["deploy"]["release_command"] == "python manage.py migrate --noinput"

    render_starts = [s.get("startCommand", "") for s in read_yaml("render.yaml")["services"]]
    roles = (
        "python -m synthlang_site",
        "celery -A synthlang_site worker",
        "celery -A synthlang_site beat",
    )
    for role in roles:
        assert sum(role in start for start in render_starts) == 1, role

    unit_commands = [systemd_unit(p)["Service"]["ExecStart"] for p in SYSTEMD_UNITS]
    assert [p.name for p in SYSTEMD_UNITS] == [
        "synthlang-beat.service",
        "synthlang-web.service",
        "synthlang-worker.service",
    ]
    assert unit_commands[1] == "/opt/synthlang/venv/bin/python -m synthlang_site"
    assert " beat " in unit_commands[0]
    assert fly["processes"]["web"] == "python -m synthlang_site"
    assert json.loads(dockerfile_instruction("CMD")) == ["python", "-m", "synthlang_site"]


def test_dockerfile_builds_a_slim_multi_stage_non_root_image_with_a_health_check():
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?", text, flags=re.MULTILINE)
    assert len(stages) >= 2 and all("-slim" in image for image, _ in stages)
    assert "COPY --from=builder" in text
    user = dockerfile_instruction("USER")
    assert user not in ("root", "0")
    assert "/health" in dockerfile_instruction("HEALTHCHECK")
    assert dockerfile_instruction("EXPOSE") == "8000"
    assert "python manage.py collectstatic --noinput" in text
    assert (ROOT / ".dockerignore").is_file()


def test_systemd_units_run_as_a_dedicated_user_from_the_venv_and_restart_on_failure():
    for path in SYSTEMD_UNITS:
        service = systemd_unit(path)["Service"]
        assert service["User"] == "synthlang", path.name
        assert service["EnvironmentFile"] == "/etc/synthlang/env", path.name
        assert service["Restart"] == "on-failure", path.name
        assert service["ExecStart"].startswith("/opt/synthlang/venv/bin/"), path.name
        assert service["WorkingDirectory"] == "/opt/synthlang/app", path.name


@pytest.mark.parametrize("script", SCRIPTS)
def test_deployment_scripts_are_executable_and_explain_their_usage(script):
    path = ROOT / script
    assert os.access(path, os.X_OK), f"{script} is not executable"
    assert "set -euo pipefail" in path.read_text()
    result = subprocess.run(
        [str(path), "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: ")
    wrong = subprocess.run(
        [str(path), "--no-such-option"], capture_output=True, text=True, timeout=30, check=False
    )
    assert wrong.returncode == 2 and "unknown option" in wrong.stderr


# --- Platform descriptors ------------------------------------------------------------------


def test_heroku_app_json_generates_the_secret_key_and_requires_the_encryption_key():
    app_json = json.loads((ROOT / "app.json").read_text())
    assert app_json["env"]["SECRET_KEY"]["generator"] == "secret"
    assert app_json["env"]["ENCRYPTION_KEY"]["required"] is True
    assert "Fernet" in app_json["env"]["ENCRYPTION_KEY"]["description"]
    assert app_json["env"]["AUTO_MIGRATE"]["value"] == "0"
    # Heroku's Redis has a self-signed certificate (tested in test_redis_tls_server.py).
    assert app_json["env"]["REDIS_SSL_CERT_REQS"]["value"] == "none"
    plans = {addon["plan"].split(":")[0] for addon in app_json["addons"]}
    assert plans == {"heroku-postgresql", "heroku-redis"}


def test_fly_serves_http_on_8000_and_checks_health():
    fly = tomllib.loads((ROOT / "fly.toml").read_text())
    http = fly["http_service"]
    assert http["internal_port"] == 8000
    assert http["processes"] == ["web"]
    assert [check["path"] for check in http["checks"]] == ["/health"]


def test_render_blueprint_wires_its_database_and_key_value_instance():
    blueprint = read_yaml("render.yaml")
    web = next(s for s in blueprint["services"] if s["type"] == "web")
    assert web["healthCheckPath"] == "/health"
    assert web["preDeployCommand"] == "python manage.py migrate --noinput"
    databases = {db["name"] for db in blueprint["databases"]}
    key_values = {s["name"] for s in blueprint["services"] if s["type"] == "keyvalue"}
    groups = {group["name"]: group for group in blueprint["envVarGroups"]}
    for service in blueprint["services"]:
        if service["type"] not in ("web", "worker"):
            continue
        env = {var.get("key") or var.get("fromGroup"): var for var in service["envVars"]}
        assert env["DATABASE_URL"]["fromDatabase"]["name"] in databases, service["name"]
        assert env["REDIS_URL"]["fromService"]["name"] in key_values, service["name"]
        assert env["REDIS_URL"]["fromService"]["type"] == "keyvalue", service["name"]
        assert any(name in groups for name in env), service["name"]
    shared = {var["key"]: var for group in groups.values() for var in group["envVars"]}
    assert shared["SECRET_KEY"] == {"key": "SECRET_KEY", "generateValue": True}
    assert shared["ENCRYPTION_KEY"]["sync"] is False
    runtime = (ROOT / "runtime.txt").read_text().strip().removeprefix("python-")
    assert shared["PYTHON_VERSION"]["value"] == runtime


DOCKERFILES = [ROOT / "Dockerfile", ROOT / "deploy" / "lambda" / "Dockerfile"]
DOCKERFILE_INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
    "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}  # fmt: skip


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    text = "\n".join(lines).replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word, rest.strip()))
    return found


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_dockerfile_is_well_formed(path):
    instructions = _instructions(path)
    words = [word for word, _ in instructions]
    assert set(words) <= DOCKERFILE_INSTRUCTIONS, set(words) - DOCKERFILE_INSTRUCTIONS
    assert words[0] in ("FROM", "ARG") and "FROM" in words
    assert words.count("CMD") == 1
    json.loads(dict(instructions)["CMD"])  # the exec form, so the process gets signals
    for word, arguments in instructions:
        if word in ("COPY", "ADD") and "--from=" not in arguments:
            for source in shlex.split(arguments)[:-1]:
                assert (ROOT / source).exists(), f"{path.name}: COPY {source} names nothing"


def test_sam_template_deploys_the_lambda_container_image_behind_an_http_api():
    template = sam_template()
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    function = template["Resources"]["ProxyFunction"]
    assert function["Type"] == "AWS::Serverless::Function"
    properties = {**template["Globals"]["Function"], **function["Properties"]}
    # The seed's deployment: a container image, whose runtime and handler are the image's.
    assert properties["PackageType"] == "Image"
    assert not {"Runtime", "Handler", "CodeUri"} & set(properties)
    metadata = function["Metadata"]
    assert (ROOT / metadata["DockerContext"] / metadata["Dockerfile"]).is_file()
    assert properties["Timeout"] <= 30  # API Gateway's limit: a longer one buys nothing
    events = properties["Events"].values()
    assert {event["Type"] for event in events} == {"HttpApi"}
    assert "/{proxy+}" in {event["Properties"]["Path"] for event in events}


def test_the_lambda_image_is_the_lambda_python_base_with_the_handler_and_every_package():
    instructions = _instructions(ROOT / "deploy" / "lambda" / "Dockerfile")
    base = dict(instructions)["FROM"]
    version = re.fullmatch(r"public\.ecr\.aws/lambda/python:3\.(\d+)", base)
    # 3.11's base image (Amazon Linux 2) was deprecated on 2026-06-30.
    assert version and int(version.group(1)) >= 12, base
    runs = " ".join(arguments for word, arguments in instructions if word == "RUN")
    assert 'pip install --target "${LAMBDA_TASK_ROOT}" -r requirements.txt' in runs
    assert "manage.py collectstatic --noinput" in runs
    copied = {
        shlex.split(arguments)[0]
        for word, arguments in instructions
        if word == "COPY" and "--from=" not in arguments
    }
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert packages | {"templates", "static", "manage.py"} <= copied
    (handler_path,) = json.loads(dict(instructions)["CMD"])
    module_name, _, handler_name = handler_path.rpartition(".")
    from synthlang_site import serverless

    assert getattr(importlib.import_module(module_name), handler_name) is serverless.lambda_handler


def test_prometheus_scrapes_the_metrics_endpoint_the_app_serves(client, settings):
    config = read_yaml("deploy/prometheus/prometheus.yml")
    paths = {job["metrics_path"] for job in config["scrape_configs"]}
    assert paths == {"/metrics"}
    settings.ALLOWED_HOSTS = ["localhost"]
    response = client.get("/metrics", HTTP_HOST="localhost:8000")
    assert response.status_code == 200
    assert b"# TYPE " in response.content


def test_nginx_site_streams_v1_unbuffered_and_upgrades_websockets():
    text = (ROOT / "deploy" / "nginx" / "synthlang.conf").read_text()

    def location(prefix: str) -> str:
        match = re.search(r"location " + re.escape(prefix) + r" \{(.*?)\n    \}", text, re.S)
        assert match, f"no location {prefix}"
        return match.group(1)

    v1 = location("/v1/")
    assert "proxy_buffering off;" in v1
    assert int(re.search(r"proxy_read_timeout (\d+)s;", v1).group(1)) >= 300
    assert "proxy_set_header Upgrade $http_upgrade;" in location("/ws/")
    assert "/etc/letsencrypt/live/" in text
    assert "alias /opt/synthlang/app/staticfiles/;" in location("/static/")


def test_nginx_accepts_the_site_configuration(tmp_path):
    nginx, openssl = shutil.which("nginx"), shutil.which("openssl")
    if nginx is None or openssl is None:
        pytest.skip("nginx or openssl is not installed")
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=t",
            "-keyout",
            str(tmp_path / "key.pem"),
            "-out",
            str(tmp_path / "cert.pem"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    site = (ROOT / "deploy" / "nginx" / "synthlang.conf").read_text()
    site = re.sub(r"/etc/letsencrypt/live/[^;]+/fullchain\.pem", str(tmp_path / "cert.pem"), site)
    site = re.sub(r"/etc/letsencrypt/live/[^;]+/privkey\.pem", str(tmp_path / "key.pem"), site)
    site = site.replace("/var/log/nginx/", f"{tmp_path}/")
    (tmp_path / "site.conf").write_text(site)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{ access_log off; include {tmp_path}/site.conf; }}\n"
    )
    result = subprocess.run(
        [nginx, "-t", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(s|m)?", str(value).strip())
    assert match, value
    return float(match.group(1)) * (60 if match.group(2) == "m" else 1)


def test_every_platform_waits_longer_for_a_stop_than_the_server_drains():
    """A platform's SIGKILL must not arrive before the drain's grace period is over."""
    from django.conf import settings

    default_grace = settings.SHUTDOWN_GRACE_SECONDS
    unit = systemd_unit(ROOT / "deploy" / "systemd" / "synthlang-web.service")["Service"]
    unit_env = dict(
        item.split("=", 1) for line in [unit["Environment"]] for item in line.split() if "=" in item
    )
    unit_grace = float(unit_env.get("SHUTDOWN_GRACE_SECONDS", default_grace))
    assert _seconds(unit["TimeoutStopSec"]) > unit_grace
    assert unit["ExecReload"] == "/bin/kill -HUP $MAINPID"

    fly = tomllib.loads((ROOT / "fly.toml").read_text())
    fly_grace = float(fly["env"].get("SHUTDOWN_GRACE_SECONDS", default_grace))
    assert fly["kill_timeout"] > fly_grace

    compose = read_yaml("docker-compose.yml")
    proxy = compose["services"]["proxy"]
    grace_value = compose["x-app-environment"]["SHUTDOWN_GRACE_SECONDS"]
    compose_grace = float(re.fullmatch(r"\$\{SHUTDOWN_GRACE_SECONDS:-(\d+)\}", grace_value)[1])
    assert _seconds(proxy["stop_grace_period"]) > compose_grace
    # Heroku and Render send SIGKILL 30 s after SIGTERM and set no grace of ours.
    assert default_grace < 30
    assert dockerfile_instruction("STOPSIGNAL") == "SIGTERM"
