"""The client's address, behind reverse proxies the operator trusts and no others.

``X-Forwarded-For`` is written by whoever sends the request: a client can put any address
in it. Only a proxy named in ``TRUSTED_PROXIES`` (addresses or networks) may speak for the
client: starting from the connection's own peer, each trusted hop's ``X-Forwarded-For``
entry is followed from the right, and the first address that is not a trusted proxy is
the client. Without ``TRUSTED_PROXIES`` the peer address is the client. (Daphne runs
without ``--proxy-headers``, which would take the leftmost entry as the client.)
"""

from __future__ import annotations

import functools
import ipaddress

from django.conf import settings


@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]):
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip().strip("[]"), strict=False))
        except ValueError:
            continue
    return tuple(networks)


def _address(text: str):
    text = text.strip().strip('"')
    if text.startswith("["):  # [v6]:port
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(address, networks) -> bool:
    return address is not None and any(address in network for network in networks)


def client_address(request) -> str:
    """The address a request came from, as far as the trusted proxies can tell."""
    meta = request.META
    remote = meta.get("REMOTE_ADDR") or ""
    networks = _networks(tuple(getattr(settings, "TRUSTED_PROXIES", ()) or ()))
    if not networks or not _trusted(_address(remote), networks):
        return remote
    hops = [hop for hop in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break  # garbage where an address should be: trust nothing further left
        if not _trusted(address, networks):
            return str(address)
        remote = str(address)
    return remote
