"""Where the proxy may connect on an organization's behalf.

An organization chooses some URLs the proxy then calls: a provider credential's base URL,
a budget's alert webhook. Without a check, an organization admin could point one at the
proxy's own network (``http://127.0.0.1:6379``, a cloud metadata address, a private
service) and read or poke whatever answers. So every such URL:

- is ``https``; plain ``http`` only to a host platform staff allow-listed
  (``OUTBOUND_ALLOWED_HOSTS``) or everywhere when ``OUTBOUND_ALLOW_HTTP`` is on;
- carries no user name or password, no query and no fragment (``...#`` or ``...?x=``
  would let the URL choose the exact path the proxy's own suffix was meant to fix);
- reaches only public addresses: loopback, link-local, private, shared, multicast,
  reserved and unspecified addresses are refused unless allow-listed.

The address is checked twice: when the URL is saved (a clear message in the admin or the
API) and on the resolved address at connect time (``guarded_socket_factory`` for
aiohttp, ``guarded_create_connection`` for ``http.client``), so a name that resolves to a
public address when saved and to ``127.0.0.1`` later (DNS rebinding) is still refused.
Redirects are never followed by the clients that use this module.

The platform's own upstream (``OPENAI_BASE_URL``) is the operator's choice and is not
restricted.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class OutboundRefused(OSError):
    """A connection the outbound policy does not allow. An OSError, so every client
    treats it as the connection failure it is."""


@dataclass(frozen=True)
class _AllowList:
    names: frozenset[str]
    networks: tuple[IPNetwork, ...]

    def allows_host(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        if host in self.names:
            return True
        address = _ip_or_none(host)
        return address is not None and self.allows_address(address)

    def allows_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)


@functools.lru_cache(maxsize=8)
def _parse_allow_list(entries: tuple[str, ...]) -> _AllowList:
    names: set[str] = set()
    networks: list[IPNetwork] = []
    for entry in entries:
        text = entry.strip().lower().strip("[]")
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            names.add(text.rstrip("."))
    return _AllowList(frozenset(names), tuple(networks))


def _allow_list() -> _AllowList:
    return _parse_allow_list(tuple(getattr(settings, "OUTBOUND_ALLOWED_HOSTS", ()) or ()))


def _ip_or_none(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def address_is_public(address: IPAddress) -> bool:
    """Whether an address is a public unicast one (the only kind allowed by default)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    # ``is_global`` is false for loopback, link-local, private, shared (100.64/10),
    # reserved, documentation and unspecified addresses; global multicast is global.
    return address.is_global and not address.is_multicast


def address_allowed(address: IPAddress) -> bool:
    return address_is_public(address) or _allow_list().allows_address(address)


def host_allowed(host: str) -> bool:
    """Whether platform staff allow-listed this host name or address."""
    return _allow_list().allows_host(host)


def _resolved_addresses(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    found = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = _ip_or_none(str(sockaddr[0]))
        if address is not None:
            found.append(address)
    return found


def url_problem(url: str, *, resolve: bool = True, allow_query: bool = False) -> str | None:
    """Why an organization may not use ``url``, in words for the person who typed it;
    None when it may.

    ``resolve`` also looks the host name up now: a name that resolves to an internal
    address is refused at once. A name that does not resolve (yet) is accepted, since
    the connect-time check refuses it if it later resolves somewhere it must not.
    ``allow_query`` is for a full request URL a provider built (Azure's api-version),
    never for what an organization types.
    """
    if "#" in url:
        return "The URL must not contain a fragment ('#')."
    if "?" in url and not allow_query:
        return "The URL must not contain a query string ('?')."
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "The URL is not valid."
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("https", "http") or not host:
        return "The URL must start with https:// and name a host."
    if parts.username is not None or parts.password is not None:
        return "The URL must not contain a user name or password."
    allow_listed = host_allowed(host)
    if (
        scheme == "http"
        and not allow_listed
        and not getattr(settings, "OUTBOUND_ALLOW_HTTP", False)
    ):
        return (
            "The URL must use https. Plain http is allowed only to hosts platform staff "
            "allow-listed (OUTBOUND_ALLOWED_HOSTS)."
        )
    if allow_listed:
        return None
    literal = _ip_or_none(host)
    if literal is not None:
        addresses = [literal]
    elif host == "localhost" or host.endswith(".localhost"):
        return _internal_message(host)
    elif resolve:
        addresses = _resolved_addresses(host, port or (443 if scheme == "https" else 80))
    else:
        addresses = []
    if any(not address_allowed(address) for address in addresses):
        return _internal_message(host)
    return None


def _internal_message(host: str) -> str:
    return (
        f"The host {host} is a loopback, private, link-local, multicast or reserved "
        "address (or resolves to one). Ask platform staff to allow-list it "
        "(OUTBOUND_ALLOWED_HOSTS) if it is an internal service you trust."
    )


def validate_outbound_url(url: str) -> None:
    """A form and model validator: raises ``ValidationError`` with the reason."""
    if not url:
        return
    problem = url_problem(url)
    if problem:
        raise ValidationError(problem, code="outbound_url")


def origin_is_platform(url: str) -> bool:
    """The platform's own upstream (``OPENAI_BASE_URL``'s scheme, host and port)."""
    return _origin(url) == _origin(getattr(settings, "OPENAI_BASE_URL", "") or "")


def _origin(url: str) -> tuple[str, str, int | None]:
    try:
        parts = urlsplit(url)
        return (parts.scheme.lower(), (parts.hostname or "").lower(), parts.port)
    except ValueError:
        return ("", "", None)


# --- At connect time --------------------------------------------------------------------


def _check_sockaddr(sockaddr) -> None:
    address = _ip_or_none(str(sockaddr[0]))
    if address is None or not address_allowed(address):
        raise OutboundRefused(f"the outbound policy refuses {sockaddr[0]}")


def guarded_socket_factory(addr_info) -> socket.socket:
    """aiohttp's ``socket_factory``: called with each resolved address just before the
    connection is made, so a check here sees the address actually dialled."""
    family, type_, proto, _canonname, sockaddr = addr_info
    _check_sockaddr(sockaddr)
    sock = socket.socket(family=family, type=type_, proto=proto)
    sock.setblocking(False)
    return sock


def guarded_create_connection(address, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source_address=None):
    """``socket.create_connection`` for ``http.client``, refusing forbidden addresses."""
    host, port = address
    last_error: OSError | None = None
    for family, type_, proto, _name, sockaddr in socket.getaddrinfo(
        host, port, 0, socket.SOCK_STREAM
    ):
        try:
            _check_sockaddr(sockaddr)
        except OutboundRefused as error:
            last_error = error
            continue
        sock = socket.socket(family, type_, proto)
        try:
            if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as error:
            sock.close()
            last_error = error
    raise last_error or OutboundRefused(f"no address for {host}")
