"""The feedback loop: ground truth joined to logged predictions, evaluated with the Prototype phase's own code.

:func:`join_labels` matches a labels file to the prediction log by request id (and row, for batch requests);
:func:`feedback_report` then computes live performance and live fairness slices with the Prototype phase's own
functions for the model's task (binary, multiclass or regression: ``monitoring.json`` ``task``), and calls a drop
of the primary metric beyond the brief's ``monitoring.metric_tolerance`` concept drift. :func:`read_logged` reads
the log for it, compacted (Parquet) and not yet compacted (JSON lines) segments alike.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from ._report import Report, esc, html_table
from .errors import DataError

__all__ = ["FeedbackReport", "join_labels", "feedback_report", "read_labels", "read_logged"]


def read_logged(log_dir: str | Path | None = None, *, model_version: str) -> pl.DataFrame:
    """Every logged row of a model version with every column (request id, row, inputs, outputs, flags), from the
    compacted Parquet and the JSON-lines segments not yet compacted (:func:`workbench.monitoring.compact.read_columns`).

    Raises
    ------
    DataError
        There is no log for this model version, or it holds no rows.
    """
    from .monitoring.compact import read_columns

    return read_columns(log_dir, model_version, None)


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
    """Live performance and fairness of labelled logged rows (``__label__`` column from :func:`join_labels`).

    ``monitoring`` is the model package's ``monitoring.json``; its ``task`` (default binary) decides how the
    labels are read and evaluated:

    * binary: labels equal to ``positive_label`` are 1; the logged ``probability`` is scored with
      :func:`~workbench.evaluation.evaluate_binary` and :func:`~workbench.evaluation.fairness_report` at ``threshold``;
    * multiclass: labels are class strings among ``classes`` (code order, as served); the logged
      ``probabilities`` with :func:`~workbench.evaluation.multiclass.evaluate_multiclass` and
      :func:`~workbench.evaluation.multiclass.multiclass_fairness_report`;
    * regression: labels are numbers; the logged ``prediction`` with
      :func:`~workbench.evaluation.regression.evaluate_regression` and
      :func:`~workbench.evaluation.regression.regression_fairness_report`.

    Concept drift: the primary metric is worse than ``certified_value`` by more than ``metric_tolerance`` (in
    the metric's direction: a loss rising counts as a drop).

    Raises
    ------
    DataError
        No labelled rows, labels the task cannot read (an unknown class, a non-numeric regression label), or a
        log without the task's prediction columns.
    """
    from .tasks import get_task

    if joined.height == 0:
        raise DataError("no labelled rows to evaluate", hint="the labels file matched no logged prediction")
    task_name = str(monitoring.get("task", "binary_classification"))
    task = get_task(task_name)
    primary = monitoring["primary_metric"]
    fair_cfg = monitoring.get("fairness", {})
    sens = [c for c in monitoring.get("sensitive_features", []) if c in joined.columns]
    sensitive = (joined.select([pl.col(c).cast(pl.String).fill_null("(missing)") for c in sens]) if sens else
                 pl.DataFrame({"all": ["all"] * joined.height}))
    common = {"min_slice_size": fair_cfg.get("min_slice_size", 30),
              "confidence_level": fair_cfg.get("confidence_level", 0.95),
              "n_bootstrap": fair_cfg.get("bootstrap_samples", 200), "seed": seed}
    thresholds = fair_cfg.get("thresholds")
    if task_name == "multiclass_classification":
        from .evaluation.multiclass import evaluate_multiclass, multiclass_fairness_report

        classes = [str(c) for c in monitoring["classes"]]
        y = _class_codes(joined, classes)
        proba = _logged_column(joined, "probabilities", task_name)
        proba = proba.cast(pl.List(pl.Float64)).list.to_array(len(classes)).to_numpy()
        ev = evaluate_multiclass(y, proba, classes=classes, primary=primary)
        fairness = multiclass_fairness_report(y, proba, sensitive, classes=classes, thresholds=thresholds, **common)
    elif task_name == "regression":
        from .evaluation.regression import evaluate_regression, regression_fairness_report

        y = _numeric_labels(joined)
        yhat = _logged_column(joined, "prediction", task_name).cast(pl.Float64).to_numpy()
        ev = evaluate_regression(y, yhat, primary=primary)
        fairness = regression_fairness_report(y, yhat, sensitive, thresholds=thresholds, **common)
    else:
        from .evaluation import evaluate_binary, fairness_report

        pos = str(monitoring["positive_label"])
        y = (joined.get_column("__label__").cast(pl.String) == pos).cast(pl.Int64).to_numpy()
        p = _logged_column(joined, "probability", task_name).cast(pl.Float64).to_numpy()
        ev = evaluate_binary(y, p, threshold=monitoring["threshold"], primary=primary)
        fairness = fairness_report(y, p, sensitive, threshold=monitoring["threshold"], thresholds=thresholds,
                                   **common)
    live = float(ev.metrics[primary])
    certified = float(monitoring["certified_value"])
    drop = (certified - live) if task.greater_is_better(primary) else (live - certified)
    tol = float(monitoring.get("metric_tolerance", 0.05))
    return FeedbackReport(rows=int(joined.height), primary=primary, certified_value=certified, live_value=live,
                          tolerance=tol, concept_drift=bool(np.isfinite(live) and drop > tol), evaluation=ev.to_dict(),
                          fairness=fairness.to_dict(), fairness_verdict=fairness.verdict)


def _logged_column(joined: pl.DataFrame, name: str, task: str) -> pl.Series:
    if name not in joined.columns:
        raise DataError(f"the prediction log has no '{name}' column, which a {task} model's log has",
                        column=name, hint="is this the log of the model the monitoring.json belongs to?")
    return joined.get_column(name)


def _class_codes(joined: pl.DataFrame, classes: list[str]) -> np.ndarray:
    """Multiclass labels (class strings; numbers are read as their text, as training read them) as int codes."""
    labels = joined.get_column("__label__").cast(pl.String)
    unknown = labels.filter(~labels.is_in(classes) | labels.is_null()).unique().head(5).to_list()
    if unknown:
        raise DataError(f"labels {unknown} are not classes of this model ({', '.join(classes)})",
                        column="__label__", hint="label with the class names the model was trained on")
    return labels.replace_strict(classes, list(range(len(classes))), return_dtype=pl.Int64).to_numpy()


def _numeric_labels(joined: pl.DataFrame) -> np.ndarray:
    col = joined.get_column("__label__")
    y = col.cast(pl.Float64, strict=False)
    bad = (y.is_null() | y.is_nan()).sum() if y.dtype == pl.Float64 else y.is_null().sum()
    if bad:
        ex = col.filter(y.is_null() | y.is_nan()).head(3).to_list()
        raise DataError(f"{bad} regression labels are not numbers (e.g. {ex})", column="__label__",
                        hint="a regression label is the observed target value")
    return y.to_numpy()
