"""``python -m synthlang_site``: migrate when AUTO_MIGRATE is on, then serve on HOST:PORT."""

import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synthlang_site.settings")
    import django
    from django.conf import settings
    from django.core.management import call_command

    django.setup()
    if settings.AUTO_MIGRATE:
        call_command("migrate", interactive=False, verbosity=1)

    from daphne.cli import CommandLineInterface

    args = ["-b", settings.HOST, "-p", str(settings.PORT), *(argv or [])]
    if not settings.ACCESS_LOG:
        # Daphne's access log is a plain-text line per request on stdout, written from the
        # event loop; the proxy's usage events and JSON logs already record each request.
        # Verbosity 0 is how Daphne is told to keep no access log at all.
        args += ["-v", "0"]
    # No --proxy-headers: Daphne would take the leftmost X-Forwarded-For entry, which any
    # client writes, as the client. TRUSTED_PROXIES decides (common/client_address.py).
    args += ["synthlang_site.asgi:application"]
    CommandLineInterface().run(args)


if __name__ == "__main__":
    main(sys.argv[1:])
