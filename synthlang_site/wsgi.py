"""WSGI entry, for tools that only speak WSGI; Daphne serves the ASGI app in production."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synthlang_site.settings")

application = get_wsgi_application()
