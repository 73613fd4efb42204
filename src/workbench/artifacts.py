"""The two folders later stages read: a run folder and a model package, each owned by one class.

Kedro's DataCatalog is the model: a module that needs a run's leaderboard asks :class:`RunFolder` for it instead
of spelling ``reports/leaderboard.json`` itself, and a module that needs a package's serving config asks
:class:`ModelPackage`. The layout lives here and nowhere else.

Run folder (``papermill_runs/<run-id>/``)::

    manifest.json       the run's manifest (workbench.runs)
    brief.yaml          the brief frozen at the start of the run (its sha256 is in the manifest)
    params.yaml         the parameters injected into each notebook
    01_discovery.ipynb, 02_prototype.ipynb   the executed notebooks
    reports/<name>.json|.html                report objects (contract, audit, leaderboard, fairness, shap, ...)
    figures/<name>.png
    artifacts/<name>.pkl|.parquet|.json      notebook models, held-out predictions, SHAP contributions
    results.json        what the notebooks recorded (report summaries, gates, artifacts with sha256)
    report.html         the self-contained run report

Model package (a version in the BentoML model store)::

    model.onnx, serving.json, contract.json, parity.json, gates.json, model_card.md|.html,
    leaderboard.json, fairness.json, reference_profile.json, monitoring.json
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RunError, WorkbenchError

__all__ = ["RunFolder", "ModelPackage", "sha256_file"]


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class RunFolder:
    """One run folder: its paths, its manifest, its reports and its verified artifacts."""

    path: Path

    MANIFEST = "manifest.json"
    BRIEF = "brief.yaml"
    PARAMS = "params.yaml"
    RESULTS = "results.json"
    REPORT = "report.html"
    REPORTS = "reports"
    FIGURES = "figures"
    ARTIFACTS = "artifacts"
    PREDICTIONS = "predictions"

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    # ------------------------------------------------------------------ paths
    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def manifest_path(self) -> Path:
        return self.path / self.MANIFEST

    @property
    def brief_path(self) -> Path:
        return self.path / self.BRIEF

    @property
    def report_html(self) -> Path:
        return self.path / self.REPORT

    def report_path(self, name: str, suffix: str = ".json") -> Path:
        return self.path / self.REPORTS / f"{name}{suffix}"

    def figure_path(self, name: str) -> Path:
        return self.path / self.FIGURES / f"{name}.png"

    def artifact_path(self, name: str, suffix: str) -> Path:
        return self.path / self.ARTIFACTS / f"{name}{suffix}"

    # ------------------------------------------------------------------ reading
    def manifest(self) -> dict:
        from .runs import read_manifest

        return read_manifest(self.path)

    def has_report(self, name: str) -> bool:
        return self.report_path(name).is_file()

    def report(self, name: str, *, required: bool = True) -> dict | None:
        """A report's JSON as saved by the notebook (``reports/<name>.json``)."""
        p = self.report_path(name)
        if not p.is_file():
            if required:
                raise RunError(f"run {self.run_id} has no reports/{name}.json", hint="was the prototype phase run?")
            return None
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise RunError(f"{p} is not valid JSON ({exc})", hint="the run folder was edited; run again") from None

    def contract(self) -> Any:
        from .data import DataContract

        return DataContract.load(self.report_path("contract"))

    def brief(self, manifest: dict | None = None) -> Any:
        """The brief as it was when the run started: the frozen ``brief.yaml``, verified against the manifest's
        sha256. Runs made before briefs were frozen fall back to the manifest's copy of the brief's content."""
        from .brief import Brief, load_brief

        manifest = manifest or self.manifest()
        info = manifest.get("brief") or {}
        frozen = info.get("frozen")
        if frozen and self.brief_path.is_file():
            actual = sha256_file(self.brief_path)
            if actual != frozen.get("sha256"):
                raise RunError(f"{self.brief_path} has sha256 {actual[:12]}, the manifest certifies "
                               f"{str(frozen.get('sha256'))[:12]}: the frozen brief was edited after the run",
                               hint="run again with the brief you want")
            return load_brief(self.brief_path)
        if "content" not in info:
            raise RunError(f"run {self.run_id} records no brief", hint="run again with `workbench run`")
        return Brief.model_validate({**info["content"], "source": info.get("path")})

    def predictions(self) -> Any:
        """The held-out predictions of every model (``artifacts/predictions.parquet``), or None."""
        import polars as pl

        p = self.artifact_path(self.PREDICTIONS, ".parquet")
        return pl.read_parquet(p) if p.is_file() else None

    def model_bytes(self, name: str, manifest: dict | None = None) -> tuple[bytes | None, dict | None, str | None]:
        """The notebook model artifact ``model_<name>``: (bytes, the manifest's record, actual sha256)."""
        manifest = manifest or self.manifest()
        art = (manifest.get("artifacts") or {}).get(f"model_{name}")
        if not art or not (self.path / art["path"]).is_file():
            return None, art, None
        blob = (self.path / art["path"]).read_bytes()
        return blob, art, hashlib.sha256(blob).hexdigest()


    def load_model(self, name: str, manifest: dict | None = None) -> Any:
        """The notebook model ``model_<name>``, loaded only after its sha256 matches the one the run recorded.

        Raises
        ------
        RunError
            The artifact is missing or its sha256 differs from the manifest (then it is never unpickled).
        """
        blob, art, actual = self.model_bytes(name, manifest)
        if blob is None or not art or actual != art.get("sha256"):
            raise RunError(f"run {self.run_id}: the model artifact model_{name} is missing or its sha256 "
                           f"{(actual or '')[:12]} differs from the manifest's {str((art or {}).get('sha256'))[:12]}",
                           hint="the run folder was altered; run again")
        import pickle

        return pickle.loads(blob)  # noqa: S301 - verified against the sha256 the run recorded


@dataclass(frozen=True)
class ModelPackage:
    """One model package (a folder in the BentoML model store)."""

    path: Path

    ONNX = "model.onnx"
    SERVING = "serving.json"
    CONTRACT = "contract.json"
    PARITY = "parity.json"
    GATES = "gates.json"
    CARD_MD = "model_card.md"
    CARD_HTML = "model_card.html"
    LEADERBOARD = "leaderboard.json"
    FAIRNESS = "fairness.json"
    PROFILE = "reference_profile.json"
    MONITORING = "monitoring.json"

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def file(self, name: str) -> Path:
        return self.path / name

    def read_json(self, name: str, *, required: bool = True) -> dict | None:
        p = self.path / name
        if not p.is_file():
            if required:
                raise WorkbenchError(f"model package {self.path} has no {name}",
                                     hint="the package is incomplete; promote the model again")
            return None
        return json.loads(p.read_text(encoding="utf-8"))

    def serving(self) -> dict:
        return self.read_json(self.SERVING)

    def monitoring(self) -> dict:
        return self.read_json(self.MONITORING)

    def profile(self) -> dict | None:
        return self.read_json(self.PROFILE, required=False)

    def card_markdown(self) -> str | None:
        p = self.path / self.CARD_MD
        return p.read_text(encoding="utf-8") if p.is_file() else None
