"""The feedback loop: ground truth joined to logged predictions, evaluated with the Prototype phase's own code.

:func:`join_labels` matches a labels file to the prediction log by request id (and row, for batch requests);
:func:`feedback_report` then computes live performance and live fairness slices with the Prototype phase's own
functions for the model's task (binary, multiclass or regression: ``monitoring.json`` ``task``), and calls a drop
of the primary metric beyond the brief's ``monitoring.metric_tolerance`` concept drift. :func:`read_logged` reads
the log for it, compacted (Parquet) and not yet compacted (JSON lines) segments alike.

Two models: champion and challenger
-----------------------------------
While the production pointer names a challenger (shadow or canary, :mod:`workbench.serving.deploy`), labels are
also evidence *between* the two models. :func:`feedback_with_challenger` (what ``workbench feedback`` runs then)
keeps every labels file it is given in the label store (:func:`save_labels`, :func:`labels_dir`), so labels
arriving in several batches add up; joins all stored labels with **both** models' logged rows
(:func:`join_labels_pair`: in ``shadow`` mode the rows both models scored for the same request id and row; in
``canary`` mode each model's own answered rows -- ``role`` ``canary`` for the challenger, ``champion`` for the
champion, since the challenger's first one); evaluates each with the task's own evaluation, on the challenger's
primary metric (:func:`challenger_feedback`, pure); and :func:`~workbench.serving.deploy.judge_metric` decides.
When the challenger is worse by more than ``deployment.metric_drop`` of the champion's value with at least
``deployment.min_labels`` labelled rows each, :func:`roll_back_on_metric` takes it back to staging
(:func:`~workbench.serving.deploy.roll_back_challenger`: a ``staged`` ledger line with ``automatic: true`` and
``trigger: "metric"``, the pointer without the challenger; running services drop it on their next pointer check).
:func:`labelled_metrics` gives ``workbench compare`` each model's metrics on the stored labels.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ._report import Report, esc, html_table
from .errors import DataError

__all__ = ["ChallengerFeedback", "FeedbackReport", "LabelledPair", "challenger_feedback", "check_labels",
           "feedback_report", "feedback_with_challenger", "join_labels", "join_labels_pair", "labelled_metrics",
           "labels_dir", "read_labels", "read_logged", "roll_back_on_metric", "save_labels", "stored_labels"]

log = logging.getLogger(__name__)

LABELS_DIR_ENV = "WORKBENCH_LABELS_DIR"


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


def check_labels(labels: pl.DataFrame, logs: Sequence[pl.DataFrame], *, label_column: str,
                 file: str | Path = "labels") -> None:
    """Refuse a labels file the logs cannot place: no label column, a request id in none of ``logs``, or a batch
    request labelled without ``row``.

    Raises
    ------
    DataError
        Naming the file, the column and what to do.
    """
    if label_column not in labels.columns:
        raise DataError(f"the labels file has no label column '{label_column}'", file=file, column=label_column,
                        hint=f"name it '{label_column}' (the brief's target) or pass --label-column; "
                             f"columns: {', '.join(labels.columns)}")
    ids = labels.select(pl.col("request_id").cast(pl.String))
    known = pl.concat([lg.select(pl.col("request_id").cast(pl.String)) for lg in logs if lg.height]
                      or [pl.DataFrame({"request_id": []}, schema={"request_id": pl.String})]).unique()
    unknown = ids.join(known, on="request_id", how="anti")
    if unknown.height:
        ex = ", ".join(unknown.get_column("request_id").head(3).to_list())
        raise DataError(f"{unknown.height} labelled request ids are not in the prediction log (e.g. {ex})",
                        file=file, column="request_id",
                        hint="check the ids (and that --log-dir and the model version are the right ones)")
    if "row" not in labels.columns:
        for lg in logs:  # per log: a shadow request is in both logs, one row in each
            if not lg.height:
                continue
            multi = (lg.select(pl.col("request_id").cast(pl.String)).group_by("request_id").len()
                     .filter(pl.col("len") > 1))
            hit = ids.join(multi, on="request_id", how="semi")
            if hit.height:
                raise DataError(f"{hit.height} labelled requests were batches of several rows, but the labels "
                                "file has no 'row' column", file=file, column="row",
                                hint="add the row index within each request (the 'row' the log records)")


def join_labels(log: pl.DataFrame, labels: pl.DataFrame, *, label_column: str, file: str | Path = "labels") -> pl.DataFrame:
    """Logged rows with their ground truth. Every labelled request id must be in the log.

    Raises
    ------
    DataError
        The label column is missing, a request id is unknown, or a batch request is labelled without ``row``.
    """
    check_labels(labels, [log], label_column=label_column, file=file)
    labels = labels.with_columns(pl.col("request_id").cast(pl.String))
    keys = ["request_id", "row"] if "row" in labels.columns else ["request_id"]
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
    y, scores = _labelled_scores(joined, monitoring)
    ev = _evaluate(y, scores, monitoring, primary=primary)
    if task_name == "multiclass_classification":
        from .evaluation.multiclass import multiclass_fairness_report

        fairness = multiclass_fairness_report(y, scores, sensitive, classes=[str(c) for c in monitoring["classes"]],
                                              thresholds=thresholds, **common)
    elif task_name == "regression":
        from .evaluation.regression import regression_fairness_report

        fairness = regression_fairness_report(y, scores, sensitive, thresholds=thresholds, **common)
    else:
        from .evaluation import fairness_report

        fairness = fairness_report(y, scores, sensitive, threshold=monitoring["threshold"], thresholds=thresholds,
                                   **common)
    live = float(ev.metrics[primary])
    certified = float(monitoring["certified_value"])
    drop = (certified - live) if task.greater_is_better(primary) else (live - certified)
    tol = float(monitoring.get("metric_tolerance", 0.05))
    return FeedbackReport(rows=int(joined.height), primary=primary, certified_value=certified, live_value=live,
                          tolerance=tol, concept_drift=bool(np.isfinite(live) and drop > tol), evaluation=ev.to_dict(),
                          fairness=fairness.to_dict(), fairness_verdict=fairness.verdict)


def _labelled_scores(joined: pl.DataFrame, monitoring: dict) -> tuple[np.ndarray, np.ndarray]:
    """The labels and the logged scores of labelled rows, read as ``monitoring``'s task reads them: binary 0/1 and
    P(positive); multiclass class codes and the probability matrix; regression values and predictions."""
    task_name = str(monitoring.get("task", "binary_classification"))
    if task_name == "multiclass_classification":
        classes = [str(c) for c in monitoring["classes"]]
        proba = _logged_column(joined, "probabilities", task_name)
        return _class_codes(joined, classes), proba.cast(pl.List(pl.Float64)).list.to_array(len(classes)).to_numpy()
    if task_name == "regression":
        return _numeric_labels(joined), _logged_column(joined, "prediction", task_name).cast(pl.Float64).to_numpy()
    pos = str(monitoring["positive_label"])
    y = (joined.get_column("__label__").cast(pl.String) == pos).cast(pl.Int64).to_numpy()
    return y, _logged_column(joined, "probability", task_name).cast(pl.Float64).to_numpy()


def _evaluate(y: np.ndarray, scores: np.ndarray, monitoring: dict, *, primary: str) -> Any:
    """The task's own held-out evaluation (the Prototype phase's functions) of labelled live scores."""
    task_name = str(monitoring.get("task", "binary_classification"))
    if task_name == "multiclass_classification":
        from .evaluation.multiclass import evaluate_multiclass

        return evaluate_multiclass(y, scores, classes=[str(c) for c in monitoring["classes"]], primary=primary)
    if task_name == "regression":
        from .evaluation.regression import evaluate_regression

        return evaluate_regression(y, scores, primary=primary)
    from .evaluation import evaluate_binary

    return evaluate_binary(y, scores, threshold=monitoring["threshold"], primary=primary)


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


# ----------------------------------------------------------------------------------------------- two models
def labels_dir() -> Path:
    """The label store: ``$WORKBENCH_LABELS_DIR``, else ``$BENTOML_HOME/workbench/labels`` (beside the ledger and
    the prediction log, never inside the log folder, whose subfolders are model versions)."""
    env = os.environ.get(LABELS_DIR_ENV)
    if env:
        return Path(env)
    from .serving.pointer import bentoml_home

    return bentoml_home() / "workbench" / "labels"


_LABEL_SCHEMA = {"request_id": pl.String, "row": pl.Int64, "label": pl.String}


def _label_rows(labels: pl.DataFrame, *, label_column: str) -> pl.DataFrame:
    """A checked labels file as ``request_id, row, label`` (the label as text: every task reads it from text;
    no ``row``: the request was one record, row 0)."""
    row = pl.col("row").cast(pl.Int64) if "row" in labels.columns else pl.lit(0, dtype=pl.Int64).alias("row")
    return labels.select(pl.col("request_id").cast(pl.String), row, pl.col(label_column).cast(pl.String).alias("label"))


def save_labels(labels: pl.DataFrame, *, label_column: str, root: str | Path | None = None) -> Path:
    """Keep a (checked: :func:`check_labels`) labels file in the label store, one Parquet file per call (written
    atomically), so labels arriving in several batches add up for :func:`feedback_with_challenger`. Returns the
    file written."""
    from ._report import atomic_write_bytes

    d = Path(root) if root is not None else labels_dir()
    d.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    path = d / f"{stamp}-{uuid.uuid4().hex[:8]}.parquet"
    import io

    buf = io.BytesIO()
    _label_rows(labels, label_column=label_column).write_parquet(buf)
    atomic_write_bytes(path, buf.getvalue())
    return path


def stored_labels(root: str | Path | None = None) -> pl.DataFrame:
    """Every label in the store (``request_id, row, label``), the latest one per request id and row."""
    d = Path(root) if root is not None else labels_dir()
    files = sorted(p for p in d.glob("*.parquet") if not p.name.startswith(".")) if d.is_dir() else []
    if not files:
        return pl.DataFrame(schema=_LABEL_SCHEMA)
    df = pl.concat([pl.read_parquet(p).cast(_LABEL_SCHEMA) for p in files])  # oldest first (time-stamped names)
    return df.unique(subset=["request_id", "row"], keep="last", maintain_order=True)


def _with_role(logged: pl.DataFrame) -> pl.DataFrame:
    out = logged.with_columns(pl.col("request_id").cast(pl.String), pl.col("row").cast(pl.Int64))
    if "role" not in out.columns:
        out = out.with_columns(pl.lit(None, dtype=pl.String).alias("role"))
    return out


@dataclass
class LabelledPair:
    """The rows :func:`challenger_feedback` compares: each model's labelled rows (``__label__``)."""

    mode: str
    champion: pl.DataFrame
    challenger: pl.DataFrame


def join_labels_pair(champion_log: pl.DataFrame, challenger_log: pl.DataFrame, labels: pl.DataFrame, *,
                     mode: str) -> LabelledPair:
    """Labels (``request_id, row, label``: :func:`stored_labels`) joined with both models' logged rows.

    * ``shadow``: the challenger's ``role == "shadow"`` rows and the champion's rows of the same request id and
      row (the shadow scored the very requests the champion answered): a paired comparison.
    * ``canary``: the challenger's ``role == "canary"`` rows (requests it answered) and the champion's
      ``role == "champion"`` rows logged since the challenger's first canary row (the rest of the same traffic;
      the split is a hash of the caller key, so the two populations are alike).

    Rows logged without a challenger beside them (no ``role``) never enter the comparison.
    """
    if mode not in ("shadow", "canary"):
        raise ValueError(f"mode must be shadow or canary, got {mode!r}")
    lab = labels.select(pl.col("request_id").cast(pl.String), pl.col("row").cast(pl.Int64),
                        pl.col("label").alias("__label__"))
    keys = ["request_id", "row"]
    ch = _with_role(challenger_log).filter(pl.col("role") == mode) if challenger_log.height else \
        challenger_log.clear()
    champ = _with_role(champion_log).filter(pl.col("role") == "champion") if champion_log.height else \
        champion_log.clear()
    if ch.height and champ.height:
        if mode == "shadow":
            champ = champ.join(ch.select(keys), on=keys, how="semi")
            ch = ch.join(champ.select(keys), on=keys, how="semi")
        elif "ts" in ch.columns and "ts" in champ.columns:
            champ = champ.filter(pl.col("ts") >= ch.get_column("ts").min())
    else:
        champ, ch = champ.clear(), ch.clear()

    def labelled(df: pl.DataFrame) -> pl.DataFrame:
        if not df.height:
            return df.with_columns(pl.lit(None, dtype=pl.String).alias("__label__")) if "__label__" not in \
                df.columns else df
        return _with_role(df).join(lab, on=keys, how="inner")

    return LabelledPair(mode=mode, champion=labelled(champ), challenger=labelled(ch))


@dataclass
class ChallengerFeedback(Report):
    """Champion vs challenger on labelled live traffic, and whether the metric rule rolls the challenger back."""

    champion: str
    challenger: str
    mode: str
    task: str
    primary: str
    rows: dict
    metrics: dict
    metric_drop: float
    min_labels: int
    trigger: str | None = None
    reason: str | None = None
    rolled_back: bool = False
    ledger_line: dict | None = None
    notes: list[str] = field(default_factory=list)
    created_at: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    title: str = "Feedback: champion vs challenger on labelled traffic"

    @property
    def values(self) -> dict:
        return {k: (self.metrics.get(k) or {}).get(self.primary) for k in ("champion", "challenger")}

    @property
    def exit_code(self) -> int:
        return 20 if self.trigger else 0

    def to_dict(self) -> dict:
        return {"champion": self.champion, "challenger": self.challenger, "mode": self.mode, "task": self.task,
                "primary": self.primary, "rows": self.rows, "values": self.values, "metrics": self.metrics,
                "metric_drop": self.metric_drop, "min_labels": self.min_labels, "trigger": self.trigger,
                "reason": self.reason, "rolled_back": self.rolled_back, "ledger_line": self.ledger_line,
                "notes": self.notes, "exit_code": self.exit_code, "created_at": self.created_at}

    def summary(self) -> dict:
        return {"mode": self.mode, "primary": self.primary, "rows": self.rows, "values": self.values,
                "trigger": self.trigger, "rolled_back": self.rolled_back}

    def headline(self) -> str:
        v = self.values

        def f(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.4f}"

        head = (f"{self.primary}: champion {self.champion} {f(v['champion'])} ({self.rows['champion']} labelled rows), "
                f"challenger {self.challenger} ({self.mode}) {f(v['challenger'])} ({self.rows['challenger']} rows)")
        if self.trigger:
            return head + f" -> rolled back: {self.reason}" if self.rolled_back else head + f" -> {self.reason}"
        if min(self.rows.values()) < self.min_labels:
            return head + f" -> not judged yet (needs {self.min_labels} labelled rows each)"
        return head + f" -> within {self.metric_drop:.0%} of the champion"

    def _html_body(self) -> str:
        names = sorted(set(self.metrics.get("champion") or {}) | set(self.metrics.get("challenger") or {}))
        rows = [{"metric": m, "champion": (self.metrics.get("champion") or {}).get(m),
                 "challenger": (self.metrics.get("challenger") or {}).get(m)} for m in names]
        css = "wb-bad" if self.trigger else "wb-ok"
        return (f"<p class='{css}'>{esc(self.headline())}</p>" + html_table(rows)
                + "".join(f"<p>{esc(n)}</p>" for n in self.notes))


def _metrics_of(joined: pl.DataFrame, monitoring: dict, primary: str) -> dict | None:
    """Every metric of the task's evaluation on these labelled rows (None without rows)."""
    if joined.height == 0:
        return None
    y, scores = _labelled_scores(joined, monitoring)
    return {m: float(v) for m, v in _evaluate(y, scores, monitoring, primary=primary).metrics.items()}


def challenger_feedback(pair: LabelledPair, *, champion: str, challenger: str, champion_monitoring: dict,
                        challenger_monitoring: dict, rules: Any = None) -> ChallengerFeedback:
    """Each model's metrics on its labelled rows and the verdict of :func:`~workbench.serving.deploy.judge_metric`
    (pure: nothing is rolled back here, see :func:`roll_back_on_metric`).

    Both are judged on the challenger's primary metric (its brief's), each scored with its own
    ``monitoring.json`` (positive label and threshold, classes). ``rules``: a
    :class:`~workbench.serving.deploy.Rules` (``metric_drop``, ``min_labels``), default the brief's defaults.
    """
    from .serving.deploy import LabelledSummary, Rules, judge_metric

    rules = rules or Rules()
    task = str(challenger_monitoring.get("task", "binary_classification"))
    primary = str(challenger_monitoring["primary_metric"])
    notes = []
    if str(champion_monitoring.get("task", "binary_classification")) != task:
        raise DataError(f"{champion} and {challenger} are models of different tasks: never compared",
                        hint="a challenger must answer the champion's brief")
    if champion_monitoring.get("primary_metric") not in (None, primary):
        notes.append(f"the champion's brief leads with {champion_monitoring['primary_metric']}; both are judged "
                     f"on the challenger's {primary}")
    metrics = {"champion": _metrics_of(pair.champion, champion_monitoring, primary),
               "challenger": _metrics_of(pair.challenger, challenger_monitoring, primary)}
    rows = {"champion": int(pair.champion.height), "challenger": int(pair.challenger.height)}
    report = ChallengerFeedback(champion=champion, challenger=challenger, mode=pair.mode, task=task,
                                primary=primary, rows=rows, metrics=metrics, metric_drop=float(rules.metric_drop),
                                min_labels=int(rules.min_labels), notes=notes)
    if metrics["champion"] is None or metrics["challenger"] is None:
        report.notes.append("labels for both models are needed to compare them"
                            + (" (shadow: the same request ids)" if pair.mode == "shadow" else ""))
        return report
    verdict = judge_metric(LabelledSummary(rows["champion"], metrics["champion"][primary]),
                           LabelledSummary(rows["challenger"], metrics["challenger"][primary]),
                           task=task, primary=primary, rules=rules)
    if verdict is not None:
        report.trigger, report.reason = verdict
    return report


def roll_back_on_metric(report: ChallengerFeedback, spec: Any, *,
                        by: str = "workbench feedback (automatic rollback)") -> dict | None:
    """When ``report`` tripped the metric rule, take the challenger ``spec`` (a
    :class:`~workbench.serving.deploy.ChallengerSpec`) back to staging with
    :func:`~workbench.serving.deploy.roll_back_challenger` (logged at ERROR). Returns the ledger line, or None
    when nothing tripped or the pointer no longer names it."""
    if not report.trigger:
        return None
    from .serving.deploy import roll_back_challenger

    log.error("automatic rollback of challenger %s (%s) to staging: %s", spec.tag, spec.mode, report.reason)
    line = roll_back_challenger(spec, report.reason or "metric drop", trigger=report.trigger, by=by)
    report.rolled_back = (_pointer().get("challenger") or {}).get("tag") != spec.tag
    report.ledger_line = line
    if line is None:
        report.notes.append("no ledger line written: the pointer no longer named the challenger, or the ledger "
                            "refused the line (see the log)")
    return line


def _pointer() -> dict:
    from .serving.pointer import production_pointer

    return production_pointer() or {}


def _package_of(tag: str) -> tuple[Path, dict]:
    from .registry.store import get_model

    path = Path(get_model(tag).path)
    return path, json.loads((path / "monitoring.json").read_text())


def _logged_or_empty(log_dir: str | Path | None, tag: str) -> pl.DataFrame:
    from .monitoring.compact import read_columns

    try:
        return read_columns(log_dir, tag, None, allow_empty=True)
    except DataError:  # no log for it yet
        return pl.DataFrame()


def feedback_with_challenger(labels: pl.DataFrame, *, champion: str, spec: Any, label_column: str,
                             log_dir: str | Path | None = None, file: str | Path = "labels",
                             seed: int = 0, roll_back: bool = True) -> tuple[FeedbackReport | None, ChallengerFeedback]:
    """``workbench feedback`` while the pointer names a challenger ``spec``: the champion's own report (concept
    drift and fairness on its labelled rows, as without a challenger; None when no label is for it) and the
    champion-vs-challenger report on every stored label, rolling the challenger back when the metric rule trips
    (``roll_back``).

    Raises
    ------
    DataError
        A labelled request id in neither model's log, a batch labelled without ``row``, no label column.
    """
    from .serving.deploy import Rules

    champ_path, champ_mon = _package_of(champion)
    chall_path, chall_mon = _package_of(spec.tag)
    champ_log = read_logged(log_dir, model_version=champion)
    chall_log = _logged_or_empty(log_dir, spec.tag)
    check_labels(labels, [champ_log, chall_log], label_column=label_column, file=file)
    save_labels(labels, label_column=label_column)
    own = labels.with_columns(pl.col("request_id").cast(pl.String)).join(
        champ_log.select(pl.col("request_id").cast(pl.String)).unique(), on="request_id", how="semi")
    report = feedback_report(join_labels(champ_log, own, label_column=label_column, file=file), champ_mon,
                             seed=seed) if own.height else None
    pair = join_labels_pair(champ_log, chall_log, stored_labels(), mode=spec.mode)
    versus = challenger_feedback(pair, champion=champion, challenger=spec.tag, champion_monitoring=champ_mon,
                                 challenger_monitoring=chall_mon, rules=Rules.for_package(chall_path))
    if roll_back:
        roll_back_on_metric(versus, spec)
    return report, versus


def labelled_metrics(champion: str, challenger: str, *, log_dir: str | Path | None = None,
                     logs: tuple[pl.DataFrame, pl.DataFrame] | None = None,
                     labels: pl.DataFrame | None = None,
                     monitoring: tuple[dict, dict] | None = None) -> dict | None:
    """For ``workbench compare``: each model's metrics where labels exist -- the stored labels
    (:func:`stored_labels`, or ``labels`` in that form) joined with each model's log (``logs``, else read from
    ``log_dir``) -- as ``{"champion": {metric: value}, "challenger": {...}, "labelled_rows": {...}}``, or None
    when no label matches either model's rows. ``monitoring``: both packages' ``monitoring.json`` (default: read
    from the model store).

    When the challenger's rows were logged beside the champion (``role`` shadow or canary), the rows are those
    :func:`join_labels_pair` compares (what the metric rollback judges); otherwise each model's labelled rows.
    Both are scored on the challenger's primary metric.
    """
    labels = stored_labels() if labels is None else labels
    if labels.height == 0:
        return None
    champ_log, chall_log = logs if logs is not None else (_logged_or_empty(log_dir, champion),
                                                         _logged_or_empty(log_dir, challenger))
    champ_mon, chall_mon = monitoring or (_package_of(champion)[1], _package_of(challenger)[1])
    primary = str(chall_mon["primary_metric"])
    roles = (set(chall_log.get_column("role").drop_nulls().unique().to_list())
             if chall_log.height and "role" in chall_log.columns else set())
    mode = next((m for m in ("canary", "shadow") if m in roles), None)
    if mode is not None:
        pair = join_labels_pair(champ_log, chall_log, labels, mode=mode)
        a, b = pair.champion, pair.challenger
    else:
        lab = labels.select(pl.col("request_id").cast(pl.String), pl.col("row").cast(pl.Int64),
                            pl.col("label").alias("__label__"))
        a, b = (_with_role(lg).join(lab, on=["request_id", "row"], how="inner") if lg.height else pl.DataFrame()
                for lg in (champ_log, chall_log))
    if a.height == 0 and b.height == 0:
        return None
    return {"champion": _metrics_of(a, champ_mon, primary) or {},
            "challenger": _metrics_of(b, chall_mon, primary) or {},
            "labelled_rows": {"champion": int(a.height), "challenger": int(b.height)}}
