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
    args += ["--proxy-headers", "synthlang_site.asgi:application"]
    CommandLineInterface().run(args)


if __name__ == "__main__":
    main(sys.argv[1:])
