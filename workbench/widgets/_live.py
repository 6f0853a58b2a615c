"""What the stage widgets share: a message line for errors and results, and a live refresh thread.

A widget calls every action through :meth:`LiveWidget._guard`, so a failure becomes a readable message
in the widget instead of a traceback, and keeps itself fresh with :meth:`LiveWidget.start_live`, a daemon
thread calling its ``refresh()`` every ``refresh_s`` seconds until :meth:`LiveWidget.stop_live`.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as w

from workbench.errors import readable
from workbench.monitoring import reprs


class LiveWidget(w.VBox):
    """The base of a stage widget. It sets ``message`` (a ``w.HTML``), ``refresh_s``, a CSS prefix in
    ``css_prefix`` (``wb-jobs`` ...) and a ``snapshot_title``, defines ``refresh()`` and ``snapshot_html()``,
    and calls :meth:`_init_live` early."""

    message: w.HTML
    refresh_s: float
    css_prefix: str = "wb"
    snapshot_title: str = "Workbench"

    def _init_live(self) -> None:
        self._closing = threading.Event()
        self._poller: threading.Thread | None = None

    def refresh(self) -> None:  # pragma: no cover - every widget defines its own
        raise NotImplementedError

    def snapshot_html(self) -> str:  # pragma: no cover - every widget defines its own
        raise NotImplementedError

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The live widget, plus the static snapshot as ``text/html`` for papermill and HTML export,
        where no kernel answers."""
        bundle = super()._repr_mimebundle_(**kwargs)
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle or {}, {})
        try:
            snapshot = self.snapshot_html()
        except Exception as exc:  # noqa: BLE001 - a display must never raise
            snapshot = reprs.card(self.snapshot_title, note=readable(exc), status="error")
        return {**data, "text/plain": repr(self), "text/html": snapshot}, metadata

    def start_live(self) -> None:
        """Refresh every ``refresh_s`` seconds in a daemon thread until :meth:`stop_live` or ``close()``."""
        if self._poller is not None and self._poller.is_alive():
            return
        self._closing.clear()
        self._poller = threading.Thread(target=self._poll, name=f"{self.css_prefix}-live", daemon=True)
        self._poller.start()

    def stop_live(self) -> None:
        self._closing.set()

    def _poll(self) -> None:
        while not self._closing.wait(self.refresh_s):
            self._guard(self.refresh, quiet=True)

    def _guard(self, action: Callable[[], Any], quiet: bool = False) -> bool:
        """Run ``action``; any error becomes the widget's message. True when it succeeded. ``quiet`` keeps
        a background refresh from replacing a message the user has not read yet."""
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - the widget must show, not raise
            if not quiet or not self.error:
                self._show_error(readable(exc))
            return False
        return True

    def _show_error(self, text: str) -> None:
        p = self.css_prefix
        self.message.value = f'<span class="{p}-error {p}-message">⚠ {html.escape(text)}</span>'

    def _show_ok(self, text: str) -> None:
        p = self.css_prefix
        self.message.value = f'<span class="{p}-ok {p}-message">{html.escape(text)}</span>'

    @property
    def error(self) -> str:
        """The message shown when the last action failed, else ''."""
        value = self.message.value
        return html.unescape(value.split("⚠ ", 1)[1].rsplit("</span>", 1)[0]) if "⚠ " in value else ""
