"""The stage notebooks as templates: list them, copy one under a unique name, start a new project.

Copies never overwrite: a name that is taken gets a ``-1``, ``-2``, ... suffix, and the file is created
with exclusive mode so two concurrent copies cannot pick the same name.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import InvalidInput, NotFound
from workbench.lineage import STAGES
from workbench.pipeline import NOTEBOOKS
from workbench.server.paths import relative_to_root, resolve_under

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,99}$")
MAX_SUFFIX = 1000

STAGE_TITLES = {"data": "Data", "features": "Features", "train": "Training", "registry": "Registry",
                "deploy": "Deployment", "monitor": "Monitoring"}


@dataclass(frozen=True)
class Template:
    stage: str
    title: str
    notebook: str

    def to_dict(self) -> dict[str, str]:
        return {"stage": self.stage, "title": self.title, "notebook": self.notebook}


def default_template_dir() -> Path:
    """Where the stage notebooks live: shipped inside the package when installed from a wheel
    (``workbench/templates``), else the source checkout's ``notebooks/``."""
    package = Path(__file__).resolve().parents[1]
    shipped = package / "templates"
    return shipped if shipped.is_dir() else package.parent / "notebooks"


def check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or name.strip() != name:
        raise InvalidInput(f"{what} {name!r} must be 1-100 letters, digits, spaces, '_', '-' or '.', starting "
                           "with a letter or digit")
    return name


def _unique(folder: Path, stem: str, suffix: str) -> Path:
    for n in range(MAX_SUFFIX):
        candidate = folder / (f"{stem}{suffix}" if n == 0 else f"{stem}-{n}{suffix}")
        if not candidate.exists():
            return candidate
    raise InvalidInput(f"{folder} already holds {MAX_SUFFIX} copies named {stem}*{suffix}: pick another name")


class TemplateLibrary:
    """The six stage notebooks of ``template_dir``, copied into folders under ``root``."""

    def __init__(self, root: Path, template_dir: Path) -> None:
        self.root = root.resolve()
        self.template_dir = template_dir

    def templates(self) -> list[Template]:
        return [Template(s, STAGE_TITLES[s], NOTEBOOKS[s]) for s in STAGES
                if (self.template_dir / NOTEBOOKS[s]).is_file()]

    def _source(self, stage: str) -> Path:
        if stage not in NOTEBOOKS:
            raise InvalidInput(f"unknown stage {stage!r}; stages are {list(STAGES)}")
        source = self.template_dir / NOTEBOOKS[stage]
        if not source.is_file():
            raise NotFound(f"the template of stage {stage!r} ({source}) is missing")
        return source

    def copy(self, stage: str, folder: str = "") -> str:
        """Copy the stage's notebook into ``folder`` (relative to the root, must exist); returns the new
        file's path relative to the root."""
        source = self._source(stage)
        target_dir = resolve_under(self.root, folder)
        if not target_dir.is_dir():
            raise NotFound(f"folder {folder!r} does not exist under the server root")
        stem, suffix = source.stem, source.suffix
        for _ in range(MAX_SUFFIX):
            target = _unique(target_dir, stem, suffix)
            try:
                with target.open("xb") as out, source.open("rb") as src:
                    shutil.copyfileobj(src, out)
            except FileExistsError:
                continue  # taken between the check and the open: try the next name
            return relative_to_root(self.root, target)
        raise InvalidInput(f"could not find a free name for {stem}{suffix} in {folder!r}")

    def new_project(self, name: str, folder: str = "", config_text: str = "") -> dict[str, object]:
        """A new folder ``<folder>/<name>`` (``-1``, ``-2``... when taken) holding ``workbench.toml`` and
        ``notebooks/`` with the six stage notebooks, ready for ``workbench run`` or Run stage."""
        check_name(name, "project name")
        parent = resolve_under(self.root, folder)
        if not parent.is_dir():
            raise NotFound(f"folder {folder!r} does not exist under the server root")
        templates = self.templates()
        if not templates:
            raise NotFound(f"no stage notebooks in {self.template_dir}")
        for n in range(MAX_SUFFIX):
            project = parent / (name if n == 0 else f"{name}-{n}")
            try:
                project.mkdir()
            except FileExistsError:
                continue
            break
        else:
            raise InvalidInput(f"{MAX_SUFFIX} projects named {name}* exist: pick another name")
        (project / "notebooks").mkdir()
        notebooks = []
        for template in templates:
            shutil.copyfile(self.template_dir / template.notebook, project / "notebooks" / template.notebook)
            notebooks.append(relative_to_root(self.root, project / "notebooks" / template.notebook))
        (project / "workbench.toml").write_text(config_text or f"# workbench project {project.name}\n")
        return {"path": relative_to_root(self.root, project), "notebooks": notebooks,
                "config": relative_to_root(self.root, project / "workbench.toml")}
