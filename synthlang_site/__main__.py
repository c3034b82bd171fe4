"""``python -m synthlang_site [--workers N] [daphne options]``: migrate when AUTO_MIGRATE is
on, then serve on HOST:PORT with N Daphne processes (WEB_CONCURRENCY by default).

One worker runs Daphne in this process; several run under a supervisor that shares one
listening socket between them (synthlang_site/workers.py). Either way SIGTERM drains open
requests and streams before the process exits (synthlang_site/server.py).
"""

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synthlang_site.settings")
    parser = argparse.ArgumentParser(
        prog="python -m synthlang_site",
        description="Serve SynthLang Proxy; any other option is passed on to Daphne.",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="server processes on the one port (default: WEB_CONCURRENCY, else from the cores)",
    )
    options, daphne_args = parser.parse_known_args(argv or [])

    import django
    from django.conf import settings
    from django.core.management import call_command

    django.setup()
    from django.core.exceptions import ImproperlyConfigured

    from synthlang_site import workers

    try:
        count = workers.worker_count(requested=options.workers, settings=settings)
    except ImproperlyConfigured as error:
        parser.exit(2, f"python -m synthlang_site: {error}\n")
    if settings.AUTO_MIGRATE:
        call_command("migrate", interactive=False, verbosity=1)

    if count > 1:
        supervisor = workers.Supervisor(
            host=settings.HOST,
            port=settings.PORT,
            workers=count,
            grace_seconds=settings.SHUTDOWN_GRACE_SECONDS,
            daphne_args=_daphne_options(daphne_args, settings),
        )
        sys.exit(supervisor.run())

    from synthlang_site.server import serve

    args = list(daphne_args)
    if not any(arg in args for arg in ("--fd", "-u", "--unix-socket", "-e", "--endpoint")):
        args = ["-b", settings.HOST, "-p", str(settings.PORT), *args]
    args = _daphne_options(args, settings) + ["synthlang_site.asgi:application"]
    serve(args, grace_seconds=settings.SHUTDOWN_GRACE_SECONDS, on_listening=workers.signal_ready)


def _daphne_options(args: list[str], settings) -> list[str]:
    args = list(args)
    if not any(a in args for a in ("-v", "--verbosity")):
        # Daphne's access log is a plain-text line per request on stdout; the proxy writes
        # its own JSON line (common/access_log.py). Verbosity 0 is how Daphne is told to keep
        # none (synthlang_site/daphne_tuning.py silences it for a directly started Daphne).
        args += ["-v", "0"]
    # No --proxy-headers: Daphne would take the leftmost X-Forwarded-For entry, which any
    # client writes, as the client. TRUSTED_PROXIES decides (common/client_address.py).
    return args


if __name__ == "__main__":
    main(sys.argv[1:])
