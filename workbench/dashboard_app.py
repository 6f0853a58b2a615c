"""``workbench dashboard``: the monitoring dashboard as a Panel app of its own, for people without Jupyter.

The page is :class:`workbench.widgets.dashboard.MonitoringDashboard`, the notebook widget's layout, one per
browser session, refreshed live by a periodic callback. Every resource (Bokeh, Panel, plotly.js) is
served inline from this process: the page renders with no network. ``register_cli(subparsers)`` adds
the command; ``workbench.cli`` dispatches it with ``COMMANDS["dashboard"] = run_dashboard``.
"""

from __future__ import annotations

import argparse
from typing import Any

from workbench.config import Settings


def dashboard_page(settings: Settings, deployment: str | None = None, period_s: float = 5.0,
                   model_uri: str | None = None) -> Any:
    """A new dashboard for one browser session, live from the moment the page has loaded."""
    import panel as pn

    from workbench.widgets.dashboard import MonitoringDashboard

    asked = (pn.state.session_args or {}).get("deployment") if pn.state.curdoc else None
    if asked:  # ?deployment=<name> in the page's URL, as the JupyterLab Deployments panel opens it
        deployment = asked[0].decode() if isinstance(asked[0], bytes) else str(asked[0])
    board = MonitoringDashboard(settings, deployment, period_s=period_s, model_uri=model_uri, refresh_now=False)

    def first() -> None:  # after the page is up: the first snapshot may take seconds (the reference profile)
        board.refresh()
        board.start()

    pn.state.onload(first)
    template = pn.Column(pn.pane.Markdown("## Workbench monitoring"), board.layout, sizing_mode="stretch_width")
    return template


def serve_dashboard(settings: Settings, *, port: int = 5006, deployment: str | None = None, period_s: float = 5.0,
                    address: str | None = None, show: bool = False, threaded: bool = False,
                    model_uri: str | None = None, prefix: str = "") -> Any:
    """Serve the dashboard at ``http://<address>:<port><prefix>/`` (blocking unless ``threaded``) with inline
    resources. ``prefix`` is the path it is served under (``/workbench-dashboard`` behind the Jupyter server)."""
    import panel as pn

    pn.extension("plotly", inline=True)  # sets pn.config.inline: Bokeh, Panel and plotly.js served from here
    host = address or settings.host
    return pn.serve({"/": lambda: dashboard_page(settings, deployment, period_s, model_uri)}, port=port, address=host,
                    show=show, threaded=threaded, title="Workbench monitoring", prefix=prefix.rstrip("/"),
                    websocket_origin=[f"{host}:{port}", f"localhost:{port}", f"127.0.0.1:{port}"])


def register_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``dashboard [--port] [--deployment] [--period]`` to the workbench's subparsers."""
    parser = subparsers.add_parser("dashboard", help="serve the live monitoring dashboard (Panel, offline)")
    parser.add_argument("--port", type=int, default=5006, help="port to serve on (default 5006)")
    parser.add_argument("--deployment", default=None, help="deployment shown first (default: the first logged)")
    parser.add_argument("--period", type=float, default=5.0, help="seconds between live refreshes (default 5)")
    parser.add_argument("--model-uri", default=None,
                        help="models:/<name>/<version> of the deployed model, when Ray Serve cannot be asked")
    parser.add_argument("--address", default=None, help="address to bind (default: the settings' host)")
    parser.add_argument("--prefix", default="", help="URL path to serve under (behind a proxy), e.g. /dash")
    return parser


def run_dashboard(settings: Settings, args: argparse.Namespace) -> int:
    """The CLI handler: print the URL, then serve until interrupted."""
    host = args.address or settings.host
    prefix = args.prefix.rstrip("/")
    if prefix and not prefix.startswith("/"):
        raise SystemExit(f"--prefix must start with '/', got {args.prefix!r}")
    print(f"workbench dashboard on http://{host}:{args.port}{prefix}/", flush=True)
    serve_dashboard(settings, port=args.port, deployment=args.deployment, period_s=args.period, address=host,
                    model_uri=args.model_uri, prefix=prefix)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m workbench.dashboard_app``: the same command without going through ``workbench.cli``."""
    from workbench.config import load_settings

    parser = argparse.ArgumentParser(prog="workbench dashboard")
    sub = parser.add_subparsers(dest="command", required=True)
    register_cli(sub)
    args = parser.parse_args(["dashboard", *(argv or [])] if not argv or argv[0] != "dashboard" else argv)
    return run_dashboard(load_settings(), args)


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
