"""Benchmark the Discovery audit (``workbench.data.audit.audit_dataset``) on Adult replicated to 10M rows.

Prints a table and saves the figures as JSON (``--out``, written to a temporary file and renamed); it never
asserts on time. Machines are shared and noisy, so each figure is a median over ``--repeats`` runs, set next
to a baseline measured in the same run on the same frame, and the headline numbers are ratios:

- linearity: time per row at one size over time per row at the previous size (1.00 = linear; from 1M to 10M
  rows the plain time ratio of a linear audit is about 10);
- audit / floor: the audit's median time over the floor's median time on the same frame.

Workload
--------
The Adult brief and data are loaded through the library (``load_brief``, ``load_dataset``); the train split is
replicated to each size (the last replica cut short) and the test split is kept as it is. The contract is
inferred from the replicated train split, as the Discovery run does; its time is reported apart
(``contract_s``) and is not part of the audit's. Next to the 1-minute load average (which counts this process
too), ``others_busy_cpus`` says how many of the cores other processes kept busy while the audit ran.

Replicas are not exact copies: replica ``r`` has ``fnlwgt + r * 10**7``. The stride exceeds fnlwgt's
maximum (about 1.5M), so no seed is needed and replica 0 is Adult itself. Copied verbatim, 97% (1M) to 99.7%
(10M) of the rows would be exact duplicates: the full-row group-by would see only Adult's 32,537 distinct
rows, which is unrealistic (real data at 10M rows is mostly unique rows) and the easy case for a hash
group-by. With the shift, rows of different replicas never coincide, so the duplicate fraction stays Adult's
(24 per 32,561 rows) and the group-by sees about one distinct key per row; train/test overlap stays Adult's.
fnlwgt is a sampling weight the brief excludes from the features, so the shift changes no feature profile,
separation score or contract range; only fnlwgt's own profile grows (about 21.6k distinct values per
replica), as a real weight column's would. ``--verbatim`` runs the copied-verbatim workload instead (the
duplicate-heavy extreme).

Floor
-----
The floor is ``train.group_by(all columns).len()``: exact-duplicate detection, one hash group-by over every
cell of every row. It is the heaviest single question the audit answers ("how many duplicate rows?") asked in
the plain polars way, so audit/floor says what the whole audit costs relative to that one query (below 1 would
mean the audit answers all its questions faster than polars answers that one naively). A lower floor,
``train.hash_rows()`` (read every cell once), is reported as the cost of merely touching the data.
``df.null_count()`` is no floor: polars keeps null counts with the arrays, so it reads no data.

Sections
--------
``SECTIONS`` maps a section name to a :class:`Section`: ``run(args) -> dict`` measures, ``show(result)``
prints. Each result lands under its section's name in the JSON, and ``--sections`` picks which run:

- ``audit``: the audit, as above;
- ``contract``: ``infer_contract`` on the same replicated frames, ``--repeats`` times each, with the wall
  time, the CPU seconds of this process (steadier than wall time when other processes share the cores), the
  scan floor (``hash_rows``, interleaved) and the sha256 of the contract's JSON, so that two runs (before and
  after a change) can show the contract did not change.

The Discovery run's overhead (kernel start, papermill), reported apart from the audit's own compute, joins as
a further section once the run orchestration (``workbench.runs``) exists.

Usage::

    python benchmarks/bench_audit.py --sizes 32561,1000000,10000000 --repeats 3 \
        --out benchmarks/results/audit.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import hashlib
import inspect
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl
from _common import _CpuWatch, _median, _peak_rss_gib, _save

from workbench.brief import Brief, load_brief
from workbench.data.audit import audit_dataset
from workbench.data.contract import infer_contract
from workbench.data.io import Dataset, load_dataset

ROOT = Path(__file__).resolve().parents[1]
BRIEF = ROOT / "briefs" / "adult.yaml"
PERTURBED = "fnlwgt"
STRIDE = 10**7
AS_OF = dt.date(2025, 1, 1)  # fixed, so every audit computes the same report


# ----------------------------------------------------------------------------------------------- helpers




def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0




def replicate(train: pl.DataFrame, rows: int, *, verbatim: bool = False) -> pl.DataFrame:
    """``train`` repeated to ``rows`` rows; replica r gets ``PERTURBED + r * STRIDE`` unless ``verbatim``."""
    base = train.height
    if not verbatim and train.get_column(PERTURBED).max() >= STRIDE:
        raise SystemExit(f"{PERTURBED} reaches the replica stride {STRIDE}: raise STRIDE")
    pos = np.arange(rows, dtype=np.int64)
    out = train[pos % base]  # one gather: the only full copy made
    if verbatim:
        return out
    shift = pl.Series(PERTURBED, (pos // base) * STRIDE)
    del pos
    return out.with_columns(pl.col(PERTURBED) + shift)


def floors(train: pl.DataFrame) -> dict[str, float]:
    """The baselines (see the module docstring), timed once each on the same frame as the audit."""
    return {
        "floor_dedup": _timed(lambda: train.group_by(train.columns).len()),
        "floor_scan": _timed(lambda: train.hash_rows()),
    }


# ----------------------------------------------------------------------------------------------- the audit
def bench_size(brief: Brief, data: Dataset, rows: int, repeats: int, *, verbatim: bool) -> dict:
    """Audit the train split replicated to ``rows`` rows, ``repeats`` times, each followed by the floors."""
    stage_hook = "timings" in inspect.signature(audit_dataset).parameters
    train = replicate(data.train, rows, verbatim=verbatim)
    t0 = time.perf_counter()
    contract = infer_contract(train, brief)
    contract_s = time.perf_counter() - t0
    big = Dataset(train=train, test=data.test, sources=data.sources, split=data.split, notes=list(data.notes))
    load_before = os.getloadavg()[0]
    watch = _CpuWatch()
    totals: list[float] = []
    base: dict[str, list[float]] = {}
    stages: dict[str, list[float]] = {}
    report = None
    for _ in range(repeats):
        timings: dict[str, float] = {}
        gc.collect()
        t0 = time.perf_counter()
        kwargs = {"timings": timings} if stage_hook else {}  # older audits (the "before" figures) lack it
        report = audit_dataset(big, brief, contract, as_of=AS_OF, **kwargs)
        totals.append(time.perf_counter() - t0)
        for k, v in timings.items():
            stages.setdefault(k, []).append(v)
        for k, v in floors(train).items():  # interleaved: audit and floors see the same machine load
            base.setdefault(k, []).append(v)
    others = watch.others_busy_cpus()
    audit_med = _median(totals)
    summary = report.summary() if report is not None else {}
    out = {
        "rows": rows,
        "replicas": -(-rows // data.train.height),
        "contract_s": round(contract_s, 4),
        "audit_s": {"median": round(audit_med, 4), "min": round(min(totals), 4),
                    "per_million_rows": round(audit_med / rows * 1e6, 4),
                    "all": [round(x, 4) for x in totals]},
        "floors_s": {k: {"median": round(_median(v), 4), "min": round(min(v), 4)} for k, v in base.items()},
        "audit_over_floor": {k: round(audit_med / _median(v), 3) for k, v in base.items()},
        "stages_s": {k: round(_median(v), 4) for k, v in stages.items()},
        "load_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "others_busy_cpus": others,
        "peak_rss_gib_so_far": round(_peak_rss_gib(), 2),
        "workload": {"duplicate_rows": summary.get("duplicate_rows_train"),
                     "quality_score": summary.get("quality_score")},
    }
    del big, train, contract, report
    gc.collect()
    return out


def run_audit(args: argparse.Namespace) -> dict:
    brief = load_brief(BRIEF)
    data = load_dataset(brief)
    # warm-up (lazy imports, polars' thread pool, first allocations): not recorded
    audit_dataset(data, brief, infer_contract(data.train, brief), as_of=AS_OF)
    results = []
    for rows in args.sizes:
        print(f"  auditing {rows:>12,} rows x {args.repeats} ...", file=sys.stderr, flush=True)
        results.append(bench_size(brief, data, rows, args.repeats, verbatim=args.verbatim))
    scaling = []
    for small, large in zip(results, results[1:], strict=False):
        t_small, t_large = small["audit_s"]["median"], large["audit_s"]["median"]
        scaling.append({
            "from_rows": small["rows"], "to_rows": large["rows"],
            "rows_ratio": round(large["rows"] / small["rows"], 3),
            "time_ratio": round(t_large / t_small, 3),
            "per_row_ratio": round((t_large / large["rows"]) / (t_small / small["rows"]), 3),
        })
    return {
        "sizes": results, "scaling": scaling,
        "stage_hook": "timings" in inspect.signature(audit_dataset).parameters,
        "test_rows": data.test.height,
        "perturbation": "none (verbatim copies)" if args.verbatim else f"{PERTURBED} + replica * {STRIDE}",
    }


def show_audit(res: dict) -> None:
    hdr = (f"{'rows':>12} {'audit med s':>11} {'min s':>7} {'s/M rows':>8} {'dedup floor':>11} "
           f"{'audit/floor':>11} {'scan floor':>10} {'audit/scan':>10} {'load':>5} {'others':>6} "
           f"{'contract s':>10}")
    print(hdr)
    print("-" * len(hdr))
    for r in res["sizes"]:
        a, f, o = r["audit_s"], r["floors_s"], r["others_busy_cpus"]
        print(f"{r['rows']:>12,} {a['median']:>11.3f} {a['min']:>7.3f} {a['per_million_rows']:>8.3f} "
              f"{f['floor_dedup']['median']:>11.3f} {r['audit_over_floor']['floor_dedup']:>11.2f} "
              f"{f['floor_scan']['median']:>10.3f} {r['audit_over_floor']['floor_scan']:>10.1f} "
              f"{r['load_1min']['before']:>5.2f} {'?' if o is None else f'{o:.2f}':>6} "
              f"{r['contract_s']:>10.3f}")
    print("(load: 1-min load average before the runs, this process included; others: cores other processes "
          "kept busy meanwhile)")
    if res["stage_hook"] and res["sizes"]:
        names = list(res["sizes"][-1]["stages_s"])
        print("\naudit stages (median s):")
        print(f"{'rows':>12} " + " ".join(f"{n[:14]:>14}" for n in names))
        for r in res["sizes"]:
            cells = (f"{r['stages_s'].get(n, float('nan')):>14.3f}" for n in names)
            print(f"{r['rows']:>12,} " + " ".join(cells))
    for s in res["scaling"]:
        print(f"\n{s['from_rows']:,} -> {s['to_rows']:,} rows (x{s['rows_ratio']:g}): "
              f"time x{s['time_ratio']:.2f}, time per row x{s['per_row_ratio']:.2f} (1.00 = linear)")


# ----------------------------------------------------------------------------------------------- the contract
def bench_contract_size(brief: Brief, data: Dataset, rows: int, repeats: int, *, verbatim: bool) -> dict:
    """Infer the contract from the train split replicated to ``rows`` rows, ``repeats`` times."""
    train = replicate(data.train, rows, verbatim=verbatim)
    load_before = os.getloadavg()[0]
    watch = _CpuWatch()
    walls: list[float] = []
    cpus: list[float] = []
    scans: list[float] = []
    contract = None
    for _ in range(repeats):
        gc.collect()
        c0, t0 = time.process_time(), time.perf_counter()
        contract = infer_contract(train, brief)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        scans.append(_timed(train.hash_rows))  # interleaved: both see the same machine load
    others = watch.others_busy_cpus()
    med = _median(walls)
    text = json.dumps(contract.to_dict(), indent=2) if contract is not None else ""
    out = {
        "rows": rows,
        "contract_s": {"median": round(med, 4), "min": round(min(walls), 4),
                       "per_million_rows": round(med / rows * 1e6, 4), "all": [round(x, 4) for x in walls]},
        "cpu_s": {"median": round(_median(cpus), 4), "min": round(min(cpus), 4)},
        "floor_scan_s": round(_median(scans), 4),
        "contract_over_scan": round(med / _median(scans), 3),
        "load_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "others_busy_cpus": others,
        "contract_sha256": hashlib.sha256(text.encode()).hexdigest(),
    }
    del train, contract
    gc.collect()
    return out


def run_contract(args: argparse.Namespace) -> dict:
    brief = load_brief(BRIEF)
    data = load_dataset(brief)
    infer_contract(data.train, brief)  # warm-up, not recorded
    results = []
    for rows in args.sizes:
        print(f"  inferring the contract on {rows:>12,} rows x {args.repeats} ...", file=sys.stderr,
              flush=True)
        results.append(bench_contract_size(brief, data, rows, args.repeats, verbatim=args.verbatim))
    perturbation = "none (verbatim copies)" if args.verbatim else f"{PERTURBED} + replica * {STRIDE}"
    return {"sizes": results, "perturbation": perturbation}


def show_contract(res: dict) -> None:
    hdr = (f"{'rows':>12} {'contract med s':>14} {'min s':>7} {'cpu s':>7} {'s/M rows':>8} "
           f"{'scan floor':>10} {'contract/scan':>13} {'load':>5} {'others':>6}  contract sha256")
    print("\ninfer_contract")
    print(hdr)
    print("-" * len(hdr))
    for r in res["sizes"]:
        c, o = r["contract_s"], r["others_busy_cpus"]
        print(f"{r['rows']:>12,} {c['median']:>14.3f} {c['min']:>7.3f} {r['cpu_s']['median']:>7.3f} "
              f"{c['per_million_rows']:>8.3f} {r['floor_scan_s']:>10.3f} {r['contract_over_scan']:>13.2f} "
              f"{r['load_1min']['before']:>5.2f} {'?' if o is None else f'{o:.2f}':>6}  "
              f"{r['contract_sha256'][:16]}")


# ----------------------------------------------------------------------------------------------- sections
class Section(NamedTuple):
    run: Callable[[argparse.Namespace], dict]
    show: Callable[[dict], None]


# The Discovery run's overhead (kernel start, papermill) joins here as a further section.
SECTIONS: dict[str, Section] = {"audit": Section(run_audit, show_audit),
                                "contract": Section(run_contract, show_contract)}


# ----------------------------------------------------------------------------------------------- main


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(x.strip().replace("_", "")) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes takes comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("--sizes needs at least one positive size")
    return sizes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=_sizes, default=_sizes("32561,1000000,10000000"),
                    help="comma-separated row counts of the replicated train split")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per size (the median is reported)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "audit.json",
                    help="where to save the JSON figures")
    ap.add_argument("--verbatim", action="store_true",
                    help="copy rows unchanged (the duplicate-heavy extreme) instead of shifting fnlwgt")
    ap.add_argument("--sections", default=",".join(SECTIONS),
                    help=f"comma-separated sections to run ({', '.join(SECTIONS)})")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    wanted = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown or not wanted:
        ap.error(f"unknown sections {unknown}; choose from {list(SECTIONS)}")
    payload: dict = {
        "benchmark": "audit",
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "polars_threads": pl.thread_pool_size(), "polars": pl.__version__,
                    "numpy": np.__version__, "python": platform.python_version(),
                    "platform": platform.platform(),
                    "load_avg_start": [round(x, 2) for x in os.getloadavg()]},
        "args": {"sizes": args.sizes, "repeats": args.repeats, "verbatim": args.verbatim, "sections": wanted},
    }
    for name in wanted:
        payload[name] = SECTIONS[name].run(args)
        SECTIONS[name].show(payload[name])
    payload["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    _save(args.out, payload)
    print(f"\nload average {payload['machine']['load_avg_start']} -> {payload['machine']['load_avg_end']}; "
          f"saved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
