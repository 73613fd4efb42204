"""The ``workbench`` command: run the lifecycle phases, list runs, check briefs.

Every command turns a :class:`~workbench.errors.WorkbenchError` into a one-paragraph message (what, where, how to
fix) and the error's exit code: 2 for bad input (brief, data, parameters), 3 for a refused gate, 1 otherwise.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from typer.core import TyperCommand, TyperGroup

from .config import DEFAULT_CELL_TIMEOUT_S, DEFAULT_KERNEL_START_TIMEOUT_S, settings
from .errors import ParameterError, WorkbenchError


def _plain_help(text: str | None) -> str | None:
    """Help text as literal text: rich markup escaped (``[row,]`` stays visible) and single line breaks of the
    source joined, so a docstring reflows to the terminal's width instead of breaking where the source did."""
    if not text:
        return text
    paragraphs = [" ".join(line.strip() for line in para.splitlines()) for para in text.strip().split("\n\n")]
    return escape("\n\n".join(paragraphs))


class _LiteralHelp:
    """Help shown as written: no markup parsing of help text, and flags without a ``<bool>`` type column."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        import inspect

        self.help = _plain_help(inspect.cleandoc(self.help)) if self.help else self.help
        for p in self.params:
            if getattr(p, "help", None):
                p.help = _plain_help(p.help)

    def get_params(self, ctx: Any) -> list:
        params = super().get_params(ctx)
        for p in params:
            if getattr(p, "is_flag", False) and p.metavar is None:
                p.metavar = ""  # typer would show "<bool>" for a flag (and for --help)
        return params


class _Command(_LiteralHelp, TyperCommand):
    pass


class _Group(_LiteralHelp, TyperGroup):
    pass


app = typer.Typer(
    name="workbench",
    help="Research-to-production workbench for tabular models: brief -> discovery -> prototype -> promotion.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_Group,
)
_command = functools.partial(app.command, cls=_Command)


def _make_console(stderr: bool = False) -> Console:
    """A console as wide as the terminal (or ``$COLUMNS``); 160 columns when writing to a pipe or file."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if (stream.isatty() or os.environ.get("COLUMNS")) else 160
    return Console(stderr=stderr, width=width)


console = _make_console()
err_console = _make_console(stderr=True)


def _fail(exc: WorkbenchError) -> None:
    err_console.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
    if exc.hint:
        err_console.print(f"[bold]fix:[/] {escape(exc.hint)}", highlight=False, soft_wrap=True)
    raise typer.Exit(exc.exit_code)


def _out(text: str, **kwargs: Any) -> None:
    """Print a line whose markup is ours and whose data is already escaped; never re-wrapped (paths, ids)."""
    console.print(text, highlight=False, soft_wrap=True, **kwargs)


def _table(title: str | None, columns: list[tuple[str, dict]], rows: list[list[Any]]) -> Table:
    """A compact table whose cells are literal text (never parsed as markup). Columns marked ``id`` are never
    wrapped (folded only if the terminal is narrower than the id itself); the others wrap first, and columns marked
    ``drop`` (a priority, lowest first) are left out while the table cannot fit the terminal otherwise."""
    width = console.width
    cols = list(columns)

    def min_width(i: int, spec: dict) -> int:
        cells = [str(r[i].plain if isinstance(r[i], Text) else r[i]) for r in rows]
        if spec.get("id"):
            return max([len(spec["header"])] + [len(c) for c in cells])
        words = [len(w) for c in cells for w in c.split()] or [0]
        return max(min(max(words), 10), min(len(spec["header"]), 8))

    keep = list(range(len(cols)))
    while True:
        # padding: one space each side of every cell (no outer edge), plus a column of slack for rich's rounding
        need = sum(min_width(i, cols[i][1] | {"header": cols[i][0]}) for i in keep) + 3 * len(keep)
        droppable = [i for i in keep if cols[i][1].get("drop") is not None]
        if need <= width or not droppable:
            break
        keep.remove(min(droppable, key=lambda i: cols[i][1]["drop"]))
    table = Table(title=escape(title) if title else None, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1),
                  title_justify="left", highlight=False)
    for i in keep:
        name, spec = cols[i]
        if spec.get("id"):
            table.add_column(name, no_wrap=True, overflow="fold", min_width=min(min_width(i, spec | {"header": name}),
                                                                               width))
        else:  # never narrower than its longest word (up to 10): a short status is not folded mid-word
            table.add_column(name, overflow="fold", justify=spec.get("justify", "left"),
                             min_width=min_width(i, spec | {"header": name}))
    for r in rows:
        table.add_row(*[r[i] if isinstance(r[i], Text) else Text(str(r[i])) for i in keep])
    return table


def _styled(text: Any, style: str) -> Text:
    return Text(str(text), style=style)


def _plain_rows(rows: list[list[Any]]) -> None:
    """Tab-separated lines for scripts: no header, no colour, nothing clipped."""
    for r in rows:
        print("\t".join(("" if v is None else str(v.plain if isinstance(v, Text) else v)).replace("\t", " ")
                        for v in r))


def _existing_run(ref: str) -> str:
    """Refuse a run id that names no run folder as bad input (exit 2) before anything else is read."""
    if ref == "latest":
        return ref
    runs_dir = settings().runs_dir
    if not ((Path(ref).is_dir() and (Path(ref) / "manifest.json").exists()) or (runs_dir / ref).is_dir()):
        raise ParameterError(f"run '{ref}' not found in {runs_dir}", parameter="run",
                             hint="`workbench runs` lists the runs (ids are the folder names)")
    return ref


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
    global console, err_console
    console, err_console = _make_console(), _make_console(stderr=True)  # the width of this invocation's terminal
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@_command()
@handles_errors
def run(
    brief: Annotated[Path, typer.Option("--brief", "-b", help="Problem brief (YAML).")] = None,  # type: ignore[assignment]
    param: Annotated[list[str], typer.Option("--param", "-p", help="Notebook parameter override, key=value "
                                                                   "(repeatable). `workbench params` lists them.")] = [],  # noqa: B006
    phase: Annotated[list[str], typer.Option("--phase", help="Run only these phases (repeatable): "
                                                             "discovery, prototype. Default: all.")] = [],  # noqa: B006
    run_id: Annotated[str, typer.Option(help="Name of the run folder (default: timestamp + brief name).",
                                        show_default=False)] = "",
    cell_timeout: Annotated[int, typer.Option(help="Seconds a single cell may run.",
                                              envvar="WORKBENCH_CELL_TIMEOUT")] = DEFAULT_CELL_TIMEOUT_S,
    kernel_timeout: Annotated[int, typer.Option(help="Seconds the kernel may take to start.",
                                                envvar="WORKBENCH_KERNEL_START_TIMEOUT")] = DEFAULT_KERNEL_START_TIMEOUT_S,
) -> None:
    """Execute the phase notebooks with papermill into papermill_runs/<run-id>/.

    The brief and its data are checked before any kernel starts. A failing cell, a dead kernel or a cell past its
    time limit marks the run failed (exit 1, or 2 when the cause is bad input); a failed go/no-go gate stops the
    run after that phase (exit 3).
    """
    from .runs import execute_run

    for name, value in (("--cell-timeout", cell_timeout), ("--kernel-timeout", kernel_timeout)):
        if value <= 0:
            raise ParameterError(f"must be a positive number of seconds, got {value}", parameter=name)
    cfg = settings()
    brief_path = brief or cfg.default_brief
    tty = sys.stdout.isatty()
    state: dict[str, Any] = {}

    def on_event(event: str, info: dict) -> None:
        if event == "run_start":
            _out(f"[bold]run[/] {escape(str(info['run_id']))} -> {escape(str(info['run_dir']))}")
        elif event == "notebook_start":
            state.update(phase=info["phase"], cells=info["cells"])
            _out(f"[cyan]{escape(str(info['phase']))}[/]: executing {escape(str(info['notebook']))} "
                 f"({info['cells']} code cells)")
        elif event == "cell_start":
            msg = escape(f"  [{info['phase']}] cell {info['cell']}/{info['cells']}")
            if tty:
                _out(msg, end="\r")
            else:
                _out(msg)
        elif event == "notebook_end":
            style = "green" if info["status"] == "succeeded" else "red"
            _out(f"  [{style}]{escape(str(info['phase']))} {escape(str(info['status']))}[/] in "
                 f"{info['duration_s']:.1f} s" + " " * 20)

    result = execute_run(brief_path=brief_path, phases=phase or None, params=_parse_kv(param),
                         run_id=run_id or None, cfg=cfg, cell_timeout=cell_timeout,
                         kernel_timeout=kernel_timeout, on_event=on_event)
    m = result.manifest
    _print_results(m)
    if (m.get("report") or {}).get("path"):
        _out(f"report: {escape(str(result.run_dir / m['report']['path']))}")
    if result.status == "succeeded":
        _out(f"[bold green]run succeeded[/] in {m['duration_s']:.1f} s: {escape(str(result.run_dir))}")
        return
    err = result.error
    label = {"stopped": "run stopped at a gate", "failed": "run failed"}.get(result.status, result.status)
    err_console.print(f"[bold red]{escape(label)}[/]: {escape(err.message) if err else ''}", highlight=False,
                      soft_wrap=True)
    if err is not None and err.hint:
        err_console.print(f"[bold]fix:[/] {escape(err.hint)}", highlight=False, soft_wrap=True)
    err_console.print(f"run folder (kept): {escape(str(result.run_dir))}", highlight=False, soft_wrap=True)
    raise typer.Exit(result.exit_code)


def _gate_rows(m: dict) -> list[dict]:
    return [{"gate": name, "verdict": "pass" if g.get("passed") else "FAIL", "value": g.get("value"),
             "threshold": g.get("threshold"), "message": g.get("message")} for name, g in (m.get("gates") or {}).items()]


def _print_results(m: dict) -> None:
    res = m.get("results", {}) or {}
    audit = res.get("audit")
    if audit:
        dims = ", ".join(f"{k} {v}" for k, v in audit.get("quality_dimensions", {}).items())
        _out(escape(f"data quality {audit['quality_score']}/30 ({audit['quality_verdict']}): {dims}"))
    for g in _gate_rows(m):
        mark = "[green]pass[/]" if g["verdict"] == "pass" else "[red]FAIL[/]"
        detail = f"(value {_s(g['value'])}, threshold {_s(g['threshold'])})"
        _out(f"gate {escape(str(g['gate']))}: {mark} {escape(detail)}")


_RUN_STATUS_COLORS = {"succeeded": "green", "failed": "red", "crashed": "red", "stopped": "yellow", "running": "cyan"}


@_command("runs")
@handles_errors
def runs_cmd(
    limit: Annotated[int, typer.Option(help="Show at most this many runs.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifests' key fields as JSON.")] = False,
    plain: Annotated[bool, typer.Option("--plain", help="Tab-separated lines for scripts, no header: run id, "
                                                        "status, started (UTC), brief, phases, seconds, quality, "
                                                        "key result.")] = False,
) -> None:
    """List runs, newest first: id, status, brief, phases, duration and key results."""
    from .runs import list_runs

    rows = list_runs(settings().runs_dir)[:limit]
    if as_json:
        keys = ("run_id", "status", "created_at", "duration_s", "phases", "results", "gates", "error")
        print(json.dumps([{k: m.get(k) for k in keys} for m in rows], indent=2))
        return
    table_rows = []
    for m in rows:
        res = m.get("results", {}) or {}
        q = (res.get("audit") or {}).get("quality_score")
        st = m.get("status", "?")
        table_rows.append([m.get("run_id", "?"), _styled(st, _RUN_STATUS_COLORS.get(st, "white")),
                           (m.get("started_at") or "")[:19].replace("T", " "), (m.get("brief") or {}).get("name", ""),
                           ",".join(m.get("phases") or []), f"{m['duration_s']:.1f}" if m.get("duration_s") else "",
                           f"{q}/30" if q is not None else "", _key_result(res)])
    if plain:
        _plain_rows(table_rows)
        return
    if not rows:
        _out("no runs yet: `workbench run` starts one")
        return
    columns = [("run id", {"id": True}), ("status", {}), ("started (UTC)", {"drop": 1}), ("brief", {"drop": 2}),
               ("phases", {"drop": 0}), ("seconds", {"drop": 3, "justify": "right"}), ("quality", {"drop": 4}),
               ("key result", {})]
    console.print(_table(f"runs in {settings().runs_dir}", columns, table_rows))


def _key_result(res: dict) -> str:
    proto = res.get("prototype") or res.get("leaderboard") or {}
    if proto.get("selected"):
        value = proto.get("primary_value", "")
        return f"{proto['selected']} {proto.get('primary_metric', '')}={_s(value)}"
    audit = res.get("audit") or {}
    return audit.get("quality_verdict", "")


@_command()
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
    _out(f"[green]brief ok[/]: {escape(f'{b.name} ({b.task}), {target}, primary metric {b.primary_metric}')}")
    _out(escape(f"data: train {data.train.height} rows, test {data.test.height} rows ({data.split} split)"))
    _out(escape(f"features ({len(contract.features)}): {', '.join(contract.features)}"))
    if contract.excluded:
        _out(escape("excluded: " + ", ".join(f"{k} ({v})" for k, v in contract.excluded.items())))
    from .data.sensitive import sensitive_bin_edges

    edges = sensitive_bin_edges(data.train, b)
    if not b.sensitive_features:
        _out("sensitive: (none)")
    for c in b.sensitive_features:
        how = (f"binned at {', '.join(f'{e:g}' for e in edges[c])} "
               f"({'from the brief' if c in b.sensitive_bins and b.sensitive_bins[c].bins else 'training quantiles'})"
               if c in edges else "one group per value")
        _out(escape(f"sensitive: {c}: {how}; missing values form the group '(missing)'"))


@_command()
@handles_errors
def params(phase: Annotated[str, typer.Argument(help="discovery or prototype (default: all).")] = "") -> None:
    """List the notebook parameters that `workbench run -p key=value` accepts."""
    from .runs import PHASES, notebook_parameters

    cfg = settings()
    rows = []
    for ph, nb in PHASES.items():
        if phase and ph != phase:
            continue
        path = cfg.notebooks_dir / nb
        if not path.exists():
            continue
        for name, spec in notebook_parameters(path).items():
            if name in ("run_dir", "brief_path"):
                continue
            rows.append([ph, name, spec.get("inferred_type_name", ""), spec.get("default", ""), spec.get("help", "")])
    columns = [("phase", {"drop": 0}), ("name", {"id": True}), ("type", {"drop": 1}), ("default", {}), ("help", {})]
    console.print(_table("notebook parameters", columns, rows))


@_command()
@handles_errors
def show(
    run: Annotated[str, typer.Argument(help="Run id, run folder, or 'latest'.")] = "latest",
    as_json: Annotated[bool, typer.Option("--json", help="Print the headline and the whole manifest as JSON.")] = False,
    plain: Annotated[bool, typer.Option("--plain", help="The headline as tab-separated key/value lines.")] = False,
) -> None:
    """One run: the headline (selected model, held-out primary metric against the best baseline, gate verdicts,
    promotion status, report), then timings and provenance."""
    from .runs import read_manifest, resolve_run

    ref = _existing_run(run)
    d = resolve_run(ref, settings().runs_dir, status="succeeded") if ref == "latest" else resolve_run(ref, settings().runs_dir)
    m = read_manifest(d)
    head = _headline(m, d)
    if as_json:
        print(json.dumps({**head, "manifest": m}, indent=2, default=str))
        return
    if plain:
        for k, v in head.items():
            if k == "gates":
                for g in v:
                    print(f"gate.{g['gate']}\t{g['verdict']}\t{_s(g['value'])}\t{_s(g['threshold'])}")
            elif k == "promotion":
                print(f"promotion\t{v['state']}\t{v.get('tag') or ''}")
            elif v is not None:
                print(f"{k}\t{v}")
        return
    st = head["status"]
    _out(f"[bold]{escape(head['run_id'])}[/] ([{_RUN_STATUS_COLORS.get(st, 'white')}]{escape(st)}[/]) "
         f"{escape(head['task'] or '')} brief {escape(head['brief'] or '')}")
    _out(f"folder: {escape(str(d))}")
    if head["selected"]:
        _out(f"selected model: [bold]{escape(head['selected'])}[/]")
        _out(escape(_metric_line(head)))
    elif "prototype" in (m.get("phases") or []):
        _out("selected model: none (the prototype phase did not finish)")
    else:
        _out(escape("selected model: none (discovery only; run the prototype phase: workbench run --phase prototype)"))
    for g in head["gates"]:
        mark = "[green]pass[/]" if g["verdict"] == "pass" else "[red]FAIL[/]"
        detail = f"(value {_s(g['value'])}, threshold {_s(g['threshold'])})"
        _out(f"gate {escape(g['gate'])}: {mark} {escape(detail)}")
    if head.get("fairness"):
        _out(escape(f"fairness: {head['fairness']}"))
    _out(escape(f"promotion: {head['promotion']['summary']}"))
    if head["report"]:
        _out(f"report: {escape(head['report'])}")
    elif m.get("report", {}) and m["report"].get("error"):
        _out(escape(f"report: not written ({m['report']['error']})"))
    console.print()
    brief = m.get("brief") or {}
    git = m.get("git") or {}
    _out(escape(f"brief sha256 {str(brief.get('sha256'))[:12]}; git {str(git.get('commit'))[:10]}"
                f"{' (dirty)' if git.get('dirty') else ''}; seed {m.get('seed')}"))
    for nb in m.get("notebooks", []):
        _out(escape(f"  {nb['phase']:<10} {nb['status']:<10} {nb.get('duration_s', 0):6.1f} s "
                    f"(kernel start {nb.get('kernel_start_s', 0):.1f} s) -> {nb['output']}"))
    audit = (m.get("results") or {}).get("audit")
    if audit:
        dims = ", ".join(f"{k} {v}" for k, v in audit.get("quality_dimensions", {}).items())
        _out(escape(f"data quality {audit['quality_score']}/30 ({audit['quality_verdict']}): {dims}"))
    if m.get("error"):
        _out(f"[red]error[/]: {escape(str(m['error'].get('message')))}")


def _metric_line(head: dict) -> str:
    metric, value, base, base_value = (head["primary_metric"], head["primary_value"], head["best_baseline"],
                                       head["baseline_value"])
    line = f"held-out {metric}: {_s(value)}"
    if base is not None and base_value is not None:
        better = head.get("greater_is_better")
        word = "" if better is None else (" (higher is better)" if better else " (lower is better)")
        line += f" vs best baseline {base} {_s(base_value)}{word}"
    if head.get("success_threshold") is not None:
        line += f"; success threshold {_s(head['success_threshold'])}"
    return line


def _headline(m: dict, run_dir: Path) -> dict:
    """What a person wants first from a run, for every task: the selected model, its held-out primary metric
    against the best baseline, the gate verdicts, whether it was promoted, and where the report is."""
    res = m.get("results") or {}
    board = res.get("leaderboard") or res.get("prototype") or {}
    content = (m.get("brief") or {}).get("content") or {}
    task_name = content.get("task") or ("binary_classification" if board else None)
    metric = board.get("primary_metric")
    greater = None
    if task_name and metric:
        try:
            from .tasks import get_task

            greater = get_task(task_name).greater_is_better(metric)
        except (ValueError, KeyError):
            greater = None
    report = (m.get("report") or {}).get("path")
    fairness = (res.get("fairness") or {}).get("fairness_verdict") or (res.get("prototype") or {}).get(
        "fairness_verdict")
    return {"run_id": m.get("run_id", run_dir.name), "status": m.get("status", "?"), "run_dir": str(run_dir),
            "task": task_name, "brief": (m.get("brief") or {}).get("name"),
            "selected": board.get("selected"), "primary_metric": metric, "primary_value": board.get("primary_value"),
            "best_baseline": board.get("best_baseline"), "baseline_value": board.get("baseline_value"),
            "greater_is_better": greater, "success_threshold": (content.get("success") or {}).get("threshold"),
            "fairness": fairness, "gates": _gate_rows(m), "promotion": _promotion_status(m.get("run_id")),
            "report": str(run_dir / report) if report and (run_dir / report).exists() else None}


def _promotion_status(run_id: str | None) -> dict:
    """The ledger's last word on a run: promoted (and whether still in production), refused, or not yet."""
    from .registry.ledger import read_ledger
    from .serving.pointer import production_pointer

    try:
        events = [e for e in read_ledger() if e.get("run_id") == run_id
                  and e.get("action") in ("promote", "certified", "refused")]
        prod = (production_pointer() or {}).get("tag")
    except (WorkbenchError, OSError, ValueError):
        return {"state": "unknown", "summary": "unknown (the ledger cannot be read)"}
    if not events:
        return {"state": "not promoted", "summary": f"not promoted yet (workbench promote {run_id})"}
    last = events[-1]
    if last["action"] == "refused":
        failed = ", ".join(last.get("failed_gates") or [])
        return {"state": "refused", "at": last.get("at"), "failed_gates": last.get("failed_gates"),
                "summary": f"refused {str(last.get('at', ''))[:19]} (failed: {failed})"}
    tag = last.get("tag")
    from .registry.ledger import stage_of

    stage = stage_of(tag) if tag else None
    in_prod = stage == "production" if stage else tag == prod
    where = ("in production" if in_prod else
             f"in staging (release it: workbench release {tag} --approve ...)" if stage == "staging" else
             "certified, not in production")
    return {"state": "promoted", "tag": tag, "in_production": in_prod, "stage": stage, "at": last.get("at"),
            "summary": f"promoted as {tag} ({where})"}


@_command()
@handles_errors
def promote(
    run: Annotated[str, typer.Argument(help="Run id, run folder, or 'latest' (the newest promotable run of the "
                                            "brief).")] = "latest",
    brief: Annotated[str, typer.Option("--brief", "-b", help="Brief name or YAML: whose runs 'latest' means "
                                                             "(default: the only brief with runs).")] = "",
    latency_calls: Annotated[int, typer.Option(help="Single-row calls timed for the latency gate.")] = 1000,
    by: Annotated[str, typer.Option("--by", help="Who promotes (recorded; default: the OS user).")] = "",
) -> None:
    """Certify a run's selected model through the go/no-go gates and register it, or refuse (exit 3).

    The first model of a brief goes to production; later ones stop at staging (after a champion/challenger gate
    against the production model) until `workbench release <tag> --approve "reason"`.

    Every gate is recomputed from the run's primary evidence, each file verified against the sha256 the run
    recorded: evidence integrity (reports, artifacts, frozen brief, data), held-out predictions checked against
    the test split and the model, kill criteria, beats the best baseline by the brief's margin, success
    threshold, fairness (upper confidence bounds within the brief's thresholds; small groups need review),
    leakage, ONNX parity, single-row latency; model size is reported. A refusal registers nothing.
    """
    from .registry.promote import promote as do_promote

    result = do_promote(_existing_run(run), cfg=settings(), latency_calls=latency_calls, brief=brief or None,
                        by=by or None, on_step=lambda msg: _out(f"[cyan]>[/] {escape(str(msg))}"))
    colors = {"pass": "green", "fail": "red", "info": "white"}
    rows = [[g.name, _s(g.value), _s(g.threshold), _styled(g.verdict, colors.get(g.verdict, "white")), g.detail]
            for g in result.gates.gates]
    columns = [("gate", {}), ("value", {}), ("threshold", {}), ("verdict", {}), ("detail", {"drop": 0})]
    console.print(_table(f"promotion gates: run {result.run_id}, model {result.gates.model}", columns, rows))
    _out(f"gate report, parity certificate and model card: {escape(str(result.attempt_dir))}")
    if result.promoted and getattr(result, "stage", "production") == "production":
        _out(f"[bold green]promoted[/] {escape(str(result.tag))} (now in production; first model of its brief: no "
             "champion to compare)")
        _out("serve it: cd bento && ../.venv/bin/bentoml serve --host 127.0.0.1 --port 3000")
        return
    if result.promoted:
        _out(f"[bold green]promoted[/] {escape(str(result.tag))} to staging (champion "
             f"{escape(str(result.champion))} stays in production); release it: "
             f"workbench release {escape(str(result.tag))} --approve \"...\"")
        return
    failed = ", ".join(g.name for g in result.gates.failed)
    err_console.print(f"[bold red]refused[/]: failed gate(s): {escape(failed)}. Nothing was registered.",
                      highlight=False, soft_wrap=True)
    raise typer.Exit(3)


def _s(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


@_command()
@handles_errors
def rollback(reason: Annotated[str, typer.Option(help="Why (recorded in the ledger).")] = "",
             by: Annotated[str, typer.Option("--by", help="Who (default: the OS user).")] = "",
             production: Annotated[bool, typer.Option("--production", help="Roll production back even while a "
                                                      "shadow or canary challenger is served.")] = False) -> None:
    """Undo the last release: while a shadow or canary challenger is served, take it out (back to staging);
    otherwise (or with --production) return production to the previously released model, the rolled-back one
    going back to staging."""
    from .registry.ledger import clear_challenger
    from .registry.ledger import rollback as do_rollback
    from .serving.pointer import production_pointer

    challenger = ((production_pointer() or {}).get("challenger") or {}).get("tag")
    if challenger and not production:
        if not reason.strip():
            raise ParameterError("rolling back a challenger needs a reason", parameter="--reason", hint='pass --reason "why"')
        if clear_challenger(str(challenger), reason=reason.strip(), by=by or None) is not None:
            _out(f"[bold yellow]rolled back[/] the challenger {escape(str(challenger))} to staging; production "
                 "is unchanged and a running service stops serving the challenger within a second "
                 "(--production rolls production back instead)")
            return
    entry = do_rollback(reason=reason, by=by or None)
    _out(f"[bold yellow]rolled back[/]: production is now {escape(str(entry['tag']))} "
         f"(was {escape(str(entry['from_tag']))}); a running service swaps to it within a second, without a "
         "restart (one started with WORKBENCH_HOT_SWAP=0, WORKBENCH_MODEL_TAG or from a built Bento: on restart)")


@_command()
@handles_errors
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print the models and the ledger as JSON.")] = False,
    plain: Annotated[bool, typer.Option("--plain", help="Tab-separated lines for scripts, no header: tag, stage, "
                                                        "run, model, primary metric, value, created.")] = False,
) -> None:
    """Registered models with their stage (certified, staging, production, retired), and the ledger's history:
    every transition with its time, from -> to, reason and who."""
    from .registry.release import models_overview

    over = models_overview()
    if as_json:
        print(json.dumps(over, indent=2, default=str))
        return
    colors = {"production": "green", "staging": "yellow", "retired": "dim"}
    rows = [[f["tag"], _styled(f["stage"], colors.get(str(f["stage"]).split()[0], "")), str(f.get("since") or "")[:19],
             str(f.get("by") or ""), f["run_id"], f["model"], f["primary_metric"],
             "" if f["primary_value"] is None else f"{f['primary_value']:.4f}"] for f in over["models"]]
    if plain:
        _plain_rows(rows)
        return
    if not rows:
        _out("no certified models yet: `workbench promote latest` certifies one")
    columns = [("tag", {"id": True}), ("stage", {}), ("since", {"drop": 2}), ("by", {"drop": 1}),
               ("run", {"id": True, "drop": 3}), ("model", {"drop": 4}), ("primary", {"drop": 5}),
               ("value", {"drop": 6, "justify": "right"})]
    if rows:
        console.print(_table("registered models (BentoML store)", columns, rows))
    if over.get("ledger"):
        _out("ledger (last 10):")
        for e in over["ledger"]:
            _out(escape(f"  {str(e.get('at'))[:19]} {str(e.get('action')):<9} {e.get('tag') or e.get('run_id')} "
                        f"{e.get('from_stage') or ''}->{e.get('to_stage') or ''} {e.get('reason') or ''} "
                        f"(by {e.get('by')})"))


@_command()
@handles_errors
def release(
    tag: Annotated[str, typer.Argument(help="The staged model's tag (`workbench models`).")],
    approve: Annotated[str, typer.Option("--approve", help="Why this model may serve (required, recorded).")] = "",
    by: Annotated[str, typer.Option("--by", help="Who approves (default: the OS user).")] = "",
    to: Annotated[str, typer.Option(help="production, shadow (scores every request beside the champion) or "
                                         "canary (answers --percent of requests).")] = "production",
    percent: Annotated[int, typer.Option(help="The canary's share of requests, 1..100.")] = 0,
    load_seconds: Annotated[float, typer.Option("--load-seconds", help="Length of the load test, seconds "
                                                "(default: the brief's deployment.load_test_seconds, 20).",
                                                show_default=False)] = None,  # type: ignore[assignment]
    clients: Annotated[int, typer.Option("--clients", help="Concurrent clients of the load test (default: the "
                                         "brief's deployment.load_test_clients, 32).",
                                         show_default=False)] = None,  # type: ignore[assignment]
    replay: Annotated[int, typer.Option("--replay", help="Records the integration test replays (default: the "
                                        "brief's deployment.replay_requests, 1000).",
                                        show_default=False)] = None,  # type: ignore[assignment]
    log_dir: Annotated[Path, typer.Option(help="The production prediction log, whose champion requests are "
                                               "replayed (default: $WORKBENCH_LOG_DIR or "
                                               "$BENTOML_HOME/workbench/predictions).")] = None,  # type: ignore[assignment]
) -> None:
    """Release a staged model after a rehearsal against a real `bentoml serve` of it on 127.0.0.1: an integration
    test (up to --replay records -- the champion's recorded requests from the prediction log, else the test split --
    each answered 200, compared with the champion's answers), a bounded load test (--clients for --load-seconds:
    req/s, p99, non-2xx; refused past the brief's p99 and error limits) and the recorded approval. All three
    pass: production -- or, with --to shadow|canary, beside the production model in the running service (hot swap,
    the default), which rolls a failing challenger back by itself. A failed check moves nothing (exit 3).
    The evidence (JSON and HTML) is kept under $BENTOML_HOME/workbench/releases/."""
    from .registry.release import ReleaseRefused
    from .registry.release import release as do_release

    def checks_table(evidence: Any) -> None:
        colors = {"pass": "green", "fail": "red", "not run": "yellow"}
        rows = [[c["check"], _styled(c["verdict"], colors.get(c["verdict"], "")), c["figures"]]
                for c in evidence.checks()]
        console.print(_table(f"release checks: {evidence.tag} -> {evidence.to}",
                             [("check", {}), ("verdict", {}), ("figures", {})], rows))
        for n in [*evidence.integration.notes, *evidence.notes]:
            _out(f"  note: {escape(str(n))}")

    try:
        r = do_release(tag, to=to, approve=approve, by=by or None, cfg=settings(),  # type: ignore[arg-type]
                       percent=percent or None, log_dir=log_dir, load_seconds=load_seconds, clients=clients,
                       replay=replay, on_step=lambda msg: _out(f"[cyan]>[/] {escape(str(msg))}"))
    except ReleaseRefused as exc:
        checks_table(exc.evidence)
        err_console.print(f"[bold red]refused[/]: failed check(s): {escape(', '.join(exc.evidence.failed))}. "
                          "Nothing was moved.", highlight=False, soft_wrap=True)
        raise
    checks_table(r.evidence)
    _out(f"evidence: {escape(str(r.evidence_dir))}")
    if r.to_stage in ("shadow", "canary"):
        share = f" at {percent}%" if r.to_stage == "canary" else ""
        _out(f"[bold green]{r.to_stage}[/]{share}: {escape(r.tag)} beside {escape(str(r.champion))}; the running "
             "service picks it up within a second and rolls it back by itself if it fails (errors, latency; "
             "`workbench feedback` on its metric); `workbench compare` to watch it")
        return
    _out(f"[bold green]released[/] {escape(r.tag)} to production (was {escape(str(r.champion or 'none'))}); "
         "a running service swaps to it within a second, without a restart (one started with "
         "WORKBENCH_HOT_SWAP=0, WORKBENCH_MODEL_TAG or from a built Bento: on restart)")


@_command()
@handles_errors
def compare(
    challenger: Annotated[str, typer.Argument(help="Challenger tag.")],
    champion: Annotated[str, typer.Option(help="Champion tag (default: the production model).")] = "",
    log_dir: Annotated[Path, typer.Option(help="Prediction log folder.")] = None,  # type: ignore[assignment]
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
) -> None:
    """Champion vs challenger: from the prediction log when both logged rows, else on the test split."""
    from .registry.release import compare as do_compare
    from .serving.pointer import production_tag

    rep = do_compare(champion or production_tag(), challenger, log_dir=log_dir, cfg=settings())
    if as_json:
        print(rep.to_json())
        return
    d = rep.to_dict()
    _out(escape(f"{d['champion']} vs {d['challenger']} ({d['source']}): answered {d['answered']}, shared "
                f"{d['n_shared']}, agreement {_s(d['agreement'])}, |delta| "
                + ", ".join(f"{k} {_s(v)}" for k, v in (d.get("abs_delta") or {}).items())))
    for k in ("champion", "challenger"):
        lat = (d.get("latency_ms") or {}).get(k)
        if lat:
            _out(escape(f"  {k} latency: p50 {lat['p50']:.3f} ms, p99 {lat['p99']:.3f} ms"))
        if d.get("metrics") and d["metrics"].get(k):
            _out(escape(f"  {k}: " + ", ".join(f"{m} {v:.4f}" for m, v in d["metrics"][k].items())))
    for n in d.get("notes") or []:
        _out(f"  note: {escape(str(n))}")


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


def _require_log(log_dir: Path | None, tag: str) -> None:
    """Say where the log was looked for, with the folder named as it is on disk (a tag's ``:`` and other
    characters unsafe in file names become ``_``: ``adult_income:abc`` logs to ``adult_income_abc/``)."""
    from .errors import DataError
    from .monitoring import log as plog
    from .monitoring.compact import log_files

    root = Path(log_dir) if log_dir else plog.log_dir()
    if log_files(root, tag):
        return
    folder = root / plog._SAFE.sub("_", tag)  # the folder PredictionLog writes (monitoring.log)
    present = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    hint = "serve the model and send requests first (or pass --log-dir)"
    if present:
        hint += "; logs present for: " + ", ".join(present[:5]) + (" ..." if len(present) > 5 else "")
    raise DataError(f"no prediction log for model {tag}: {folder} holds no log segments", file=None, hint=hint)


@_command()
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
    from .monitoring.drift import NOT_ENOUGH_DATA, drift_from_log

    tag, path = _package(model)
    profile = json.loads((path / "reference_profile.json").read_text())
    mon = json.loads((path / "monitoring.json").read_text())
    _require_log(log_dir, tag)
    report = drift_from_log(profile, mon, log_dir=log_dir, model_version=tag, since=since or None,
                            psi_warning=psi_warning or None, psi_critical=psi_critical or None)
    d = _out_dir(out, "drift")
    report.save(d / "drift.json")
    fig = report.plot()
    fig.savefig(d / "drift.png", dpi=100, bbox_inches="tight")
    import base64

    img = base64.b64encode((d / "drift.png").read_bytes()).decode()
    from ._report import STYLE, atomic_write_text

    atomic_write_text(d / "drift.html", f"<!doctype html><meta charset='utf-8'><title>drift {tag}</title>{STYLE}"
                                        f"{report._repr_html_()}<img src='data:image/png;base64,{img}'>")
    colors = {"ok": "green", "warning": "yellow", "critical": "red", NOT_ENOUGH_DATA: "blue"}
    p = report.prediction
    ks = p.get("ks_stat")
    rows = [["(prediction)", str(p.get("kind", "probability")), f"{p['psi']:.4f}", "" if ks is None else f"{ks:.4f}",
             _styled(p["severity"], colors.get(p["severity"], "white")), str(p.get("top_change", ""))]]
    for f in report.features:
        rows.append([f["feature"], f["kind"], f"{f['psi']:.4f}", "" if f["ks_stat"] is None else f"{f['ks_stat']:.4f}",
                     _styled(f["severity"], colors.get(f["severity"], "white")), str(f["top_change"])])
    columns = [("feature", {}), ("kind", {"drop": 1}), ("PSI", {"justify": "right"}),
               ("KS", {"justify": "right", "drop": 2}), ("severity", {}), ("largest change", {"drop": 0})]
    console.print(_table(f"drift of {tag} over {report.rows} logged rows", columns, rows))
    sev = colors.get(report.severity, "white")
    _out(escape(report.headline()) if not report.enough_data
         else f"[bold {sev}]{escape(str(report.severity))}[/]: {escape(str(report.action))}")
    _out(f"report: {escape(str(d / 'drift.html'))}")
    raise typer.Exit(report.exit_code)


log_app = typer.Typer(help="The prediction log: compaction to Parquet.", no_args_is_help=True, cls=_Group)
app.add_typer(log_app, name="log")


@log_app.command("compact", cls=_Command)
@handles_errors
def log_compact(
    model: Annotated[str, typer.Option(help="Model tag (default: every model version in the log).")] = "",
    log_dir: Annotated[Path, typer.Option(help="Prediction log folder (default: $WORKBENCH_LOG_DIR or "
                                               "$BENTOML_HOME/workbench/predictions).")] = None,  # type: ignore[assignment]
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Turn closed JSON-lines log segments into Parquet (atomic, torn lines skipped and counted), so drift and
    feedback read the log columnar. Safe to run from cron beside a live service: open segments are left alone.

    Exit codes: 0 done, 1 a segment could not be compacted (it is left as JSON lines).
    """
    from .monitoring.compact import compact_log

    res = compact_log(log_dir, model or None)
    if as_json:
        console.print_json(json.dumps(res.to_dict()))
    else:
        _out(escape(res.summary()))
    for f in res.failed:
        _out(escape(f"failed: {f['segment']}: {f['error']}"))
    raise typer.Exit(1 if res.failed else 0)


@_command()
@handles_errors
def feedback(
    labels_file: Annotated[Path, typer.Argument(help="CSV/Parquet with request_id, [row,] and the label column.")],
    model: Annotated[str, typer.Option(help="Model tag (default: the production model).")] = "",
    label_column: Annotated[str, typer.Option(help="Label column (default: the brief's target).")] = "",
    log_dir: Annotated[Path, typer.Option(help="Prediction log folder.")] = None,  # type: ignore[assignment]
    out: Annotated[Path, typer.Option(help="Report folder (default: monitoring/feedback-<time>/).")] = None,  # type: ignore[assignment]
) -> None:
    """Join ground truth to logged predictions; report live performance and fairness like the Prototype phase.

    While the production pointer names a challenger (shadow or canary) and --model is the production model (the
    default), the labels are also joined with the challenger's logged rows and kept (labels add up over several
    runs, in $WORKBENCH_LABELS_DIR or $BENTOML_HOME/workbench/labels); each model's
    primary metric is reported, and a challenger worse than the champion by more than deployment.metric_drop
    (with deployment.min_labels labelled rows each) is rolled back to staging automatically.

    Exit codes: 0 fine, 10 a live fairness gap exceeds its threshold, 20 concept drift (the primary metric
    dropped beyond the brief's tolerance) or a challenger rolled back on its metric; 1/2 for errors.
    """
    from .feedback import feedback_report, feedback_with_challenger, join_labels, read_labels, read_logged
    from .serving.deploy import challenger_of
    from .serving.pointer import production_pointer

    tag, path = _package(model)
    mon = json.loads((path / "monitoring.json").read_text())
    labels = read_labels(labels_file)
    column = label_column or mon["target"]
    ptr = production_pointer() or {}
    spec = challenger_of(ptr) if not model or model == ptr.get("tag") else None
    versus = None
    if spec is None:
        report = feedback_report(join_labels(read_logged(log_dir, model_version=tag), labels, label_column=column,
                                             file=labels_file), mon)
    else:
        report, versus = feedback_with_challenger(labels, champion=tag, spec=spec, label_column=column,
                                                  log_dir=log_dir, file=labels_file)
    d = _out_dir(out, "feedback")
    if report is not None:
        report.save(d / "feedback.json")
        report.save_html(d / "feedback.html")
        color = "red" if report.concept_drift else "green"
        head = (f"{report.rows} labelled rows; {report.primary}: certified {report.certified_value:.4f}, live "
                f"{report.live_value:.4f} (tolerance {report.tolerance:g}) ->")
        _out(f"{escape(head)} [bold {color}]{'concept drift' if report.concept_drift else 'ok'}[/]")
        _out(escape(f"live fairness: {report.fairness_verdict}"))
        _out(f"report: {escape(str(d / 'feedback.html'))}")
    else:
        _out(escape(f"no label is for the champion {tag}'s own rows: no live report for it"))
    if versus is not None:
        versus.save(d / "challenger.json")
        versus.save_html(d / "challenger.html")
        color = "red" if versus.trigger else "green"
        _out(f"[bold {color}]challenger[/]: {escape(versus.headline())}")
        if versus.rolled_back:
            _out(f"[bold red]rolled back[/] {escape(versus.challenger)} to staging (ledger: automatic, trigger "
                 f"{escape(str(versus.trigger))}); running services drop it on their next pointer check")
        for n in versus.notes:
            _out(f"  note: {escape(n)}")
        _out(f"report: {escape(str(d / 'challenger.html'))}")
    raise typer.Exit(max(report.exit_code if report is not None else 0, versus.exit_code if versus else 0))


def main() -> None:  # pragma: no cover - console-script entry point
    app()
