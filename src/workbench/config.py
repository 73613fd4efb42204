"""Project paths and run settings. Nothing else lives here."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Settings", "find_project_root", "settings"]


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
        return int(os.environ.get("WORKBENCH_CELL_TIMEOUT", "1800"))

    @property
    def kernel_start_timeout_s(self) -> int:
        """Longest the kernel may take to start (``WORKBENCH_KERNEL_START_TIMEOUT``)."""
        return int(os.environ.get("WORKBENCH_KERNEL_START_TIMEOUT", "120"))


def settings() -> Settings:
    """Settings for the project found from the current directory (see :func:`find_project_root`)."""
    return Settings(root=find_project_root())
