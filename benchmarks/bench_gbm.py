"""ONNX vs native predict for the LightGBM and XGBoost candidates: one record and a 100k-row batch.

Fits each family (default parameters) on Adult's training split, exports it with workbench's converter, and times
``pipeline.predict_proba`` (the library's native predict behind the same preprocessing) against
``InferenceSession.run`` and against the serving path's ``OnnxScorer`` (in-process), in the same run. Prints the
figures and the ratios; never asserts on time. Usage: ``python benchmarks/bench_gbm.py [--rows 100000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from workbench.brief import load_brief  # noqa: E402
from workbench.config import find_project_root  # noqa: E402
from workbench.data import infer_contract, load_dataset  # noqa: E402
from workbench.experiments import model_frames  # noqa: E402
from workbench.export.onnx import export_onnx  # noqa: E402
from workbench.modeling import fit_model  # noqa: E402
from workbench.serving import OnnxScorer  # noqa: E402


def _time(fn, n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--single", type=int, default=300, help="single-record calls timed")
    args = ap.parse_args()
    import onnxruntime as ort

    brief = load_brief(find_project_root() / "briefs" / "adult.yaml")
    data = load_dataset(brief, sample_rows=0, seed=42)
    contract = infer_contract(data.train, brief)
    frames = model_frames(data, brief, contract)
    big = frames.X_test.sample(n=args.rows, replace=True, random_state=0).reset_index(drop=True)
    results = {}
    for family in ("lgbm", "xgb"):
        f = fit_model(family, frames.X_train, frames.y_train, seed=42, contract=contract)
        exp = export_onnx(f.model, features=contract.features, numeric=contract.numeric_features)
        sess = ort.InferenceSession(exp.model_bytes, providers=["CPUExecutionProvider"])
        scorer = OnnxScorer(exp.model_bytes, exp.inputs, task="binary_classification")

        def feeds(X):
            return {c: (X[[c]].to_numpy(np.float32) if c in contract.numeric_features
                        else X[[c]].to_numpy(dtype=object).astype(str)) for c in contract.features}

        one = frames.X_test.iloc[[0]]
        one_feeds, big_feeds = feeds(one), feeds(big)
        one_rec = {c: [None if (isinstance(v, float) and np.isnan(v)) or v == "" else v]
                   for c, v in one.iloc[0].items()}
        big_rec = {c: big[c].tolist() for c in contract.features}
        r = {
            "native_single_ms": 1e3 * _time(lambda: f.model.predict_proba(one), args.single),  # noqa: B023 - called at once, in this iteration
            "onnx_single_ms": 1e3 * _time(lambda: sess.run(None, one_feeds), args.single),  # noqa: B023 - called at once, in this iteration
            "scorer_single_ms": 1e3 * _time(lambda: scorer.scores(one_rec), args.single),  # noqa: B023 - called at once, in this iteration
            "native_batch_s": _time(lambda: f.model.predict_proba(big), 3),  # noqa: B023 - called at once, in this iteration
            "onnx_batch_s": _time(lambda: sess.run(None, big_feeds), 3),  # noqa: B023 - called at once, in this iteration
            "scorer_batch_s": _time(lambda: scorer.scores(big_rec), 3),  # noqa: B023 - called at once, in this iteration
        }
        r["single_native_over_onnx"] = r["native_single_ms"] / r["onnx_single_ms"]
        r["batch_native_over_onnx"] = r["native_batch_s"] / r["onnx_batch_s"]
        r["single_scorer_over_onnx"] = r["scorer_single_ms"] / r["onnx_single_ms"]
        r["batch_scorer_over_onnx"] = r["scorer_batch_s"] / r["onnx_batch_s"]
        results[family] = {k: round(v, 4) for k, v in r.items()}
        print(family, json.dumps(results[family]))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
