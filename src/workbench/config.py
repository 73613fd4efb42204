"""Project paths and run settings. Nothing else lives here."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Settings", "find_project_root", "settings", "resolve_brief_path", "DEFAULT_CELL_TIMEOUT_S",
           "DEFAULT_KERNEL_START_TIMEOUT_S"]

DEFAULT_CELL_TIMEOUT_S = 1800
"""Longest a notebook cell may run unless ``WORKBENCH_CELL_TIMEOUT`` or ``--cell-timeout`` says otherwise."""
DEFAULT_KERNEL_START_TIMEOUT_S = 120
"""Longest a kernel may take to start unless ``WORKBENCH_KERNEL_START_TIMEOUT`` or ``--kernel-timeout`` says so."""


def find_project_root(start: Path | None = None) -> Path:
    """Return the project root: ``$WORKBENCH_HOME`` or the nearest parent holding ``pyproject.toml`` and ``notebooks/``.

    Falls back to the current directory, so a user can run ``workbench`` from any folder that has a
    ``briefs/`` and ``data/`` of its own.
    """
    env = os.environ.get("WORKBENCH_HOME")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "pyproject.toml").is_file() and (candidate / "notebooks").is_dir():
            return candidate
    # An installed package used outside a checkout: the source tree this module came from, if any.
    src_root = Path(__file__).resolve().parents[2]
    if (src_root / "notebooks").is_dir():
        return src_root
    return here


@dataclass(frozen=True)
class Settings:
    """Where things live and how long a run may take."""

    root: Path

    @property
    def notebooks_dir(self) -> Path:
        return self.root / "notebooks"

    @property
    def runs_dir(self) -> Path:
        return Path(os.environ.get("WORKBENCH_RUNS_DIR", self.root / "papermill_runs"))

    @property
    def promotions_dir(self) -> Path:
        """Where promotion attempts (gate reports, parity certificates, model cards) are written."""
        return Path(os.environ.get("WORKBENCH_PROMOTIONS_DIR", self.runs_dir.parent / "promotions"))

    @property
    def default_brief(self) -> Path:
        return self.root / "briefs" / "adult.yaml"

    @property
    def lock_file(self) -> Path:
        return self.root / "uv.lock"

    @property
    def cell_timeout_s(self) -> int:
        """Longest a single notebook cell may run before the run fails (``WORKBENCH_CELL_TIMEOUT``)."""
        return int(os.environ.get("WORKBENCH_CELL_TIMEOUT", str(DEFAULT_CELL_TIMEOUT_S)))

    @property
    def kernel_start_timeout_s(self) -> int:
        """Longest the kernel may take to start (``WORKBENCH_KERNEL_START_TIMEOUT``)."""
        return int(os.environ.get("WORKBENCH_KERNEL_START_TIMEOUT", str(DEFAULT_KERNEL_START_TIMEOUT_S)))


def settings() -> Settings:
    """Settings for the project found from the current directory (see :func:`find_project_root`)."""
    return Settings(root=find_project_root())


def resolve_brief_path(path: str | Path, *, root: Path | None = None) -> Path:
    """The brief a notebook parameter names, wherever the notebook is run from.

    A notebook's default ``brief_path`` (``"../briefs/adult.yaml"``) is relative to ``notebooks/``, which is right
    in JupyterLab and wrong for ``papermill notebooks/01_discovery.ipynb out.ipynb`` run from the repository root.
    A relative path is tried against the current folder, then the project's ``notebooks/`` folder, then the
    project root (:func:`find_project_root`, or ``root``); the first that exists wins. An absolute path is
    returned as it is.

    Raises
    ------
    BriefError
        No candidate exists (the message lists every place tried).
    """
    from .errors import BriefError

    p = Path(path).expanduser()
    if p.is_absolute():
        if not p.is_file():
            raise BriefError("the brief does not exist", file=p, hint="pass the path of a brief YAML file")
        return p
    base = root or find_project_root()
    tried = [Path.cwd() / p, base / "notebooks" / p, base / p]
    for candidate in tried:
        if candidate.is_file():
            return candidate.resolve()
    raise BriefError("the brief does not exist", file=p,
                     hint="relative paths are tried against: " + ", ".join(str(t) for t in dict.fromkeys(tried))
                          + "; pass an existing path (e.g. -p brief_path=briefs/adult.yaml)")
