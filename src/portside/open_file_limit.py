"""The server's open-file limit (RLIMIT_NOFILE): raised to the hard limit at start, read for reports.

Every client connection through a listener holds one file descriptor and its target
connection another, so a proxy under the common soft default (1024) refuses clients long
before the machine is busy. Any process may raise its soft limit up to its hard limit;
the server does so at start, as nginx (``worker_rlimit_nofile``) and Envoy operators do by
hand. Raising the hard limit needs privilege or the service manager (systemd
``LimitNOFILE=``, ``docker run --ulimit nofile=N:N``, ``ulimit -Hn``).
"""

from __future__ import annotations

import resource
from dataclasses import dataclass

UNLIMITED = resource.RLIM_INFINITY  # -1 on Linux


@dataclass(frozen=True)
class OpenFileLimit:
    soft: int  # UNLIMITED when unlimited
    hard: int
    raised_from: int | None = None  # the soft limit before ``raise_to_hard`` changed it
    error: str = ""  # why raising failed, when it did


def current() -> OpenFileLimit:
    """This process's limits now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return OpenFileLimit(soft, hard)


def raise_to_hard() -> OpenFileLimit:
    """Raise this process's soft limit to its hard limit.

    Returns: the limits afterwards, with ``raised_from`` set when the soft limit changed and
    ``error`` set (limits unchanged) when the kernel refused, e.g. an unlimited hard limit on a
    system that caps open files below it.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return OpenFileLimit(soft, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        return OpenFileLimit(soft, hard, error=str(exc))
    return OpenFileLimit(*resource.getrlimit(resource.RLIMIT_NOFILE), raised_from=soft)


def text(limit: int) -> str:
    """A limit as people read it (``unlimited`` for RLIM_INFINITY)."""
    return "unlimited" if limit == UNLIMITED else str(limit)
