"""The deployment files: each names real entry points, and the serverless adapters answer.

Every command a platform would run (Procfile, docker-compose.yml, fly.toml, render.yaml, the
systemd units, the Dockerfile) is parsed with the real program's own argument parser (Daphne,
Celery, Django's management commands), so a typo in a flag or a module path fails here rather
than on the platform.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from configparser import ConfigParser
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROCESS_TYPES = {"web", "worker", "beat"}
SYSTEMD_UNITS = sorted((ROOT / "deploy" / "systemd").glob("synthlang-*.service"))
SCRIPTS = ["scripts/init-db.sh", "scripts/deploy.sh", "scripts/backup.sh"]
# Values that platforms substitute into commands at run time.
RUNTIME_VARIABLES = {"PORT": "8000", "HOST": "127.0.0.1", "HOSTNAME": "worker-host"}
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


# --- Reading the files ---------------------------------------------------------------------


def _yaml(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


class _CloudFormationLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags (!Ref, !Sub, !If...) as plain mappings."""


def _cloudformation_tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {suffix: value}


_CloudFormationLoader.add_multi_constructor("!", _cloudformation_tag)


def _sam_template() -> dict:
    return yaml.load((ROOT / "template.yaml").read_text(), Loader=_CloudFormationLoader)  # noqa: S506


def _procfile() -> dict[str, str]:
    processes = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            processes[name.strip()] = command.strip()
    return processes


def _systemd_unit(path: Path) -> ConfigParser:
    parser = ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    parser.read(path)
    return parser


def _dockerfile_instruction(name: str) -> str:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    found = [line.split(None, 1)[1] for line in text.splitlines() if line.startswith(name + " ")]
    assert found, f"the Dockerfile has no {name}"
    return found[-1]


def _compose_command(value) -> str:
    command = shlex.join(value) if isinstance(value, list) else value
    return command.replace("$$", "$")  # Compose's escape for a literal $


def _deployment_commands() -> list[tuple[str, str]]:
    """(where, command) for every command a platform runs from this repository."""
    commands = []
    if (ROOT / "Procfile").exists():
        commands += [(f"Procfile:{name}", cmd) for name, cmd in _procfile().items()]
    commands.append(("Dockerfile:CMD", shlex.join(json.loads(_dockerfile_instruction("CMD")))))
    probe = _dockerfile_instruction("HEALTHCHECK").split(" CMD ", 1)[1]
    commands.append(("Dockerfile:HEALTHCHECK", shlex.join(json.loads(probe))))

    compose = _yaml("docker-compose.yml")
    for name, service in compose["services"].items():
        if "build" not in service:
            continue  # postgres and redis: not ours
        if "command" in service:
            commands.append((f"docker-compose.yml:{name}", _compose_command(service["command"])))
        test = (service.get("healthcheck") or {}).get("test")
        if test and test[0] == "CMD-SHELL":
            commands.append((f"docker-compose.yml:{name}:healthcheck", test[1]))
        elif test and test[0] == "CMD":
            commands.append((f"docker-compose.yml:{name}:healthcheck", _compose_command(test[1:])))

    fly = tomllib.loads((ROOT / "fly.toml").read_text())
    commands += [(f"fly.toml:{name}", cmd) for name, cmd in fly["processes"].items()]
    commands.append(("fly.toml:release_command", fly["deploy"]["release_command"]))

    for service in _yaml("render.yaml")["services"]:
        for key in ("buildCommand", "preDeployCommand", "startCommand"):
            if key in service:
                commands.append((f"render.yaml:{service['name']}:{key}", service[key]))

    for script, command in json.loads((ROOT / "app.json").read_text()).get("scripts", {}).items():
        commands.append((f"app.json:scripts:{script}", command))

    for path in SYSTEMD_UNITS:
        commands.append((f"{path.name}:ExecStart", _systemd_unit(path)["Service"]["ExecStart"]))
    return commands


# --- Checking that a command names a real entry point --------------------------------------


def _substitute_runtime_variables(command: str) -> str:
    def value(match: re.Match) -> str:
        name, default = match.group(1) or match.group(3), match.group(2)
        return RUNTIME_VARIABLES.get(name, default or "x")

    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)", value, command)


def _problems(command: str) -> list[str]:
    problems = []
    for part in re.split(r"\s*&&\s*", _substitute_runtime_variables(command).strip()):
        problems += _problems_in(shlex.split(part))
    return problems


def _problems_in(argv: list[str]) -> list[str]:
    while argv and (argv[0] == "exec" or ENV_ASSIGNMENT.match(argv[0])):
        argv = argv[1:]
    if not argv:
        return ["empty command"]
    program, args = Path(argv[0]).name, argv[1:]
    if program in ("sh", "bash") and args[:1] == ["-c"]:
        return _problems(args[1])
    if program == "daphne":
        return _daphne_problems(args)
    if program == "celery":
        return _celery_problems(args)
    if program == "pip":
        return _pip_problems(args)
    if re.fullmatch(r"python(3(\.\d+)?)?", program):
        return _python_problems(args)
    if program.endswith(".sh"):
        script = ROOT / argv[0].removeprefix("./")
        return [] if os.access(script, os.X_OK) else [f"{argv[0]} is not an executable script"]
    return [f"unknown program {argv[0]!r}"]


def _daphne_problems(args: list[str]) -> list[str]:
    from daphne.cli import CommandLineInterface

    try:
        parsed = CommandLineInterface().parser.parse_args(args)
    except SystemExit:
        return [f"daphne rejects its arguments {args}"]
    module_name, _, attribute = parsed.application.partition(":")
    try:
        application = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        return [f"daphne's application {parsed.application} does not import: {exc}"]
    call = application if inspect.isfunction(application) else type(application).__call__
    if not inspect.iscoroutinefunction(call):
        return [f"{parsed.application} is not an ASGI callable"]
    if len(inspect.signature(application).parameters) != 3:
        return [f"{parsed.application} does not take (scope, receive, send)"]
    return []


def _celery_problems(args: list[str]) -> list[str]:
    from celery.app.utils import find_app
    from click.testing import CliRunner

    from synthlang_site.celery import app

    try:
        named_app = find_app(args[1]) if args[:1] == ["-A"] else None
    except ImportError as exc:
        return [f"celery {args}: {exc}"]
    if named_app is not app:
        return [f"celery {args} does not name the synthlang_site.celery app"]
    # --help makes Celery's own CLI parse every option of the subcommand and stop there.
    from celery.bin.celery import celery

    result = CliRunner().invoke(celery, [*args, "--help"])
    if result.exit_code != 0:
        return [f"celery rejects {args}: {result.output.strip()[-300:]}"]
    return []


def _pip_problems(args: list[str]) -> list[str]:
    if args[:1] == ["check"]:
        return []
    if args[:2] == ["install", "-r"] and (ROOT / args[2]).is_file():
        return []
    return [f"pip {args} does not install a requirements file of the repository"]


def _python_problems(args: list[str]) -> list[str]:
    if args[:1] == ["manage.py"]:
        return _manage_py_problems(args[1:])
    if args[:1] == ["-m"]:
        return [] if importlib.util.find_spec(args[1]) else [f"no module {args[1]}"]
    if args[:1] == ["-c"] and "/health" in args[1]:
        return []  # the Dockerfile's health probe
    return [f"python {args} is not a known entry point"]


def _manage_py_problems(args: list[str]) -> list[str]:
    from django.core.management import CommandError, get_commands, load_command_class

    name, options = args[0], args[1:]
    commands = get_commands()
    if name not in commands:
        return [f"manage.py has no command {name!r}"]
    command = load_command_class(commands[name], name)
    try:
        command.create_parser("manage.py", name).parse_args(options)
    except CommandError as exc:
        return [f"manage.py {name} rejects {options}: {exc}"]
    return []


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
    services = _yaml("docker-compose.yml")["services"]
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
    volumes = _yaml("docker-compose.yml")["volumes"]
    assert {"postgres-data", "redis-data", "app-data"} <= set(volumes)


# --- Every command names a real entry point ------------------------------------------------


@pytest.mark.parametrize(
    ("where", "command"), [pytest.param(*pair, id=pair[0]) for pair in _deployment_commands()]
)
def test_every_deployment_command_names_a_real_entry_point(where, command):
    assert _problems(command) == [], f"{where}: {command}"


def test_every_platform_runs_web_worker_beat_and_a_release_migration():
    procfile = _procfile()
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

    render_starts = [s.get("startCommand", "") for s in _yaml("render.yaml")["services"]]
    roles = (
        "python -m synthlang_site",
        "celery -A synthlang_site worker",
        "celery -A synthlang_site beat",
    )
    for role in roles:
        assert sum(role in start for start in render_starts) == 1, role

    unit_commands = [_systemd_unit(p)["Service"]["ExecStart"] for p in SYSTEMD_UNITS]
    assert [p.name for p in SYSTEMD_UNITS] == [
        "synthlang-beat.service",
        "synthlang-web.service",
        "synthlang-worker.service",
    ]
    assert unit_commands[1] == "/opt/synthlang/venv/bin/python -m synthlang_site"
    assert " beat " in unit_commands[0]
    assert fly["processes"]["web"] == "python -m synthlang_site"
    assert json.loads(_dockerfile_instruction("CMD")) == ["python", "-m", "synthlang_site"]


def test_dockerfile_builds_a_slim_multi_stage_non_root_image_with_a_health_check():
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)(?: AS (\w+))?", text, flags=re.MULTILINE)
    assert len(stages) >= 2 and all("-slim" in image for image, _ in stages)
    assert "COPY --from=builder" in text
    user = _dockerfile_instruction("USER")
    assert user not in ("root", "0")
    assert "/health" in _dockerfile_instruction("HEALTHCHECK")
    assert _dockerfile_instruction("EXPOSE") == "8000"
    assert "python manage.py collectstatic --noinput" in text
    assert (ROOT / ".dockerignore").is_file()


def test_systemd_units_run_as_a_dedicated_user_from_the_venv_and_restart_on_failure():
    for path in SYSTEMD_UNITS:
        service = _systemd_unit(path)["Service"]
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
    blueprint = _yaml("render.yaml")
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
    template = _sam_template()
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
    config = _yaml("deploy/prometheus/prometheus.yml")
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


# --- Serverless adapters -------------------------------------------------------------------

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


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(s|m)?", str(value).strip())
    assert match, value
    return float(match.group(1)) * (60 if match.group(2) == "m" else 1)


def test_every_platform_waits_longer_for_a_stop_than_the_server_drains():
    """A platform's SIGKILL must not arrive before the drain's grace period is over."""
    from django.conf import settings

    default_grace = settings.SHUTDOWN_GRACE_SECONDS
    unit = _systemd_unit(ROOT / "deploy" / "systemd" / "synthlang-web.service")["Service"]
    unit_env = dict(
        item.split("=", 1) for line in [unit["Environment"]] for item in line.split() if "=" in item
    )
    unit_grace = float(unit_env.get("SHUTDOWN_GRACE_SECONDS", default_grace))
    assert _seconds(unit["TimeoutStopSec"]) > unit_grace
    assert unit["ExecReload"] == "/bin/kill -HUP $MAINPID"

    fly = tomllib.loads((ROOT / "fly.toml").read_text())
    fly_grace = float(fly["env"].get("SHUTDOWN_GRACE_SECONDS", default_grace))
    assert fly["kill_timeout"] > fly_grace

    compose = _yaml("docker-compose.yml")
    proxy = compose["services"]["proxy"]
    grace_value = compose["x-app-environment"]["SHUTDOWN_GRACE_SECONDS"]
    compose_grace = float(re.fullmatch(r"\$\{SHUTDOWN_GRACE_SECONDS:-(\d+)\}", grace_value)[1])
    assert _seconds(proxy["stop_grace_period"]) > compose_grace
    # Heroku and Render send SIGKILL 30 s after SIGTERM and set no grace of ours.
    assert default_grace < 30
    assert _dockerfile_instruction("STOPSIGNAL") == "SIGTERM"
