"""Redirect actions: build the ``Location`` an ALB redirect answers with.

Theory of operation
-------------------
A redirect action holds five URI components (botocore ``RedirectActionConfig``), each a
template that may reuse the request's own components through reserved keywords:

    #{protocol}  the listener protocol of the request, ``http`` or ``https``
    #{host}      the request's host (Host header without its port)
    #{port}      the listener port the request arrived on
    #{path}      the request path WITHOUT its leading "/" (so "/#{path}" is the same path)
    #{query}     the raw query string, without the "?"

Defaults (``model.Action``) reproduce the request: ``#{protocol}://#{host}:#{port}/#{path}?#{query}``.
Substitution is a single pass per component (a request value containing ``#{host}`` is not
expanded again). Components are not percent-encoded: the path and query are used exactly as
received (botocore: "This component is not percent-encoded"). The protocol is written in lower
case; the port is omitted when it is the scheme's default (80 for http, 443 for https); "?" is
written only when the resulting query is non-empty.
"""

from __future__ import annotations

import re

from portside.core.lb.model import Action

__all__ = ["redirect_location"]

_KEYWORD = re.compile(r"#\{(protocol|host|port|path|query)\}")
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def redirect_location(action: Action, scheme: str, host: str, port: int, path: str, query: str) -> str:
    """The absolute URL a redirect action sends the client to.

    :param scheme: the listener protocol the request arrived on (``http`` / ``https``, any case).
    :param host: the request's Host header; a ``:port`` suffix is dropped (``[v6]`` keeps brackets).
    :param port: the listener port.
    :param path: the raw request path (starting with "/").
    :param query: the raw query string, without "?" (``""`` when absent).
    Returns: ``protocol://host[:port]/path[?query]``.
    Raises: nothing; templates were validated when the rule was created.
    """
    values = {
        "protocol": scheme.lower(),
        "host": _strip_port(host),
        "port": str(port),
        "path": path.removeprefix("/"),
        "query": query,
    }

    def expand(template: str) -> str:
        return _KEYWORD.sub(lambda m: values[m.group(1)], template)

    protocol = expand(action.redirect_protocol).lower()
    new_host = expand(action.redirect_host)
    new_port = expand(action.redirect_port)
    new_path = expand(action.redirect_path)
    new_query = expand(action.redirect_query)
    if not new_path.startswith("/"):
        new_path = "/" + new_path
    authority = new_host if _DEFAULT_PORTS.get(protocol) == new_port else f"{new_host}:{new_port}"
    location = f"{protocol}://{authority}{new_path}"
    return f"{location}?{new_query}" if new_query else location


def _strip_port(host: str) -> str:
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    return host.split(":", 1)[0]
