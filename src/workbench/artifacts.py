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
    artifacts/<name>.skops|.parquet|.json    notebook models (skops, never pickle), held-out predictions, SHAP
    results.json        what the notebooks recorded (report summaries, gates, artifacts with sha256)
    report.html         the self-contained run report

The manifest's ``evidence`` (written when the run ends) holds the sha256 of every file a gate or the model card
reads (:data:`EVIDENCE_GLOBS`); :meth:`RunFolder.evidence` verifies a file's bytes against it before anything
parses them. Notebook models are skops files loaded with an explicit trusted-type list (:data:`TRUSTED_TYPES`,
extended by :func:`register_trusted_types`): a type not listed is refused, and nothing is ever unpickled.

Model package (a version in the BentoML model store)::

    model.onnx, serving.json, contract.json, parity.json, gates.json, model_card.md|.html,
    leaderboard.json, fairness.json, reference_profile.json, monitoring.json,
    package.json        {"format": 1, "files": {"<relative path>": "<sha256>"}}: every other file (BentoML's own
                        model.yaml excepted); its sha256 is the package's ``package_sha256``
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RunError, WorkbenchError

__all__ = ["RunFolder", "ModelPackage", "Evidence", "EvidenceError", "sha256_file", "sha256_bytes",
           "collect_evidence", "EVIDENCE_GLOBS", "MODEL_SUFFIX", "TRUSTED_TYPES", "register_trusted_types",
           "dump_model", "load_model_bytes", "UntrustedModelError"]


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# =============================================================================================== notebook models
MODEL_SUFFIX = ".skops"

TRUSTED_TYPES: set[str] = {
    # beyond skops' defaults (scikit-learn estimators, numpy arrays, builtins), what the candidates really hold,
    # found with skops.io.get_untrusted_types on each fitted family:
    "numpy.dtype",  # every pipeline
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",  # hgb classifier / regressor
    "sklearn.calibration._CalibratedClassifier",  # CalibratedClassifierCV (brief.calibration)
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.model_selection._split.StratifiedKFold",  # the CV splitter a CalibratedClassifierCV keeps as ``cv``
    "collections.OrderedDict",  # lightgbm's sklearn estimators keep one
    "lightgbm.basic.Booster", "lightgbm.sklearn.LGBMClassifier", "lightgbm.sklearn.LGBMRegressor",
    "xgboost.core.Booster", "xgboost.sklearn.XGBClassifier", "xgboost.sklearn.XGBRegressor",
    # workbench's own thin subclasses of the LightGBM / XGBoost estimators (workbench.modeling._gbm)
    "workbench.modeling._gbm.WorkbenchLGBMClassifier", "workbench.modeling._gbm.WorkbenchLGBMRegressor",
    "workbench.modeling._gbm.WorkbenchXGBClassifier", "workbench.modeling._gbm.WorkbenchXGBRegressor",
}
"""Types a notebook model file may contain besides skops' own defaults. A new model family adds its types with
:func:`register_trusted_types` (where it is defined); a file holding any other type is refused unloaded."""


def register_trusted_types(*names: str) -> None:
    """Allow more types (fully qualified, e.g. ``"lightgbm.sklearn.LGBMRanker"``) in notebook model files."""
    TRUSTED_TYPES.update(names)


class UntrustedModelError(RunError):
    """A notebook model file is not a skops file, or holds a type that is not trusted: it was not loaded."""


def dump_model(model: Any) -> bytes:
    """A fitted model as skops bytes (``skops.io``: no pickle)."""
    import skops.io as sio

    return sio.dumps(model)


def load_model_bytes(blob: bytes, *, source: str = "model") -> Any:
    """Load skops bytes, trusting only :data:`TRUSTED_TYPES` (and skops' defaults).

    Raises
    ------
    UntrustedModelError
        Not a skops file (a pickle, say: its payload never runs), or a type outside the trusted list.
    """
    import zipfile

    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(data=blob)
    except (zipfile.BadZipFile, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise UntrustedModelError(f"{source} is not a skops model file ({type(exc).__name__}: {exc}); it was not "
                                  "loaded (models are never unpickled)",
                                  hint="run the prototype phase again to save the models with skops") from None
    refused = sorted(set(untrusted) - TRUSTED_TYPES)
    if refused:
        raise UntrustedModelError(f"{source} holds types that are not trusted: {', '.join(refused)}; it was not "
                                  "loaded",
                                  hint="if this model family is legitimate, add its types with "
                                       "workbench.artifacts.register_trusted_types(...)")
    try:
        return sio.loads(blob, trusted=sorted(TRUSTED_TYPES & set(untrusted)))
    except Exception as exc:  # noqa: BLE001 - skops raises many types on a malformed file
        raise UntrustedModelError(f"{source} could not be loaded by skops ({type(exc).__name__}: {exc})",
                                  hint="run the prototype phase again") from None


# =============================================================================================== evidence
EVIDENCE_GLOBS = ("reports/*.json", "artifacts/*", "brief.yaml", "results.json")
"""The files of a run folder whose sha256 the manifest's ``evidence`` records when the run ends."""


def collect_evidence(run_dir: str | Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every evidence file in a run folder (hidden/temporary files left out)."""
    root = Path(run_dir)
    out = {}
    for pattern in EVIDENCE_GLOBS:
        for p in sorted(root.glob(pattern)):
            if p.is_file() and not p.name.startswith("."):
                out[p.relative_to(root).as_posix()] = sha256_file(p)
    return out


class EvidenceError(RunError):
    """An evidence file differs from the sha256 the run recorded, is missing, or was never recorded."""

    def __init__(self, message: str, *, file: str, hint: str | None = None) -> None:
        self.file = file
        super().__init__(message, hint=hint or "the run folder was edited after the run; run again")


class Evidence:
    """A run's evidence record (``manifest["evidence"]``) and verified reads of the files it covers.

    Each read hashes the very bytes it returns (no check-then-read window)."""

    def __init__(self, root: Path, record: dict[str, str] | None, run_id: str = "") -> None:
        self.root, self.record, self.run_id = Path(root), record, run_id

    @property
    def recorded(self) -> bool:
        return bool(self.record)

    def problems(self) -> list[tuple[str, str]]:
        """Every (file, what is wrong): edited, missing, or an evidence-shaped file that was never recorded."""
        if not self.record:
            return [("(manifest)", "the run recorded no evidence (made before evidence hashing): run again")]
        out = []
        for rel, expected in sorted(self.record.items()):
            p = self.root / rel
            if not p.is_file():
                out.append((rel, "missing"))
            elif sha256_file(p) != expected:
                out.append((rel, "edited (sha256 differs from the manifest)"))
        for rel in collect_evidence(self.root):
            if rel not in self.record:
                out.append((rel, "not in the run's evidence (added after the run)"))
        return out

    def read_bytes(self, rel: str, *, required: bool = True) -> bytes | None:
        p = self.root / rel
        expected = (self.record or {}).get(rel)
        if expected is None:
            if not required and not p.exists():
                return None
            raise EvidenceError(f"run {self.run_id}: {rel} is not in the run's evidence record", file=rel)
        if not p.is_file():
            raise EvidenceError(f"run {self.run_id}: {rel} is missing", file=rel)
        blob = p.read_bytes()
        actual = sha256_bytes(blob)
        if actual != expected:
            raise EvidenceError(f"run {self.run_id}: {rel} has sha256 {actual[:12]}, the run recorded "
                                f"{expected[:12]}: it was edited after the run", file=rel)
        return blob

    def json(self, rel: str, *, required: bool = True) -> Any:
        blob = self.read_bytes(rel, required=required)
        if blob is None:
            return None
        try:
            return json.loads(blob.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EvidenceError(f"run {self.run_id}: {rel} is not valid JSON ({exc})", file=rel) from None

    def frame(self, rel: str) -> Any:
        import polars as pl

        return pl.read_parquet(io.BytesIO(self.read_bytes(rel)))


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

    #: Saved reports that read back as their report objects (``report_object``); ``contract`` has ``contract()``.
    REPORT_OBJECTS = ("evaluation", "fairness", "cv", "leakage")

    def report_names(self) -> list[str]:
        """The reports the run saved (``reports/<name>.json``), sorted."""
        folder = self.path / self.REPORTS
        return sorted(p.stem for p in folder.glob("*.json") if not p.name.startswith(".")) if folder.is_dir() else []

    def report_object(self, name: str, *, required: bool = True) -> Any:
        """A saved report read back as its object: ``evaluation`` (the selected model's held-out report) and
        ``fairness`` as the class of the task they record (:func:`workbench.evaluation.evaluation_report_from_dict`,
        :func:`~workbench.evaluation.fairness_report_from_dict`), ``cv`` as a ``CVReport``, ``leakage`` as a
        ``LeakageReport``; None when the report is missing and not ``required``.

        Raises
        ------
        RunError
            ``name`` is not one of :data:`REPORT_OBJECTS`, or the report is missing (``required``), not JSON, or
            does not read back as its report.
        """
        if name not in self.REPORT_OBJECTS:
            raise RunError(f"reports/{name}.json has no report object to read back",
                           hint=f"read one of: {', '.join(self.REPORT_OBJECTS)}; or the dict with report({name!r})")
        d = self.report(name, required=required)
        if d is None:
            return None
        from .evaluation import CVReport, evaluation_report_from_dict, fairness_report_from_dict
        from .evaluation.leakage import LeakageReport

        readers = {"evaluation": evaluation_report_from_dict, "fairness": fairness_report_from_dict,
                   "cv": CVReport.from_dict, "leakage": LeakageReport.from_dict}
        try:
            return readers[name](d)
        except (TypeError, ValueError, KeyError, AttributeError, WorkbenchError) as exc:
            msg = exc.message if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {exc}"
            raise RunError(f"run {self.run_id}: reports/{name}.json does not read back as a report ({msg})",
                           hint="the run folder was edited or written by another version; run again") from None

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

    def evidence(self, manifest: dict | None = None) -> Evidence:
        """The run's evidence record with verified reads (see :class:`Evidence`)."""
        manifest = manifest or self.manifest()
        return Evidence(self.path, manifest.get("evidence"), self.run_id)

    def model_bytes(self, name: str, manifest: dict | None = None) -> tuple[bytes | None, dict | None, str | None]:
        """The notebook model artifact ``model_<name>``: (bytes, the manifest's record, actual sha256)."""
        manifest = manifest or self.manifest()
        art = (manifest.get("artifacts") or {}).get(f"model_{name}")
        if not art or not (self.path / art["path"]).is_file():
            return None, art, None
        blob = (self.path / art["path"]).read_bytes()
        return blob, art, hashlib.sha256(blob).hexdigest()


    def load_model(self, name: str, manifest: dict | None = None) -> Any:
        """The notebook model ``model_<name>``: a skops file, loaded only after its sha256 matches the one the run
        recorded, and then only with the trusted types (:data:`TRUSTED_TYPES`).

        Raises
        ------
        RunError
            The artifact is missing or its sha256 differs from the manifest (then it is never read).
        UntrustedModelError
            It is not a skops file (an old pickle, say) or holds a type that is not trusted.
        """
        blob, art, actual = self.model_bytes(name, manifest)
        if blob is None or not art or actual != art.get("sha256"):
            raise RunError(f"run {self.run_id}: the model artifact model_{name} is missing or its sha256 "
                           f"{(actual or '')[:12]} differs from the manifest's {str((art or {}).get('sha256'))[:12]}",
                           hint="the run folder was altered; run again")
        return load_model_bytes(blob, source=f"run {self.run_id}: {art['path']}")


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
    PACKAGE = "package.json"
    BENTOML_OWN = ("model.yaml",)

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

    # ------------------------------------------------------------------ the package manifest
    @staticmethod
    def manifest_bytes(files: dict[str, bytes]) -> bytes:
        """``package.json``'s bytes for a package holding ``files`` (relative path -> bytes)."""
        listing = {rel: sha256_bytes(files[rel]) for rel in sorted(files)}
        return (json.dumps({"format": 1, "files": listing}, indent=2, sort_keys=True) + "\n").encode("utf-8")

    def verify(self, package_sha256: str | None = None) -> dict:
        """Check ``package.json`` (against ``package_sha256`` when given), every file it lists, and that no other
        file is in the folder (BentoML's ``model.yaml`` excepted). Returns the parsed package manifest.

        Raises
        ------
        WorkbenchError
            Naming the first file that differs, is missing or is not listed.
        """
        p = self.path / self.PACKAGE
        if not p.is_file():
            raise WorkbenchError(f"model package {self.path.name} has no {self.PACKAGE}",
                                 hint="promote the model again")
        blob = p.read_bytes()
        if package_sha256 is not None and sha256_bytes(blob) != package_sha256:
            raise WorkbenchError(f"{self.PACKAGE} of {self.path.name} has sha256 {sha256_bytes(blob)[:12]}, "
                                 f"the registry recorded {package_sha256[:12]}", hint="promote the model again")
        listing = json.loads(blob.decode("utf-8"))["files"]
        for rel, expected in listing.items():
            f = self.path / rel
            if not f.is_file():
                raise WorkbenchError(f"{rel} of {self.path.name} is missing", hint="promote the model again")
            if sha256_file(f) != expected:
                raise WorkbenchError(f"{rel} of {self.path.name} differs from {self.PACKAGE}",
                                     hint="the package was edited; promote the model again")
        for f in self.path.rglob("*"):
            rel = f.relative_to(self.path).as_posix()
            if f.is_file() and rel not in listing and rel != self.PACKAGE and rel not in self.BENTOML_OWN:
                raise WorkbenchError(f"{rel} in {self.path.name} is not listed in {self.PACKAGE}",
                                     hint="the package was edited; promote the model again")
        return listing
