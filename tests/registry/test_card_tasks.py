"""The model card per task, built from real report objects on small synthetic data (no notebook, no store):
binary keeps its threshold and rate columns; multiclass and regression show their own fields and metrics."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from workbench.evaluation.multiclass import evaluate_multiclass, multiclass_fairness_report
from workbench.evaluation.regression import evaluate_regression, regression_fairness_report
from workbench.registry.card import markdown_to_html, metric_text, model_card_markdown

CLASSES = ["Adelie", "Chinstrap", "Gentoo"]


def _sensitive(n: int, rng) -> pl.DataFrame:
    return pl.DataFrame({"sex": rng.choice(["female", "male"], n).tolist(),
                         "island": rng.choice(["Biscoe", "Dream", "Torgersen"], n, p=[0.5, 0.45, 0.05]).tolist()})


def _leaderboard(task: str, primary: str, sel_test: dict, base_test: dict, classes=None) -> dict:
    return {"task": task, "classes": classes, "primary": primary, "selected": "hgb", "best_baseline": "rule",
            "min_improvement": 0.1,
            "comparisons": {"hgb": {"primary_delta": 0.2, "deltas": {m: 0.1 for m in sel_test["metrics"]}}},
            "models": {"hgb": {"kind": "candidate", "fitted": {"description": "gradient boosting", "params": {"a": 1}},
                               "cv": {"n_splits": 3, "mean": {primary: 0.5}, "std": {primary: 0.01}},
                               "test": sel_test},
                       "rule": {"kind": "baseline", "fitted": {"params": {}}, "cv": {}, "test": base_test}}}


def _common(task: str, target: dict, fairness: dict, leaderboard: dict, shap: dict, parity: dict) -> str:
    brief = {"name": "demo", "task": task, "objective": "Demo objective.", "owner": "me", "target": target,
             "sensitive_features": ["sex", "island"], "success": {"metric": "", "threshold": 0.5},
             "latency_budget_ms": 10, "monitoring": {"metric_tolerance": 3.0}, "model_card": {}}
    manifest = {"run_id": "20260101-000000-demo", "git": {"commit": "abc", "dirty": False},
                "data": {"train": {"path": "/d/x.parquet", "rows": 100, "sha256": "f" * 64}}}
    gates = {"gates": [{"gate": "ONNX parity", "value": "x", "threshold": "y", "verdict": "pass", "detail": "a|b"}]}
    return model_card_markdown(brief=brief, manifest=manifest, leaderboard=leaderboard, fairness=fairness, shap=shap,
                               audit=None, parity=parity, gates=gates, tag="demo:1",
                               onnx={"opset": 17, "size_bytes": 2048, "sha256": "0" * 64})


@pytest.fixture(scope="module")
def regression_card() -> str:
    rng = np.random.default_rng(0)
    n = 600
    y = rng.normal(100, 30, n)
    yhat = y + rng.normal(0, 10, n)
    sens = _sensitive(n, rng)
    ev = evaluate_regression(y, yhat, primary="mae").to_dict()
    base = evaluate_regression(y, np.full(n, np.median(y)), primary="mae").to_dict()
    fair = regression_fairness_report(y, yhat, sens, thresholds={"mae_relative_difference": 0.5}, min_slice_size=40,
                                      n_bootstrap=30, seed=1).to_dict()
    shap = {"model": "hgb", "explainer": "tree", "task": "regression", "sample_size": 200,
            "additivity": {"passed": True, "max_abs_error": 1e-12}, "importance": {"x1": 3.2, "x2": 1.1}}
    parity = {"task": "regression", "rows": n, "label_agreement": None, "max_abs_diff": 2e-5, "p99_abs_diff": 1e-5,
              "tolerance": 0.003, "target_std": 30.0}
    return _common("regression", {"column": "wage", "positive_label": None, "decision_threshold": None}, fair,
                   _leaderboard("regression", "mae", ev, base), shap, parity)


@pytest.fixture(scope="module")
def multiclass_card() -> str:
    rng = np.random.default_rng(1)
    n = 400
    y = rng.integers(0, 3, n)
    logits = rng.normal(0, 1, (n, 3))
    logits[np.arange(n), y] += 2.0
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    sens = _sensitive(n, rng)
    ev = evaluate_multiclass(y, proba, classes=CLASSES, primary="macro_f1").to_dict()
    base = evaluate_multiclass(y, np.full((n, 3), 1 / 3), classes=CLASSES, primary="macro_f1").to_dict()
    fair = multiclass_fairness_report(y, proba, sens, classes=CLASSES, thresholds={"accuracy_difference": 0.2},
                                      min_slice_size=30, n_bootstrap=30, seed=1).to_dict()
    shap = {"model": "hgb", "explainer": "tree", "task": "multiclass_classification", "sample_size": 150,
            "additivity": {"passed": True}, "importance": {"bill": 1.5, "flipper": 0.7},
            "importance_by_class": {c: {"bill": 1.0 + i, "flipper": 0.5} for i, c in enumerate(CLASSES)}}
    parity = {"task": "multiclass_classification", "rows": n, "label_agreement": 1.0, "max_abs_diff": 2e-7,
              "p99_abs_diff": 1e-7, "tolerance": 1e-4}
    return _common("multiclass_classification", {"column": "species", "positive_label": None,
                                                 "decision_threshold": None}, fair,
                   _leaderboard("multiclass_classification", "macro_f1", ev, base, CLASSES), shap, parity)


def test_regression_card_shows_target_units_not_a_threshold(regression_card):
    md = regression_card
    assert "decision threshold" not in md and "positive label" not in md
    assert "| task | regression |" in md and "| served answer | prediction |" in md
    assert "Numeric target `wage` (held-out mean" in md
    assert "Primary metric **mae** (the default for regression): mean absolute error, in the target's units" in md
    assert "| mae | lower |" in md and "| r2 | higher |" in md
    assert "Residuals (actual - predicted, units of `wage`)" in md
    # per-group figures are the report's own: MAE, mean prediction, mean residual
    assert "| group | n | MAE | mean prediction | mean residual | evidence |" in md
    assert "TPR" not in md and "selection rate" not in md
    assert "mae_relative_difference" in md and "| class |" not in md.split("## Fairness")[1].split("\n\n")[0]
    assert "ONNX parity on 600 rows: max |Δprediction| 2.00e-05" in md and "label agreement" not in md
    assert "a rise of the primary metric (mae) beyond 3.0" in md


def test_multiclass_card_shows_classes_and_per_class_figures(multiclass_card):
    md = multiclass_card
    assert "decision threshold" not in md and "positive label" not in md
    assert "| classes | Adelie, Chinstrap, Gentoo |" in md and "| served answer | label, probabilities |" in md
    assert "Target `species`, 3 classes: `Adelie`, `Chinstrap`, `Gentoo`" in md
    assert "**Per class**" in md and "| class | support | predicted | precision | recall | f1 | pr_auc |" in md
    assert "recall Adelie" in md and "selection rate Gentoo" in md
    assert "| feature | gap | class | value | CI | threshold | verdict |" in md
    assert "| log_loss | lower |" in md
    assert "Mean |SHAP| per class" in md and "| feature | Adelie | Chinstrap | Gentoo |" in md
    assert "label agreement 100.000% on 400 rows, max per-class |Δp|" in md


@pytest.mark.parametrize("card", ["regression_card", "multiclass_card"])
def test_shap_section_counts_rows_and_escapes_the_header(card, request):
    md = request.getfixturevalue(card)
    assert "held-out rows of `hgb`" in md and " on  held-out" not in md
    assert "| feature | mean \\|SHAP\\| |" in md
    html = markdown_to_html(md, title="t")
    assert "<th>mean |SHAP|</th>" in html  # a real column, not raw text
    assert "| feature | mean" not in html
    # cells with a pipe stay in their column too
    assert "<td>a|b</td>" in html


def test_metric_text_says_which_way_is_better():
    assert metric_text("mae", "regression").endswith("(lower is better)")
    assert metric_text("r2", "regression").endswith("(higher is better)")
    assert metric_text("log_loss", "multiclass_classification").endswith("(lower is better)")
    assert metric_text("unknown_metric", "regression") == "unknown_metric"


def test_binary_card_keeps_its_threshold_and_rate_columns():
    from workbench.evaluation.fairness import fairness_report
    from workbench.evaluation.metrics import evaluate_binary

    rng = np.random.default_rng(2)
    n = 500
    y = rng.integers(0, 2, n)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, n), 0, 1)
    sens = _sensitive(n, rng)
    ev = evaluate_binary(y, p, threshold=0.5, primary="pr_auc").to_dict()
    base = evaluate_binary(y, np.full(n, y.mean()), threshold=0.5, primary="pr_auc").to_dict()
    fair = fairness_report(y, p, sens, threshold=0.5, thresholds={"equalized_odds_difference": 0.3},
                           min_slice_size=30, n_bootstrap=30, seed=0).to_dict()
    parity = {"rows": n, "label_agreement": 1.0, "max_abs_diff": 1e-7, "p99_abs_diff": 1e-7, "tolerance": 1e-4}
    lb = _leaderboard("binary_classification", "pr_auc", ev, base)
    md = _common("binary_classification", {"column": "income", "positive_label": ">50K", "decision_threshold": 0.4},
                 fair, lb, {"model": "hgb", "explainer": "tree", "sample_size": 100, "additivity": {"passed": True},
                            "importance": {"age": 0.5}}, parity)
    assert "| decision threshold | 0.4000 |" in md and "| positive label | >50K |" in md
    assert "Target `income`, positive label `>50K`" in md
    assert "| group | n | selection rate | TPR | FPR | accuracy | PR-AUC | evidence |" in md
    assert "(chosen for the task: rare positive class)" in md
    assert "ONNX parity: label agreement 100.000% on 500 rows, max |Δp|" in md
    assert "log-odds of the positive class" in md
