"""Benchmark: deployment under load -- pointer changes, shadow overhead, canary split -- on a real ``bentoml serve``.

Issue 14's reliability goals, measured against ``bento/service.py`` under ``bentoml serve`` (``--workers``, default 2)
on 127.0.0.1 with ``WORKBENCH_HOT_SWAP=1``, in a throwaway ``BENTOML_HOME`` holding three versions of one package
(built for the occasion, ``tests/serving/conftest.py::build_serving_package``): ``A``, ``B`` (healthy) and ``T``
(``B``'s files, ``model.onnx`` altered after registration). The scenario, the clients and the registry steps are
those of ``tests/serving/test_pointer_change_live.py`` (imported from there), run longer:

(a) pointer changes at ``--clients`` (32) keep-alive clients, ``--cycles`` times: A -> B (``release``), B -> T
    (altered: must never answer), ``rollback`` T -> B, ``rollback`` B -> A, a 25% canary of B beside A, its end
    (the automatic rollback's registry write); ``--dwell`` seconds of traffic after each change is seen. Reported:
    requests, failures, answers per version, log coverage (every answered request id in its version's log lines),
    and the swap time seen by clients: from the pointer write to the first answer by the new version, median over
    the changes that move the champion or add the canary. Goal: 0 failed, 0 answered by T, every answer logged.
(b) shadow overhead: one client (a plain keep-alive ``http.client`` connection) sends ``--shadow-requests`` requests
    back to back with shadow off, then on (B shadowing A), in ``--rounds`` interleaved rounds (the order
    alternates); p50, p99, mean and success rate of the champion's answers; the ratio is on the pooled medians
    (goal <= 1.3x, success rate unchanged). Also, for the reading: the same client with ``--think-ms`` between an
    answer and its next request (the answer's own latency: the shadow scores after the answer is out, so back to
    back the next request waits for it), and 32 clients for ``--load-s`` seconds per phase. The shadow's own log
    lines tell how many requests it scored.
(c) canary split: B at 25% beside A, ``--canary-requests`` (10,000) requests with distinct request ids at 32 clients;
    the share answered by B (goal within +-2 points of 25) and how many answers differ from what the request id's
    bucket predicts (:func:`workbench.serving.deploy.bucket`; 0 expected); stickiness: ``--keys`` caller keys
    (``X-Caller-Key``) each sent ``--per-key`` times: keys answered by two models (0 expected).

Automatic rollbacks the service decided by itself during the run are read from the ledger and reported (a
canary rolled back mid-measurement is flagged: its split is then not the canary's). ``--work-dir`` keeps the
BentoML home, ledger, server output and prediction log for inspection.

Every server listens on 127.0.0.1 and is always stopped (its whole process tree); every load is bounded in
requests and seconds. The clients share the machine's cores with the server: the load average is recorded.
Nothing here asserts on time. Prints a table and writes JSON (``--out``, default benchmarks/results/deploy.json).

    .venv/bin/python benchmarks/bench_deploy.py                        # about 2-3 minutes
    .venv/bin/python benchmarks/bench_deploy.py --sections shadow --rounds 5
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import importlib
import importlib.util
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from _common import _save

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests" / "serving"
GOALS = {"failed_requests": 0, "answered_by_altered": 0, "log_missing": 0, "shadow_p50_ratio_max": 1.3,
         "canary_points_max": 2.0}
SECTIONS = ("pointer", "shadow", "canary")


def _live():
    """tests/serving/test_pointer_change_live.py (its scenario, clients and registry steps), imported under a
    package name of its own so that its relative imports (``.conftest``) resolve."""
    name = "_bench_deploy_serving_tests"
    if f"{name}.test_pointer_change_live" not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TESTS / "__init__.py",
                                                      submodule_search_locations=[str(TESTS)])
        package = importlib.util.module_from_spec(spec)
        sys.modules[name] = package
        spec.loader.exec_module(package)
    return importlib.import_module(f"{name}.test_pointer_change_live")


def _q(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def _lat(ms: list[float]) -> dict:
    return {"n": len(ms), "p50_ms": statistics.median(ms) if ms else float("nan"), "p99_ms": _q(ms, 0.99),
            "mean_ms": statistics.fmean(ms) if ms else float("nan")}


# ------------------------------------------------------------------------------------------------ (a) pointer
def pointer_changes(live, server, models, log_dir: Path, args) -> dict:
    cycles = []
    for c in range(args.cycles):
        print(f"  (a) cycle {c + 1}/{args.cycles}: A -> B -> T -> B -> A -> canary B 25% -> A at {args.clients} "
              "clients", flush=True)
        result = live.run_scenario(server, models, clients=args.clients, dwell_s=args.dwell,
                                   step_timeout_s=max(10.0, 10 * args.poll), workers=args.workers,
                                   max_requests=args.max_requests, prefix=f"cycle{c + 1}")
        cycles.append(result)
    answers = [a for r in cycles for a in r.answers]
    versions = [models.a, models.b, models.t]
    cover = live.log_coverage(log_dir, answers, versions, raw=True)
    try:
        live.log_coverage(log_dir, answers, versions, raw=False)
        reader = "ok"
    except Exception as exc:  # noqa: BLE001 - reported (see the test's xfail)
        reader = f"{type(exc).__name__}: {str(exc)[:120]}"
    swaps = [s.swap_s for r in cycles for s in r.steps if s.swap_s is not None]
    by_step: dict[str, list[float]] = {}
    for r in cycles:
        for s in r.steps:
            if s.swap_s is not None:
                by_step.setdefault(s.name, []).append(s.swap_s)
    wall = sum(r.wall_s for r in cycles)
    failed = [a for a in answers if a.status != 200]
    by_version = {models.a: 0, models.b: 0, models.t: 0}
    for a in answers:
        if a.status == 200:
            by_version[a.version] = by_version.get(a.version, 0) + 1
    return {
        "cycles": args.cycles, "clients": args.clients, "poll_s": args.poll, "dwell_s": args.dwell,
        "requests": len(answers), "failed": len(failed),
        "failed_examples": sorted({f"{a.status} {a.error[:100]}" for a in failed})[:5],
        "answers": {"A": by_version[models.a], "B": by_version[models.b], "T": by_version[models.t]},
        "requests_per_s": len(answers) / wall if wall else None, "wall_s": wall,
        "log": {"A": cover[models.a], "B": cover[models.b], "T": cover[models.t]},
        "log_missing": sum(c["answered"] - c["in_log"] for c in cover.values()),
        "log_not_answered": sum(len(c["not_answered"]) for c in cover.values()),
        "project_reader": reader,
        "lines_by_worker": live.segments_by_pid(log_dir),
        "swap_s_median": statistics.median(swaps) if swaps else None, "swap_s_max": max(swaps) if swaps else None,
        "swap_s_by_change": {k: statistics.median(v) for k, v in by_step.items()},
        "swap_failures_T_on_metrics": cycles[-1].swap_failures_t,
    }


# ------------------------------------------------------------------------------------------------ (b) shadow
def _single_client(url: str, bodies: list[bytes], n: int, prefix: str, think_s: float = 0.0
                   ) -> tuple[list[float], int, list[str]]:
    """``n`` requests, one after another on one keep-alive connection (``think_s`` of sleep between an answer and
    the next request): latencies (ms) of 200 answers, how many were not 200 (or failed), the request ids
    answered."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    lat, bad, rids = [], 0, []
    clock = time.perf_counter
    try:
        for i in range(n):
            rid = f"{prefix}-{i}"
            t0 = clock()
            try:
                conn.request("POST", "/predict", body=bodies[i % len(bodies)],
                             headers={"Content-Type": "application/json", "X-Request-ID": rid})
                r = conn.getresponse()
                r.read()
                ok = r.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
            if ok:
                lat.append((clock() - t0) * 1000.0)
                rids.append(rid)
            else:
                bad += 1
            if think_s:
                time.sleep(think_s)
    finally:
        conn.close()
    return lat, bad, rids


def _wait_metric(live, url: str, name: str, target: float, timeout_s: float, **labels: str) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if live.metric(url, name, **labels) >= target:
            return True
        time.sleep(0.05)
    return False


def _shadow(live, server, models, on: bool, args) -> None:
    """Start (integration check, ledger line, pointer) or end a shadow of B beside A, and wait until every worker
    serves it (its swap counter) or, when ending, a few pointer polls."""
    from workbench.registry import ledger

    if on:
        before = live.metric(server.url, "workbench_model_swaps_total", model_version=models.b, role="challenger")
        live.start_challenger(models, models.b, "shadow")
        if not _wait_metric(live, server.url, "workbench_model_swaps_total", before + args.workers,
                            10 * args.poll + 10, model_version=models.b, role="challenger"):
            print("  warning: the shadow was not swapped in by every worker in time", flush=True)
    else:
        ledger.clear_challenger(models.b, reason="bench: shadow off", by="bench")
        time.sleep(3 * args.poll + 0.3)
    time.sleep(0.2)


def shadow_overhead(live, server, models, log_dir: Path, args) -> dict:
    from workbench.registry import ledger

    bodies = models.bodies
    single: dict[str, dict[str, list]] = {f"{kind}{key}": {"lat": [], "bad": [], "rids": []}
                                          for kind in ("", "think_") for key in ("off", "on")}
    many: dict[str, list] = {"off": [], "on": []}
    per_round = []
    ledger.clear_challenger(models.b, reason="bench: start", by="bench")  # none after (a): nothing written
    _single_client(server.url, bodies, 500, "warm")  # warm-up: connection, caches
    state = False
    for r in range(args.rounds):
        order = (False, True) if r % 2 == 0 else (True, False)
        row = {}
        for on in order:
            if on != state:
                _shadow(live, server, models, on, args)
                state = on
            key = "on" if on else "off"
            lat, bad, rids = _single_client(server.url, bodies, args.shadow_requests, f"s{r}-{key}")
            single[key]["lat"] += lat
            single[key]["bad"].append(bad)
            single[key]["rids"] += rids
            row[key] = statistics.median(lat) if lat else float("nan")
            if args.think_requests:
                lat, bad, rids = _single_client(server.url, bodies, args.think_requests, f"t{r}-{key}",
                                                think_s=args.think_ms / 1000.0)
                single[f"think_{key}"]["lat"] += lat
                single[f"think_{key}"]["bad"].append(bad)
                single[f"think_{key}"]["rids"] += rids
            load = live.Load(server.url, bodies, clients=args.clients, max_s=args.load_s,
                             max_requests=args.max_requests, prefix=f"m{r}-{key}").start()
            answers = load.join()
            many[key].append(answers)
            print(f"  (b) round {r + 1}/{args.rounds} shadow {key}: 1 client p50 {row[key]:.3f} ms; "
                  f"{args.clients} clients {len(answers) / args.load_s:.0f} req/s", flush=True)
        row["ratio"] = row["on"] / row["off"]
        per_round.append(row)
    if state:
        _shadow(live, server, models, False, args)
    shadow_rows = {rid for rid, role, _by in live.logged(log_dir, models.b, raw=True) if role == "shadow"}
    out: dict = {"rounds": args.rounds, "requests_per_phase": args.shadow_requests, "per_round": per_round}
    out["think_ms"] = args.think_ms
    for key in ("off", "on"):
        for kind, sent in (("", args.shadow_requests * args.rounds), ("think_", args.think_requests * args.rounds)):
            lat = single[f"{kind}{key}"]["lat"]
            if not sent:
                continue
            scored = len(shadow_rows & set(single[f"{kind}{key}"]["rids"]))
            out[f"single_{kind}{key}"] = {**_lat(lat), "success_rate": len(lat) / sent, "shadow_scored": scored}
        answers = [a for run in many[key] for a in run]
        ok = [a for a in answers if a.status == 200]
        out[f"clients_{key}"] = {**_lat([(a.got - a.sent) * 1000.0 for a in ok]),
                                 "requests_per_s": len(answers) / (args.load_s * args.rounds),
                                 "success_rate": len(ok) / len(answers) if answers else float("nan"),
                                 "shadow_scored": len(shadow_rows & {a.rid for a in ok})}
    out["p50_ratio"] = out["single_on"]["p50_ms"] / out["single_off"]["p50_ms"]
    out["p99_ratio"] = out["single_on"]["p99_ms"] / out["single_off"]["p99_ms"]
    out["mean_ratio"] = out["single_on"]["mean_ms"] / out["single_off"]["mean_ms"]
    if args.think_requests:
        out["think_p50_ratio"] = out["single_think_on"]["p50_ms"] / out["single_think_off"]["p50_ms"]
    out["clients_p50_ratio"] = out["clients_on"]["p50_ms"] / out["clients_off"]["p50_ms"]
    out["clients_rps_ratio"] = out["clients_on"]["requests_per_s"] / out["clients_off"]["requests_per_s"]
    return out


# ------------------------------------------------------------------------------------------------ (c) canary
def canary_split(live, server, models, args) -> dict:
    from workbench.registry import ledger
    from workbench.serving.deploy import BUCKETS, bucket
    from workbench.serving.pointer import production_pointer

    percent = 25
    before = live.metric(server.url, "workbench_model_swaps_total", model_version=models.b, role="challenger")
    live.start_challenger(models, models.b, "canary", percent)
    applied = _wait_metric(live, server.url, "workbench_model_swaps_total", before + args.workers,
                           10 * args.poll + 10, model_version=models.b, role="challenger")
    time.sleep(0.2)
    threshold = round(percent * BUCKETS / 100)
    rolled_before = len(service_rollbacks())
    try:
        load = live.Load(server.url, models.bodies, clients=args.clients, max_requests=args.canary_requests,
                         max_s=120.0, prefix="canary").start()
        answers = load.join()
        ok = [a for a in answers if a.status == 200]
        by_b = sum(a.version == models.b for a in ok)
        predicted = sum(bucket(a.rid) < threshold for a in ok)
        mismatched = sum((a.version == models.b) != (bucket(a.rid) < threshold) for a in ok)
        keys, per_key = args.keys, args.per_key
        sticky = live.Load(server.url, models.bodies, clients=args.clients, max_requests=keys * per_key,
                           max_s=120.0, prefix="sticky",
                           caller_key=lambda c, n: f"caller-{(n * args.clients + c) % keys}").start()
        # the key of each request is recomputed from its id, "sticky-<client>-<n>"
        seen: dict[str, set] = {}
        for a in sticky.join():
            if a.status == 200:
                _p, c, n = a.rid.rsplit("-", 2)
                seen.setdefault(f"caller-{(int(n) * args.clients + int(c)) % keys}", set()).add(a.version)
        still = (production_pointer() or {}).get("challenger") is not None
    finally:
        ledger.clear_challenger(models.b, reason="bench: canary off", by="bench")
    share = 100.0 * by_b / len(ok) if ok else float("nan")
    return {
        "percent": percent, "applied_in_every_worker": applied, "still_in_the_pointer_at_the_end": still,
        "rolled_back_by_the_service": service_rollbacks()[rolled_before:], "requests": len(answers), "failed": len(answers) - len(ok),
        "answered_by_challenger": by_b, "share_pct": share, "points_off": share - percent,
        "bucket_predicted_share_pct": 100.0 * predicted / len(ok) if ok else float("nan"),
        "answers_not_as_bucketed": mismatched,
        "sticky_keys": len(seen), "keys_answered_by_two_models": sum(len(v) > 1 for v in seen.values()),
        "keys_on_challenger_pct": 100.0 * sum(v == {models.b} for v in seen.values()) / len(seen) if seen else None,
        "keys_not_as_bucketed": sum(v != {models.b if bucket(k) < threshold else models.a}
                                    for k, v in seen.items()),
    }


def service_rollbacks() -> list[dict]:
    """Automatic rollbacks the service (or feedback) recorded in the ledger, not the scenario's own writes."""
    from workbench.registry import ledger

    return [{k: e.get(k) for k in ("at", "tag", "trigger", "reason", "by")} for e in ledger.read_ledger()
            if e.get("automatic") and not str(e.get("by") or "").startswith("test")]


# ------------------------------------------------------------------------------------------------ report
def print_report(data: dict) -> None:
    print("\n== deployment (bench_deploy.py) ==")
    p = data.get("pointer")
    if p:
        print(f"(a) pointer changes, {p['cycles']} cycle(s) at {p['clients']} clients, poll {p['poll_s']:g} s")
        rows = [("requests", f"{p['requests']:,} ({p['requests_per_s']:.0f}/s)", ""),
                ("failed requests", str(p["failed"]), "0"),
                ("answered by A / B / T", f"{p['answers']['A']:,} / {p['answers']['B']:,} / {p['answers']['T']}",
                 "T: 0"),
                ("answered requests missing from their version's log", str(p["log_missing"]), "0"),
                ("logged rows no client got from that version", str(p["log_not_answered"]), "0"),
                ("failed swaps of T counted on /metrics", f"{p['swap_failures_T_on_metrics']:g}",
                 f">= {data['settings']['workers']} per cycle"),
                ("the project's log reader (read_columns) on that log", p["project_reader"][:60], ""),
                ("swap time seen by clients, median (max)",
                 f"{p['swap_s_median']:.3f} s ({p['swap_s_max']:.3f} s)" if p["swap_s_median"] is not None else "-",
                 ""),
                ("lines logged by worker (pid)", ", ".join(f"{k}: {v:,}" for k, v in p["lines_by_worker"].items()),
                 "")]
        for name, value, goal in rows:
            print(f"  {name:<55} {value:<40} {goal}")
        for k, v in p["swap_s_by_change"].items():
            print(f"    swap {k:<50} {v:.3f} s")
    s = data.get("shadow")
    if s:
        print(f"(b) shadow overhead, {s['rounds']} interleaved rounds x {s['requests_per_phase']} requests per phase")
        for who in ("single", "single_think", "clients"):
            if f"{who}_off" not in s:
                continue
            for key in ("off", "on"):
                d = s[f"{who}_{key}"]
                rps = f", {d['requests_per_s']:.0f} req/s" if "requests_per_s" in d else ""
                label = {"single": "1 client", "single_think": f"1 client, {s['think_ms']:g} ms think"}.get(
                    who, f"{data['settings']['clients']} clients")
                print(f"  {label:<22} shadow "
                      f"{key:<4} p50 {d['p50_ms']:.3f} ms  p99 {d['p99_ms']:.3f} ms  mean {d['mean_ms']:.3f} ms  "
                      f"success {d['success_rate']:.4%}{rps}  shadow scored {d['shadow_scored']:,}")
        print(f"  1 client on/off: p50 {s['p50_ratio']:.2f}x (goal <= {GOALS['shadow_p50_ratio_max']}x), "
              f"p99 {s['p99_ratio']:.2f}x, mean {s['mean_ratio']:.2f}x; per round "
              + ", ".join(f"{r['ratio']:.2f}x" for r in s["per_round"]))
        if "think_p50_ratio" in s:
            print(f"  1 client with {s['think_ms']:g} ms between requests on/off: p50 {s['think_p50_ratio']:.2f}x "
                  "(the answer itself; back to back, the next request waits for the shadow's scoring)")
        print(f"  {data['settings']['clients']} clients on/off: p50 {s['clients_p50_ratio']:.2f}x, "
              f"req/s {s['clients_rps_ratio']:.2f}x")
    c = data.get("canary")
    if c and not c["still_in_the_pointer_at_the_end"]:
        print("(c) warning: the canary left the pointer during the measurement: its split is not the canary's")
    if c and c["rolled_back_by_the_service"]:
        for e in c["rolled_back_by_the_service"]:
            print(f"(c) the service rolled the canary back during the measurement ({e['trigger']}): {e['reason']}")
    if c:
        print(f"(c) canary at {c['percent']}%: {c['requests']:,} requests, {c['failed']} failed; answered by the "
              f"challenger {c['share_pct']:.2f}% ({c['points_off']:+.2f} points; goal within "
              f"+-{GOALS['canary_points_max']:g}); the request ids' buckets predict {c['bucket_predicted_share_pct']:.2f}%, "
              f"answers not as bucketed: {c['answers_not_as_bucketed']}")
        print(f"    stickiness: {c['sticky_keys']} caller keys, {c['keys_answered_by_two_models']} answered by two models, "
              f"{c['keys_not_as_bucketed']} not on their bucket's model; {c['keys_on_challenger_pct']:.1f}% of keys on "
              "the challenger")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of: {', '.join(SECTIONS)}")
    ap.add_argument("--workers", type=int, default=2, help="bentoml serve workers (WORKBENCH_WORKERS)")
    ap.add_argument("--poll", type=float, default=1.0,
                    help="seconds between two looks at the pointer (WORKBENCH_POINTER_POLL_S; the service's default)")
    ap.add_argument("--clients", type=int, default=32, help="concurrent keep-alive clients for (a), (b) and (c)")
    ap.add_argument("--cycles", type=int, default=2, help="(a): times through the pointer changes")
    ap.add_argument("--dwell", type=float, default=3.0, help="(a): seconds of traffic after each change is seen")
    ap.add_argument("--rounds", type=int, default=5, help="(b): interleaved shadow off/on rounds")
    ap.add_argument("--shadow-requests", type=int, default=2000, help="(b): single-client requests per phase")
    ap.add_argument("--think-requests", type=int, default=1000,
                    help="(b): single-client requests per phase with --think-ms between them (0: skip)")
    ap.add_argument("--think-ms", type=float, default=2.0, help="(b): sleep between an answer and the next request")
    ap.add_argument("--load-s", type=float, default=3.0, help="(b): seconds of 32-client load per phase")
    ap.add_argument("--canary-requests", type=int, default=10_000, help="(c): requests for the split")
    ap.add_argument("--keys", type=int, default=400, help="(c): caller keys for stickiness")
    ap.add_argument("--per-key", type=int, default=5, help="(c): requests per caller key")
    ap.add_argument("--max-requests", type=int, default=400_000, help="cap on any one load's requests")
    ap.add_argument("--model", default="hgb", help="candidate to build the package with (as bench_serving)")
    ap.add_argument("--work-dir", default="", help="keep the BentoML home, server output and prediction log here "
                                                   "(default: a temporary folder, removed)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "deploy.json"))
    args = ap.parse_args()
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        ap.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    live = _live()
    conftest = sys.modules["_bench_deploy_serving_tests.conftest"]
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    load0 = os.getloadavg()
    data: dict = {"benchmark": "deploy", "started": started, "host": platform.node(),
                  "cores": len(os.sched_getaffinity(0)), "loadavg_start": load0, "goals": GOALS,
                  "settings": {k: v for k, v in vars(args).items() if k != "out"}}
    saved_tag = os.environ.pop("WORKBENCH_MODEL_TAG", None)
    try:
        with contextlib.ExitStack() as stack:
            if args.work_dir:  # kept: server output, ledger, pointer, prediction log
                tmp = Path(args.work_dir)
                if tmp.exists() and any(tmp.iterdir()):
                    ap.error(f"--work-dir {tmp} is not empty; give a new or empty folder")
                tmp.mkdir(parents=True, exist_ok=True)
            else:
                tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench_deploy_")))
            home, log_dir = tmp / "bentoml_home", tmp / "log"
            with conftest.bentoml_home(home):
                print(f"building the package ({args.model}) and registering A, B, T in {home}", flush=True)
                pkg = conftest.build_serving_package(home, model=args.model)
                models = live.register_models(pkg.path, home, pkg.records[:50])
                data["models"] = {"A": models.a, "B": models.b, "T": models.t}
                with live.live_server(home, log_dir, tmp / "bentoml-serve.log", workers=args.workers,
                                      poll_s=args.poll) as server:
                    try:
                        if "pointer" in sections:
                            data["pointer"] = pointer_changes(live, server, models, log_dir, args)
                        if "shadow" in sections:
                            data["shadow"] = shadow_overhead(live, server, models, log_dir, args)
                        if "canary" in sections:
                            data["canary"] = canary_split(live, server, models, args)
                    except BaseException:
                        print(f"--- server log ---\n{server.log.read_text(errors='replace')[-3000:]}", flush=True)
                        raise
                alive = server.alive()
                data["server_processes_left"] = alive
                data["service_rollbacks"] = service_rollbacks()
                if alive:
                    print(f"warning: server processes still alive after stop: {alive}", flush=True)
    finally:
        if saved_tag is not None:
            os.environ["WORKBENCH_MODEL_TAG"] = saved_tag
    data["loadavg_end"] = os.getloadavg()
    print_report(data)
    _save(Path(args.out), data)
    print(f"\nsaved {args.out}")


if __name__ == "__main__":
    main()
