"""Benchmark drift checks: ``workbench``'s drift report over 1M logged Adult rows, next to Evidently's.

The issue's goals: drift over 1M logged rows x the Adult features against the reference in at most 2 s on this
machine's 2 cores, at least 10x faster than Evidently's data-drift report on the same data, cost linear in rows.
The script prints a table and saves the figures as JSON (``--out``, written to a temporary file and renamed);
it never asserts on time. Each figure is a median over ``--repeats`` runs, with the CPU seconds of the process
(steadier than wall time when other processes share the cores), the 1-minute load average and the number of
cores other processes kept busy meanwhile.

Workload
--------
* Reference: the Adult train split (``load_brief('briefs/adult.yaml')``, ``load_dataset``, ``infer_contract``),
  profiled by :func:`workbench.monitoring.profile.build_profile` as ``workbench promote`` does. The prediction
  part of the profile holds the held-out (test split) probabilities of a real model: the ``logreg`` candidate
  fitted on the train split with :func:`workbench.modeling.fit_model` (seed 0, about 1 s; deterministic for a
  given scikit-learn), not a stand-in formula.
* Live data: the test split's features with that model's probability column, replicated to each size (row
  ``i`` is test row ``i mod 16,281``), so the live data is drawn from the reference population and the report
  says "ok". A drifted window costs the same: every statistic is computed for every feature either way.

Measurements
------------
``drift``
    :func:`workbench.monitoring.drift.drift_report` on the in-memory live frame at each of ``--sizes``.
``log``
    The ``workbench drift`` path from a prediction log, at each of ``--log-sizes``: the live rows are appended
    to a :class:`~workbench.monitoring.log.PredictionLog` in a temporary folder, ``--batch`` rows per request
    line, as the service does (numerics as floats, guard flags for missing values, labels at the brief's
    threshold); the write throughput is reported (the time inside ``append`` only). Then ``read_log`` +
    ``drift_report`` (with the CLI's window, the first and last ``ts``) is timed ``--repeats`` times, and the
    report is checked to equal the in-memory one (same severity, same PSI per feature). The CLI's plot and
    HTML are not included (matplotlib's import alone is about a second and does not grow with rows).
``single``
    ``workbench drift`` over a log of one-record requests (the common case the service sees; issue 11 item 9
    measured 51 s and 1.56 GB for 1.24M of them): ``--single-rows`` (default 1M) requests written one JSON line
    each with :class:`~workbench.monitoring.log.PredictionLog` (about 515 bytes a line: the Adult inputs, the
    probability, the label, the flags), then, each in a fresh process so that each peak RSS (``VmHWM``) is that
    path's own, as the CLI's would be: (1) the line-per-request reader (``read_log`` with the profile's input
    kinds, as ``workbench drift`` read until round 2) + ``drift_report``; (2) ``compact_log`` once (JSONL ->
    Parquet, timed and sized); (3) ``drift_from_log``, what ``workbench drift`` calls: the compacted Parquet read
    columnar (only the profiled features, the probability and ``ts``) + ``drift_report``. Medians over
    ``--single-repeats`` runs (fewer when a path's runs pass ``--single-budget`` seconds), CPU seconds, the speed
    and RSS ratios, and whether both paths give the same report. Imports (scipy, pyarrow) are warmed up before
    timing and reported apart. Goal: (3) <= 3 s and <= 1 GiB at 1M rows.
``evidently``
    Evidently's data-drift report (``Report([DataDriftPreset()]).run(current, reference)``, the 0.7 API) on
    the Adult train split (features + the same model's probabilities on it) as reference and the same
    replicated live rows as current, at each of ``--evidently-sizes``. Evidently needs pandas < 3 while the
    project uses pandas 3, so it runs in a separate venv (``benchmarks/.venv-evidently``, git-ignored,
    created on first use with ``python3.11 -m venv`` and ``pip install`` of :data:`EVIDENTLY_PINS`) as a
    subprocess of this script (``--evidently-worker``), one process per size. The frames are handed over as
    Parquet files; the timed part is ``Dataset.from_pandas`` for both frames plus ``Report.run`` (imports and
    the Parquet read are reported apart, not timed in). A size whose runs would take more than
    ``--evidently-budget`` seconds, or that fails (for example out of the ``--evidently-mem-gib`` address-space
    cap), is estimated linearly from the largest size measured, and marked ``extrapolated``.

What each computes
------------------
``workbench`` compares the live rows with a saved profile (decile shares, a 5,000-value sample per numeric
feature, category shares): PSI and KS per numeric feature and for the probability, PSI and chi-square per
categorical feature; it never touches the training data. Evidently compares raw data with raw data: for each
column a drift test chosen by type and size (here Wasserstein distance for numeric columns and Jensen-Shannon
distance for categorical ones over all reference and all current rows), then the share of drifted columns, and
builds its report widgets. The comparison the issue asks for is the wall time of producing a drift report on
the same live data, and that is what the ratios are; CPU seconds are reported next to every wall time (polars
spreads ``workbench``'s work over both cores). The machine is shared: when ``others`` (cores kept busy by other
processes) is well above 0, wall times are inflated and the CPU seconds are the steadier figure.

Usage::

    python benchmarks/bench_drift.py                         # 100k and 1M rows, log path, Evidently
    python benchmarks/bench_drift.py --sizes 100000,1000000,3000000 --sections drift,log
    python benchmarks/bench_drift.py --sections single                  # 1M one-record requests: JSONL vs Parquet
"""

from __future__ import annotations

# Only the standard library at module level: the Evidently worker runs this file in the Evidently venv, which has
# neither polars nor workbench. The measuring side imports them inside its functions.
import argparse
import datetime as dt
import gc
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import _CpuWatch, _median, _peak_rss_gib, _save

ROOT = Path(__file__).resolve().parents[1]
BRIEF = ROOT / "briefs" / "adult.yaml"
EVIDENTLY_VENV = ROOT / "benchmarks" / ".venv-evidently"
# evidently 0.7.23 imports pandas.core.dtypes.common.infer_dtype_from_object, which pandas 3 removed.
EVIDENTLY_PINS = ("evidently==0.7.23", "pandas==2.3.3")
GOAL_SECONDS_AT_1M = 2.0
GOAL_SPEEDUP = 10.0
MODEL_VERSION = "adult-income:bench-drift"


# ----------------------------------------------------------------------------------------------- helpers






def _load1() -> float:
    return round(os.getloadavg()[0], 2)


def _stats(walls: list[float], cpus: list[float], rows: int) -> dict:
    med = _median(walls)
    return {"median": round(med, 4), "min": round(min(walls), 4), "cpu_median": round(_median(cpus), 4),
            "rows_per_s": round(rows / med) if med > 0 else None, "all": [round(x, 4) for x in walls]}


def _repeat(fn: Callable[[], object], repeats: int) -> tuple[list[float], list[float], object]:
    walls: list[float] = []
    cpus: list[float] = []
    out = None
    for _ in range(repeats):
        gc.collect()
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return walls, cpus, out


def _psis(report: object) -> dict[str, float]:
    d = report.to_dict()  # type: ignore[attr-defined]
    out = {f["feature"]: f["psi"] for f in d["features"]}
    out["(prediction)"] = d["prediction"]["psi"]
    return out


# ----------------------------------------------------------------------------------------------- workload
class Workload:
    """The reference profile, the reference frame for Evidently and the live rows to replicate."""

    def __init__(self, seed: int = 0) -> None:
        import polars as pl

        from workbench.brief import load_brief
        from workbench.data import infer_contract, load_dataset
        from workbench.data.io import target_vector
        from workbench.modeling import fit_model, to_model_frame
        from workbench.monitoring.profile import build_profile

        self.brief = load_brief(BRIEF)
        data = load_dataset(self.brief)
        self.contract = infer_contract(data.train, self.brief)
        self.features: list[str] = list(self.contract.features)
        self.numeric: list[str] = list(self.contract.numeric_features)
        self.categorical = [f for f in self.features if f not in set(self.numeric)]
        self.threshold = float(self.brief.target.decision_threshold)
        self.positive = str(self.brief.target.positive_label)
        labels = data.train.get_column(self.brief.target.column).drop_nulls().unique().sort().to_list()
        self.negative = next((str(v) for v in labels if str(v) != self.positive), "negative")
        t0 = time.perf_counter()
        model = fit_model("logreg", to_model_frame(data.train, self.contract), target_vector(data.train, self.brief),
                          seed=seed, contract=self.contract)
        p_train = model.positive_proba(to_model_frame(data.train, self.contract))
        p_test = model.positive_proba(to_model_frame(data.test, self.contract))
        self.fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.profile = build_profile(data.train, features=self.features, numeric=self.numeric,
                                     probabilities=p_test, threshold=self.threshold, seed=seed,
                                     source={"split": "train", "predictions": "test (logreg, fit_model seed 0)"})
        self.profile_s = time.perf_counter() - t0
        self.profile_bytes = len(json.dumps(self.profile))
        self.train_rows, self.test_rows = data.train.height, data.test.height
        self.reference = data.train.select(self.features).with_columns(pl.Series("probability", p_train))
        self.base = data.test.select(self.features).with_columns(pl.Series("probability", p_test))
        self.test_pr_auc = _pr_auc(target_vector(data.test, self.brief), p_test)

    def live(self, rows: int):  # -> pl.DataFrame
        """The live rows: the test split's features and probabilities, row ``i`` = test row ``i mod n``."""
        import numpy as np

        return self.base[np.arange(rows, dtype=np.int64) % self.base.height]  # one gather, one copy

    def describe(self) -> dict:
        return {"brief": str(BRIEF.relative_to(ROOT)), "features": self.features, "numeric": self.numeric,
                "train_rows": self.train_rows, "test_rows": self.test_rows,
                "probabilities": "logreg candidate (workbench.modeling.fit_model, seed 0) fitted on the train "
                                 "split; profile holds its test-split probabilities, live rows carry them too",
                "model_fit_and_score_s": round(self.fit_s, 3), "test_pr_auc": round(self.test_pr_auc, 4),
                "build_profile_s": round(self.profile_s, 3), "profile_json_bytes": self.profile_bytes,
                "live": "test split replicated: row i = test row (i mod test_rows)"}


def _pr_auc(y, p) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(y, p))


# ----------------------------------------------------------------------------------------------- drift_report
def run_drift(args: argparse.Namespace, wl: Workload) -> dict:
    from workbench.monitoring.drift import drift_report

    drift_report(wl.live(min(args.sizes)), wl.profile)  # warm-up (lazy imports, thread pool): not recorded
    results = []
    for rows in args.sizes:
        print(f"  drift_report on {rows:>12,} rows x {args.repeats} ...", file=sys.stderr, flush=True)
        live = wl.live(rows)
        load_before = _load1()
        watch = _CpuWatch()
        walls, cpus, report = _repeat(lambda live=live: drift_report(live, wl.profile), args.repeats)
        res = {"rows": rows, "drift_report_s": _stats(walls, cpus, rows),
               "load_1min": {"before": load_before, "after": _load1()}, "others_busy_cpus": watch.others_busy_cpus(),
               "severity": report.severity, "max_feature_psi": max(f["psi"] for f in report.features),
               "prediction_psi": report.prediction["psi"], "peak_rss_gib_so_far": round(_peak_rss_gib(), 2)}
        if rows >= 1_000_000 and res["drift_report_s"]["median"] > GOAL_SECONDS_AT_1M:
            res["profile_top"] = _profile(lambda live=live: drift_report(live, wl.profile))
        results.append(res)
        del live, report
        gc.collect()
    return {"sizes": results, "scaling": _scaling(results, "drift_report_s")}


def _profile(fn: Callable[[], object], top: int = 15) -> list[dict]:
    """cProfile's top functions by cumulative time (only run when the goal is missed)."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.runcall(fn)
    st = pstats.Stats(prof)
    rows = []
    for (file, line, name), (_cc, ncalls, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        rows.append({"function": f"{Path(file).name}:{line}({name})", "calls": ncalls, "tottime_s": round(tt, 4),
                     "cumtime_s": round(ct, 4)})
    return sorted(rows, key=lambda r: -r["cumtime_s"])[:top]


def _scaling(results: list[dict], key: str) -> list[dict]:
    out = []
    for small, large in zip(results, results[1:], strict=False):
        t_small, t_large = small[key]["median"], large[key]["median"]
        out.append({"from_rows": small["rows"], "to_rows": large["rows"],
                    "rows_ratio": round(large["rows"] / small["rows"], 3), "time_ratio": round(t_large / t_small, 3),
                    "per_row_ratio": round((t_large / large["rows"]) / (t_small / small["rows"]), 3)})
    return out


def show_drift(res: dict) -> None:
    print("\ndrift_report on an in-memory frame (13 features + probability)")
    hdr = f"{'rows':>12} {'median s':>9} {'min s':>7} {'cpu s':>7} {'rows/s':>12} {'load':>5} {'others':>6}  severity"
    print(hdr)
    print("-" * len(hdr))
    for r in res["sizes"]:
        s, o = r["drift_report_s"], r["others_busy_cpus"]
        print(f"{r['rows']:>12,} {s['median']:>9.3f} {s['min']:>7.3f} {s['cpu_median']:>7.3f} {s['rows_per_s']:>12,} "
              f"{r['load_1min']['before']:>5.2f} {'?' if o is None else f'{o:.2f}':>6}  {r['severity']}")
        for p in r.get("profile_top", []):
            print(f"    {p['cumtime_s']:>8.3f} s cum {p['tottime_s']:>8.3f} s own {p['calls']:>6} x {p['function']}")
    for s in res["scaling"]:
        print(f"{s['from_rows']:,} -> {s['to_rows']:,} rows (x{s['rows_ratio']:g}): time x{s['time_ratio']:.2f}, "
              f"time per row x{s['per_row_ratio']:.2f} (1.00 = linear)")


# ----------------------------------------------------------------------------------------------- log path
def _write_log(wl: Workload, rows: int, root: Path, batch: int) -> dict:
    """Append ``rows`` live rows to a prediction log as the service does; time the ``append`` calls."""
    import polars as pl

    from workbench.monitoring.log import PredictionLog, list_segments

    live = wl.live(rows).with_columns(pl.col(wl.numeric).cast(pl.Float64))  # the service logs float inputs
    cols = {c: live.get_column(c).to_list() for c in wl.features}
    proba = live.get_column("probability").to_list()
    del live
    labels = [wl.positive if p > wl.threshold else wl.negative for p in proba]
    log = PredictionLog(MODEL_VERSION, root=root, retention_days=0)
    in_append = 0.0
    t_start = time.perf_counter()
    for i, start in enumerate(range(0, rows, batch)):
        end = min(start + batch, rows)
        inputs = {c: v[start:end] for c, v in cols.items()}
        # the guard's sparse flags: {row: {field: flag}} for the rows with a missing value
        flags = {}
        for c in wl.categorical:
            for j, v in enumerate(inputs[c]):
                if v is None:
                    flags.setdefault(j, {})[c] = "missing"
        t0 = time.perf_counter()
        log.append(f"req-{i:08d}", inputs, proba[start:end], labels[start:end], flags)
        in_append += time.perf_counter() - t0
    log.close()
    total = time.perf_counter() - t_start
    segs = list_segments(root, MODEL_VERSION)
    size = sum(s.stat().st_size for s in segs)
    requests = -(-rows // batch)
    return {"rows": rows, "requests": requests, "batch_rows": batch, "append_s": round(in_append, 3),
            "loop_s": round(total, 3), "rows_per_s": round(rows / in_append),
            "requests_per_s": round(requests / in_append),
            "mb_per_s": round(size / in_append / 1e6, 1), "bytes": size, "bytes_per_row": round(size / rows, 1),
            "segments": len(segs)}


def run_log(args: argparse.Namespace, wl: Workload) -> dict:
    from workbench.monitoring.drift import drift_report
    from workbench.monitoring.log import read_log

    results = []
    for rows in args.log_sizes:
        with tempfile.TemporaryDirectory(prefix="bench-drift-log-", dir=args.tmp_dir) as td:
            root = Path(td)
            print(f"  writing {rows:>12,} rows to a prediction log ({args.batch} per request) ...", file=sys.stderr,
                  flush=True)
            write = _write_log(wl, rows, root, args.batch)
            gc.collect()
            print(f"  read_log + drift_report on {rows:>12,} logged rows x {args.repeats} ...", file=sys.stderr,
                  flush=True)
            load_before = _load1()
            watch = _CpuWatch()
            t_read: list[float] = []
            c_read: list[float] = []
            t_drift: list[float] = []
            c_drift: list[float] = []
            t_total: list[float] = []
            report = None
            for _ in range(args.repeats):
                live = report = None
                gc.collect()
                c0, t0 = time.process_time(), time.perf_counter()
                # As `workbench drift` reads it: only the profiled inputs, the time and the probability.
                live = read_log(root, model_version=MODEL_VERSION,
                                input_kinds={f: r["kind"] for f, r in wl.profile["features"].items()})
                c1, t1 = time.process_time(), time.perf_counter()
                report = drift_report(live, wl.profile, model_version=MODEL_VERSION,
                                      window={"since": None, "first": live["ts"].min(), "last": live["ts"].max()})
                c2, t2 = time.process_time(), time.perf_counter()
                t_read.append(t1 - t0)
                c_read.append(c1 - c0)
                t_drift.append(t2 - t1)
                c_drift.append(c2 - c1)
                t_total.append(t2 - t0)
            others = watch.others_busy_cpus()
            logged_rows = live.height
            del live
            reference = drift_report(wl.live(rows), wl.profile)
            a, b = _psis(report), _psis(reference)
            same = report.severity == reference.severity and a.keys() == b.keys() and all(
                abs(a[k] - b[k]) <= 1e-9 for k in a)
            results.append({
                "rows": rows, "logged_rows_read": logged_rows, "write": write,
                "read_log_s": _stats(t_read, c_read, rows), "drift_report_s": _stats(t_drift, c_drift, rows),
                "read_log_plus_drift_s": _stats(t_total, [x + y for x, y in zip(c_read, c_drift, strict=True)], rows),
                "report_equals_in_memory": same, "severity": report.severity,
                "load_1min": {"before": load_before, "after": _load1()}, "others_busy_cpus": others,
                "peak_rss_gib_so_far": round(_peak_rss_gib(), 2),
            })
            del report, reference
            gc.collect()
    return {"sizes": results, "scaling": _scaling(results, "read_log_plus_drift_s"),
            "tmp_dir": args.tmp_dir or tempfile.gettempdir(), "batch_rows": args.batch}


def show_log(res: dict) -> None:
    print(f"\nprediction log: write ({res['batch_rows']} rows per request line), then read_log + drift_report "
          f"(the `workbench drift` path)")
    hdr = (f"{'rows':>12} {'write rows/s':>12} {'req/s':>7} {'MB/s':>6} {'B/row':>6} {'segs':>4} {'read_log s':>10} "
           f"{'drift s':>7} {'total s':>7} {'cpu s':>6} {'rows/s':>10} {'load':>5} {'others':>6}  same report")
    print(hdr)
    print("-" * len(hdr))
    for r in res["sizes"]:
        w, tot, o = r["write"], r["read_log_plus_drift_s"], r["others_busy_cpus"]
        print(f"{r['rows']:>12,} {w['rows_per_s']:>12,} {w['requests_per_s']:>7,} {w['mb_per_s']:>6.1f} "
              f"{w['bytes_per_row']:>6.0f} {w['segments']:>4} {r['read_log_s']['median']:>10.3f} "
              f"{r['drift_report_s']['median']:>7.3f} {tot['median']:>7.3f} {tot['cpu_median']:>6.2f} "
              f"{tot['rows_per_s']:>10,} {r['load_1min']['before']:>5.2f} {'?' if o is None else f'{o:.2f}':>6}  "
              f"{'yes' if r['report_equals_in_memory'] else 'NO'}")
    for s in res["scaling"]:
        print(f"{s['from_rows']:,} -> {s['to_rows']:,} rows (x{s['rows_ratio']:g}): read_log + drift time "
              f"x{s['time_ratio']:.2f}, per row x{s['per_row_ratio']:.2f} (1.00 = linear)")


# ----------------------------------------------------------------------------------------------- single-record log
GOAL_SINGLE_SECONDS = 3.0
GOAL_SINGLE_RSS_GIB = 1.0


def run_single(args: argparse.Namespace, wl: Workload) -> dict:
    """``workbench drift`` over a log of one-record requests: the line-per-request reader against compaction +
    the columnar reader, each in a fresh process (so each peak RSS is that path's own, as the CLI would use)."""
    rows = args.single_rows
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="bench-drift-single-", dir=args.tmp_dir) as td:
        root = Path(td) / "log"
        print(f"  writing {rows:>12,} single-record requests to a prediction log ...", file=sys.stderr, flush=True)
        write = _write_log(wl, rows, root, 1)
        spec = {"root": str(root), "profile": str(Path(td) / "profile.json"), "model_version": MODEL_VERSION,
                "repeats": args.single_repeats, "budget_s": args.single_budget,
                "monitoring": {"psi_warning": 0.1, "psi_critical": 0.25, "ks_alpha": 0.01, "min_rows": 300}}
        Path(spec["profile"]).write_text(json.dumps(wl.profile))
        out: dict = {"rows": rows, "write": write, "goal_seconds": GOAL_SINGLE_SECONDS,
                     "goal_rss_gib": GOAL_SINGLE_RSS_GIB}
        for mode in ("jsonl", "compact", "columnar"):  # order matters: compaction replaces the JSONL
            print(f"  {mode}: {rows:,} single-record rows (fresh process) ...", file=sys.stderr, flush=True)
            spec_path = Path(td) / f"spec-{mode}.json"
            spec_path.write_text(json.dumps({**spec, "mode": mode}))
            out[mode] = _single_subprocess(py, spec_path, args)
        j, c = out["jsonl"], out["columnar"]
        if "s" in j and "s" in c:
            out["speedup_median"] = round(j["s"]["median"] / c["s"]["median"], 1)
            out["rss_ratio"] = round(j["peak_rss_gib"] / c["peak_rss_gib"], 2)
            out["same_report"] = j.get("severity") == c.get("severity") and j.get("psis", {}).keys() == \
                c.get("psis", {}).keys() and all(abs(j["psis"][k] - c["psis"][k]) <= 1e-9 for k in j["psis"])
            out["meets_goal"] = c["s"]["median"] <= GOAL_SINGLE_SECONDS and c["peak_rss_gib"] <= GOAL_SINGLE_RSS_GIB
        out["parquet_bytes"] = sum(p.stat().st_size for p in root.rglob("*.parquet"))
    return out


def _single_subprocess(py: str, spec_path: Path, args: argparse.Namespace) -> dict:
    load_before = _load1()
    watch = _CpuWatch()
    cmd = [py, str(Path(__file__).resolve()), "--single-worker", str(spec_path)]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.single_budget * 2 + 300)
    except subprocess.TimeoutExpired:
        return {"error": "timed out"}
    lines = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
    runs = [x for x in lines if x.get("kind") == "run"]
    res: dict = {"load_1min": {"before": load_before, "after": _load1()}, "others_busy_cpus": watch.others_busy_cpus()}
    if done.returncode != 0 or not runs:
        res["error"] = f"exit {done.returncode}: " + "\n".join(done.stderr.strip().splitlines()[-5:])
        return res
    res["s"] = _stats([r["wall_s"] for r in runs], [r["cpu_s"] for r in runs], runs[0].get("rows", 0) or 1)
    res["s"]["runs"] = len(runs)
    res["peak_rss_gib"] = max(r["peak_rss_gib"] for r in runs)
    res.update({k: v for k, v in runs[-1].items() if k not in ("kind", "wall_s", "cpu_s", "peak_rss_gib")})
    res["import_s"] = next((x["import_s"] for x in lines if x.get("kind") == "info"), None)
    return res


def _own_peak_rss_gib() -> float:
    """This process's own peak RSS (``VmHWM``): ``ru_maxrss`` survives ``execve`` on Linux, so a child started by
    a large parent would report the parent's size."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return _peak_rss_gib()


def single_worker(spec_path: str) -> int:
    """In a fresh process: time one path over the single-record log, one JSON line per run on stdout."""
    spec = json.loads(Path(spec_path).read_text())
    from workbench.monitoring.compact import compact_log
    from workbench.monitoring.drift import drift_from_log, drift_report
    from workbench.monitoring.log import read_log

    t0 = time.perf_counter()
    import pyarrow.json  # noqa: F401 - warm-up: imports are not the reading path (reported apart)
    import pyarrow.parquet  # noqa: F401
    import scipy.stats  # noqa: F401

    print(json.dumps({"kind": "info", "import_s": round(time.perf_counter() - t0, 3)}), flush=True)
    profile = json.loads(Path(spec["profile"]).read_text())
    mon, mv, root = spec["monitoring"], spec["model_version"], spec["root"]
    kinds = {f: r["kind"] for f, r in profile["features"].items()}
    started = time.perf_counter()
    repeats = 1 if spec["mode"] == "compact" else spec["repeats"]
    for i in range(repeats):
        gc.collect()
        c0, t0 = time.process_time(), time.perf_counter()
        extra: dict = {}
        if spec["mode"] == "jsonl":  # the line-per-request reader, as `workbench drift` reads today
            live = read_log(root, model_version=mv, input_kinds=kinds)
            report = drift_report(live, profile, psi_warning=mon["psi_warning"], psi_critical=mon["psi_critical"],
                                  ks_alpha=mon["ks_alpha"], min_rows=mon["min_rows"], model_version=mv,
                                  window={"since": None, "first": live["ts"].min(), "last": live["ts"].max()})
            del live
        elif spec["mode"] == "compact":
            res = compact_log(root, mv, include_active=True)  # the bench's own log: closed, so compact it all
            report = None
            extra = {"segments": len(res.compacted), "torn_lines": res.torn_lines, "bytes_in": res.bytes_in,
                     "bytes_out": res.bytes_out, "rows": res.rows}
        else:  # compacted Parquet, columnar: what `workbench drift` calls (drift_from_log)
            report = drift_from_log(profile, mon, log_dir=root, model_version=mv)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if report is not None:
            d = report.to_dict()
            extra = {"rows": report.rows, "severity": report.severity,
                     "psis": {**{f["feature"]: f["psi"] for f in d["features"]}, "(prediction)": d["prediction"]["psi"]}}
        print(json.dumps({"kind": "run", "i": i, "wall_s": wall, "cpu_s": cpu, "peak_rss_gib": round(_own_peak_rss_gib(), 3),
                          **extra}), flush=True)
        if time.perf_counter() - started + wall > spec["budget_s"]:
            break
    return 0


def show_single(res: dict) -> None:
    print(f"\n`workbench drift` over {res['rows']:,} single-record requests (one JSON line each, "
          f"{res['write']['bytes'] / 1e6:.0f} MB of JSONL; each path in a fresh process)")
    hdr = f"{'path':<38} {'median s':>9} {'min s':>7} {'cpu s':>7} {'runs':>4} {'peak RSS GiB':>12} {'load':>5}  note"
    print(hdr)
    print("-" * len(hdr))
    names = {"jsonl": "line-per-request reader + drift_report", "compact": f"compact_log (once, {res['rows']:,} rows)",
             "columnar": "compacted Parquet: drift_from_log"}
    for mode, name in names.items():
        r = res.get(mode, {})
        if "s" not in r:
            print(f"{name:<38} {'-':>9}  {r.get('error')}")
            continue
        s = r["s"]
        note = (f"{r.get('segments')} segments, {r.get('bytes_in', 0) / 1e6:.0f} MB -> {r.get('bytes_out', 0) / 1e6:.1f}"
                f" MB, {r.get('torn_lines')} torn" if mode == "compact" else f"severity {r.get('severity')}")
        print(f"{name:<38} {s['median']:>9.3f} {s['min']:>7.3f} {s['cpu_median']:>7.2f} {s['runs']:>4} "
              f"{r['peak_rss_gib']:>12.3f} {r['load_1min']['before']:>5.2f}  {note}")
    if "speedup_median" in res:
        print(f"columnar vs line-per-request: x{res['speedup_median']:g} faster (medians), x{res['rss_ratio']:g} less "
              f"peak RSS; same report: {'yes' if res['same_report'] else 'NO'}; goal <= {res['goal_seconds']:g} s and "
              f"<= {res['goal_rss_gib']:g} GiB: {'met' if res['meets_goal'] else 'MISSED'}")


# ----------------------------------------------------------------------------------------------- Evidently
def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _evidently_versions(py: Path) -> dict | None:
    if not py.exists():
        return None
    code = ("import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in "
            "('evidently', 'pandas', 'numpy', 'scipy', 'scikit-learn', 'pyarrow')}))")
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, env=_clean_env(), timeout=120)
    return json.loads(out.stdout) if out.returncode == 0 else None


def _pins_met(versions: dict | None) -> bool:
    if not versions:
        return False
    return all(versions.get(p.split("==")[0]) == p.split("==")[1] for p in EVIDENTLY_PINS)


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["ITERATIVE_DO_NOT_TRACK"] = "1"  # Evidently's usage telemetry (iterative-telemetry): off, no network
    env["DO_NOT_TRACK"] = "1"
    return env


def ensure_evidently(venv: Path, base_python: str) -> dict:
    """The Evidently venv's package versions, creating it (and installing the pins) when needed."""
    py = _venv_python(venv)
    versions = _evidently_versions(py)
    if _pins_met(versions):
        return versions  # type: ignore[return-value]
    cmds = []
    if not py.exists():
        cmds.append([base_python, "-m", "venv", str(venv)])
    cmds.append([str(py), "-m", "pip", "install", "--quiet", *EVIDENTLY_PINS])
    for cmd in cmds:
        print(f"  evidently venv: $ {' '.join(cmd)}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        done = subprocess.run(cmd, env=_clean_env(), capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-15:])
            raise SystemExit(f"setting up the Evidently venv failed ({' '.join(cmd)}):\n{tail}\n"
                             f"remove {venv} and retry, or run with --sections drift,log")
        print(f"  ... done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    versions = _evidently_versions(py)
    if not _pins_met(versions):
        raise SystemExit(f"the Evidently venv at {venv} does not hold {EVIDENTLY_PINS} after install: {versions}")
    return versions  # type: ignore[return-value]


def run_evidently(args: argparse.Namespace, wl: Workload) -> dict:
    versions = ensure_evidently(args.evidently_venv, args.evidently_python)
    py = _venv_python(args.evidently_venv)
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-drift-evidently-", dir=args.tmp_dir) as td:
        ref_path = Path(td) / "reference.parquet"
        wl.reference.write_parquet(ref_path)
        failed_at = None
        for rows in args.evidently_sizes:
            if failed_at is not None:
                results.append({"rows": rows, "skipped": f"a smaller size ({failed_at:,} rows) did not finish"})
                continue
            cur_path = Path(td) / f"current-{rows}.parquet"
            wl.live(rows).write_parquet(cur_path)
            spec = {"reference": str(ref_path), "current": str(cur_path), "numerical": [*wl.numeric, "probability"],
                    "categorical": wl.categorical, "repeats": args.repeats, "budget_s": args.evidently_budget,
                    "memory_cap_gib": args.evidently_mem_gib}
            spec_path = Path(td) / f"spec-{rows}.json"
            spec_path.write_text(json.dumps(spec))
            print(f"  Evidently DataDriftPreset on {rows:>12,} rows x up to {args.repeats} (subprocess) ...",
                  file=sys.stderr, flush=True)
            res = _run_worker(py, spec_path, rows, args)
            cur_path.unlink(missing_ok=True)
            if "error" in res:
                failed_at = rows
                print(f"    did not finish: {res['error']}", file=sys.stderr, flush=True)
            results.append(res)
    measured = [r for r in results if "report_s" in r]
    for r in results:
        if "report_s" not in r and measured:
            base = max((m for m in measured if m["rows"] < r["rows"]), key=lambda m: m["rows"], default=None)
            if base is not None:
                est = base["report_s"]["median"] * r["rows"] / base["rows"]
                r["report_s"] = {"median": round(est, 2), "extrapolated": True, "from_rows": base["rows"]}
    return {"versions": versions, "pins": list(EVIDENTLY_PINS), "venv": str(args.evidently_venv),
            "api": "evidently.Report([evidently.presets.DataDriftPreset()]).run(Dataset.from_pandas(current, dd), "
                   "Dataset.from_pandas(reference, dd)), dd = DataDefinition(numerical_columns=[5 numeric + "
                   "probability], categorical_columns=[8 categorical])",
            "timed": "Dataset.from_pandas x2 + Report.run; import and parquet read reported apart",
            "memory_cap_gib": args.evidently_mem_gib, "budget_s": args.evidently_budget, "sizes": results}


def _run_worker(py: Path, spec_path: Path, rows: int, args: argparse.Namespace) -> dict:
    cmd = [str(py), str(Path(__file__).resolve()), "--evidently-worker", str(spec_path)]
    load_before = _load1()
    watch = _CpuWatch()
    timeout = args.evidently_budget * 2 + 300  # the worker stops repeating at the budget; this catches a hang
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=_clean_env(), timeout=timeout)
        stdout, rc, err = done.stdout, done.returncode, done.stderr
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        rc, err = None, f"killed after {timeout} s"
    lines = [json.loads(x) for x in stdout.splitlines() if x.startswith("{")]
    runs = [x for x in lines if x.get("kind") == "run"]
    info = next((x for x in lines if x.get("kind") == "info"), {})
    summary = next((x for x in lines if x.get("kind") == "summary"), {})
    res: dict = {"rows": rows, "load_1min": {"before": load_before, "after": _load1()},
                 "others_busy_cpus": watch.others_busy_cpus(), **{k: v for k, v in info.items() if k != "kind"}}
    if runs:
        walls = [r["wall_s"] for r in runs]
        res["report_s"] = _stats(walls, [r["cpu_s"] for r in runs], rows)
        res["report_s"]["runs"] = len(runs)
        res["from_pandas_s"] = round(_median([r["from_pandas_s"] for r in runs]), 4)
        res["run_s"] = round(_median([r["run_s"] for r in runs]), 4)
        res["peak_rss_gib"] = max(r["peak_rss_gib"] for r in runs)
        res.update({k: v for k, v in summary.items() if k != "kind"})
    if rc != 0 or not runs:
        tail = "\n".join(err.strip().splitlines()[-5:]) if isinstance(err, str) else str(err)
        res["error"] = f"exit {rc}: {tail}" if rc is not None else err
        res.pop("report_s", None)  # a partial set of runs is not a measurement: extrapolate instead
    return res


def evidently_worker(spec_path: str) -> int:
    """Runs inside the Evidently venv: time the data-drift report, one JSON line per run on stdout."""
    spec = json.loads(Path(spec_path).read_text())
    cap = int(spec["memory_cap_gib"] * 2**30)  # out of memory -> MemoryError here, not the machine swapping
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    t0 = time.perf_counter()
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset
    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    reference = pd.read_parquet(spec["reference"])
    current = pd.read_parquet(spec["current"])
    read_s = time.perf_counter() - t0
    print(json.dumps({"kind": "info", "import_s": round(import_s, 2), "read_parquet_s": round(read_s, 2),
                      "current_rows": len(current), "reference_rows": len(reference)}), flush=True)
    definition = DataDefinition(numerical_columns=spec["numerical"], categorical_columns=spec["categorical"])
    snapshot = None
    started = time.perf_counter()
    for i in range(spec["repeats"]):
        snapshot = None
        gc.collect()
        c0, t0 = time.process_time(), time.perf_counter()
        cur = Dataset.from_pandas(current, data_definition=definition)
        ref = Dataset.from_pandas(reference, data_definition=definition)
        t1 = time.perf_counter()
        snapshot = Report([DataDriftPreset()]).run(cur, ref)
        t2 = time.perf_counter()
        print(json.dumps({"kind": "run", "i": i, "wall_s": t2 - t0, "cpu_s": time.process_time() - c0,
                          "from_pandas_s": t1 - t0, "run_s": t2 - t1, "peak_rss_gib": round(_peak_rss_gib(), 2)}),
              flush=True)
        elapsed = time.perf_counter() - started
        if elapsed + (t2 - t0) > spec["budget_s"]:
            break
    metrics = snapshot.dict()["metrics"] if snapshot is not None else []
    drifted = next((m["value"] for m in metrics if m["metric_name"].startswith("DriftedColumnsCount")), None)
    methods = sorted({m["config"].get("method") for m in metrics if m["config"].get("method")})
    print(json.dumps({"kind": "summary", "metrics": len(metrics), "methods": methods,
                      "drifted_columns": {k: float(v) for k, v in drifted.items()} if drifted else None,
                      "max_column_score": max((float(m["value"]) for m in metrics
                                               if m["metric_name"].startswith("ValueDrift")), default=None)}),
          flush=True)
    return 0


def show_evidently(res: dict) -> None:
    v = res["versions"]
    print(f"\nEvidently {v.get('evidently')} (pandas {v.get('pandas')}, scipy {v.get('scipy')}) DataDriftPreset, "
          f"in {res['venv']}")
    hdr = (f"{'rows':>12} {'median s':>9} {'cpu s':>7} {'from_pandas s':>13} {'run s':>7} {'rows/s':>10} "
           f"{'rss GiB':>7} {'import s':>8} {'load':>5} {'others':>6}  note")
    print(hdr)
    print("-" * len(hdr))
    for r in res["sizes"]:
        s = r.get("report_s")
        if s is None:
            print(f"{r['rows']:>12,} {'-':>9}  {r.get('error') or r.get('skipped')}")
            continue
        if s.get("extrapolated"):
            print(f"{r['rows']:>12,} {s['median']:>9.2f}  estimated linearly from {s['from_rows']:,} rows "
                  f"({r.get('error') or r.get('skipped')})")
            continue
        o = r["others_busy_cpus"]
        print(f"{r['rows']:>12,} {s['median']:>9.2f} {s['cpu_median']:>7.2f} {r['from_pandas_s']:>13.3f} "
              f"{r['run_s']:>7.2f} {s['rows_per_s']:>10,} {r['peak_rss_gib']:>7.2f} {r.get('import_s', 0):>8.1f} "
              f"{r['load_1min']['before']:>5.2f} {'?' if o is None else f'{o:.2f}':>6}  "
              f"{s['runs']} run(s); methods: {', '.join(r.get('methods', []))}; drifted: "
              f"{(r.get('drifted_columns') or {}).get('count')}")


# ----------------------------------------------------------------------------------------------- verdict
def verdict(payload: dict) -> dict:
    """The issue's goals against the figures (each None when its section did not run)."""
    drift = {r["rows"]: r["drift_report_s"]["median"] for r in payload.get("drift", {}).get("sizes", [])}
    log = {r["rows"]: r["read_log_plus_drift_s"]["median"] for r in payload.get("log", {}).get("sizes", [])}
    evi = {r["rows"]: r["report_s"] for r in payload.get("evidently", {}).get("sizes", []) if "report_s" in r}
    out: dict = {"goal_seconds_at_1m": GOAL_SECONDS_AT_1M, "goal_speedup": GOAL_SPEEDUP}
    m = 1_000_000
    out["drift_report_1m_s"] = drift.get(m)
    out["drift_report_1m_meets_goal"] = None if m not in drift else drift[m] <= GOAL_SECONDS_AT_1M
    out["log_path_1m_s"] = log.get(m)
    out["log_path_1m_meets_goal"] = None if m not in log else log[m] <= GOAL_SECONDS_AT_1M
    ratios = []
    for rows, e in sorted(evi.items()):
        r = {"rows": rows, "evidently_s": e["median"], "extrapolated": bool(e.get("extrapolated"))}
        if rows in drift:
            r["evidently_over_drift_report"] = round(e["median"] / drift[rows], 1)
        if rows in log:
            r["evidently_over_log_path"] = round(e["median"] / log[rows], 1)
        ratios.append(r)
    out["speedup"] = ratios
    at1m = next((r for r in ratios if r["rows"] == m), None)
    out["speedup_1m_meets_goal"] = (None if at1m is None or "evidently_over_drift_report" not in at1m
                                    else at1m["evidently_over_drift_report"] >= GOAL_SPEEDUP)
    lin = {}
    for name in ("drift", "log"):
        sec = payload.get(name, {})
        pair = next((s for s in sec.get("scaling", []) if s["from_rows"] == 100_000 and s["to_rows"] == m), None)
        if pair:
            lin[name] = {"time_ratio_1m_over_100k": pair["time_ratio"], "per_row_ratio": pair["per_row_ratio"]}
    evi_lin = [r for r in ratios if r["rows"] in (100_000, m) and not r["extrapolated"]]
    if len(evi_lin) == 2:
        lin["evidently"] = {"time_ratio_1m_over_100k": round(evi_lin[1]["evidently_s"] / evi_lin[0]["evidently_s"], 3)}
    out["linearity"] = lin
    return out


def show_verdict(v: dict) -> None:
    def yes(x: bool | None) -> str:
        return "not measured" if x is None else ("met" if x else "MISSED")

    def sec(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f} s"

    goal = f"{v['goal_seconds_at_1m']:g} s"
    print(f"\ngoals at 1M rows: drift_report <= {goal}: {sec(v['drift_report_1m_s'])} "
          f"{yes(v['drift_report_1m_meets_goal'])}; read_log + drift_report <= {goal}: {sec(v['log_path_1m_s'])} "
          f"{yes(v['log_path_1m_meets_goal'])}; drift_report >= {v['goal_speedup']:g}x faster than Evidently: "
          f"{yes(v['speedup_1m_meets_goal'])}")
    for r in v["speedup"]:
        parts = [f"Evidently {r['evidently_s']:.2f} s{' (extrapolated)' if r['extrapolated'] else ''}"]
        if "evidently_over_drift_report" in r:
            parts.append(f"{r['evidently_over_drift_report']:g}x the time of drift_report")
        if "evidently_over_log_path" in r:
            parts.append(f"{r['evidently_over_log_path']:g}x the time of read_log + drift_report")
        print(f"  {r['rows']:>12,} rows: " + "; ".join(parts))
    for name, lin in v["linearity"].items():
        extra = f", time per row x{lin['per_row_ratio']:.2f}" if "per_row_ratio" in lin else ""
        print(f"  linearity, {name}: time(1M) / time(100k) = {lin['time_ratio_1m_over_100k']:.2f}{extra} "
              f"(10 and x1.00 = linear)")


# ----------------------------------------------------------------------------------------------- main
SECTIONS: dict[str, tuple[Callable[[argparse.Namespace, Workload], dict], Callable[[dict], None]]] = {
    "drift": (run_drift, show_drift), "log": (run_log, show_log), "single": (run_single, show_single),
    "evidently": (run_evidently, show_evidently)}




def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(x.strip().replace("_", "")) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("needs at least one positive size")
    return sorted(set(sizes))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--evidently-worker"]:  # inside the Evidently venv: no polars, no workbench
        return evidently_worker(argv[1])
    if argv[:1] == ["--single-worker"]:
        return single_worker(argv[1])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=_sizes, default=_sizes("100000,1000000"),
                    help="live rows for drift_report on an in-memory frame (add 3000000 for a third point)")
    ap.add_argument("--log-sizes", type=_sizes, default=_sizes("100000,1000000"),
                    help="live rows written to a prediction log, then read_log + drift_report")
    ap.add_argument("--evidently-sizes", type=_sizes, default=_sizes("100000,1000000"),
                    help="live rows for Evidently's data-drift report")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per size (the median is reported)")
    ap.add_argument("--batch", type=int, default=100, help="rows per request line in the prediction log")
    ap.add_argument("--single-rows", type=int, default=1_000_000,
                    help="single-record requests for the compaction section (`single`)")
    ap.add_argument("--single-repeats", type=int, default=3, help="timed runs per path in the `single` section")
    ap.add_argument("--single-budget", type=float, default=240.0,
                    help="seconds per path in the `single` section before it stops repeating")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "drift.json",
                    help="where to save the JSON figures")
    ap.add_argument("--tmp-dir", default=None, help="folder for the temporary prediction log and Parquet files")
    ap.add_argument("--evidently-venv", type=Path, default=EVIDENTLY_VENV,
                    help="the Evidently venv (created with the pins on first use)")
    ap.add_argument("--evidently-python", default=shutil.which("python3.11") or sys.executable,
                    help="the interpreter that creates the Evidently venv")
    ap.add_argument("--evidently-budget", type=float, default=300.0,
                    help="seconds of Evidently runs per size before it stops repeating (a size that cannot "
                         "finish is estimated linearly from a smaller one)")
    ap.add_argument("--evidently-mem-gib", type=float, default=16.0,
                    help="address-space cap of the Evidently subprocess (this machine has 24 GiB)")
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.batch < 1:
        ap.error("--repeats and --batch must be at least 1")
    wanted = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown or not wanted:
        ap.error(f"unknown sections {unknown}; choose from {list(SECTIONS)}")

    import numpy as np
    import polars as pl
    import scipy

    payload: dict = {
        "benchmark": "drift",
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "polars_threads": pl.thread_pool_size(), "polars": pl.__version__,
                    "numpy": np.__version__, "scipy": scipy.__version__, "python": platform.python_version(),
                    "platform": platform.platform(), "load_avg_start": [round(x, 2) for x in os.getloadavg()]},
        "args": {"sizes": args.sizes, "log_sizes": args.log_sizes, "evidently_sizes": args.evidently_sizes,
                 "repeats": args.repeats, "batch": args.batch, "sections": wanted},
    }
    print("  building the workload (Adult, logreg probabilities, reference profile) ...", file=sys.stderr, flush=True)
    wl = Workload()
    payload["workload"] = wl.describe()
    for name in wanted:
        run, show = SECTIONS[name]
        payload[name] = run(args, wl)
        show(payload[name])
    payload["verdict"] = verdict(payload)
    show_verdict(payload["verdict"])
    payload["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    payload["machine"]["peak_rss_gib"] = round(_peak_rss_gib(), 2)
    _save(args.out, payload)
    print(f"\nload average {payload['machine']['load_avg_start']} -> {payload['machine']['load_avg_end']}; "
          f"peak RSS {payload['machine']['peak_rss_gib']} GiB; saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
