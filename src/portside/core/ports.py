"""Dynamic host ports: which range they come from, and which port is handed out next.

Theory of operation
-------------------
A container port mapping with ``hostPort`` 0 (or absent) gets a host port chosen by the
agent, not by Docker, exactly as the ECS agent does since 1.70.0
(aws/amazon-ecs-agent ``agent/utils/ephemeral_ports.go``). This module is the pure part of
that choice: it opens no socket, reads no file and no clock. The shell passes in the text of
``/proc/sys/net/ipv4/ip_local_port_range``, the current time ``now`` (seconds, monotonic) and
a bind probe ``is_free(protocol, port)``.

Vocabulary:

* **range** (:class:`PortRange`): the dynamic host port range, inclusive. It comes from the
  ``--dynamic-port-range`` flag (``source="flag"``), else from the kernel's ephemeral range
  (``"kernel"``), else ECS's Linux fallback 49153-65535 (``"fallback"``, with ECS's warning).
* **reserved**: ports per protocol that are never handed out (ECS's ``ECS_RESERVED_PORTS``,
  default ``[22, 2375, 2376, 51678, 51679]``; ``ECS_RESERVED_PORTS_UDP`` default ``[]``).
* **held**: ``(protocol, port) -> owner`` for every port in use, dynamic or static. An owner
  is an opaque string (a task id); at most one owner per ``(protocol, port)``.
* **quarantine**: ``(protocol, port) -> released_at``. A released port is not handed out
  again until ``quarantine_s`` has passed, so a new task does not inherit a port that a
  stale target, a client or a TIME_WAIT socket still ties to the old one (ECS has no such
  pause: amazon-ecs-agent#500, port reuse plus a stale target sent one service's traffic to
  another). A port is quarantined while ``now - released_at < quarantine_s``.
* **last_assigned**: the last port handed out, shared by TCP and UDP as in ECS (0 = none).

Choosing ports (:meth:`PortAllocator.assign`) follows ECS's round robin: run starts are tried
in the order ``last_assigned+1 .. end``, then ``start .. last_assigned`` (wrap-around), and
the first run of ``count`` contiguous ports that are all in range, not reserved, not held,
not quarantined and accepted by the bind probe wins. ``last_assigned`` becomes the last port
taken, or ``start - 1`` when that was ``end``. Two deliberate differences from ECS:
the wrap pass considers every start position up to ``last_assigned`` (ECS bounds it by the
end of the last partial run, and skips it entirely when the first pass saw no free port),
and a failed search changes nothing (ECS moves its tracker even on failure).

Cost: the cheap checks are kept as one sorted list per protocol of "free" ports (in range,
not reserved, not held, not quarantined). A search is a bisect plus a walk over free ports
only, so at 90% occupancy one assign probes a handful of candidates instead of scanning the
range; held ports cost nothing to skip. Quarantine expiry is a heap, drained lazily on the
next assign. Taking and returning a port is a bisect plus a ``list`` insert/delete (a
memmove of at most ``range.size`` pointers, done in C).

The allocator is not thread-safe: the shell serialises calls (ECS's ``portLock``) and
persists :meth:`PortAllocator.to_dict` so that ``last_assigned``, holdings and quarantine
survive a restart (ECS loses ``last_assigned`` and restarts from the range start).
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from portside.errors import PortsExhausted

__all__ = [
    "DEFAULT_PORT_QUARANTINE_S",
    "DEFAULT_RESERVED_TCP",
    "DEFAULT_RESERVED_UDP",
    "DYNAMIC_PORT_RANGE_FLAG",
    "FALLBACK_RANGE",
    "FALLBACK_WARNING",
    "LINUX_DEFAULT_EPHEMERAL_RANGE",
    "PROTOCOLS",
    "PortAllocator",
    "PortProbe",
    "PortRange",
    "parse_range_flag",
    "range_from_kernel",
]

MIN_PORT = 1
MAX_PORT = 65535
PROTOCOLS = ("tcp", "udp")
RANGE_SOURCES = ("flag", "kernel", "fallback")
DYNAMIC_PORT_RANGE_FLAG = "--dynamic-port-range"

# ECS agent agent/utils/ephemeral_ports_linux.go (DefaultPortRangeStart/End) and config/parse.go.
FALLBACK_RANGE = (49153, 65535)
FALLBACK_WARNING = (
    "Unable to read the ephemeral host port range, falling back to the default range: 49153-65535"
)
# Linux's default net.ipv4.ip_local_port_range (also the ECS-optimized AMI's value).
LINUX_DEFAULT_EPHEMERAL_RANGE = (32768, 60999)

# ECS agent agent/config/config_unix.go: SSH, Docker, Docker TLS, introspection, task metadata.
DEFAULT_RESERVED_TCP = (22, 2375, 2376, 51678, 51679)
DEFAULT_RESERVED_UDP: tuple[int, ...] = ()

# Linux keeps a closed connection in TIME_WAIT for 60 s (TCP_TIMEWAIT_LEN); a freed port is not
# handed out again before that. Round robin usually leaves it alone far longer anyway.
DEFAULT_PORT_QUARANTINE_S = 60.0

# ECS agent agent/utils/ephemeral_ports.go, verbatim.
PORT_UNAVAILABLE_MSG = "a host port is unavailable"
PORTS_UNAVAILABLE_MSG = "{count} contiguous host ports are unavailable"

STATE_FORMAT_VERSION = 1

PortKey = tuple[str, int]
PortProbe = Callable[[str, int], bool]
"""``is_free(protocol, port)``: the shell's bind probe; True when the port can be bound now."""


@dataclass(frozen=True)
class PortRange:
    """An inclusive host port range and where it came from (``"flag"``, ``"kernel"``, ``"fallback"``)."""

    start: int
    end: int
    source: str

    def __post_init__(self) -> None:
        if not (_is_port(self.start) and _is_port(self.end) and self.start <= self.end):
            raise ValueError(
                f"port range {self.start!r}-{self.end!r} is invalid; "
                f"expected integers {MIN_PORT} <= start <= end <= {MAX_PORT}"
            )
        if self.source not in RANGE_SOURCES:
            raise ValueError(f"port range source {self.source!r} is not one of {', '.join(RANGE_SOURCES)}")

    @property
    def size(self) -> int:
        """Number of ports in the range."""
        return self.end - self.start + 1

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.start <= port <= self.end

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"


def parse_range_flag(text: str) -> PortRange:
    """Parse ``--dynamic-port-range START-END`` (ECS_DYNAMIC_HOST_PORT_RANGE syntax).

    :returns: a :class:`PortRange` with ``source="flag"``.
    :raises ValueError: unless both ends are integers with 1 <= START <= END <= 65535.
    """
    start_text, sep, end_text = text.strip().partition("-")
    if sep and _is_digits(start_text.strip()) and _is_digits(end_text.strip()):
        start, end = int(start_text), int(end_text)
        if MIN_PORT <= start <= end <= MAX_PORT:
            return PortRange(start, end, "flag")
    raise ValueError(
        f"{DYNAMIC_PORT_RANGE_FLAG} has value {text!r}; "
        f"expected START-END with integers {MIN_PORT} <= START <= END <= {MAX_PORT}"
    )


def range_from_kernel(proc_text: str | None) -> tuple[PortRange, str | None]:
    """The range from the text of ``/proc/sys/net/ipv4/ip_local_port_range`` (``"%d\\t%d"``).

    :param proc_text: the file's content, or None when it could not be read.
    :returns: ``(range, None)``, or ``(fallback range, FALLBACK_WARNING)`` when the text is
        missing or is not two whitespace-separated ports with start <= end.
    """
    if proc_text is not None:
        fields = proc_text.split()
        if len(fields) == 2 and all(_is_digits(field) for field in fields):
            start, end = int(fields[0]), int(fields[1])
            if MIN_PORT <= start <= end <= MAX_PORT:
                return PortRange(start, end, "kernel"), None
    return PortRange(*FALLBACK_RANGE, "fallback"), FALLBACK_WARNING


class PortAllocator:
    """Hands out dynamic host ports round robin; records who holds what. See the module docstring."""

    def __init__(
        self,
        port_range: PortRange,
        *,
        reserved_tcp: Iterable[int] = DEFAULT_RESERVED_TCP,
        reserved_udp: Iterable[int] = DEFAULT_RESERVED_UDP,
        quarantine_s: float = DEFAULT_PORT_QUARANTINE_S,
    ) -> None:
        if not quarantine_s >= 0:
            raise ValueError(f"quarantine_s has value {quarantine_s!r}; expected seconds >= 0")
        self._range = port_range
        self._reserved: Mapping[str, frozenset[int]] = MappingProxyType(
            {"tcp": _port_set(reserved_tcp), "udp": _port_set(reserved_udp)}
        )
        self._quarantine_s = float(quarantine_s)
        self._last_assigned = 0
        self._held: dict[PortKey, str] = {}
        self._owned: dict[str, set[PortKey]] = {}
        self._quarantine: dict[PortKey, float] = {}
        self._expiry: list[tuple[float, str, int]] = []  # heap of (released_at, protocol, port)
        self._free: dict[str, list[int]] = {}  # per protocol: sorted ports passing the cheap checks
        self._rebuild_free()

    # --- read-only state -------------------------------------------------------------------

    @property
    def range(self) -> PortRange:
        return self._range

    @property
    def reserved(self) -> Mapping[str, frozenset[int]]:
        return self._reserved

    @property
    def quarantine_s(self) -> float:
        return self._quarantine_s

    @property
    def last_assigned(self) -> int:
        return self._last_assigned

    @property
    def held(self) -> Mapping[PortKey, str]:
        return MappingProxyType(self._held)

    @property
    def quarantine(self) -> Mapping[PortKey, float]:
        """Released ports and when; may still list entries that expired (pruned lazily)."""
        return MappingProxyType(self._quarantine)

    def holdings(self, owner: str) -> list[PortKey]:
        """Every ``(protocol, port)`` held by ``owner``, sorted."""
        return sorted(self._owned.get(owner, ()))

    def owner_of(self, protocol: str, port: int) -> str | None:
        return self._held.get((protocol, port))

    # --- decisions -------------------------------------------------------------------------

    def assign(self, owner: str, protocol: str, count: int, now: float, is_free: PortProbe) -> list[int]:
        """Hold ``count`` contiguous dynamic host ports for ``owner`` (1 for a single mapping).

        ``is_free`` is called only for ports that pass the cheap checks, at most once per port.

        :returns: the ports, ascending.
        :raises PortsExhausted: ``"a host port is unavailable"`` or ``"N contiguous host ports
            are unavailable"``; the allocator is then unchanged.
        :raises ValueError: for an unknown protocol or ``count < 1``.
        """
        _check_protocol(protocol)
        if count < 1:
            raise ValueError(f"count has value {count!r}; expected an integer >= 1")
        expired = self._expire(now)
        try:
            first = self._search(protocol, count, is_free)
        except BaseException:
            self._unexpire(expired)
            raise
        if first is None:
            self._unexpire(expired)
            if count == 1:
                raise PortsExhausted(PORT_UNAVAILABLE_MSG)
            raise PortsExhausted(PORTS_UNAVAILABLE_MSG.format(count=count))
        free = self._free[protocol]
        index = bisect_left(free, first)
        del free[index : index + count]
        ports = list(range(first, first + count))
        for port in ports:
            self._take(owner, (protocol, port))
        last = ports[-1]
        self._last_assigned = self._range.start - 1 if last == self._range.end else last
        return ports

    def hold(self, owner: str, protocol: str, port: int) -> None:
        """Record a static or restored holding (any port, even outside the range or reserved).

        Holding a quarantined port ends its quarantine; holding it again for ``owner`` is a no-op.

        :raises ValueError: if another owner holds it, or for a bad protocol or port.
        """
        key = (_check_protocol(protocol), _check_port(port))
        current = self._held.get(key)
        if current == owner:
            return
        if current is not None:
            raise ValueError(f"{protocol} port {port} is held by {current!r}; cannot hold it for {owner!r}")
        self._quarantine.pop(key, None)  # its heap entry goes stale and is skipped
        self._remove_free(key)
        self._take(owner, key)

    def release(self, owner: str, now: float) -> list[PortKey]:
        """Release every port of ``owner`` into quarantine at ``now``.

        :returns: the released ``(protocol, port)`` pairs, sorted (empty for an unknown owner).
        """
        keys = sorted(self._owned.pop(owner, ()))
        for key in keys:
            del self._held[key]
            self._quarantine_port(key, now)
        return keys

    def release_port(self, protocol: str, port: int, now: float) -> str | None:
        """Release one port into quarantine, held or not (e.g. Docker could not bind it).

        :returns: the owner that held it, or None.
        """
        key = (_check_protocol(protocol), _check_port(port))
        owner = self._held.pop(key, None)
        if owner is not None:
            keys = self._owned[owner]
            keys.discard(key)
            if not keys:
                del self._owned[owner]
        self._remove_free(key)
        self._quarantine_port(key, now)
        return owner

    # --- persistence -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state: ``last_assigned``, ``held`` and ``quarantine`` (config is not included)."""
        return {
            "version": STATE_FORMAT_VERSION,
            "last_assigned": self._last_assigned,
            "held": [[proto, port, owner] for (proto, port), owner in sorted(self._held.items())],
            "quarantine": [[proto, port, at] for (proto, port), at in sorted(self._quarantine.items())],
        }

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        port_range: PortRange,
        *,
        reserved_tcp: Iterable[int] = DEFAULT_RESERVED_TCP,
        reserved_udp: Iterable[int] = DEFAULT_RESERVED_UDP,
        quarantine_s: float = DEFAULT_PORT_QUARANTINE_S,
    ) -> PortAllocator:
        """Rebuild an allocator from :meth:`to_dict` output plus the current configuration.

        :raises ValueError: on an unknown version or inconsistent state.
        """
        if data.get("version") != STATE_FORMAT_VERSION:
            raise ValueError(f"port state version {data.get('version')!r} is not {STATE_FORMAT_VERSION}")
        alloc = cls(
            port_range, reserved_tcp=reserved_tcp, reserved_udp=reserved_udp, quarantine_s=quarantine_s
        )
        for proto, port, owner in data["held"]:
            key = (_check_protocol(proto), _check_port(port))
            if key in alloc._held:
                raise ValueError(f"{proto} port {port} is listed twice in held")
            alloc._take(str(owner), key)
        for proto, port, released_at in data["quarantine"]:
            key = (_check_protocol(proto), _check_port(port))
            if key in alloc._held or key in alloc._quarantine:
                raise ValueError(f"{proto} port {port} is both held and quarantined, or listed twice")
            alloc._quarantine[key] = float(released_at)
            alloc._expiry.append((float(released_at), proto, port))
        heapq.heapify(alloc._expiry)
        last_assigned = data["last_assigned"]
        if not (isinstance(last_assigned, int) and 0 <= last_assigned <= MAX_PORT):
            raise ValueError(f"last_assigned has value {last_assigned!r}; expected 0..{MAX_PORT}")
        alloc._last_assigned = last_assigned
        alloc._rebuild_free()
        return alloc

    # Private

    def _search(self, protocol: str, count: int, is_free: PortProbe) -> int | None:
        start, end = self._range.start, self._range.end
        first_start = self._last_assigned + 1
        if not start <= first_start <= end:  # nothing assigned yet, or the range changed
            first_start = start
        verdicts: dict[int, bool] = {}

        def probe(port: int) -> bool:
            verdict = verdicts.get(port)
            if verdict is None:
                verdict = verdicts[port] = bool(is_free(protocol, port))
            return verdict

        free = self._free[protocol]
        found = _find_run(free, first_start, end, count, probe)
        if found is None and first_start > start:  # wrap around
            found = _find_run(free, start, first_start - 1, count, probe)
        return found

    def _take(self, owner: str, key: PortKey) -> None:
        self._held[key] = owner
        self._owned.setdefault(owner, set()).add(key)

    def _quarantine_port(self, key: PortKey, now: float) -> None:
        released_at = max(float(now), self._quarantine.get(key, float("-inf")))
        self._quarantine[key] = released_at
        heapq.heappush(self._expiry, (released_at, key[0], key[1]))

    def _expire(self, now: float) -> list[tuple[PortKey, float]]:
        """End every quarantine that is over at ``now``; returns what it ended (for undo)."""
        expired: list[tuple[PortKey, float]] = []
        heap = self._expiry
        while heap and now - heap[0][0] >= self._quarantine_s:
            released_at, proto, port = heapq.heappop(heap)
            key = (proto, port)
            if self._quarantine.get(key) != released_at:
                continue  # stale: the port was held or re-released since
            del self._quarantine[key]
            expired.append((key, released_at))
            self._add_free(key)
        return expired

    def _unexpire(self, expired: list[tuple[PortKey, float]]) -> None:
        for key, released_at in expired:
            self._remove_free(key)
            self._quarantine[key] = released_at
            heapq.heappush(self._expiry, (released_at, key[0], key[1]))

    def _passes_cheap_checks(self, key: PortKey) -> bool:
        proto, port = key
        return (
            port in self._range
            and port not in self._reserved[proto]
            and key not in self._held
            and key not in self._quarantine
        )

    def _add_free(self, key: PortKey) -> None:
        if self._passes_cheap_checks(key):
            insort(self._free[key[0]], key[1])

    def _remove_free(self, key: PortKey) -> None:
        free = self._free[key[0]]
        index = bisect_left(free, key[1])
        if index < len(free) and free[index] == key[1]:
            del free[index]

    def _rebuild_free(self) -> None:
        ports = range(self._range.start, self._range.end + 1)
        self._free = {
            proto: [p for p in ports if self._passes_cheap_checks((proto, p))] for proto in PROTOCOLS
        }


def _find_run(free: list[int], lo: int, hi: int, count: int, probe: Callable[[int], bool]) -> int | None:
    """The first ``p`` in ``[lo, hi]`` with ``p .. p+count-1`` all in ``free`` and all probed free."""
    size = len(free)
    i = bisect_left(free, lo)
    while i < size and free[i] <= hi:
        last = i + count - 1
        if last >= size:
            return None
        if free[last] - free[i] != count - 1:  # a gap: no run can start before it ends
            i = _end_of_consecutive(free, i, last) + 1
            continue
        for j in range(i, last + 1):
            if not probe(free[j]):
                i = j + 1
                break
        else:
            return free[i]
    return None


def _end_of_consecutive(free: list[int], i: int, hi: int) -> int:
    """Largest ``k`` in ``[i, hi]`` with ``free[i..k]`` consecutive integers (binary search)."""
    lo, base = i, free[i]
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if free[mid] - base == mid - i:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _is_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _is_port(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and MIN_PORT <= value <= MAX_PORT


def _check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol has value {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    return protocol


def _check_port(port: int) -> int:
    if not _is_port(port):
        raise ValueError(f"port has value {port!r}; expected an integer {MIN_PORT}..{MAX_PORT}")
    return port


def _port_set(ports: Iterable[int]) -> frozenset[int]:
    return frozenset(_check_port(port) for port in ports)
