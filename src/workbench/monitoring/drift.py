"""Drift of live inputs and predictions against the reference profile: PSI and KS for numeric features, PSI and
chi-square for categorical features, and for the predictions, per task (the profile's ``task``): PSI and KS on
the predicted probability (binary) or the predicted value (regression), PSI and chi-square on the shares of the
predicted classes (multiclass).

Severity follows the methodology: PSI >= ``psi_warning`` (0.1) is a warning, >= ``psi_critical`` (0.25) critical
(both configurable in the brief's ``monitoring`` section). A KS test that is significant (p < ``ks_alpha``) with a
statistic of at least 0.1 also raises a warning -- the statistic floor keeps million-row samples from alarming on
trivial differences. Chi-square p-values are reported, not used for severity, for the same reason.
Playbook: warning -> investigate; critical -> retrain within 24h; prediction drift without input drift ->
verify labels (the relationship may have changed).
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl

from .._report import Report, esc, html_table
from .profile import MISSING, UNSEEN, bin_shares, profile_task

__all__ = ["DriftReport", "drift_report", "psi", "EXIT_CODES", "PLAYBOOK"]

Severity = Literal["ok", "warning", "critical"]
EXIT_CODES = {"ok": 0, "warning": 10, "critical": 20}
PLAYBOOK = {
    "ok": "no action",
    "warning": "investigate: look for upstream changes in the flagged features (pipelines, sources, population)",
    "critical": "retrain within 24h on recent data, after confirming the shift is real; keep the current model "
                "serving or roll back if quality drops",
    "labels": "verify labels: predictions moved without input drift, so the input-output relationship may have "
              "changed (run `workbench feedback` with fresh ground truth)",
}
_EPS = 1e-4
_KS_MIN_STAT = 0.1


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two share vectors (floored at 1e-4 so empty bins stay finite)."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), _EPS)
    a = np.maximum(np.asarray(actual, dtype=np.float64), _EPS)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def _severity(value: float, warning: float, critical: float) -> Severity:
    return "critical" if value >= critical else "warning" if value >= warning else "ok"


_ORDER = {"ok": 0, "warning": 1, "critical": 2}


def _worst(*levels: Severity) -> Severity:
    return max(levels, key=_ORDER.__getitem__)


@dataclass
class DriftReport(Report):
    rows: int
    features: list[dict]
    prediction: dict
    thresholds: dict
    severity: Severity
    action: str
    model_version: str = ""
    window: dict = field(default_factory=dict)
    created_at: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    title: str = "Drift report"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.severity]

    def flagged(self, level: Severity = "warning") -> list[str]:
        return [f["feature"] for f in self.features if _ORDER[f["severity"]] >= _ORDER[level]]

    def to_dict(self) -> dict:
        return {"severity": self.severity, "action": self.action, "exit_code": self.exit_code, "rows": self.rows,
                "model_version": self.model_version, "window": self.window, "thresholds": self.thresholds,
                "created_at": self.created_at, "prediction": self.prediction, "features": self.features}

    def summary(self) -> dict:
        return {"severity": self.severity, "rows": self.rows, "critical": self.flagged("critical"),
                "warning": [f for f in self.flagged("warning") if f not in self.flagged("critical")],
                "prediction_psi": self.prediction["psi"]}

    def _html_body(self) -> str:
        css = {"ok": "wb-ok", "warning": "wb-warn", "critical": "wb-bad"}[self.severity]
        rows = [{k: f.get(k) for k in ("feature", "kind", "psi", "ks_stat", "ks_p", "chi2_p", "severity", "top_change")}
                for f in self.features]
        p = self.prediction
        task = p.get("task", "binary_classification")
        if task == "multiclass_classification":
            line = f"Predicted classes: PSI {p['psi']:.4f}, chi-square p {p['chi2_p']:.3g}, {esc(p['top_change'])}"
        elif task == "regression":
            line = (f"Predictions: PSI {p['psi']:.4f}, KS {p['ks_stat']:.4f}, mean {_num(p.get('reference_mean'))} "
                    f"-> {_num(p.get('live_mean'))}")
        else:
            line = (f"Predictions: PSI {p['psi']:.4f}, KS {p['ks_stat']:.4f}, positive rate "
                    f"{p['positive_rate_reference']:.3f} -> {p['positive_rate_live']:.3f}")
        return (f"<p>{self.rows} live rows of model {esc(self.model_version)}: <span class='{css}'>{self.severity}"
                f"</span>. Action: {esc(self.action)}</p><p>{line} ({p['severity']})</p>"
                + html_table(rows, formats={"psi": ".4f", "ks_stat": ".4f"}))

    def plot(self, top: int = 6) -> Any:
        """Reference vs live shares for the most drifted features (bars), PSI in the titles."""
        from matplotlib.figure import Figure

        feats = sorted(self.features, key=lambda f: -f["psi"])[:top]
        n = len(feats) + 1
        cols = 3
        rows = math.ceil(n / cols)
        fig = Figure(figsize=(4 * cols, 2.8 * rows))
        items = [("prediction", self.prediction)] + [(f["feature"], f) for f in feats]
        for i, (name, f) in enumerate(items):
            ax = fig.add_subplot(rows, cols, i + 1)
            labels = f["bins"]
            x = np.arange(len(labels))
            ax.bar(x - 0.2, f["reference_shares"], 0.4, label="reference", color="#999999")
            ax.bar(x + 0.2, f["live_shares"], 0.4, label="live",
                   color={"ok": "#1b9e77", "warning": "#e6ab02", "critical": "#d95f02"}[f["severity"]])
            ax.set_xticks(x, [str(b)[:10] for b in labels], rotation=60, fontsize=6)
            ax.set_title(f"{name}: PSI {f['psi']:.3f} ({f['severity']})", fontsize=9)
            if i == 0:
                ax.legend(fontsize=7)
        fig.tight_layout()
        return fig


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def _numeric_drift(live: np.ndarray, ref: dict, nulls: float, th: dict) -> dict:
    from scipy.stats import ks_2samp

    edges = ref["edges"]
    ref_shares = np.append(np.asarray(ref["shares"]) * (1 - ref["null_fraction"]), ref["null_fraction"])
    vals = live[~np.isnan(live)]
    live_shares = np.append(bin_shares(vals, edges) * (1 - nulls), nulls)
    value = psi(ref_shares, live_shares)
    ks = ks_2samp(np.asarray(ref["sample"]), vals) if vals.size and ref["sample"] else None
    ks_stat = float(ks.statistic) if ks is not None else 0.0
    ks_p = float(ks.pvalue) if ks is not None else 1.0
    sev = _severity(value, th["psi_warning"], th["psi_critical"])
    if ks_p < th["ks_alpha"] and ks_stat >= _KS_MIN_STAT:
        sev = _worst(sev, "warning")
    labels = [f"<={edges[0]:.3g}"] + [f"<={e:.3g}" for e in edges[1:]] + [">" + (f"{edges[-1]:.3g}" if edges else "")]
    labels = labels[: len(edges) + 1] + [MISSING]
    diffs = live_shares - ref_shares
    j = int(np.argmax(np.abs(diffs)))
    return {"kind": "numeric", "psi": round(value, 6), "ks_stat": round(ks_stat, 6), "ks_p": ks_p, "chi2_p": None,
            "severity": sev, "bins": labels, "reference_shares": ref_shares.round(6).tolist(),
            "live_shares": live_shares.round(6).tolist(),
            "live_mean": float(vals.mean()) if vals.size else None, "reference_mean": ref.get("mean"),
            "top_change": f"{labels[j]}: {ref_shares[j]:.3f} -> {live_shares[j]:.3f}"}


def _categorical_drift(counts: dict[str, int], n: int, ref: dict, th: dict) -> dict:
    from scipy.stats import chisquare

    cats = list(ref["shares"])
    live_counts = np.array([counts.get(c, 0) for c in cats] + [sum(v for k, v in counts.items() if k not in ref["shares"])],
                           dtype=np.float64)
    ref_shares = np.array([ref["shares"][c] for c in cats] + [0.0])
    live_shares = live_counts / max(n, 1)
    value = psi(ref_shares, live_shares)
    expected = np.maximum(ref_shares, _EPS)
    expected = expected / expected.sum() * live_counts.sum()
    chi2_p = float(chisquare(live_counts, expected).pvalue) if n else 1.0
    labels = cats + [UNSEEN]
    diffs = live_shares - ref_shares
    j = int(np.argmax(np.abs(diffs)))
    return {"kind": "categorical", "psi": round(value, 6), "ks_stat": None, "ks_p": None, "chi2_p": chi2_p,
            "severity": _severity(value, th["psi_warning"], th["psi_critical"]), "bins": labels,
            "reference_shares": ref_shares.round(6).tolist(), "live_shares": live_shares.round(6).tolist(),
            "top_change": f"{labels[j]}: {ref_shares[j]:.3f} -> {live_shares[j]:.3f}"}


_PREDICTION_COLUMN = {"binary_classification": "probability", "multiclass_classification": "label",
                      "regression": "prediction"}


def _prediction_drift(live: pl.DataFrame, profile: dict, th: dict) -> dict:
    """Drift of the predictions, per the profile's task (see the module docstring)."""
    from ..errors import DataError

    task = profile_task(profile)
    pref = profile["prediction"]
    col = _PREDICTION_COLUMN[task]
    if col not in live.columns:
        raise DataError(f"the live data has no '{col}' column: a {task} model's log has one",
                        column=col, hint="is this the log of the model the profile belongs to?")
    if task == "multiclass_classification":
        counts = dict(live.lazy().select(pl.col(col).cast(pl.String).fill_null(MISSING).alias("v"))
                      .group_by("v").len().collect().iter_rows())
        pred = _categorical_drift(counts, live.height, pref, th)
        pred["kind"] = "predicted class"
        pred["mean_probabilities_reference"] = pref.get("mean_probabilities")
        if "probabilities" in live.columns:  # the full log (the lean drift read skips the probability lists)
            k = len(pref["classes"])
            mean = live.get_column("probabilities").cast(pl.List(pl.Float64)).list.to_array(k).to_numpy().mean(0)
            pred["mean_probabilities_live"] = {c: float(m) for c, m in zip(pref["classes"], mean, strict=True)}
    elif task == "regression":
        p = live.get_column(col).cast(pl.Float64).fill_null(float("nan")).to_numpy()
        pred = _numeric_drift(p, {"edges": pref["edges"], "shares": pref["shares"], "null_fraction": 0.0,
                                  "sample": pref.get("sample", []), "mean": pref.get("mean")}, 0.0, th)
        pred["kind"] = "prediction"
        finite = p[np.isfinite(p)]
        pred.update(reference_std=pref.get("std"), live_std=float(finite.std()) if finite.size else None)
    else:
        p = live.get_column(col).cast(pl.Float64).to_numpy()
        pred = _numeric_drift(p, {"edges": pref["edges"], "shares": pref["shares"], "null_fraction": 0.0,
                                  "sample": pref.get("sample", []), "mean": pref.get("mean")}, 0.0, th)
        pred.update(positive_rate_reference=pref["positive_rate"],
                    positive_rate_live=float((p > pref["threshold"]).mean()))
        return pred  # binary: the same dict as before round 2
    pred["task"] = task
    return pred


def drift_report(live: pl.DataFrame, profile: dict, *, psi_warning: float = 0.1, psi_critical: float = 0.25,
                 ks_alpha: float = 0.01, model_version: str = "", window: dict | None = None) -> DriftReport:
    """Compare live rows (one column per feature, plus the task's prediction column: binary ``probability``,
    multiclass ``label``, regression ``prediction``) with the reference profile.

    Raises
    ------
    DataError
        No rows, or a profiled feature missing from the live data.
    """
    from ..errors import DataError

    if live.height == 0:
        raise DataError("no live rows to compare", hint="send traffic to the service first")
    missing = [f for f in profile["features"] if f not in live.columns]
    if missing:
        raise DataError(f"the live data lacks profiled features: {', '.join(missing)}", column=missing[0],
                        hint="is this the log of the model the profile belongs to?")
    th = {"psi_warning": psi_warning, "psi_critical": psi_critical, "ks_alpha": ks_alpha}
    n = live.height
    # One pass for all categorical value counts and null counts.
    cat_feats = [f for f, r in profile["features"].items() if r["kind"] == "categorical"]
    num_feats = [f for f, r in profile["features"].items() if r["kind"] == "numeric"]
    counts = {}
    if cat_feats:
        lazies = [live.lazy().select(pl.col(c).cast(pl.String).fill_null(MISSING).alias("v")).group_by("v").len()
                  for c in cat_feats]
        for c, vc in zip(cat_feats, pl.collect_all(lazies), strict=True):
            counts[c] = dict(vc.iter_rows())
    rows = []
    for f, ref in profile["features"].items():
        if ref["kind"] == "numeric":
            s = live.get_column(f).cast(pl.Float64, strict=False)
            arr = s.fill_null(float("nan")).to_numpy()
            nulls = float(np.isnan(arr).mean())
            rows.append({"feature": f, **_numeric_drift(arr, ref, nulls, th)})
        else:
            rows.append({"feature": f, **_categorical_drift(counts[f], n, ref, th)})
    del num_feats
    pred = _prediction_drift(live, profile, th)
    feature_sev = _worst("ok", *(r["severity"] for r in rows))
    severity = _worst(feature_sev, pred["severity"])
    if severity == "ok":
        action = PLAYBOOK["ok"]
    elif feature_sev == "ok":
        action = PLAYBOOK["labels"]
    else:
        action = PLAYBOOK[severity]
    rows.sort(key=lambda r: (-_ORDER[r["severity"]], -r["psi"]))
    return DriftReport(rows=n, features=rows, prediction=pred, thresholds=th, severity=severity, action=action,
                       model_version=model_version, window=window or {})
