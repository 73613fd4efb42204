"""The ``workbench`` command: run the lifecycle phases, list runs, check briefs.

Every command turns a :class:`~workbench.errors.WorkbenchError` into a one-paragraph message (what, where, how to
fix) and the error's exit code: 2 for bad input (brief, data, parameters), 3 for a refused gate, 1 otherwise.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from .config import settings
from .errors import WorkbenchError

app = typer.Typer(
    name="workbench",
    help="Research-to-production workbench for tabular models: brief -> discovery -> prototype -> promotion.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def _fail(exc: WorkbenchError) -> None:
    err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
    if exc.hint:
        err_console.print(f"[bold]fix:[/] {exc.hint}", highlight=False, soft_wrap=True)
    raise typer.Exit(exc.exit_code)


def handles_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except WorkbenchError as exc:
            _fail(exc)

    return wrapper


def _parse_kv(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise WorkbenchError(f"-p expects key=value, got {item!r}", hint="e.g. -p sample_rows=2000")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show library log messages.")] = False
          ) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@app.command()
@handles_errors
def run(
    brief: Annotated[Path, typer.Option("--brief", "-b", help="Problem brief (YAML).")] = None,  # type: ignore[assignment]
    param: Annotated[list[str], typer.Option("--param", "-p", help="Notebook parameter override, key=value "
                                                                   "(repeatable). `workbench params` lists them.")] = [],  # noqa: B006
    phase: Annotated[list[str], typer.Option("--phase", help="Run only these phases (repeatable): "
                                                             "discovery, prototype. Default: all.")] = [],  # noqa: B006
    run_id: Annotated[str, typer.Option(help="Name of the run folder (default: timestamp + brief name).")] = "",
    cell_timeout: Annotated[int, typer.Option(help="Seconds a single cell may run (default 1800, "
                                                   "or WORKBENCH_CELL_TIMEOUT).")] = 0,
    kernel_timeout: Annotated[int, typer.Option(help="Seconds the kernel may take to start.")] = 0,
) -> None:
    """Execute the phase notebooks with papermill into papermill_runs/<run-id>/.

    The brief and its data are checked before any kernel starts. A failing cell, a dead kernel or a cell past its
    time limit marks the run failed (exit 1, or 2 when the cause is bad input); a failed go/no-go gate stops the
    run after that phase (exit 3).
    """
    from .runs import execute_run

    cfg = settings()
    brief_path = brief or cfg.default_brief
    tty = sys.stdout.isatty()
    state: dict[str, Any] = {}

    def on_event(event: str, info: dict) -> None:
        if event == "run_start":
            console.print(f"[bold]run[/] {info['run_id']} -> {info['run_dir']}")
        elif event == "notebook_start":
            state.update(phase=info["phase"], cells=info["cells"])
            console.print(f"[cyan]{info['phase']}[/]: executing {info['notebook']} ({info['cells']} code cells)")
        elif event == "cell_start":
            msg = f"  [{info['phase']}] cell {info['cell']}/{info['cells']}"
            if tty:
                console.print(msg, end="\r", highlight=False)
            else:
                console.print(msg, highlight=False)
        elif event == "notebook_end":
            style = "green" if info["status"] == "succeeded" else "red"
            console.print(f"  [{style}]{info['phase']} {info['status']}[/] in {info['duration_s']:.1f} s" + " " * 20)

    result = execute_run(brief_path=brief_path, phases=phase or None, params=_parse_kv(param),
                         run_id=run_id or None, cfg=cfg, cell_timeout=cell_timeout or None,
                         kernel_timeout=kernel_timeout or None, on_event=on_event)
    m = result.manifest
    _print_results(m)
    if (m.get("report") or {}).get("path"):
        console.print(f"report: {result.run_dir / m['report']['path']}", highlight=False)
    if result.status == "succeeded":
        console.print(f"[bold green]run succeeded[/] in {m['duration_s']:.1f} s: {result.run_dir}")
        return
    err = result.error
    label = {"stopped": "run stopped at a gate", "failed": "run failed"}.get(result.status, result.status)
    err_console.print(f"[bold red]{label}[/]: {err.message if err else ''}", highlight=False, soft_wrap=True)
    if err is not None and err.hint:
        err_console.print(f"[bold]fix:[/] {err.hint}", highlight=False, soft_wrap=True)
    err_console.print(f"run folder (kept): {result.run_dir}", highlight=False)
    raise typer.Exit(result.exit_code)


def _print_results(m: dict) -> None:
    res = m.get("results", {})
    audit = res.get("audit")
    if audit:
        dims = ", ".join(f"{k} {v}" for k, v in audit.get("quality_dimensions", {}).items())
        console.print(f"data quality {audit['quality_score']}/30 ({audit['quality_verdict']}): {dims}")
    for name, gate in m.get("gates", {}).items():
        mark = "[green]pass[/]" if gate.get("passed") else "[red]FAIL[/]"
        console.print(f"gate {name}: {mark} (value {gate.get('value')}, threshold {gate.get('threshold')})")


@app.command("runs")
@handles_errors
def runs_cmd(
    limit: Annotated[int, typer.Option(help="Show at most this many runs.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifests' key fields as JSON.")] = False,
) -> None:
    """List runs, newest first: id, status, brief, phases, duration and key results."""
    from .runs import list_runs

    rows = list_runs(settings().runs_dir)[:limit]
    if as_json:
        keys = ("run_id", "status", "created_at", "duration_s", "phases", "results", "gates", "error")
        print(json.dumps([{k: m.get(k) for k in keys} for m in rows], indent=2))
        return
    if not rows:
        console.print("no runs yet: `workbench run` starts one")
        return
    table = Table(title=f"runs in {settings().runs_dir}")
    for col in ("run id", "status", "started (UTC)", "brief", "phases", "seconds", "quality", "key result"):
        table.add_column(col)
    colors = {"succeeded": "green", "failed": "red", "crashed": "red", "stopped": "yellow", "running": "cyan"}
    for m in rows:
        res = m.get("results", {}) or {}
        q = res.get("audit", {}).get("quality_score")
        key = _key_result(res)
        st = m.get("status", "?")
        table.add_row(m.get("run_id", "?"), f"[{colors.get(st, 'white')}]{st}[/]",
                      (m.get("started_at") or "")[:19].replace("T", " "), (m.get("brief") or {}).get("name", ""),
                      ",".join(m.get("phases") or []), f"{m['duration_s']:.1f}" if m.get("duration_s") else "",
                      f"{q}/30" if q is not None else "", key)
    console.print(table)


def _key_result(res: dict) -> str:
    proto = res.get("prototype") or {}
    if proto.get("selected"):
        return f"{proto['selected']} {proto.get('primary_metric', '')}={proto.get('primary_value', '')}"
    audit = res.get("audit") or {}
    return audit.get("quality_verdict", "")


@app.command()
@handles_errors
def check(brief: Annotated[Path, typer.Argument(help="Problem brief (YAML).")]) -> None:
    """Validate a brief and the data it names, without running anything."""
    from .brief import load_brief
    from .data import infer_contract, load_dataset

    b = load_brief(brief)
    data = load_dataset(b)
    contract = infer_contract(data.train, b)
    target = (f"target '{b.target.column}' positive {b.target.positive_label!r}" if b.task == "binary_classification"
              else f"target '{b.target.column}'")
    console.print(f"[green]brief ok[/]: {b.name} ({b.task}), {target}, primary metric {b.primary_metric}",
                  highlight=False)
    console.print(f"data: train {data.train.height} rows, test {data.test.height} rows ({data.split} split)")
    console.print(f"features ({len(contract.features)}): {', '.join(contract.features)}")
    if contract.excluded:
        console.print("excluded: " + ", ".join(f"{k} ({v})" for k, v in contract.excluded.items()))
    from .data.sensitive import sensitive_bin_edges

    edges = sensitive_bin_edges(data.train, b)
    if not b.sensitive_features:
        console.print("sensitive: (none)")
    for c in b.sensitive_features:
        how = (f"binned at {', '.join(f'{e:g}' for e in edges[c])} "
               f"({'from the brief' if c in b.sensitive_bins and b.sensitive_bins[c].bins else 'training quantiles'})"
               if c in edges else "one group per value")
        console.print(f"sensitive: {c}: {how}; missing values form the group '(missing)'", highlight=False)


@app.command()
@handles_errors
def params(phase: Annotated[str, typer.Argument(help="discovery or prototype (default: all).")] = "") -> None:
    """List the notebook parameters that `workbench run -p key=value` accepts."""
    from .runs import PHASES, notebook_parameters

    cfg = settings()
    table = Table(title="notebook parameters")
    for col in ("phase", "name", "type", "default", "help"):
        table.add_column(col)
    for ph, nb in PHASES.items():
        if phase and ph != phase:
            continue
        path = cfg.notebooks_dir / nb
        if not path.exists():
            continue
        for name, spec in notebook_parameters(path).items():
            if name in ("run_dir", "brief_path"):
                continue
            table.add_row(ph, name, spec.get("inferred_type_name", ""), spec.get("default", ""), spec.get("help", ""))
    console.print(table)


@app.command()
@handles_errors
def show(run: Annotated[str, typer.Argument(help="Run id, run folder, or 'latest'.")] = "latest") -> None:
    """Show one run's manifest: status, timings, environment, results."""
    from .runs import read_manifest, resolve_run

    d = resolve_run(run, settings().runs_dir, status="succeeded") if run == "latest" else resolve_run(run, settings().runs_dir)
    m = read_manifest(d)
    console.print(f"[bold]{m['run_id']}[/] [{m['status']}] {d}")
    console.print(f"brief {m['brief']['name']} sha256 {str(m['brief']['sha256'])[:12]}; git {str(m['git'].get('commit'))[:10]}"
                  f"{' (dirty)' if m['git'].get('dirty') else ''}; seed {m.get('seed')}")
    for nb in m.get("notebooks", []):
        console.print(f"  {nb['phase']:<10} {nb['status']:<10} {nb.get('duration_s', 0):6.1f} s "
                      f"(kernel start {nb.get('kernel_start_s', 0):.1f} s) -> {nb['output']}")
    _print_results(m)
    if m.get("error"):
        console.print(f"[red]error[/]: {m['error'].get('message')}")


@app.command()
@handles_errors
def promote(
    run: Annotated[str, typer.Argument(help="Run id, run folder, or 'latest' (newest succeeded run).")] = "latest",
    latency_calls: Annotated[int, typer.Option(help="Single-row calls timed for the latency gate.")] = 1000,
) -> None:
    """Certify a run's selected model through the go/no-go gates and register it, or refuse (exit 3).

    Gates: integrity (model artifact and data sha256), kill criteria, beats the best baseline by the brief's
    margin, success threshold, fairness (upper confidence bounds within the brief's thresholds), ONNX parity,
    single-row latency; model size is reported. A refusal registers nothing.
    """
    from .registry.promote import promote as do_promote

    result = do_promote(run, cfg=settings(), latency_calls=latency_calls,
                        on_step=lambda msg: console.print(f"[cyan]>[/] {msg}", highlight=False))
    table = Table(title=f"promotion gates: run {result.run_id}, model {result.gates.model}")
    for col in ("gate", "value", "threshold", "verdict", "detail"):
        table.add_column(col, overflow="fold")
    colors = {"pass": "green", "fail": "red", "info": "white"}
    for g in result.gates.gates:
        table.add_row(g.name, _s(g.value), _s(g.threshold), f"[{colors[g.verdict]}]{g.verdict}[/]", g.detail)
    console.print(table)
    console.print(f"gate report, parity certificate and model card: {result.attempt_dir}", highlight=False)
    if result.promoted:
        console.print(f"[bold green]promoted[/] {result.tag} (now in production)")
        console.print("serve it: cd bento && ../.venv/bin/bentoml serve --host 127.0.0.1 --port 3000")
        return
    failed = ", ".join(g.name for g in result.gates.failed)
    err_console.print(f"[bold red]refused[/]: failed gate(s): {failed}. Nothing was registered.", highlight=False)
    raise typer.Exit(3)


def _s(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


@app.command()
@handles_errors
def rollback(reason: Annotated[str, typer.Option(help="Why (recorded in the ledger).")] = "") -> None:
    """Return production to the previously certified model (the one before the current promotion)."""
    from .registry.ledger import rollback as do_rollback

    entry = do_rollback(reason=reason)
    console.print(f"[bold yellow]rolled back[/]: production is now {entry['tag']} (was {entry['from_tag']}); "
                  "restart `bentoml serve` to load it")


@app.command()
@handles_errors
def models() -> None:
    """Certified models in the BentoML store, the production one marked, and the ledger's history."""
    from .registry.ledger import read_ledger
    from .registry.store import list_models
    from .serving.pointer import production_pointer

    prod = (production_pointer() or {}).get("tag")
    table = Table(title="certified models (BentoML store)")
    for col in ("tag", "stage", "run", "model", "primary", "created"):
        table.add_column(col)
    for m in sorted(list_models(), key=lambda m: m.info.creation_time, reverse=True):
        if m.info.labels.get("stage") != "certified":
            continue
        md = m.info.metadata
        pm = md.get("primary_metric", "")
        table.add_row(str(m.tag), "[green]production[/]" if str(m.tag) == prod else "certified", md.get("run_id", ""),
                      md.get("model", ""), f"{pm} {md.get('metrics', {}).get(pm, 0):.4f}" if pm else "",
                      m.info.creation_time.strftime("%Y-%m-%d %H:%M"))
    console.print(table)
    events = read_ledger()[-10:]
    if events:
        console.print("ledger (last 10):")
        for e in events:
            console.print(f"  {e['at'][:19]} {e['action']:<9} {e.get('tag') or e.get('run_id')} "
                          f"{'failed: ' + ', '.join(e['failed_gates']) if e.get('failed_gates') else ''}", highlight=False)


def _package(model: str) -> tuple[str, Path]:
    """The tag and folder of a registered model (default: production)."""
    from .registry.store import get_model
    from .serving.pointer import production_tag

    try:
        tag = model or production_tag()
    except LookupError as exc:
        raise WorkbenchError(str(exc), hint="promote a run first, or pass --model TAG") from None
    try:
        return tag, Path(get_model(tag).path)
    except Exception:  # noqa: BLE001 - bentoml raises NotFound
        raise WorkbenchError(f"model {tag} is not in the model store", hint="`workbench models` lists them") from None


def _out_dir(out: Path | None, kind: str) -> Path:
    import datetime as _dt

    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")
    d = out or settings().root / "monitoring" / f"{kind}-{stamp}"
    d.mkdir(parents=True, exist_ok=True)
    return d


@app.command()
@handles_errors
def drift(
    model: Annotated[str, typer.Option(help="Model tag (default: the production model).")] = "",
    log_dir: Annotated[Path, typer.Option(help="Prediction log folder (default: $WORKBENCH_LOG_DIR or "
                                               "$BENTOML_HOME/workbench/predictions).")] = None,  # type: ignore[assignment]
    since: Annotated[str, typer.Option(help="Only rows logged at or after this ISO time.")] = "",
    out: Annotated[Path, typer.Option(help="Report folder (default: monitoring/drift-<time>/).")] = None,  # type: ignore[assignment]
    psi_warning: Annotated[float, typer.Option(help="Override the brief's PSI warning level.")] = 0.0,
    psi_critical: Annotated[float, typer.Option(help="Override the brief's PSI critical level.")] = 0.0,
) -> None:
    """Is production still seeing the data it was certified on? PSI/KS per feature and for predictions.

    Exit codes for schedulers: 0 no drift, 10 warning (investigate), 20 critical (retrain within 24h);
    1/2 for errors.
    """
    from .monitoring.drift import drift_report
    from .monitoring.log import read_log

    tag, path = _package(model)
    profile = json.loads((path / "reference_profile.json").read_text())
    mon = json.loads((path / "monitoring.json").read_text())
    live = read_log(log_dir, model_version=tag, since=since or None,
                    input_kinds={f: r["kind"] for f, r in profile["features"].items()})
    report = drift_report(live, profile, psi_warning=psi_warning or mon["psi_warning"],
                          psi_critical=psi_critical or mon["psi_critical"], ks_alpha=mon.get("ks_alpha", 0.01),
                          model_version=tag, window={"since": since or None, "first": live["ts"].min(),
                                                     "last": live["ts"].max()})
    d = _out_dir(out, "drift")
    report.save(d / "drift.json")
    fig = report.plot()
    fig.savefig(d / "drift.png", dpi=100, bbox_inches="tight")
    import base64

    img = base64.b64encode((d / "drift.png").read_bytes()).decode()
    from ._report import STYLE, atomic_write_text

    atomic_write_text(d / "drift.html", f"<!doctype html><meta charset='utf-8'><title>drift {tag}</title>{STYLE}"
                                        f"{report._repr_html_()}<img src='data:image/png;base64,{img}'>")
    table = Table(title=f"drift of {tag} over {report.rows} logged rows")
    for col in ("feature", "kind", "PSI", "KS", "severity", "largest change"):
        table.add_column(col)
    colors = {"ok": "green", "warning": "yellow", "critical": "red"}
    p = report.prediction
    ks = p.get("ks_stat")
    table.add_row("(prediction)", str(p.get("kind", "probability")), f"{p['psi']:.4f}",
                  "" if ks is None else f"{ks:.4f}", f"[{colors[p['severity']]}]{p['severity']}[/]",
                  str(p.get("top_change", "")))
    for f in report.features:
        table.add_row(f["feature"], f["kind"], f"{f['psi']:.4f}", "" if f["ks_stat"] is None else f"{f['ks_stat']:.4f}",
                      f"[{colors[f['severity']]}]{f['severity']}[/]", f["top_change"])
    console.print(table)
    console.print(f"[bold {colors[report.severity]}]{report.severity}[/]: {report.action}")
    console.print(f"report: {d / 'drift.html'}", highlight=False)
    raise typer.Exit(report.exit_code)


@app.command()
@handles_errors
def feedback(
    labels_file: Annotated[Path, typer.Argument(help="CSV/Parquet with request_id, [row,] and the label column.")],
    model: Annotated[str, typer.Option(help="Model tag (default: the production model).")] = "",
    label_column: Annotated[str, typer.Option(help="Label column (default: the brief's target).")] = "",
    log_dir: Annotated[Path, typer.Option(help="Prediction log folder.")] = None,  # type: ignore[assignment]
    out: Annotated[Path, typer.Option(help="Report folder (default: monitoring/feedback-<time>/).")] = None,  # type: ignore[assignment]
) -> None:
    """Join ground truth to logged predictions; report live performance and fairness like the Prototype phase.

    Exit codes: 0 fine, 10 a live fairness gap exceeds its threshold, 20 concept drift (the primary metric
    dropped beyond the brief's tolerance); 1/2 for errors.
    """
    from .feedback import feedback_report, join_labels, read_labels
    from .monitoring.log import read_log

    tag, path = _package(model)
    mon = json.loads((path / "monitoring.json").read_text())
    labels = read_labels(labels_file)
    joined = join_labels(read_log(log_dir, model_version=tag), labels,
                         label_column=label_column or mon["target"], file=labels_file)
    report = feedback_report(joined, mon)
    d = _out_dir(out, "feedback")
    report.save(d / "feedback.json")
    report.save_html(d / "feedback.html")
    color = "red" if report.concept_drift else "green"
    console.print(f"{report.rows} labelled rows; {report.primary}: certified {report.certified_value:.4f}, live "
                  f"{report.live_value:.4f} (tolerance {report.tolerance:g}) -> "
                  f"[bold {color}]{'concept drift' if report.concept_drift else 'ok'}[/]")
    console.print(f"live fairness: {report.fairness_verdict}")
    console.print(f"report: {d / 'feedback.html'}", highlight=False)
    raise typer.Exit(report.exit_code)


def main() -> None:  # pragma: no cover - console-script entry point
    app()
