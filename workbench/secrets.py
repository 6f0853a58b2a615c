"""Keeping credentials out of what the workbench writes down or shows.

Secrets reach the processes that need them through their environment only (see
:meth:`workbench.config.Settings.secret_env`); every place that shows or records a connection (an MLflow
URI in a tag, a lineage record, a widget, a log line, an error message) goes through these helpers first,
so a password typed into a URI (``http://user:pass@mlflow:5000``, ``redis:6379,password=...``) is never
copied into a file, a run, a job's argv or the Serve config.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit, urlunsplit

REDACTED = "***"
_REDIS_PASSWORD = re.compile(r"(?i)(^|,)(\s*password\s*=)[^,]*")


def split_credentials(uri: str) -> tuple[str, str, str]:
    """``(uri without user info, user, password)``; user and password are URL-decoded, '' when absent.

    A string that is not a URL with a network location comes back unchanged with no credentials.
    """
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri, "", ""
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=hostport)), unquote(user), unquote(password)


def strip_credentials(uri: str) -> str:
    """The URI without its ``user:password@`` part: what may be shown, logged or recorded."""
    return split_credentials(uri)[0]


def redact_connection(connection: str) -> str:
    """A connection setting as it may be shown: a URL loses its user info, a Redis connection string
    (``host:port,password=...``) its password; anything else is returned as it is."""
    if "://" in connection:
        return strip_credentials(connection)
    return _REDIS_PASSWORD.sub(lambda m: m.group(1) + m.group(2) + REDACTED, connection)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each (non-empty) secret replaced by ``***``; for messages that may
    quote a library's error, which can repeat a connection string verbatim."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def yaml_single_quoted(value: str) -> str:
    """``value`` escaped to sit inside a single-quoted YAML scalar (``'`` doubled).

    Feast substitutes ``${VAR}`` in feature_store.yaml *before* parsing it, so a password holding ``#`` or
    ``: `` would break the file unless the reference is quoted and the value escaped for the quotes.
    """
    return value.replace("'", "''")
