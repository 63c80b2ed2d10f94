"""The proxy the environment names for a URL: ``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``
(either case) and ``NO_PROXY``, read as curl and the official OpenAI SDK read them.

``NO_PROXY`` is a comma-separated list of: ``*`` (no proxy at all); host names, which match
themselves and their subdomains (``example.com``, ``.example.com`` and ``*.example.com`` all
match ``api.example.com``); IP addresses and networks (``10.1.2.3``, ``127.0.0.0/8``,
``::1``, ``fd00::/8``); any of those with a port (``example.com:8443``, ``[::1]:8080``), which
then matches that port only; and ``scheme://host[:port]`` for one scheme only.
"""

from __future__ import annotations

import ipaddress
import urllib.request
from collections.abc import Iterable

__all__ = ["bypasses_proxy", "proxy_for"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def proxy_for(scheme: str, host: str, port: int) -> str | None:
    """The proxy URL for ``scheme://host:port``, or ``None`` to connect directly."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy or bypasses_proxy(scheme, host, port, proxies.get("no", "").split(",")):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def bypasses_proxy(scheme: str, host: str, port: int, no_proxy: Iterable[str]) -> bool:
    """Whether an entry of ``no_proxy`` matches ``scheme://host:port``."""
    host = host.lower().strip("[]").rstrip(".")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy:
        entry = raw.strip().lower()
        if entry == "*":
            return True
        if not entry:
            continue
        if "://" in entry:
            entry_scheme, _, entry = entry.partition("://")
            if entry_scheme != scheme:
                continue
        name, entry_port = _split_port(entry.rstrip("/"))
        if entry_port is not None and entry_port != port:
            continue
        network = _network(name)
        if network is not None:
            if address is not None and address in network:
                return True
            continue
        name = name.removeprefix("*").lstrip(".").rstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


def _split_port(entry: str) -> tuple[str, int | None]:
    """``host:port`` → (host, port); an IPv6 address alone keeps its colons."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":")
        return host, int(port) if port.isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        if port.isdigit():
            return host, int(port)
    return entry, None


def _network(name: str) -> _Network | None:
    try:
        return ipaddress.ip_network(name, strict=False)
    except ValueError:
        return None
