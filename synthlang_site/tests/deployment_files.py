"""Reading the deployment files, and checking that a command names a real entry point.

Every command a platform would run is parsed with the real program's own argument parser
(Daphne, Celery, Django's management commands), so a typo in a flag or a module path fails
the tests rather than the platform."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import re
import shlex
import tomllib
from configparser import ConfigParser
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PROCESS_TYPES = {"web", "worker", "beat"}
SYSTEMD_UNITS = sorted((ROOT / "deploy" / "systemd").glob("synthlang-*.service"))
SCRIPTS = ["scripts/init-db.sh", "scripts/deploy.sh", "scripts/backup.sh"]
# Values that platforms substitute into commands at run time.
RUNTIME_VARIABLES = {"PORT": "8000", "HOST": "127.0.0.1", "HOSTNAME": "worker-host"}
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


# --- Reading the files ---------------------------------------------------------------------


def read_yaml(name: str) -> dict:
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


def sam_template() -> dict:
    # The loader is SafeLoader plus the CloudFormation tags, read as plain values.
    return yaml.load((ROOT / "template.yaml").read_text(), Loader=_CloudFormationLoader)  # noqa: S506


def procfile_processes() -> dict[str, str]:
    processes = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            processes[name.strip()] = command.strip()
    return processes


def systemd_unit(path: Path) -> ConfigParser:
    parser = ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    parser.read(path)
    return parser


def dockerfile_instruction(name: str) -> str:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    found = [line.split(None, 1)[1] for line in text.splitlines() if line.startswith(name + " ")]
    assert found, f"the Dockerfile has no {name}"
    return found[-1]


def _compose_command(value) -> str:
    command = shlex.join(value) if isinstance(value, list) else value
    return command.replace("$$", "$")  # Compose's escape for a literal $


def deployment_commands() -> list[tuple[str, str]]:
    """(where, command) for every command a platform runs from this repository."""
    commands = []
    if (ROOT / "Procfile").exists():
        commands += [(f"Procfile:{name}", cmd) for name, cmd in procfile_processes().items()]
    commands.append(("Dockerfile:CMD", shlex.join(json.loads(dockerfile_instruction("CMD")))))
    probe = dockerfile_instruction("HEALTHCHECK").split(" CMD ", 1)[1]
    commands.append(("Dockerfile:HEALTHCHECK", shlex.join(json.loads(probe))))

    compose = read_yaml("docker-compose.yml")
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

    for service in read_yaml("render.yaml")["services"]:
        for key in ("buildCommand", "preDeployCommand", "startCommand"):
            if key in service:
                commands.append((f"render.yaml:{service['name']}:{key}", service[key]))

    for script, command in json.loads((ROOT / "app.json").read_text()).get("scripts", {}).items():
        commands.append((f"app.json:scripts:{script}", command))

    for path in SYSTEMD_UNITS:
        commands.append((f"{path.name}:ExecStart", systemd_unit(path)["Service"]["ExecStart"]))
    return commands


# --- Checking that a command names a real entry point --------------------------------------


def _substitute_runtime_variables(command: str) -> str:
    def value(match: re.Match) -> str:
        name, default = match.group(1) or match.group(3), match.group(2)
        return RUNTIME_VARIABLES.get(name, default or "x")

    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)", value, command)


def problems(command: str) -> list[str]:
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
        return problems(args[1])
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
