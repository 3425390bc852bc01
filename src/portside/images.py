"""Local test/demo images, built ``FROM scratch`` without any registry.

Machines running portside often have no registry at all (see DESIGN.md, "Test
images without a registry"), so the images the tests and ``portside demo`` use
are assembled here from binaries already on the host:

``portside/busybox-web:1``
    Debian's static busybox serving ``/www`` with ``busybox httpd``, plus CGI
    scripts that show which copy answered (``/cgi-bin/whoami``), hold a request
    open (``/cgi-bin/sleep?N``), dump the environment (``/cgi-bin/env``),
    allocate memory (``/cgi-bin/alloc?MIB``) and answer a chosen status code
    (``/cgi-bin/status?CODE``). busybox httpd closes every connection. The
    entrypoint ``/bin/portside-init`` runs the command (default ``busybox httpd
    -f -v -p 80 -h /www``) as a child so SIGTERM works, and on stop lets
    in-flight requests finish before exiting 143.

``portside/nginx-keepalive:1``
    The host's dynamically linked ``/usr/sbin/nginx`` with every library
    ``ldd`` lists and the dynamic loader; answers ``ok <hostname>`` on every
    path over keep-alive connections. Use it where speed matters.

The build context is an uncompressed tar made in memory with fixed owners,
modes and mtimes, sent to the engine's classic builder (``COPY`` only, no
``RUN``: nothing runs at build time), so a build takes about a second and the
same host binaries always give the same layer. A digest of the context is
stored in the ``portside.context`` label: an existing image with the tag and
the same digest is reused as is; a stale one (scripts changed, host package
upgraded) is rebuilt under the same tag.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field

import docker
import docker.errors
import requests.exceptions

from portside.errors import DriverError

__all__ = [
    "BUSYBOX_WEB_TAG",
    "NGINX_KEEPALIVE_TAG",
    "IMAGE_LABEL",
    "CONTEXT_LABEL",
    "build_busybox_web_image",
    "build_nginx_image",
]

BUSYBOX_WEB_TAG = "portside/busybox-web:1"
NGINX_KEEPALIVE_TAG = "portside/nginx-keepalive:1"
IMAGE_LABEL = "portside.image"
CONTEXT_LABEL = "portside.context"

_BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
_NGINX_CANDIDATES = ("/usr/sbin/nginx",)
_MTIME = 0  # every file in a build context gets this mtime, for reproducible layers
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Everything the engine, the HTTP client under it or a build can raise.
_ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)


# --------------------------------------------------------------------------- tar context


@dataclass
class _Context:
    """An in-memory, deterministic ``docker build`` context."""

    entries: dict[str, tuple[str, int, bytes | str]] = field(default_factory=dict)

    def dir(self, path: str, mode: int = 0o755) -> None:
        path = path.strip("/")
        parts = path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            self.entries.setdefault(parent, ("dir", 0o755, b""))
        self.entries[path] = ("dir", mode, b"")

    def file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        path = path.strip("/")
        self._parent(path)
        self.entries[path] = ("file", mode, data.encode() if isinstance(data, str) else data)

    def symlink(self, path: str, target: str) -> None:
        path = path.strip("/")
        self._parent(path)
        self.entries[path] = ("symlink", 0o777, target)

    def _parent(self, path: str) -> None:
        if "/" in path and path.rsplit("/", 1)[0] not in self.entries:
            self.dir(path.rsplit("/", 1)[0])

    def tar(self) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for name in sorted(self.entries):
                kind, mode, data = self.entries[name]
                info = tarfile.TarInfo(name)
                info.mode, info.mtime, info.uid, info.gid = mode, _MTIME, 0, 0
                info.uname = info.gname = "root"
                if kind == "dir":
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                elif kind == "symlink":
                    info.type = tarfile.SYMTYPE
                    info.linkname = str(data)
                    tar.addfile(info)
                else:
                    assert isinstance(data, bytes)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()


def _dockerfile(*, cmd: list[str], label: str, extra: str = "", entrypoint: list[str] | None = None) -> str:
    return (
        "FROM scratch\n"
        "COPY rootfs/ /\n"
        f"ENV PATH={_PATH}\n"
        f"{extra}"
        "EXPOSE 80\n"
        f"LABEL {IMAGE_LABEL}={label}\n"
        + (f"ENTRYPOINT {json.dumps(entrypoint)}\n" if entrypoint else "")
        + f"CMD {json.dumps(cmd)}\n"
    )


# --------------------------------------------------------------------------- engine helpers


def _existing(client: docker.DockerClient, tag: str) -> tuple[str, dict[str, str]] | None:
    """(id, labels) of the local image ``tag``, or None when there is no such image."""
    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None
    except _ENGINE_ERRORS as exc:
        raise DriverError(f"cannot inspect image {tag!r}: {exc}", retryable=True) from exc
    return image.id, dict((image.attrs.get("Config") or {}).get("Labels") or {})


def _remove_if_dangling(client: docker.DockerClient, image_id: str) -> None:
    """Best effort: drop a replaced portside image that lost its last tag."""
    try:
        image = client.images.get(image_id)
        if not image.tags and IMAGE_LABEL in (image.labels or {}):
            client.images.remove(image_id, noprune=False)
    except _ENGINE_ERRORS:
        pass  # still used by a container, or already gone


def _build(client: docker.DockerClient, tag: str, tar: bytes, digest: str) -> str:
    try:
        client.images.build(
            fileobj=io.BytesIO(tar),
            custom_context=True,
            tag=tag,
            rm=True,
            forcerm=True,
            pull=False,
            labels={CONTEXT_LABEL: digest},
        )
    except docker.errors.BuildError as exc:
        log = "".join(str(chunk.get("stream") or chunk.get("error") or "") for chunk in exc.build_log)
        raise DriverError(f"building {tag!r} failed: {exc.msg}\n{log[-2000:]}") from exc
    except _ENGINE_ERRORS as exc:
        raise DriverError(f"building {tag!r} failed: {exc}", retryable=True) from exc
    return tag


def _ensure(client: docker.DockerClient, tag: str, make_context: Callable[[], _Context]) -> str:
    existing = _existing(client, tag)
    try:
        context = make_context()
    except DriverError:
        if existing is not None:  # host prerequisites gone, but an image is there: use it
            return tag
        raise
    tar = context.tar()
    digest = hashlib.sha256(tar).hexdigest()[:32]
    if existing is not None and existing[1].get(CONTEXT_LABEL) == digest:
        return tag
    _build(client, tag, tar, digest)
    if existing is not None:
        _remove_if_dangling(client, existing[0])
    return tag


# --------------------------------------------------------------------------- host binaries


def _is_static_elf(path: str) -> bool:
    """True when ``path`` is an ELF executable without a PT_INTERP program header."""
    try:
        with open(path, "rb") as f:
            ident = f.read(64)
            if len(ident) < 64 or ident[:4] != b"\x7fELF":
                return False
            is64, little = ident[4] == 2, ident[5] == 1
            end = "<" if little else ">"
            if is64:
                phoff, = struct.unpack(end + "Q", ident[32:40])
                phentsize, phnum = struct.unpack(end + "HH", ident[54:58])
            else:
                phoff, = struct.unpack(end + "I", ident[28:32])
                phentsize, phnum = struct.unpack(end + "HH", ident[42:46])
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    for i in range(phnum):
        (p_type,) = struct.unpack(end + "I", table[i * phentsize : i * phentsize + 4])
        if p_type == 3:  # PT_INTERP
            return False
    return True


def _find_static_busybox() -> str:
    found = [p for p in _BUSYBOX_CANDIDATES if os.path.isfile(p) and os.access(p, os.X_OK)]
    for path in found:
        if _is_static_elf(path):
            return path
    if found:
        raise DriverError(
            f"{found[0]} is dynamically linked and cannot run in a FROM scratch image; "
            "install a static busybox: apt-get install busybox-static"
        )
    raise DriverError(
        "no busybox found at /bin/busybox or /usr/bin/busybox; "
        "install a static one: apt-get install busybox-static"
    )


def _run_host(argv: list[str], what: str) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise DriverError(f"{what}: cannot run {argv[0]}: {exc}") from exc
    if out.returncode != 0:
        raise DriverError(f"{what}: {' '.join(argv)} exited {out.returncode}: {out.stderr.strip()}")
    return out.stdout


# --------------------------------------------------------------------------- busybox-web

_CGI_HEADER = "printf 'Content-Type: text/plain\\r\\n\\r\\n'"

_CGI_SCRIPTS = {
    "whoami": f"""#!/bin/sh
# First line: the container hostname. Second line, when set: copy=$PORTSIDE_COPY.
{_CGI_HEADER}
hostname
[ -n "$PORTSIDE_COPY" ] && echo "copy=$PORTSIDE_COPY"
exit 0
""",
    "sleep": f"""#!/bin/sh
# /cgi-bin/sleep?N : sleep N seconds (decimals allowed, capped at 30), then answer.
n="${{QUERY_STRING:-1}}"
case "$n" in
  *[!0-9.]*|*.*.*|.|'')
    printf 'Status: 400 Bad Request\\r\\nContent-Type: text/plain\\r\\n\\r\\n'
    echo "usage: /cgi-bin/sleep?SECONDS"
    exit 0 ;;
esac
n=$(awk -v n="$n" 'BEGIN {{ n += 0; if (n > 30) n = 30; print n }}')
sleep "$n"
{_CGI_HEADER}
echo "slept $n $(hostname)"
""",
    "env": f"""#!/bin/sh
{_CGI_HEADER}
env | sort
""",
    "alloc": """#!/bin/sh
# /cgi-bin/alloc?MIB : allocate and touch about MIB MiB (capped at 4096), then answer.
# Also runnable as a container command: `/www/cgi-bin/alloc MIB` (then awk is PID 1
# and an OOM kill ends the container).
n="${1:-$QUERY_STRING}"
case "$n" in
  *[!0-9]*|'')
    printf 'Status: 400 Bad Request\\r\\nContent-Type: text/plain\\r\\n\\r\\n'
    echo "usage: /cgi-bin/alloc?MIB"
    exit 0 ;;
esac
[ "$n" -gt 4096 ] && n=4096
# Each a[i] is a distinct 1 MiB string built by concatenation, so every page is
# written and held until awk exits.
prog='BEGIN { s = "x"; for (k = 0; k < 20; k++) s = s s
              for (i = 0; i < n; i++) a[i] = s i
              printf "allocated %d MiB\\n", n }'
if [ -n "$1" ]; then exec awk -v n="$n" "$prog"; fi
out=$(awk -v n="$n" "$prog")
rc=$?
if [ $rc -ne 0 ]; then
  printf 'Status: 500 Internal Server Error\\r\\nContent-Type: text/plain\\r\\n\\r\\n'
  echo "alloc of $n MiB failed (awk exit $rc, killed by the OOM killer?) $(hostname)"
  exit 0
fi
printf 'Content-Type: text/plain\\r\\n\\r\\n'
echo "$out $(hostname)"
""",
    "status": """#!/bin/sh
# /cgi-bin/status?CODE : answer with that HTTP status code (100-599, default 200).
c="${QUERY_STRING:-200}"
case "$c" in [1-5][0-9][0-9]) ;; *) c=400 ;; esac
printf 'Status: %s Status\\r\\nContent-Type: text/plain\\r\\n\\r\\n' "$c"
echo "$c $(hostname)"
""",
}

# busybox httpd installs no SIGTERM handler, and the kernel drops unhandled
# signals sent to a PID namespace's init: as PID 1 it would sit out the whole
# stop timeout until SIGKILL. This tiny init runs the command as its child,
# forwards SIGTERM/SIGHUP (SIGINT as SIGTERM: a non-interactive shell starts
# background jobs with SIGINT/SIGQUIT ignored), and after a stop signal waits
# for the requests still in flight (httpd's per-connection processes outlive
# it) before exiting with the child's status, like a server draining.
_INIT_SCRIPT = """#!/bin/sh
# portside-init: PID 1 of the busybox-web image. Usage: portside-init CMD [ARG]...
[ $# -gt 0 ] || { echo "usage: portside-init CMD [ARG]..." >&2; exit 2; }
"$@" &
child=$!
stopping=
trap 'stopping=1; kill -TERM $child 2>/dev/null' TERM INT
trap 'kill -HUP $child 2>/dev/null' HUP
while :; do
  wait $child
  rc=$?
  kill -0 $child 2>/dev/null || break
done
# After a stop signal, let in-flight requests finish (the engine's stop timeout
# bounds this with SIGKILL).
while [ -n "$stopping" ]; do
  others=
  for d in /proc/[0-9]*; do
    [ "${d#/proc/}" = "$$" ] || { others=1; break; }
  done
  [ -n "$others" ] || break
  sleep 0.1
done
exit $rc
"""

_INDEX_HTML = """<!doctype html>
<html><head><title>portside busybox-web</title></head>
<body>
<h1>portside busybox-web</h1>
<ul>
<li><a href="/cgi-bin/whoami">/cgi-bin/whoami</a> - container hostname (and $PORTSIDE_COPY)</li>
<li><a href="/cgi-bin/sleep?2">/cgi-bin/sleep?N</a> - answer after N seconds (max 30)</li>
<li><a href="/cgi-bin/env">/cgi-bin/env</a> - environment</li>
<li><a href="/cgi-bin/alloc?8">/cgi-bin/alloc?MIB</a> - allocate MIB MiB</li>
<li><a href="/cgi-bin/status?503">/cgi-bin/status?CODE</a> - answer with CODE</li>
</ul>
</body></html>
"""

_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUP = "root:x:0:\nnogroup:x:65534:\n"


def _busybox_context() -> _Context:
    busybox = _find_static_busybox()
    try:
        with open(busybox, "rb") as f:
            binary = f.read()
    except OSError as exc:
        raise DriverError(f"cannot read {busybox}: {exc}") from exc
    applets = _run_host([busybox, "--list-full"], "listing busybox applets").split()
    ctx = _Context()
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "root"):
        ctx.dir(d)
    ctx.dir("tmp", 0o1777)
    ctx.file("bin/busybox", binary, 0o755)
    for applet in applets:
        applet = applet.strip("/")
        if applet and applet != "bin/busybox" and re.fullmatch(r"[\w.\[\]+-]+(/[\w.\[\]+-]+)*", applet):
            ctx.symlink(applet, "/bin/busybox")
    if "bin/sh" not in ctx.entries:
        ctx.symlink("bin/sh", "/bin/busybox")
    ctx.file("etc/passwd", _PASSWD)
    ctx.file("etc/group", _GROUP)
    ctx.file("bin/portside-init", _INIT_SCRIPT, 0o755)
    ctx.file("www/index.html", _INDEX_HTML)
    for name, script in _CGI_SCRIPTS.items():
        ctx.file(f"www/cgi-bin/{name}", script, 0o755)
    dockerfile = _dockerfile(
        entrypoint=["/bin/portside-init"],
        cmd=["busybox", "httpd", "-f", "-v", "-p", "80", "-h", "/www"],
        label="busybox-web",
        extra="WORKDIR /www\n",
    )
    ctx.file("Dockerfile", dockerfile)
    # Only rootfs/ goes into the image; move everything but the Dockerfile under it.
    return _rooted(ctx)


def _rooted(ctx: _Context) -> _Context:
    out = _Context()
    out.entries["rootfs"] = ("dir", 0o755, b"")
    for name, entry in ctx.entries.items():
        out.entries[name if name == "Dockerfile" else f"rootfs/{name}"] = entry
    return out


def build_busybox_web_image(client: docker.DockerClient, tag: str = BUSYBOX_WEB_TAG) -> str:
    """Make sure the busybox web image ``tag`` exists locally and return ``tag``.

    Reuses an existing image built from the same context; otherwise builds it
    ``FROM scratch`` from the host's static busybox (about a second).
    Raises DriverError when busybox-static is missing or the engine fails.
    """
    return _ensure(client, tag, _busybox_context)


# --------------------------------------------------------------------------- nginx-keepalive

_NGINX_CONF = r"""# portside nginx-keepalive: answers "ok <hostname>" on every path.
user nobody nogroup;
worker_processes 1;
daemon off;
pid /run/nginx.pid;
error_log stderr warn;

events {
    worker_connections 4096;
}

http {
    access_log off;
    default_type text/plain;
    keepalive_requests 100000;
    keepalive_timeout 75s;
    server_tokens off;
    client_body_temp_path /var/lib/nginx/body;
    proxy_temp_path /var/lib/nginx/proxy;
    fastcgi_temp_path /var/lib/nginx/fastcgi;
    uwsgi_temp_path /var/lib/nginx/uwsgi;
    scgi_temp_path /var/lib/nginx/scgi;

    server {
        listen 80 default_server backlog=4096;
        location / {
            return 200 "ok $hostname\n";
        }
    }
}
"""

_LDD_ARROW = re.compile(r"^\s*(\S+)\s+=>\s+(\S+)\s+\(0x[0-9a-f]+\)\s*$")
_LDD_PLAIN = re.compile(r"^\s*(/\S+)\s+\(0x[0-9a-f]+\)\s*$")


def _shared_libraries(binary: str) -> list[str]:
    """The absolute paths (as the loader looks them up) of everything ``binary`` loads."""
    if shutil.which("ldd") is None:
        raise DriverError("ldd not found; install it: apt-get install libc-bin")
    out = _run_host(["ldd", binary], f"listing the libraries of {binary}")
    libs: list[str] = []
    for line in out.splitlines():
        if "not found" in line:
            raise DriverError(f"{binary} needs a library missing on this host: {line.strip()}")
        m = _LDD_ARROW.match(line) or _LDD_PLAIN.match(line)
        if m:
            libs.append(m.group(m.lastindex or 1))
    if not libs:
        raise DriverError(f"ldd found no libraries in {binary}: {out.strip()!r}")
    return libs


def _nginx_context() -> _Context:
    nginx = next((p for p in _NGINX_CANDIDATES if os.path.isfile(p) and os.access(p, os.X_OK)), None)
    if nginx is None:
        raise DriverError("no nginx at /usr/sbin/nginx; install it: apt-get install nginx-light")
    ctx = _Context()
    for d in ("etc/nginx", "run", "var/log/nginx", "var/lib/nginx", "var/lock", "root"):
        ctx.dir(d)
    ctx.dir("tmp", 0o1777)
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        ctx.dir(f"var/lib/nginx/{d}", 0o700)
    wanted = [nginx, *_shared_libraries(nginx)]
    # glibc before 2.34 loads getpwnam()'s "files" backend at run time.
    libdirs = sorted({os.path.dirname(p) for p in wanted[1:] if "ld-linux" not in p})
    for d in libdirs:
        nss = os.path.join(d, "libnss_files.so.2")
        if os.path.exists(nss):
            wanted.append(nss)
    for path in wanted:
        try:
            with open(os.path.realpath(path), "rb") as f:
                data = f.read()
        except OSError as exc:
            raise DriverError(f"cannot read {path} for the nginx image: {exc}") from exc
        ctx.file(path, data, 0o755)
    ctx.file("etc/nginx/nginx.conf", _NGINX_CONF)
    ctx.file("etc/passwd", _PASSWD)
    ctx.file("etc/group", _GROUP)
    ctx.file("etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n")
    ctx.file("etc/hosts", "127.0.0.1 localhost\n")
    dockerfile = _dockerfile(
        cmd=[nginx, "-c", "/etc/nginx/nginx.conf"],
        label="nginx-keepalive",
        # No ld.so.cache in the image: tell the loader where the libraries are.
        # SIGQUIT is nginx's graceful shutdown (finish requests, close idle keep-alives).
        extra=f"ENV LD_LIBRARY_PATH={':'.join('/' + d.strip('/') for d in libdirs)}\nSTOPSIGNAL SIGQUIT\n",
    )
    ctx.file("Dockerfile", dockerfile)
    return _rooted(ctx)


def build_nginx_image(client: docker.DockerClient, tag: str = NGINX_KEEPALIVE_TAG) -> str:
    """Make sure the keep-alive nginx image ``tag`` exists locally and return ``tag``.

    Reuses an existing image built from the same context; otherwise builds it
    ``FROM scratch`` from the host's /usr/sbin/nginx, the libraries ldd lists and
    the dynamic loader. Raises DriverError when nginx is missing or the engine fails.
    """
    return _ensure(client, tag, _nginx_context)
