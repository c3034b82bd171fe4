"""The AWS Lambda package: its size, and the handler's cold start in-process.

    .venv/bin/python bench/lambda_bench.py [--python python3.12] [--runs 3]

What it measures, without Docker or AWS:

1. The dependency layer as deploy/lambda/Dockerfile installs it: ``pip install --target``
   from requirements.txt with the image's
   Python version, taking only wheels for the image's platform (manylinux up to glibc
   2.34, Amazon Linux 2023's). Its size against Lambda's 250 MB limit for zip packages.
2. The cold start of the handler: a fresh interpreter with that layer on its path imports
   ``synthlang_site.serverless`` and answers API Gateway HTTP API (payload 2.0) events, a
   chat completion through the offline fake provider first; import, first and second
   request are timed separately. What Lambda adds (fetching the image, starting the
   micro-VM) is not measured here.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ZIP_LIMIT_MB = 250
# Amazon Linux 2023 has glibc 2.34: wheels built for it or anything older run there.
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(34, 16, -1)] + [
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
]
CODE = ["manage.py", "accounts", "billing", "common", "proxy", "synthlang_site", "templates"]

PROBE = r"""
import json, sys, time
started = time.perf_counter()
import synthlang_site.serverless as serverless
imported = time.perf_counter()

def event(method, path, body=None):
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"host": "localhost", "content-type": "application/json",
                    "authorization": "Bearer " + sys.argv[1]},
        "requestContext": {"http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                                    "sourceIp": "127.0.0.1", "userAgent": "bench"},
                           "domainName": "localhost", "stage": "$default"},
        "body": json.dumps(body) if body is not None else None, "isBase64Encoded": False,
    }

chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello there"}]}
first = serverless.lambda_handler(event("POST", "/v1/chat/completions", chat), None)
answered = time.perf_counter()
second = serverless.lambda_handler(event("POST", "/v1/chat/completions", chat), None)
again = time.perf_counter()
print(json.dumps({
    "import_s": imported - started,
    "first_request_s": answered - imported,
    "second_request_ms": (again - answered) * 1000,
    "statuses": [first["statusCode"], second["statusCode"]],
}))
"""


def megabytes(path: Path) -> float:
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    return total / 1024 / 1024


def build_layer(python: str, target: Path) -> None:
    version = subprocess.run(
        [python, "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    platform_args = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    base = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--target", str(target), "--only-binary=:all:", "--python-version", version,
            "--implementation", "cp", *platform_args]  # fmt: skip
    subprocess.run([*base, "-r", str(ROOT / "requirements.txt")], check=True)


def environment(layer: Path, database: Path) -> dict[str, str]:
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join([str(layer), str(ROOT)]),
        "DJANGO_SETTINGS_MODULE": "synthlang_site.settings",
        "DEBUG": "false",
        "SECRET_KEY": "lambda-bench-" + "x" * 40,
        "ENCRYPTION_KEY": key,
        "ALLOWED_HOSTS": "localhost",
        "SECURE_SSL_REDIRECT": "false",
        "USE_SQLITE": "1",
        "SQLITE_PATH": str(database),
        "LOG_FILE": "",
        "LOG_LEVEL": "WARNING",
        "OPENAI_API_KEY": "",
        "AUTO_MIGRATE": "0",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=shutil.which("python3.12") or sys.executable)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build the layer here and keep it")
    options = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="synthlang-lambda-bench-"))
    layer = options.keep or work / "layer"
    try:
        if not (layer / "django").is_dir():
            build_layer(options.python, layer)
        layer_mb = megabytes(layer)
        code_mb = sum(
            megabytes(ROOT / name)
            if (ROOT / name).is_dir()
            else (ROOT / name).stat().st_size / 2**20
            for name in CODE
        )
        print(f"python: {options.python}")
        print(f"dependency layer: {layer_mb:.0f} MB; code and templates: {code_mb:.1f} MB")
        total = layer_mb + code_mb
        verdict = "fits" if total < ZIP_LIMIT_MB else "does not fit"
        print(f"unzipped total {total:.0f} MB {verdict} Lambda's {ZIP_LIMIT_MB} MB zip limit")

        database = work / "bench.sqlite3"
        env = environment(layer, database)
        manage = [options.python, str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, check=True)
        created = subprocess.run(
            [*manage, "create_api_key", "--org", "bench", "--user", "bench", "--role", "admin"],
            env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        api_key = created.stdout.strip().splitlines()[-1]
        runs = []
        for _ in range(options.runs):
            probe = subprocess.run(
                [options.python, "-c", PROBE, api_key],
                env=env, cwd=work, check=True, capture_output=True, text=True,
            )  # fmt: skip
            runs.append(json.loads(probe.stdout.strip().splitlines()[-1]))
        for name, unit in (
            ("import_s", "s"),
            ("first_request_s", "s"),
            ("second_request_ms", "ms"),
        ):
            values = [run[name] for run in runs]
            print(
                f"{name}: median {statistics.median(values):.3f} {unit} "
                f"(runs: {', '.join(f'{v:.3f}' for v in values)})"
            )
        print(f"statuses: {[run['statuses'] for run in runs]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
