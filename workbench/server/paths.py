"""Paths the REST API accepts: always relative to the Jupyter server's root, never outside it.

A path from a request is joined to the root, resolved (symlinks too), and refused when the result is not
inside the resolved root, so neither ``..`` nor an absolute path nor a link pointing out can reach a file
the server would not serve itself.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from workbench.errors import InvalidInput

MAX_PATH_CHARS = 1024


def resolve_under(root: Path, relative: str) -> Path:
    """``relative`` (a '/'-separated path from the server root, '' for the root) as an absolute path inside
    ``root``; InvalidInput when it is absolute, names a parent (``..``) or resolves outside the root."""
    if not isinstance(relative, str):
        raise InvalidInput(f"a path must be a string, got {type(relative).__name__}")
    if len(relative) > MAX_PATH_CHARS or "\x00" in relative:
        raise InvalidInput("the path is too long or holds a NUL character")
    text = relative.strip().replace("\\", "/")
    pure = PurePosixPath(text)
    if pure.is_absolute():
        raise InvalidInput(f"{relative!r} is absolute: give a path relative to the server root")
    if ".." in pure.parts:
        raise InvalidInput(f"{relative!r} names a parent folder ('..'): paths stay inside the server root")
    base = root.resolve()
    target = (base / pure).resolve()
    if target != base and base not in target.parents:
        raise InvalidInput(f"{relative!r} points outside the server root")
    return target


def relative_to_root(root: Path, path: Path) -> str:
    """The '/'-separated path of ``path`` from the server root, as the contents API names it."""
    return path.resolve().relative_to(root.resolve()).as_posix()
