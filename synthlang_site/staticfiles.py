"""Static files without a middleware on the hot path.

WhiteNoise's middleware is synchronous: in Django's async stack it would move every
request, proxy calls included, onto a thread. Serving static files from a router in
front of Django keeps that cost on ``/static/`` requests alone.
"""

from asgiref.wsgi import WsgiToAsgi
from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from whitenoise import WhiteNoise


def _not_found(environ, start_response):
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"Not found"]


class StaticFilesRouter:
    def __init__(self, app):
        self.app = app
        self.prefix = settings.STATIC_URL
        if settings.DEBUG:
            # Development serves straight from the apps' folders, no collectstatic needed.
            self.static = ASGIStaticFilesHandler(app)
        else:
            whitenoise = WhiteNoise(
                _not_found, root=settings.STATIC_ROOT, prefix=settings.STATIC_URL, max_age=3600
            )
            self.static = WsgiToAsgi(whitenoise)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            return await self.static(scope, receive, send)
        return await self.app(scope, receive, send)
