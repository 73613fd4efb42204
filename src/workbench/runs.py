"""Reproducible runs: papermill executes the phase notebooks into ``papermill_runs/<run-id>/``.

A run folder holds the executed notebooks, ``params.yaml``, ``manifest.json`` and whatever the notebooks saved
through :class:`RunContext` (``reports/*.json|html``, ``figures/*.png``, ``artifacts/``, ``results.json``).

The manifest is written when the run starts (status ``running``, with the runner's pid) and rewritten atomically
when it ends (``succeeded``, ``failed``, ``stopped`` at a gate, or ``interrupted``). A run whose manifest still says
``running`` while its pid is gone crashed, and :func:`list_runs` reports it as ``crashed``: a crashed run never
looks finished. Every cell has a time limit and kernel death is detected, so a run never hangs.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import hashlib
import importlib.metadata as md
import json
import logging
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ._report import atomic_write_text, jsonable
from .config import Settings
from .config import settings as _settings
from .errors import NotebookCellError, ParameterError, RunError, WorkbenchError

__all__ = [
    "PHASES",
    "RunChoice",
    "RunContext",
    "RunResult",
    "execute_run",
    "list_runs",
    "promotable_reason",
    "read_manifest",
    "resolve_run",
    "choose_run",
]

log = logging.getLogger(__name__)

PHASES: dict[str, str] = {"discovery": "01_discovery.ipynb", "prototype": "02_prototype.ipynb"}
STACK = ["workbench", "jupyterlab", "marimo", "papermill", "polars", "pyarrow", "scikit-learn", "shap",
         "fairlearn", "onnx", "skl2onnx", "onnxruntime", "bentoml", "numpy", "pandas", "pydantic",
         "protobuf", "matplotlib", "ipykernel", "nbclient"]
FINAL = ("succeeded", "failed", "stopped", "interrupted")


# =============================================================================================== inside notebooks
class RunContext:
    """What a notebook uses to save into its run folder. With an empty ``run_dir`` nothing is written
    (interactive exploration), but every call still works, so the notebook's cells are the same either way."""

    def __init__(self, run_dir: str | Path | None) -> None:
        self.dir = Path(run_dir).resolve() if run_dir else None
        if self.dir:
            self.dir.mkdir(parents=True, exist_ok=True)

    @property
    def saving(self) -> bool:
        return self.dir is not None

    def path(self, *parts: str) -> Path | None:
        return self.dir.joinpath(*parts) if self.dir else None

    def _results(self) -> dict:
        p = self.path("results.json")
        return json.loads(p.read_text()) if p and p.exists() else {"reports": {}, "gates": {}}

    def _write_results(self, results: dict) -> None:
        if self.dir:
            atomic_write_text(self.dir / "results.json", json.dumps(jsonable(results), indent=2) + "\n")

    def save_report(self, name: str, report: Any) -> Path | None:
        """Save a report object as ``reports/<name>.json`` (+ ``.html``) and keep its summary for the manifest."""
        if not self.dir:
            return None
        path = report.save(self.dir / "reports" / f"{name}.json")
        if hasattr(report, "save_html"):
            report.save_html(self.dir / "reports" / f"{name}.html")
        results = self._results()
        results["reports"][name] = report.summary() if hasattr(report, "summary") else {}
        self._write_results(results)
        return path

    def save_json(self, name: str, obj: Any) -> Path | None:
        if not self.dir:
            return None
        return atomic_write_text(self.dir / "artifacts" / f"{name}.json", json.dumps(jsonable(obj), indent=2) + "\n")

    def save_frame(self, name: str, df: Any) -> Path | None:
        """Save a polars (or pandas) frame as ``artifacts/<name>.parquet``, atomically."""
        if not self.dir:
            return None
        import polars as pl

        frame = df if isinstance(df, pl.DataFrame) else pl.from_pandas(df)
        dest = self.dir / "artifacts" / f"{name}.parquet"
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        frame.write_parquet(tmp)
        os.replace(tmp, dest)
        return dest

    def save_model(self, name: str, model: Any) -> dict | None:
        """Save a fitted notebook-side model with skops to ``artifacts/<name>.skops``; return its path and sha256.

        Never pickle: promotion and the app load it back with :meth:`workbench.artifacts.RunFolder.load_model`,
        which verifies the sha256 and loads only trusted types; the serving path never reads it at all.

        Raises
        ------
        UntrustedModelError
            The model holds a type :data:`workbench.artifacts.TRUSTED_TYPES` does not list (it could not be loaded
            back at promotion): refused now, when the run is made, rather than later.
        """
        if not self.dir:
            return None
        from ._report import atomic_write_bytes
        from .artifacts import MODEL_SUFFIX, dump_model, load_model_bytes

        blob = dump_model(model)
        load_model_bytes(blob, source=f"model {name}")  # the types must be loadable at promotion: check now
        dest = atomic_write_bytes(self.dir / "artifacts" / f"{name}{MODEL_SUFFIX}", blob)
        info = {"path": dest.relative_to(self.dir).as_posix(), "sha256": hashlib.sha256(blob).hexdigest(),
                "bytes": len(blob), "format": "skops"}
        results = self._results()
        results.setdefault("artifacts", {})[name] = info
        self._write_results(results)
        return info

    def save_figure(self, name: str, fig: Any) -> Path | None:
        """Save a matplotlib figure as ``figures/<name>.png`` (written to a temp file, then renamed)."""
        if not self.dir or fig is None:
            return None
        dest = self.dir / "figures" / f"{name}.png"
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp.png")
        fig.savefig(tmp, dpi=110, bbox_inches="tight", metadata={"Software": None})
        os.replace(tmp, dest)
        return dest

    def record_gate(self, name: str, *, passed: bool, value: Any = None, threshold: Any = None,
                    message: str = "") -> dict:
        """Record a go/no-go gate. A failed gate stops the run after this notebook."""
        gate = {"passed": bool(passed), "value": value, "threshold": threshold, "message": message}
        results = self._results()
        results["gates"][name] = gate
        self._write_results(results)
        return gate


# =============================================================================================== the runner
@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    status: str
    manifest: dict
    error: WorkbenchError | None = None

    @property
    def exit_code(self) -> int:
        if self.status == "succeeded":
            return 0
        if self.status == "stopped":
            return 3
        if self.status == "interrupted":
            return 130
        return self.error.exit_code if self.error is not None else 1


def _git(root: Path) -> dict:
    def run(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = run("rev-parse", "HEAD")
    status = run("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _versions() -> dict[str, str | None]:
    out = {}
    for name in STACK:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def freeze_brief(brief: Any, run_dir: Path) -> dict:
    """Write the validated brief into the run folder as ``brief.yaml`` (data paths made absolute, so it reads the
    same files from its new folder) and return ``{"path", "sha256"}`` for the manifest."""
    content = brief.to_dict()
    data = dict(content["data"])
    data["train"] = str(brief.train_path)
    if brief.test_path is not None:
        data["test"] = str(brief.test_path)
    content["data"] = data
    header = (f"# The brief of run {run_dir.name}, frozen when the run started (from {brief.source}, sha256 "
              f"{brief.sha256()}).\n# The notebooks and `workbench promote` read this copy; do not edit it.\n")
    text = header + yaml.safe_dump(content, sort_keys=False, allow_unicode=True)
    path = atomic_write_text(run_dir / "brief.yaml", text)
    return {"path": path.name, "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")


def new_run_id(brief_name: str, runs_dir: Path) -> str:
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', brief_name)}"
    run_id, i = base, 1
    while (runs_dir / run_id).exists():
        i += 1
        run_id = f"{base}-{i}"
    return run_id


def notebook_parameters(path: Path) -> dict[str, dict]:
    """The parameters a notebook declares (name -> papermill's inferred type, default and help)."""
    import papermill

    return dict(papermill.inspect_notebook(str(path)))


def _resolve_params(phases: list[str], nb_paths: dict[str, Path], base: dict[str, Any],
                    overrides: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per phase, the parameters to inject: declared defaults < runner values < ``-p`` overrides."""
    from .params import parse_cli_value, validate_params

    declared = {ph: notebook_parameters(nb_paths[ph]) for ph in phases}
    known = set().union(*(d.keys() for d in declared.values()))
    for key in overrides:
        if key not in known:
            raise ParameterError(f"no notebook of this run declares it ({', '.join(phases)})", parameter=key,
                                 hint="known parameters: " + ", ".join(sorted(known - {"run_dir", "brief_path"})))
        if key in ("run_dir", "brief_path"):
            raise ParameterError("is set by the runner", parameter=key,
                                 hint="use --brief to choose the brief; runs always land in papermill_runs/")
    out, validated = {}, {}
    for ph in phases:
        values = {k: parse_cli_value(v) for k, v in overrides.items() if k in declared[ph]}
        values = {**{k: v for k, v in base.items() if k in declared[ph]}, **values}
        validated[ph] = validate_params(ph, {**{k: _default(d) for k, d in declared[ph].items()}, **values})
        out[ph] = values
    return out, validated


def _default(spec: dict) -> Any:
    try:
        return parse_default(spec["default"])
    except Exception:  # noqa: BLE001 - a default papermill cannot parse is left to the notebook
        return spec["default"]


def parse_default(text: str) -> Any:
    import ast

    return ast.literal_eval(text)


def _cell_error(exc: Exception, notebook: str) -> WorkbenchError:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        ename, evalue = exc.ename, exc.evalue
        user_error = ename in {"BriefError", "DataError", "ContractError", "ParameterError"}
        err = NotebookCellError(f"{ename}: {evalue}", notebook=notebook, cell=exc.cell_index, ename=ename,
                                evalue=evalue, hint="open the executed notebook to see the cell and traceback")
        if user_error:
            err.exit_code = 2
        return err
    name = type(exc).__name__
    if name == "DeadKernelError":
        return NotebookCellError("the kernel died (out of memory or a crash in native code)", notebook=notebook,
                                 cell=None, ename=name, evalue=str(exc),
                                 hint="check memory use; try a smaller -p sample_rows")
    if name == "CellTimeoutError" or "timed out" in str(exc).lower():
        return NotebookCellError(f"a cell exceeded the time limit: {str(exc).splitlines()[0] if str(exc) else ''}",
                                 notebook=notebook, cell=None, ename=name, evalue=str(exc),
                                 hint="raise --cell-timeout (or WORKBENCH_CELL_TIMEOUT) if the work is legitimately long")
    return NotebookCellError(f"{name}: {exc}", notebook=notebook, cell=None, ename=name, evalue=str(exc))


def execute_run(*, brief_path: str | Path, phases: list[str] | None = None, params: dict[str, str] | None = None,
                run_id: str | None = None, cfg: Settings | None = None, cell_timeout: int | None = None,
                kernel_timeout: int | None = None, on_event: Callable[[str, dict], None] | None = None,
                ) -> RunResult:
    """Execute the phase notebooks of one run.

    Parameters
    ----------
    brief_path:
        The problem brief. It is validated, and the data it names is loaded and checked, before any kernel starts.
    phases:
        Which phases to run, in lifecycle order (default: every phase whose notebook exists).
    params:
        ``-p key=value`` overrides (strings, parsed like YAML and validated against the notebooks' parameters).
    on_event:
        Progress callback: ``(event, info)`` with events ``run_start``, ``notebook_start``, ``cell_start``,
        ``notebook_end``, ``run_end``.

    Raises
    ------
    BriefError, DataError, ParameterError
        Before the run folder is created, so a bad input leaves nothing behind.
    """
    from .brief import load_brief
    from .data.io import load_dataset

    cfg = cfg or _settings()
    emit = on_event or (lambda event, info: None)
    brief_path = Path(brief_path).resolve()
    brief = load_brief(brief_path)
    available = [ph for ph, nb in PHASES.items() if (cfg.notebooks_dir / nb).is_file()]
    phases = phases or available
    for ph in phases:
        if ph not in PHASES:
            raise ParameterError(f"unknown phase '{ph}'", parameter="phase", hint=f"choose from {', '.join(PHASES)}")
        if ph not in available:
            raise RunError(f"the {ph} notebook {cfg.notebooks_dir / PHASES[ph]} does not exist")
    phases = [ph for ph in PHASES if ph in phases]
    nb_paths = {ph: cfg.notebooks_dir / PHASES[ph] for ph in phases}
    overrides = dict(params or {})
    base = {"brief_path": str(brief_path)}
    per_phase, validated = _resolve_params(phases, nb_paths, base, overrides)
    seed = validated[phases[0]].seed
    # Pre-flight: the data loads and matches the brief (clear error, no run folder).
    dataset = load_dataset(brief)
    cell_timeout = cell_timeout or cfg.cell_timeout_s
    kernel_timeout = kernel_timeout or cfg.kernel_start_timeout_s

    runs_dir = cfg.runs_dir
    runs_dir.mkdir(parents=True, exist_ok=True)
    run_id = run_id or new_run_id(brief.name, runs_dir)
    run_dir = runs_dir / run_id
    try:
        run_dir.mkdir()
    except FileExistsError:
        raise RunError(f"run folder {run_dir} already exists", hint="choose another --run-id") from None
    for ph in phases:
        per_phase[ph]["run_dir"] = str(run_dir)

    manifest: dict[str, Any] = {
        "run_id": run_id,
        "status": "running",
        "pid": os.getpid(),
        "host": platform.node(),
        "user": getpass.getuser(),
        "command": sys.argv,
        "created_at": _now(),
        "started_at": _now(),
        "finished_at": None,
        "duration_s": None,
        "phases": phases,
        "notebooks": [],
        "parameters": {ph: {**validated[ph].model_dump(), **per_phase[ph]} for ph in phases},
        "seed": seed,
        "brief": {"path": str(brief_path), "sha256": brief.sha256(), "name": brief.name, "content": brief.to_dict()},
        "data": {k: v.to_dict() for k, v in dataset.sources.items()},
        "git": _git(cfg.root),
        "lock": {"path": str(cfg.lock_file), "sha256": _sha256(cfg.lock_file)},
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation(),
                   "executable": sys.executable, "platform": platform.platform()},
        "packages": _versions(),
        "limits": {"cell_timeout_s": cell_timeout, "kernel_start_timeout_s": kernel_timeout},
        "results": {},
        "gates": {},
        "error": None,
    }
    del dataset
    # Freeze the brief: the notebooks and `workbench promote` read this copy, not the original (which may change).
    frozen = freeze_brief(brief, run_dir)
    manifest["brief"]["frozen"] = frozen
    for ph in phases:
        per_phase[ph]["brief_path"] = str(run_dir / frozen["path"])
    manifest["parameters"] = {ph: {**validated[ph].model_dump(), **per_phase[ph]} for ph in phases}
    _write_manifest(run_dir, manifest)
    atomic_write_text(run_dir / "params.yaml", yaml.safe_dump(per_phase, sort_keys=True))
    emit("run_start", {"run_id": run_id, "run_dir": str(run_dir), "phases": phases})

    import papermill

    # Kernels inherit the environment. One BLAS/OpenMP thread per kernel unless the user says otherwise:
    # on small shared machines oversubscribed threads made a 0.4 s fit take 30 s.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    t_run = time.perf_counter()
    status, error = "succeeded", None
    try:
        for ph in phases:
            nb_in = nb_paths[ph]
            nb_out = run_dir / nb_in.name
            entry: dict[str, Any] = {"phase": ph, "input": str(nb_in.relative_to(cfg.root)) if nb_in.is_relative_to(cfg.root)
                                     else str(nb_in), "output": nb_out.name, "started_at": _now(), "status": "running"}
            manifest["notebooks"].append(entry)
            _write_manifest(run_dir, manifest)
            first_cell: dict[str, float] = {"seen": 0}
            t0 = time.perf_counter()
            # +1: papermill injects a parameters cell
            n_cells = sum(1 for c in _read_cells(nb_in) if c.get("cell_type") == "code") + 1

            def cell_start(cell: Any = None, cell_index: int = 0, _ph: str = ph, _t0: float = t0,
                           _state: dict = first_cell, _n: int = n_cells, **_: Any) -> None:
                if cell is not None and cell.get("cell_type") != "code":
                    return
                _state.setdefault("t", time.perf_counter() - _t0)
                _state["seen"] += 1
                emit("cell_start", {"phase": _ph, "cell_index": cell_index, "cell": _state["seen"], "cells": _n,
                                    "source": (cell.get("source", "") if cell else "")[:80]})

            emit("notebook_start", {"phase": ph, "notebook": nb_in.name, "cells": n_cells})
            try:
                papermill.execute_notebook(
                    str(nb_in), str(nb_out), parameters=per_phase[ph], cwd=str(cfg.notebooks_dir),
                    execution_timeout=cell_timeout, start_timeout=kernel_timeout, progress_bar=False,
                    report_mode=False, request_save_on_cell_execute=True, on_cell_start=cell_start,
                    kernel_manager_class=_kernel_manager_class(),
                )
            except Exception as exc:
                _remove_kernel_dirs()
                entry.update(status="failed", finished_at=_now(), duration_s=round(time.perf_counter() - t0, 3),
                             kernel_start_s=round(first_cell.get("t", 0.0), 3))
                error = _cell_error(exc, nb_in.name)
                status = "failed"
                emit("notebook_end", {"phase": ph, "status": "failed", "duration_s": entry["duration_s"]})
                break
            _remove_kernel_dirs()
            entry.update(status="succeeded", finished_at=_now(), duration_s=round(time.perf_counter() - t0, 3),
                         kernel_start_s=round(first_cell.get("t", 0.0), 3), cell_seconds=_cell_durations(nb_out))
            results = _read_results(run_dir)
            manifest["results"] = results.get("reports", {})
            manifest["gates"] = results.get("gates", {})
            manifest["artifacts"] = results.get("artifacts", {})
            emit("notebook_end", {"phase": ph, "status": "succeeded", "duration_s": entry["duration_s"]})
            failed = {k: g for k, g in manifest["gates"].items() if not g.get("passed")}
            if failed:
                status = "stopped"
                name, gate = next(iter(failed.items()))
                error = WorkbenchError(f"gate '{name}' failed after the {ph} phase: {gate.get('message') or ''} "
                                       f"(value {gate.get('value')}, threshold {gate.get('threshold')})",
                                       hint="see the run's reports; later phases were not run")
                break
    except KeyboardInterrupt:
        status, error = "interrupted", RunError("interrupted by the user")
        raise
    finally:
        manifest["status"] = status
        manifest["error"] = error.to_dict() if error else None
        if isinstance(error, NotebookCellError):
            manifest["error"].update(notebook=error.notebook, cell=error.cell, ename=error.ename, evalue=error.evalue)
        manifest["finished_at"] = _now()
        manifest["duration_s"] = round(time.perf_counter() - t_run, 3)
        manifest.pop("pid", None)
        results = _read_results(run_dir)
        manifest["results"] = results.get("reports", manifest["results"])
        manifest["gates"] = results.get("gates", manifest["gates"])
        manifest["artifacts"] = results.get("artifacts", manifest.get("artifacts", {}))
        manifest["evidence"] = _evidence(run_dir)
        _write_manifest(run_dir, manifest)
        _write_report(run_dir, manifest)
        emit("run_end", {"run_id": run_id, "status": status, "duration_s": manifest["duration_s"]})
    return RunResult(run_id=run_id, run_dir=run_dir, status=status, manifest=manifest, error=error)


def _write_report(run_dir: Path, manifest: dict) -> None:
    """Write the run's ``report.html`` from the manifest just written; record the outcome in the manifest. A report
    that cannot be written is logged and recorded, never raised: it does not change the run's status."""
    try:
        from .report import write_run_report

        manifest["report"] = {"path": write_run_report(run_dir).name, "error": None}
    except Exception as exc:  # noqa: BLE001 - any failure is recorded, the run's outcome stands
        log.warning("could not write the run report of %s: %s", run_dir.name, exc, exc_info=True)
        manifest["report"] = {"path": None, "error": f"{type(exc).__name__}: {exc}"}
    try:
        _write_manifest(run_dir, manifest)
    except Exception:  # noqa: BLE001 - the manifest written before the report already holds the outcome
        log.warning("could not record the report outcome in %s/manifest.json", run_dir.name, exc_info=True)


def _evidence(run_dir: Path) -> dict[str, str]:
    """The sha256 of every file a gate or the model card reads (:data:`workbench.artifacts.EVIDENCE_GLOBS`)."""
    from .artifacts import collect_evidence

    try:
        return collect_evidence(run_dir)
    except OSError as exc:  # an unreadable file: record no evidence, so the run cannot be promoted
        log.warning("could not hash the evidence of %s: %s", run_dir.name, exc)
        return {}


_KERNEL_DIRS: list[str] = []
"""Private socket folders of the kernels this process started (removed when their notebook ends)."""


def _remove_kernel_dirs() -> None:
    import shutil

    while _KERNEL_DIRS:
        shutil.rmtree(_KERNEL_DIRS.pop(), ignore_errors=True)


def _kernel_manager_class() -> type:
    """Kernels talk to the runner over local IPC sockets, not TCP: nothing listens on a port, and ipykernel has
    no reason to warn about unencrypted TCP."""
    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            kwargs.setdefault("transport", "ipc")
            # jupyter_client names IPC sockets "<ip>-<port>" with ip "kernel-ipc" in the working folder and picks
            # the first free port numbers: two runs started at the same time in one checkout could bind the same
            # sockets and read each other's messages ("Invalid Signature"). A private folder per kernel cannot.
            folder = tempfile.mkdtemp(prefix="workbench-kernel-")
            _KERNEL_DIRS.append(folder)
            kwargs.setdefault("ip", str(Path(folder) / "kernel"))
            super().__init__(**kwargs)

    return IPCKernelManager


def _read_cells(path: Path) -> list[dict]:
    return json.loads(path.read_text()).get("cells", [])


def _cell_durations(nb_path: Path) -> list[float]:
    try:
        cells = _read_cells(nb_path)
    except (OSError, json.JSONDecodeError):
        return []
    return [round(float(c.get("metadata", {}).get("papermill", {}).get("duration") or 0.0), 3)
            for c in cells if c.get("cell_type") == "code"]


def _read_results(run_dir: Path) -> dict:
    p = run_dir / "results.json"
    try:
        return json.loads(p.read_text()) if p.exists() else {}
    except json.JSONDecodeError:
        return {}


def _write_manifest(run_dir: Path, manifest: dict) -> None:
    atomic_write_text(run_dir / "manifest.json", json.dumps(jsonable(manifest), indent=2) + "\n")


# =============================================================================================== reading runs
def read_manifest(run_dir: str | Path) -> dict:
    p = Path(run_dir) / "manifest.json"
    try:
        m = json.loads(p.read_text())
    except FileNotFoundError:
        raise RunError(f"{run_dir} has no manifest.json", hint="is this a run folder?") from None
    except json.JSONDecodeError as exc:
        raise RunError(f"{p} is not valid JSON ({exc})") from None
    if m.get("status") == "running" and not _pid_alive(m.get("pid"), m.get("host")):
        m["status"] = "crashed"
    return m


def _pid_alive(pid: int | None, host: str | None) -> bool:
    if pid is None or (host and host != platform.node()):
        return host != platform.node() if pid is not None else False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def list_runs(runs_dir: str | Path | None = None) -> list[dict]:
    """Manifests of every run folder, newest first by the time each run started (a run named with ``--run-id``
    sorts by its start, not its name; unreadable folders are listed as ``unreadable``, last)."""
    runs_dir = Path(runs_dir) if runs_dir else _settings().runs_dir
    if not runs_dir.is_dir():
        return []
    out = []
    for d in sorted((p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")), reverse=True):
        try:
            out.append(read_manifest(d))
        except RunError:
            out.append({"run_id": d.name, "status": "unreadable"})
    out.sort(key=_started, reverse=True)  # stable: runs that started at the same time keep the name order
    return out


_STAMP = re.compile(r"^(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})")


def _started(m: dict) -> str:
    """When a run started, as ISO-8601 text (which sorts in time order): the manifest's ``started_at``, else the
    timestamp a default run id starts with (``20261201-225936-<brief>``), else nothing (sorts last)."""
    if m.get("started_at"):
        return str(m["started_at"])
    hit = _STAMP.match(str(m.get("run_id") or ""))
    return "{}-{}-{}T{}:{}:{}".format(*hit.groups()) if hit else ""


def promotable_reason(m: dict) -> str | None:
    """Why a run (its manifest) cannot be promoted, or None when it can (succeeded, with a selected candidate)."""
    status = m.get("status")
    if status != "succeeded":
        err = (m.get("error") or {}).get("message")
        return f"{status}" + (f": {_one_line(err)}" if err and status in ("stopped", "failed") else "")
    if not ((m.get("results") or {}).get("prototype") or {}).get("selected"):
        phases = m.get("phases") or []
        return ("discovery only (no selected candidate)" if "prototype" not in phases
                else "no selected candidate")
    return None


def _one_line(text: str, limit: int = 120) -> str:
    line = str(text).splitlines()[0] if text else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _brief_name(brief: str | Path | None) -> str | None:
    """A brief's name from its name or its YAML file."""
    if brief is None:
        return None
    p = Path(brief)
    if p.suffix.lower() in (".yaml", ".yml") or p.is_file():
        from .brief import load_brief

        return load_brief(p).name
    return str(brief)


@dataclass
class RunChoice:
    """What ``latest`` resolved to: the run, the brief it belongs to, and the newer runs skipped (with why)."""

    path: Path
    run_id: str
    brief: str | None
    skipped: list[tuple[str, str]]

    def note(self) -> str | None:
        """One line for the user about the skipped runs, or None."""
        if not self.skipped:
            return None
        shown = "; ".join(f"{rid} ({why})" for rid, why in self.skipped[:3])
        more = f"; and {len(self.skipped) - 3} more" if len(self.skipped) > 3 else ""
        return f"skipped {len(self.skipped)} newer run(s) of {self.brief} that cannot be promoted: {shown}{more}"


def _run_error(message: str, *, exit_code: int, hint: str | None = None) -> RunError:
    err = RunError(message, hint=hint)
    err.exit_code = exit_code
    return err


def choose_run(ref: str, runs_dir: str | Path | None = None, *, brief: str | Path | None = None,
               promotable: bool = True) -> RunChoice:
    """Resolve ``ref`` (a run id, a run folder, or ``latest``) to a run.

    ``latest`` looks only at runs of one brief: ``brief`` (a name, or the brief's YAML file), else the only brief
    the runs folder holds runs of. With ``promotable`` (the default) it is the newest run that can be promoted
    (succeeded, with a selected candidate; :func:`promotable_reason`) and the newer runs it skipped are in
    :attr:`RunChoice.skipped`; without, the newest succeeded run.

    Raises
    ------
    RunError
        Exit code 2: the run id does not exist, runs of several briefs and no ``brief``, no run of the brief, or
        (``promotable``) a named run that cannot be promoted because it failed or has no candidate. Exit code 3: a
        named run that stopped at a go/no-go gate. Exit code 2 also when no run of the brief can be promoted
        (the message names the newest one and why).
    """
    runs_dir = Path(runs_dir) if runs_dir else _settings().runs_dir
    name = _brief_name(brief)
    if ref != "latest":
        path = _find_run(ref, runs_dir)
        m = read_manifest(path)
        run_brief = (m.get("brief") or {}).get("name")
        if name is not None and run_brief != name:
            raise _run_error(f"run {m.get('run_id', path.name)} belongs to brief {run_brief!r}, not {name!r}",
                             exit_code=2, hint="drop --brief, or choose a run of that brief (`workbench runs`)")
        if promotable:
            why = promotable_reason(m)
            if why is not None:
                raise _run_error(f"run {m.get('run_id', path.name)} cannot be promoted: {why}",
                                 exit_code=3 if m.get("status") == "stopped" else 2,
                                 hint=f"`workbench show {m.get('run_id', path.name)}` says why; promote a "
                                      "succeeded prototype run (`workbench promote latest`)")
        return RunChoice(path=path, run_id=m.get("run_id", path.name), brief=run_brief, skipped=[])
    runs = [m for m in list_runs(runs_dir) if m.get("status") != "unreadable"]
    briefs = sorted({(m.get("brief") or {}).get("name") for m in runs} - {None})
    if name is None:
        if len(briefs) > 1:
            raise _run_error(f"{runs_dir} holds runs of {len(briefs)} briefs ({', '.join(briefs)}): 'latest' needs "
                             "one", exit_code=2, hint="pass --brief NAME (or the brief's YAML), or a run id")
        name = briefs[0] if briefs else None
    mine = [m for m in runs if (m.get("brief") or {}).get("name") == name] if name else runs
    if not mine:
        raise _run_error(f"no run of brief {name!r} in {runs_dir}" if name else f"no run in {runs_dir}",
                         exit_code=2, hint="run `workbench run --brief <brief.yaml>` first"
                         + (f" (briefs with runs: {', '.join(briefs)})" if briefs and name else ""))
    skipped: list[tuple[str, str]] = []
    for m in mine:
        why = promotable_reason(m) if promotable else (None if m.get("status") == "succeeded" else m.get("status"))
        if why is None:
            return RunChoice(path=runs_dir / m["run_id"], run_id=m["run_id"], brief=name, skipped=skipped)
        skipped.append((m["run_id"], why))
    newest_id, newest_why = skipped[0]
    what = "promotable" if promotable else "succeeded"
    of = f" of brief {name!r}" if name else ""
    raise _run_error(f"no {what} run{of} in {runs_dir}: {len(skipped)} run(s), none {what}; the newest, "
                     f"{newest_id}, is {newest_why}", exit_code=2,
                     hint=f"`workbench show {newest_id}` says why; fix it and `workbench run` again")


def _find_run(ref: str, runs_dir: Path) -> Path:
    p = Path(ref)
    if p.is_dir() and (p / "manifest.json").exists():
        return p
    if (runs_dir / ref).is_dir():
        return runs_dir / ref
    raise _run_error(f"run '{ref}' not found in {runs_dir}", exit_code=2, hint="`workbench runs` lists the runs")


def resolve_run(ref: str, runs_dir: str | Path | None = None, *, status: str = "succeeded",
                brief: str | Path | None = None, promotable: bool = False) -> Path:
    """A run folder from a run id, a path, or ``latest``.

    With ``promotable``, ``latest`` is the newest run of one brief (``brief``, or the only brief in use) that can
    be promoted, the skipped ones logged, and a named run must be promotable (see :func:`choose_run`); without,
    ``latest`` is the newest run with ``status`` (of ``brief`` when given).
    A run id that does not exist is a :class:`RunError` with exit code 2.
    """
    runs_dir = Path(runs_dir) if runs_dir else _settings().runs_dir
    if promotable:
        choice = choose_run(ref, runs_dir, brief=brief, promotable=True)
        if choice.note():
            log.warning(choice.note())
        return choice.path
    if ref != "latest":
        return _find_run(ref, runs_dir)
    name = _brief_name(brief)
    for m in list_runs(runs_dir):
        if m.get("status") == status and (name is None or (m.get("brief") or {}).get("name") == name):
            return runs_dir / m["run_id"]
    raise _run_error(f"no {status} run" + (f" of brief {name!r}" if name else "") + f" in {runs_dir}",
                     exit_code=2, hint="run `workbench run` first")
