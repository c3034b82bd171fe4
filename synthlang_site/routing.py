"""Websocket routes, collected from the apps that serve them."""

from django.urls import path

from proxy.consumers import FeedConsumer

websocket_urlpatterns: list = [
    path("ws/admin/feed/", FeedConsumer.as_asgi()),
]
