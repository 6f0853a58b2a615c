"""The monitoring dashboard inside JupyterLab: ``workbench dashboard`` behind jupyter-server-proxy.

jupyter-server-proxy (4.4 or later; earlier versions let unauthenticated websockets through,
CVE-2024-28179) starts the Panel app on a free loopback port the first time someone opens
``<base_url>workbench-dashboard/`` and proxies it through the Jupyter server, so every request and
websocket carries the user's Jupyter authentication and the app's own port is never exposed. The
extension's Deployments panel opens it in a main-area tab (``?deployment=<name>`` picks one).

The browser's ``Origin`` is the Jupyter server's; Bokeh accepts a websocket only from origins it was told
about, and which port Jupyter listens on is not known when the app starts. So the proxy presents the app
its own loopback origin (Jupyter has already checked the browser's), and the app allows only that one.
"""

from __future__ import annotations

import sys
from typing import Any

PROXY_NAME = "workbench-dashboard"


def dashboard_server() -> dict[str, Any]:
    """The ``jupyter_serverproxy_servers`` entry point: how to start the dashboard and proxy it."""
    return {
        "command": [sys.executable, "-m", "workbench.dashboard_app", "dashboard", "--port", "{port}",
                    "--address", "127.0.0.1", "--prefix", "{base_url}" + PROXY_NAME],
        "absolute_url": True,  # the app is served under the same prefix as the proxy (Panel's --prefix)
        "timeout": 120,  # seconds for the app to answer: importing Panel and plotly on a busy machine
        "request_headers_override": {"Origin": "http://127.0.0.1:{port}"},
        "launcher_entry": {"enabled": False},  # opened from the Workbench sidebar, not as a bare launcher card
    }
