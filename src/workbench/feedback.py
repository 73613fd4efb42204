"""The feedback loop: ground truth joined to logged predictions, evaluated with the Prototype phase's own code.

:func:`join_labels` matches a labels file to the prediction log by request id (and row, for batch requests);
:func:`feedback_report` then computes live performance (:func:`workbench.evaluation.evaluate_binary`) and live
fairness slices (:func:`workbench.evaluation.fairness_report`) exactly as the Prototype phase did, and calls a drop
of the primary metric beyond the brief's ``monitoring.metric_tolerance`` concept drift.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from ._report import Report, esc, html_table
from .errors import DataError

__all__ = ["FeedbackReport", "join_labels", "feedback_report", "read_labels"]


def read_labels(path: str | Path, *, label_column: str | None = None) -> pl.DataFrame:
    """Read a labels file (CSV or Parquet) with ``request_id``, optionally ``row``, and a label column."""
    from .data.io import read_table

    df, _ = read_table(path)
    if "request_id" not in df.columns:
        raise DataError("the labels file has no 'request_id' column", file=path, column="request_id",
                        hint="give each label the request_id the service returned (and 'row' for batch requests)")
    return df


def join_labels(log: pl.DataFrame, labels: pl.DataFrame, *, label_column: str, file: str | Path = "labels") -> pl.DataFrame:
    """Logged rows with their ground truth. Every labelled request id must be in the log.

    Raises
    ------
    DataError
        The label column is missing, a request id is unknown, or a batch request is labelled without ``row``.
    """
    if label_column not in labels.columns:
        raise DataError(f"the labels file has no label column '{label_column}'", file=file, column=label_column,
                        hint=f"name it '{label_column}' (the brief's target) or pass --label-column; "
                             f"columns: {', '.join(labels.columns)}")
    labels = labels.with_columns(pl.col("request_id").cast(pl.String))
    known = log.select(pl.col("request_id").cast(pl.String)).unique()
    unknown = labels.join(known, on="request_id", how="anti")
    if unknown.height:
        ex = ", ".join(unknown.get_column("request_id").head(3).to_list())
        raise DataError(f"{unknown.height} labelled request ids are not in the prediction log (e.g. {ex})",
                        file=file, column="request_id",
                        hint="check the ids (and that --log-dir and the model version are the right ones)")
    keys = ["request_id", "row"] if "row" in labels.columns else ["request_id"]
    if keys == ["request_id"]:
        multi = log.group_by("request_id").len().filter(pl.col("len") > 1)
        hit = labels.join(multi, on="request_id", how="semi")
        if hit.height:
            raise DataError(f"{hit.height} labelled requests were batches of several rows, but the labels file "
                            "has no 'row' column", file=file, column="row",
                            hint="add the row index within each request (the 'row' the log records)")
    lab = labels.select([*keys, pl.col(label_column).alias("__label__")])
    if "row" in keys:
        lab = lab.with_columns(pl.col("row").cast(pl.Int64))
    return log.with_columns(pl.col("request_id").cast(pl.String)).join(lab, on=keys, how="inner")


@dataclass
class FeedbackReport(Report):
    rows: int
    primary: str
    certified_value: float
    live_value: float
    tolerance: float
    concept_drift: bool
    evaluation: dict
    fairness: dict
    fairness_verdict: str
    created_at: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    title: str = "Feedback: live performance and fairness"

    @property
    def exit_code(self) -> int:
        if self.concept_drift:
            return 20
        return 10 if self.fairness_verdict == "exceeds threshold" else 0

    def to_dict(self) -> dict:
        return {"rows": self.rows, "primary": self.primary, "certified_value": self.certified_value,
                "live_value": self.live_value, "drop": self.certified_value - self.live_value,
                "tolerance": self.tolerance, "concept_drift": self.concept_drift, "exit_code": self.exit_code,
                "fairness_verdict": self.fairness_verdict, "evaluation": self.evaluation, "fairness": self.fairness,
                "created_at": self.created_at}

    def summary(self) -> dict:
        return {"rows": self.rows, "primary": self.primary, "live": self.live_value, "certified": self.certified_value,
                "concept_drift": self.concept_drift, "fairness_verdict": self.fairness_verdict}

    def _html_body(self) -> str:
        css = "wb-bad" if self.concept_drift else "wb-ok"
        verdict = "CONCEPT DRIFT" if self.concept_drift else "within tolerance"
        rows = [{"metric": m, "live": v} for m, v in self.evaluation["metrics"].items()]
        gaps = [{k: g[k] for k in ("feature", "metric", "value", "ci_low", "ci_high", "threshold", "verdict")}
                for g in self.fairness["gaps"]]
        return (f"<p>{self.rows} labelled live rows. {esc(self.primary)}: certified {self.certified_value:.4f}, "
                f"live {self.live_value:.4f} (tolerance {self.tolerance:g}): <span class='{css}'>{verdict}</span>. "
                f"Live fairness: {esc(self.fairness_verdict)}.</p>" + html_table(rows) + html_table(gaps))


def feedback_report(joined: pl.DataFrame, monitoring: dict, *, seed: int = 0) -> FeedbackReport:
    """Live performance and fairness of labelled logged rows (``__label__`` column from :func:`join_labels`)."""
    from .evaluation import evaluate_binary, fairness_report
    from .evaluation.metrics import GREATER_IS_BETTER

    if joined.height == 0:
        raise DataError("no labelled rows to evaluate", hint="the labels file matched no logged prediction")
    pos = str(monitoring["positive_label"])
    y = (joined.get_column("__label__").cast(pl.String) == pos).cast(pl.Int64).to_numpy()
    p = joined.get_column("probability").cast(pl.Float64).to_numpy()
    primary = monitoring["primary_metric"]
    ev = evaluate_binary(y, p, threshold=monitoring["threshold"], primary=primary)
    fair_cfg = monitoring.get("fairness", {})
    sens = [c for c in monitoring.get("sensitive_features", []) if c in joined.columns]
    fairness = fairness_report(
        y, p, joined.select([pl.col(c).cast(pl.String).fill_null("(missing)") for c in sens]) if sens else
        pl.DataFrame({"all": ["all"] * joined.height}), threshold=monitoring["threshold"],
        thresholds=fair_cfg.get("thresholds"), min_slice_size=fair_cfg.get("min_slice_size", 30),
        confidence_level=fair_cfg.get("confidence_level", 0.95),
        n_bootstrap=fair_cfg.get("bootstrap_samples", 200), seed=seed)
    live = float(ev.metrics[primary])
    certified = float(monitoring["certified_value"])
    drop = (certified - live) if GREATER_IS_BETTER[primary] else (live - certified)
    tol = float(monitoring.get("metric_tolerance", 0.05))
    return FeedbackReport(rows=int(len(y)), primary=primary, certified_value=certified, live_value=live,
                          tolerance=tol, concept_drift=bool(np.isfinite(live) and drop > tol), evaluation=ev.to_dict(),
                          fairness=fairness.to_dict(), fairness_verdict=fairness.verdict)


