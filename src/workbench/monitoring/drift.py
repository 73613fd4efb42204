"""Drift of live inputs and predictions against the reference profile: PSI and KS for numeric features, PSI and
chi-square for categorical features, and for the predictions, per task (the profile's ``task``): PSI and KS on
the predicted probability (binary) or the predicted value (regression), PSI and chi-square on the shares of the
predicted classes (multiclass).

Verdicts that do not cry wolf: effect size AND evidence
--------------------------------------------------------
PSI measures how far apart two share vectors are (effect size), but computed on a small window it is mostly
noise: with ~10 bins and ``n`` live rows its expected value under *no* drift is roughly ``(bins - 1) / n``, and
categories rarer than ``1 / n`` (native countries, say) add more, so a few hundred rows can pass 0.1 by chance
and a single row almost always passes 0.25. So a feature (or the prediction) is ``warning`` / ``critical`` only
when both hold:

* its PSI reaches the brief's level (``psi_warning``, default 0.1; ``psi_critical``, 0.25), and
* the difference is statistically significant at the window's size (p < ``ks_alpha``, default 0.01):
  numeric values -- the two-sample KS test against the profile's sample of reference values, or a chi-square
  test of homogeneity on the PSI's own bins including the missing share (so a change in how often a value is
  missing counts too); categorical values and predicted classes -- a chi-square test of homogeneity of the
  reference counts (profile shares x profile rows) against the live counts, with cells whose expected count is
  below 5 pooled into one (the test's validity condition; one unseen value is not evidence on its own).

We chose a significance gate over a bias-corrected PSI (subtracting its expectation under no drift, or a
bootstrap of it) because it keeps the brief's PSI levels meaning what the methodology says, uses tests the
profile already supports (no resampling of training data, which the profile does not hold), and answers the
question a scheduler asks -- "is this more than noise?" -- at every window size. The gate only ever lowers a
verdict. Independently, a KS test that is significant with a statistic of at least 0.1 raises a warning (a shift
PSI's deciles can miss); the statistic floor keeps million-row windows from alarming on trivial differences,
just as PSI's level does for the chi-square tests.

Below ``min_rows`` live rows (the brief's ``monitoring.min_rows``, default 300; ``monitoring.json`` carries it)
the verdict is ``"not enough data"`` (exit 0): the statistics are still computed and shown, but nobody is paged.

Playbook: warning -> investigate; critical -> retrain within 24h; prediction drift without input drift ->
verify labels (the relationship may have changed); not enough data -> wait for more traffic.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from .._report import Report, esc, html_table
from .profile import MISSING, UNSEEN, bin_shares, profile_task

__all__ = ["DriftReport", "drift_report", "drift_from_log", "drift_settings", "psi", "EXIT_CODES", "PLAYBOOK",
           "NOT_ENOUGH_DATA", "DEFAULT_MIN_ROWS"]

NOT_ENOUGH_DATA = "not enough data"
DEFAULT_MIN_ROWS = 300
Severity = Literal["ok", "warning", "critical", "not enough data"]
EXIT_CODES = {"ok": 0, "warning": 10, "critical": 20, NOT_ENOUGH_DATA: 0}
PLAYBOOK = {
    NOT_ENOUGH_DATA: "no action yet: too few logged rows in the window to tell drift from noise; check again when "
                     "more traffic has been logged (or widen --since)",
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


def _chi2_homogeneity(ref_counts: np.ndarray, live_counts: np.ndarray) -> float:
    """p-value of a chi-square test that reference and live counts come from one distribution (2 x k table),
    cells with an expected count below 5 pooled into one; 1.0 when fewer than two cells remain."""
    from scipy.stats import chi2_contingency

    ref = np.asarray(ref_counts, dtype=np.float64)
    live = np.asarray(live_counts, dtype=np.float64)
    keep = (ref + live) > 0
    ref, live = ref[keep], live[keep]
    if ref.sum() <= 0 or live.sum() <= 0 or ref.size < 2:
        return 1.0
    total = ref.sum() + live.sum()
    col = ref + live
    small = np.minimum(col * ref.sum(), col * live.sum()) / total < 5
    if small.any():
        ref = np.append(ref[~small], ref[small].sum())
        live = np.append(live[~small], live[small].sum())
    if ref.size < 2:
        return 1.0
    return float(chi2_contingency(np.vstack([ref, live]), correction=False).pvalue)


def _reference_rows(ref: dict) -> float:
    """How many rows the reference shares were computed from (profiles record it; else a large number, which
    makes the homogeneity test a goodness-of-fit test against known shares)."""
    rows = ref.get("rows")
    return float(rows) if rows else 1e9


def _gated(value: float, p_value: float, th: dict) -> tuple[Severity, Severity, bool]:
    """(severity, what PSI alone says, significant): PSI's level counts only when the difference is significant."""
    level = _severity(value, th["psi_warning"], th["psi_critical"])
    significant = bool(p_value < th["ks_alpha"])
    return (level if significant else "ok"), level, significant


_ORDER = {"ok": 0, "warning": 1, "critical": 2, NOT_ENOUGH_DATA: -1}


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
    min_rows: int = 0
    created_at: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    title: str = "Drift report"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.severity]

    @property
    def enough_data(self) -> bool:
        return self.severity != NOT_ENOUGH_DATA

    def headline(self) -> str:
        """One plain line: the verdict with the row count (what the CLI prints last)."""
        if not self.enough_data:
            return (f"{NOT_ENOUGH_DATA}: {self.rows:,} logged row(s) in the window, {self.min_rows:,} needed "
                    f"(monitoring.min_rows) -- {self.action}")
        return f"{self.severity} over {self.rows:,} logged rows: {self.action}"

    def flagged(self, level: Severity = "warning") -> list[str]:
        return [f["feature"] for f in self.features if _ORDER[f["severity"]] >= _ORDER[level]]

    def to_dict(self) -> dict:
        return {"severity": self.severity, "action": self.action, "exit_code": self.exit_code, "rows": self.rows,
                "min_rows": self.min_rows, "enough_data": self.enough_data,
                "model_version": self.model_version, "window": self.window, "thresholds": self.thresholds,
                "created_at": self.created_at, "prediction": self.prediction, "features": self.features}

    def summary(self) -> dict:
        return {"severity": self.severity, "rows": self.rows, "min_rows": self.min_rows,
                "critical": self.flagged("critical"),
                "warning": [f for f in self.flagged("warning") if f not in self.flagged("critical")],
                "prediction_psi": self.prediction["psi"]}

    def _html_body(self) -> str:
        css = {"ok": "wb-ok", "warning": "wb-warn", "critical": "wb-bad", NOT_ENOUGH_DATA: "wb-warn"}[self.severity]
        rows = [{k: f.get(k) for k in ("feature", "kind", "psi", "ks_stat", "ks_p", "chi2_p", "severity", "top_change")}
                for f in self.features]
        p = self.prediction
        if not self.enough_data and not self.features:
            return f"<p class='wb-warn'>{esc(self.headline())}</p>"
        task = p.get("task", "binary_classification")
        if task == "multiclass_classification":
            line = f"Predicted classes: PSI {p['psi']:.4f}, chi-square p {p['chi2_p']:.3g}, {esc(p['top_change'])}"
        elif task == "regression":
            line = (f"Predictions: PSI {p['psi']:.4f}, KS {p['ks_stat']:.4f}, mean {_num(p.get('reference_mean'))} "
                    f"-> {_num(p.get('live_mean'))}")
        else:
            line = (f"Predictions: PSI {p['psi']:.4f}, KS {p['ks_stat']:.4f}, positive rate "
                    f"{p['positive_rate_reference']:.3f} -> {p['positive_rate_live']:.3f}")
        note = ("" if self.enough_data else f"<p>Fewer than {self.min_rows} rows (monitoring.min_rows): the figures "
                "below are indicative only.</p>")
        return (f"<p>{self.rows} live rows of model {esc(self.model_version)}: <span class='{css}'>{self.severity}"
                f"</span>. Action: {esc(self.action)}</p>{note}<p>{line} ({p['severity']})</p>"
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
            labels = f.get("bins", [])
            x = np.arange(len(labels))
            ax.bar(x - 0.2, f.get("reference_shares", []), 0.4, label="reference", color="#999999")
            ax.bar(x + 0.2, f.get("live_shares", []), 0.4, label="live",
                   color={"ok": "#1b9e77", "warning": "#e6ab02", "critical": "#d95f02",
                          NOT_ENOUGH_DATA: "#7570b3"}[f["severity"]])
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
    missing = round(nulls * live.size)  # the caller's missing share (0 for predictions: NaN scores are left out)
    live_counts = np.append(bin_shares(vals, edges) * vals.size, missing)
    live_shares = live_counts / max(vals.size + missing, 1)
    value = psi(ref_shares, live_shares)
    ks = ks_2samp(np.asarray(ref["sample"]), vals) if vals.size and ref["sample"] else None
    ks_stat = float(ks.statistic) if ks is not None else 0.0
    ks_p = float(ks.pvalue) if ks is not None else 1.0
    chi2_p = _chi2_homogeneity(ref_shares * _reference_rows(ref), live_counts) if vals.size + missing else 1.0
    sev, level, significant = _gated(value, min(ks_p, chi2_p), th)
    if ks_p < th["ks_alpha"] and ks_stat >= _KS_MIN_STAT:
        sev = _worst(sev, "warning")
    labels = [f"<={edges[0]:.3g}"] + [f"<={e:.3g}" for e in edges[1:]] + [">" + (f"{edges[-1]:.3g}" if edges else "")]
    labels = labels[: len(edges) + 1] + [MISSING]
    diffs = live_shares - ref_shares
    j = int(np.argmax(np.abs(diffs)))
    return {"kind": "numeric", "psi": round(value, 6), "ks_stat": round(ks_stat, 6), "ks_p": ks_p, "chi2_p": chi2_p,
            "severity": sev, "psi_level": level, "significant": significant, "bins": labels,
            "reference_shares": ref_shares.round(6).tolist(), "live_shares": live_shares.round(6).tolist(),
            "live_mean": float(vals.mean()) if vals.size else None, "reference_mean": ref.get("mean"),
            "top_change": f"{labels[j]}: {ref_shares[j]:.3f} -> {live_shares[j]:.3f}"}


def _categorical_drift(counts: dict[str, int], n: int, ref: dict, th: dict) -> dict:
    cats = list(ref["shares"])
    live_counts = np.array([counts.get(c, 0) for c in cats] + [sum(v for k, v in counts.items() if k not in ref["shares"])],
                           dtype=np.float64)
    ref_shares = np.array([ref["shares"][c] for c in cats] + [0.0])
    live_shares = live_counts / max(n, 1)
    value = psi(ref_shares, live_shares)
    chi2_p = _chi2_homogeneity(ref_shares * _reference_rows(ref), live_counts) if n else 1.0
    sev, level, significant = _gated(value, chi2_p, th)
    labels = cats + [UNSEEN]
    diffs = live_shares - ref_shares
    j = int(np.argmax(np.abs(diffs)))
    return {"kind": "categorical", "psi": round(value, 6), "ks_stat": None, "ks_p": None, "chi2_p": chi2_p,
            "severity": sev, "psi_level": level, "significant": significant, "bins": labels,
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
                                  "sample": pref.get("sample", []), "mean": pref.get("mean"),
                                  "rows": pref.get("rows")}, 0.0, th)
        pred["kind"] = "prediction"
        finite = p[np.isfinite(p)]
        pred.update(reference_std=pref.get("std"), live_std=float(finite.std()) if finite.size else None)
    else:
        p = live.get_column(col).cast(pl.Float64).to_numpy()
        pred = _numeric_drift(p, {"edges": pref["edges"], "shares": pref["shares"], "null_fraction": 0.0,
                                  "sample": pref.get("sample", []), "mean": pref.get("mean"),
                                  "rows": pref.get("rows")}, 0.0, th)
        pred.update(positive_rate_reference=pref["positive_rate"],
                    positive_rate_live=float((p > pref["threshold"]).mean()))
        return pred  # binary: the same dict as before round 2
    pred["task"] = task
    return pred


def drift_settings(monitoring: dict | None = None, *, psi_warning: float | None = None,
                   psi_critical: float | None = None, ks_alpha: float | None = None,
                   min_rows: int | None = None) -> dict:
    """The drift levels: explicit values (a CLI override; ``None`` or 0 means not given), else the model package's
    ``monitoring.json``, else the brief's defaults (0.1, 0.25, 0.01, 300 rows)."""
    mon = monitoring or {}

    def pick(given: float | None, key: str, default: float) -> float:
        return given if given else mon.get(key) or default

    return {"psi_warning": float(pick(psi_warning, "psi_warning", 0.1)),
            "psi_critical": float(pick(psi_critical, "psi_critical", 0.25)),
            "ks_alpha": float(pick(ks_alpha, "ks_alpha", 0.01)),
            "min_rows": int(pick(min_rows, "min_rows", DEFAULT_MIN_ROWS))}


def drift_report(live: pl.DataFrame, profile: dict, *, psi_warning: float = 0.1, psi_critical: float = 0.25,
                 ks_alpha: float = 0.01, min_rows: int = 0, model_version: str = "",
                 window: dict | None = None) -> DriftReport:
    """Compare live rows (one column per feature, plus the task's prediction column: binary ``probability``,
    multiclass ``label``, regression ``prediction``) with the reference profile.

    ``min_rows``: below this many live rows the verdict is ``"not enough data"`` (exit code 0) and every row of
    the report says so; the statistics are computed all the same (indicative). 0 (the default of this function;
    ``workbench drift`` passes the brief's ``monitoring.min_rows``, 300 unless set) never says so.

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
    th["min_rows"] = min_rows
    if n < min_rows:
        for r in [*rows, pred]:
            r["severity_if_enough"] = r["severity"]
            r["severity"] = NOT_ENOUGH_DATA
        severity, action = NOT_ENOUGH_DATA, PLAYBOOK[NOT_ENOUGH_DATA]
    return DriftReport(rows=n, features=rows, prediction=pred, thresholds=th, severity=severity, action=action,
                       model_version=model_version, window=window or {}, min_rows=min_rows)


def _empty_window_report(profile: dict, th: dict, model_version: str, window: dict) -> DriftReport:
    task = profile_task(profile)
    pred = {"kind": {"multiclass_classification": "predicted class", "regression": "prediction"}.get(task, "numeric"),
            "psi": 0.0, "ks_stat": None, "ks_p": None, "chi2_p": None, "severity": NOT_ENOUGH_DATA, "bins": [],
            "reference_shares": [], "live_shares": [], "top_change": "no rows"}
    if task != "binary_classification":
        pred["task"] = task
    return DriftReport(rows=0, features=[], prediction=pred, thresholds=th, severity=NOT_ENOUGH_DATA,
                       action=PLAYBOOK[NOT_ENOUGH_DATA], model_version=model_version, window=window,
                       min_rows=int(th["min_rows"]))


def drift_from_log(profile: dict, monitoring: dict | None = None, *, log_dir: str | Path | None = None,
                   model_version: str, since: str | None = None, psi_warning: float | None = None,
                   psi_critical: float | None = None, min_rows: int | None = None) -> DriftReport:
    """What ``workbench drift`` computes: the model version's logged rows -- compacted Parquet read columnar (only
    the profiled features, the prediction column and ``ts``) plus the JSON-lines segments not yet compacted --
    compared with the reference profile, with the levels of :func:`drift_settings`.

    A window with no rows (a quiet service, or ``since`` past the last request) is ``"not enough data"`` too.

    Raises
    ------
    DataError
        There is no log for this model version at all, or a profiled feature is not in it.
    """
    from .compact import read_columns

    st = drift_settings(monitoring, psi_warning=psi_warning, psi_critical=psi_critical, min_rows=min_rows)
    columns = ["ts", *profile["features"], _PREDICTION_COLUMN[profile_task(profile)]]
    live = read_columns(log_dir, model_version, columns, since=since or None, allow_empty=True)
    if live.height == 0:
        return _empty_window_report(profile, st, model_version, {"since": since or None, "first": None,
                                                                 "last": None})
    window = {"since": since or None, "first": live["ts"].min(), "last": live["ts"].max()}
    return drift_report(live, profile, psi_warning=st["psi_warning"], psi_critical=st["psi_critical"],
                        ks_alpha=st["ks_alpha"], min_rows=st["min_rows"], model_version=model_version, window=window)
