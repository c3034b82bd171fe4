"""The live request feed's websocket: ``/ws/admin/feed/``.

Authenticated by the admin session (``AuthMiddlewareStack`` in ``asgi.py``). Platform
staff join ``feed.platform`` (every organization's requests, once each); an
organization admin joins ``feed.org.<id>`` of each organization they administer and
nothing else; anyone else is refused before the handshake completes.

Memberships can change while a page stays open, so they are read again at most every
``RECHECK_SECONDS`` when events arrive: a demoted admin stops receiving within that
time, and a removed one is disconnected.
"""

from __future__ import annotations

import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accounts.models import Membership, Role
from proxy.feed import PLATFORM_GROUP, feed_watch, organization_group

RECHECK_SECONDS = 30.0
CLOSE_FORBIDDEN = 4403


@database_sync_to_async
def _feed_groups(user) -> set[str]:
    """The groups ``user`` may watch; empty for anyone who may not use the feed."""
    if not user.is_authenticated or not user.is_active:
        return set()
    if user.is_superuser:
        return {PLATFORM_GROUP}
    # is_staff is what opens the admin at all (granted with the admin role); the
    # memberships say which organizations.
    if not user.is_staff:
        return set()
    ids = Membership.objects.filter(user_id=user.pk, role=Role.ADMIN).values_list(
        "organization_id", flat=True
    )
    return {organization_group(organization_id) for organization_id in ids}


@database_sync_to_async
def _fresh_user(user_id: int):
    from accounts.models import User

    return User.objects.filter(pk=user_id).first()


class FeedConsumer(AsyncJsonWebsocketConsumer):
    groups_joined: set[str]

    async def connect(self):
        self.groups_joined = set()
        user = self.scope.get("user")
        groups = await _feed_groups(user) if user is not None else set()
        if not groups:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.user_id = user.pk
        await self._join(groups)
        self.checked_at = time.monotonic()
        await self.accept()

    async def _join(self, groups: set[str]) -> None:
        for group in groups - self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        for group in self.groups_joined - groups:
            await self.channel_layer.group_discard(group, self.channel_name)
        self.groups_joined = set(groups)
        await feed_watch(self.groups_joined)

    async def disconnect(self, code):
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)
        self.groups_joined = set()

    async def receive_json(self, content, **kwargs):
        # The page's only message is a heartbeat: it keeps its groups marked as watched.
        if self.groups_joined:
            await feed_watch(self.groups_joined)

    async def feed_request(self, message):
        if time.monotonic() - self.checked_at >= RECHECK_SECONDS:
            self.checked_at = time.monotonic()
            user = await _fresh_user(self.user_id)
            groups = await _feed_groups(user) if user is not None else set()
            if not groups:
                await self.disconnect(CLOSE_FORBIDDEN)
                await self.close(code=CLOSE_FORBIDDEN)
                return
            await self._join(groups)
            event = message["event"]
            allowed = PLATFORM_GROUP in groups or (
                organization_group(event.get("organization_id") or 0) in groups
            )
            if not allowed:
                return
        await self.send_json({"type": "request", "event": message["event"]})
