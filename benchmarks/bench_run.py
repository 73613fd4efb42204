"""Benchmark: where the time of a whole `workbench run` goes (Discovery, then Discovery -> Prototype).

Each repeat runs the real command (`python -m workbench run`) in a fresh process, as a user would, into a
temporary runs folder, then splits its wall time using what the run recorded:

* process  -- interpreter start, imports, brief and data pre-flight, manifest (wall minus notebook time);
* kernel   -- kernel start per notebook (from the runner's first-cell timestamp);
* papermill -- per-notebook time not spent in cells or kernel start (injecting, saving, shutdown);
* stages   -- cell durations summed by the ``stage:*`` tag each notebook cell carries (imports/load, audit,
  models, evaluation, fairness, shap, plots, records...); the models stage is further split into training
  (sum of fit seconds over CV folds and final fits, from leaderboard.json) and evaluation (the rest).

The baseline measured in the same run is the floor of the machinery: papermill executing a one-cell notebook
(kernel start + papermill), so ratios say how much of a run is fixed cost. Figures are medians over repeats.
The goals in the issues (Discovery -> Prototype <= 90 s on 2 cores) are printed next to the medians; nothing
here asserts on time.

    .venv/bin/python benchmarks/bench_run.py --repeats 3
    .venv/bin/python benchmarks/bench_run.py --repeats 3 --briefs adult,wage,penguins   # every bundled task
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def floor_seconds() -> float:
    """Kernel start + papermill for a notebook with one trivial cell (the machinery's fixed cost)."""
    import nbformat
    import papermill

    from workbench.runs import _kernel_manager_class

    with tempfile.TemporaryDirectory() as tmp:
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
                    nbformat.v4.new_code_cell("pass")]
        src = Path(tmp) / "floor.ipynb"
        nbformat.write(nb, src)
        t = time.perf_counter()
        papermill.execute_notebook(str(src), str(Path(tmp) / "out.ipynb"), progress_bar=False,
                                   execution_timeout=120, kernel_manager_class=_kernel_manager_class())
        return time.perf_counter() - t


def split_run(run_dir: Path, wall: float) -> dict:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    if manifest["status"] != "succeeded":
        raise SystemExit(f"run {run_dir} ended {manifest['status']}: {manifest.get('error')}")
    out: dict[str, float] = defaultdict(float)
    nb_total = 0.0
    for nb in manifest["notebooks"]:
        cells = json.loads((run_dir / nb["output"]).read_text())["cells"]
        cell_sum = 0.0
        for c in cells:
            if c["cell_type"] != "code":
                continue
            d = float(c["metadata"].get("papermill", {}).get("duration") or 0.0)
            cell_sum += d
            tags = [t for t in c["metadata"].get("tags", []) if t.startswith("stage:")]
            stage = tags[0].split(":", 1)[1] if tags else "parameters"
            out[f"{nb['phase']}.{stage}"] += d
        out["kernel_start"] += nb["kernel_start_s"]
        out["papermill"] += max(nb["duration_s"] - nb["kernel_start_s"] - cell_sum, 0.0)
        nb_total += nb["duration_s"]
    out["process"] = wall - nb_total
    lb = run_dir / "reports" / "leaderboard.json"
    if lb.exists():
        models = json.loads(lb.read_text())["models"]
        training = sum(sum(f["fit_seconds"] for f in m["cv"]["folds"]) + m["fitted"]["fit_seconds"]
                       for m in models.values())
        out["prototype.models.training"] = training
        out["prototype.models.evaluation"] = out["prototype.models"] - training
    out["wall"] = wall
    return dict(out)


def time_run(phases: list[str], runs_dir: Path, tag: str, brief: str = "adult") -> dict:
    cmd = [sys.executable, "-m", "workbench", "run", "--brief", str(ROOT / "briefs" / f"{brief}.yaml"), "--run-id", tag]
    for ph in phases:
        cmd += ["--phase", ph]
    env = {**os.environ, "WORKBENCH_RUNS_DIR": str(runs_dir), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"`{' '.join(cmd)}` exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return split_run(runs_dir / tag, wall)


def median_of(runs: list[dict]) -> dict:
    keys = sorted({k for r in runs for k in r})
    return {k: statistics.median(r.get(k, 0.0) for r in runs) for k in keys}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "run.json"))
    ap.add_argument("--briefs", default="", help="comma-separated bundled briefs (briefs/<name>.yaml) whose whole "
                                                 "Discovery -> Prototype run is also timed, e.g. wage,penguins")
    args = ap.parse_args()
    load = os.getloadavg()
    floors = [floor_seconds() for _ in range(args.repeats)]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, phases in (("discovery", ["discovery"]), ("discovery+prototype", [])):
            runs = [time_run(phases, Path(tmp), f"bench-{name.replace('+', '-')}-{i}") for i in range(args.repeats)]
            results[name] = {"median": median_of(runs), "repeats": runs}
        for brief in [b for b in args.briefs.split(",") if b and b != "adult"]:
            runs = [time_run([], Path(tmp), f"bench-{brief}-{i}", brief) for i in range(args.repeats)]
            results[f"{brief}: discovery+prototype"] = {"median": median_of(runs), "repeats": runs}
    floor = statistics.median(floors)
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {args.repeats} repeats, medians")
    print(f"floor (papermill, one trivial cell, kernel start included): {floor:.2f} s")
    for name, res in results.items():
        med = res["median"]
        print(f"\n{name}: wall {med['wall']:.2f} s = {med['wall'] / floor:.1f}x the floor")
        width = max(len(k) for k in med)
        for k, v in sorted(med.items(), key=lambda kv: -kv[1]):
            if k != "wall":
                print(f"  {k:<{width}} {v:7.2f} s  {100 * v / med['wall']:5.1f}%")
    d = results["discovery"]["median"]
    fixed = d["process"] + d["kernel_start"] + d["papermill"]
    compute = d.get("discovery.audit", 0.0)
    print(f"\nDiscovery: fixed overhead (process + kernel + papermill) {fixed:.2f} s vs audit compute {compute:.2f} s")
    total = results["discovery+prototype"]["median"]["wall"]
    print(f"Discovery -> Prototype: {total:.1f} s (goal <= 90 s)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"load_average": load, "floor_s": floors, "results": results}, indent=2))
    tmp.replace(out)
    print(f"saved {out}")


if __name__ == "__main__":
    main()
