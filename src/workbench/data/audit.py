"""The Discovery audit and the data quality score.

:func:`audit_dataset` measures missingness, duplicates and conflicting labels, class balance, the target rate
by sensitive group (and their intersection), train/test overlap, single-feature leakage and validity problems,
then scores the data on the methodology's six dimensions -- completeness, accuracy/validity, consistency,
timeliness, relevance, volume -- each 0-5 with the evidence behind the score. Below the brief's
``min_quality_score`` (18/30 by default) the verdict is "fix data first", and the run stops there.

Everything is computed with polars aggregations, so the audit grows linearly with rows: the group-bys (class
balance, target rate by group, one profile per column reused for leakage, cardinality and sentinel checks)
run together in one ``pl.collect_all``, and duplicate detection hashes every row once and sends only the rows
whose hash recurs through the exact group-by over all columns. ``benchmarks/bench_audit.py`` measures it.
"""

from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
import polars as pl

from .._report import Report, esc, html_table
from ..brief import Brief
from ..tasks import get_task
from .io import Dataset

if TYPE_CHECKING:
    from .contract import DataContract

__all__ = ["AuditReport", "QualityScore", "DimensionScore", "audit_dataset", "blocked_columns", "leakage_levels",
           "leakage_scores", "mirror_signals", "name_mirrors_target", "post_time_signals", "single_feature_signals",
           "univariate_auc"]

DIMENSIONS = ("completeness", "accuracy", "consistency", "timeliness", "relevance", "volume")
_SENTINELS = {-1, -9, -99, -999, -9999, -99999, 99, 999, 9999, 99999, 999999, 9999999}
_Y = "__wb_y__"
_N, _POS = "__wb_n__", "__wb_pos__"  # profile counts: names no data column will have


class _Laps:
    """Wall-clock seconds per audit stage, added into ``timings`` when the caller passes a dict."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self._t = time.perf_counter()

    def __call__(self, stage: str) -> None:
        if self.timings is None:
            return
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - self._t
        self._t = now


def _r(x: float, nd: int = 6) -> float:
    return round(float(x), nd)


@dataclass
class DimensionScore:
    name: str
    score: int
    evidence: list[str]

    def to_dict(self) -> dict:
        return {"name": self.name, "score": self.score, "max": 5, "evidence": self.evidence}


@dataclass
class QualityScore(Report):
    """Six dimensions scored 0-5, their total out of 30, and the go/no-go verdict."""

    dimensions: list[DimensionScore]
    threshold: int
    title: str = "Data quality score"

    @property
    def total(self) -> int:
        return sum(d.score for d in self.dimensions)

    @property
    def verdict(self) -> Literal["proceed", "fix data first"]:
        return "proceed" if self.total >= self.threshold else "fix data first"

    def __getitem__(self, name: str) -> DimensionScore:
        return next(d for d in self.dimensions if d.name == name)

    def to_dict(self) -> dict:
        return {"total": self.total, "max": 30, "threshold": self.threshold, "verdict": self.verdict,
                "dimensions": [d.to_dict() for d in self.dimensions]}

    def _html_body(self) -> str:
        css = "wb-ok" if self.verdict == "proceed" else "wb-bad"
        rows = [{"dimension": d.name, "score": f"{d.score}/5", "evidence": "; ".join(d.evidence)}
                for d in self.dimensions]
        return (f"<p>Total <b>{self.total}/30</b> (proceed at {self.threshold}): "
                f"<span class='{css}'>{esc(self.verdict)}</span></p>" + html_table(rows))


@dataclass
class AuditReport(Report):
    """Everything the Discovery audit found. ``quality`` holds the score and the verdict."""

    rows: dict[str, int]
    missingness: list[dict]
    duplicates: dict
    class_balance: dict
    target_by_group: dict[str, list[dict]]
    overlap: dict
    leakage: list[dict]
    validity: list[dict]
    quality: QualityScore
    warnings: list[str] = field(default_factory=list)
    as_of: str = ""
    title: str = "Discovery audit"
    #: the brief's task; ``class_balance`` is filled for classification, ``target_distribution`` for regression
    task: str = "binary_classification"
    target_distribution: dict = field(default_factory=dict)
    #: every leakage signal found in Discovery (the shape of ``reports/leakage.json``'s signals)
    leakage_signals: list[dict] = field(default_factory=list)

    @property
    def leakage_blocking(self) -> list[str]:
        """Columns with a block-level leakage signal the brief does not acknowledge."""
        return list(blocked_columns(self.leakage_signals))

    def to_dict(self) -> dict:
        out = {
            "rows": self.rows, "as_of": self.as_of, "missingness": self.missingness,
            "duplicates": self.duplicates, "class_balance": self.class_balance,
            "target_by_group": self.target_by_group, "overlap": self.overlap, "leakage": self.leakage,
            "validity": self.validity, "quality": self.quality.to_dict(), "warnings": self.warnings,
            "leakage_signals": self.leakage_signals, "leakage_blocking": self.leakage_blocking,
        }
        if self.task != "binary_classification":  # binary reports keep exactly the keys they always had
            out = {"task": self.task, **out, "target_distribution": self.target_distribution}
        return out

    def summary(self) -> dict:
        out = {
            "quality_score": self.quality.total, "quality_verdict": self.quality.verdict,
            "quality_dimensions": {d.name: d.score for d in self.quality.dimensions},
            "rows": self.rows,
        }
        if self.task == "binary_classification":
            out["positive_rate_train"] = self.class_balance["train"]["positive_rate"]
        elif self.class_balance:
            out["task"] = self.task
            out["class_shares_train"] = self.class_balance["train"]["shares"]
        else:
            out["task"] = self.task
            td = self.target_distribution
            out["target_mean_train"] = td["train"]["mean"]
            out["target_rows_dropped"] = td["missing_dropped"]
        out["duplicate_rows_train"] = self.duplicates["duplicate_rows"]
        out["leakage_flags"] = [x["column"] for x in self.leakage if x["flagged"]]
        out["leakage_blocking"] = self.leakage_blocking
        return out

    def _html_body(self) -> str:
        parts = [self.quality._repr_html_()]
        if self.warnings:
            items = "".join(f"<li>{esc(w)}</li>" for w in self.warnings)
            parts.append("<h4>Warnings</h4><ul>" + items + "</ul>")
        parts.append(self._target_html())
        miss = [m for m in self.missingness if m["train_nulls"] or m["test_nulls"]]
        parts.append("<h4>Missing values</h4>" + html_table(miss))
        d = self.duplicates
        parts.append(f"<h4>Duplicates</h4><p>{d['duplicate_rows']} duplicate rows "
                     f"({d['duplicate_fraction']:.3%}); "
                     f"{d['conflicting_groups']} groups of identical inputs with different labels "
                     f"({d['conflicting_rows']} rows)</p>")
        o = self.overlap
        parts.append(f"<h4>Train/test overlap</h4><p>{o['test_rows_in_train']} test rows also in train "
                     f"({o['fraction']:.3%})</p>")
        for key, rows in self.target_by_group.items():
            shown = [{k: v for k, v in r.items() if k != "class_shares"}
                     | {f"share {c}": v for c, v in r.get("class_shares", {}).items()} for r in rows]
            what = "rate" if self.task == "binary_classification" else (
                "class shares" if self.class_balance else "mean")
            parts.append(f"<h4>Target {what} by {esc(key)}</h4>" + html_table(shown))
        if self.leakage_signals:
            blocking = self.leakage_blocking
            head = (f"<p><span class='wb-bad'>blocking: {esc(', '.join(blocking))}</span> (exclude them in "
                    "features.exclude, or acknowledge each in leakage.acknowledge with a reason)</p>"
                    if blocking else "")
            parts.append("<h4>Leakage signals</h4>" + head + html_table(self.leakage_signals))
        parts.append("<h4>Single-feature separation (leakage check)</h4>" + html_table(self.leakage))
        if self.validity:
            parts.append("<h4>Validity findings</h4>" + html_table(self.validity))
        return "".join(parts)


    def _target_html(self) -> str:
        cb, td = self.class_balance, self.target_distribution
        if self.task == "binary_classification":
            return (f"<h4>Class balance</h4><p>positive rate: train {cb['train']['positive_rate']:.3%}, "
                    f"test {cb['test']['positive_rate']:.3%} "
                    f"({'imbalanced' if cb['imbalanced'] else 'balanced'}); "
                    f"suggested primary metric: <b>{esc(cb['suggested_metric'])}</b></p>")
        if cb:
            rows = [{"class": c, "train share": cb["train"]["shares"][c], "test share": cb["test"]["shares"][c],
                     "train rows": cb["train"]["counts"].get(c, 0)} for c in cb["classes"]]
            return (f"<h4>Class balance</h4><p>smallest class <b>{esc(cb['smallest_class'])}</b> "
                    f"({cb['smallest_share']:.1%}; {'imbalanced' if cb['imbalanced'] else 'balanced'}); "
                    f"suggested primary metric: <b>{esc(cb['suggested_metric'])}</b></p>" + html_table(rows))
        rows = [{"split": k, **td[k]} for k in ("train", "test")]
        return (f"<h4>Target distribution</h4><p>{td['missing_dropped']} rows without a target were dropped "
                f"(never imputed); suggested primary metric: <b>{esc(td['suggested_metric'])}</b></p>"
                + html_table(rows))


# ----------------------------------------------------------------------------------------------- helpers
def univariate_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """ROC-AUC of a score whose groups, in ascending score order, hold ``pos``/``neg`` counts.

    Ties count half.
    """
    p_tot, n_tot = pos.sum(), neg.sum()
    if p_tot == 0 or n_tot == 0:
        return 0.5
    neg_below = np.concatenate([[0], np.cumsum(neg)[:-1]])
    return float((pos * neg_below + 0.5 * pos * neg).sum() / (p_tot * n_tot))


def _balance_queries(lf: pl.LazyFrame, t: str, y_expr: pl.Expr) -> list[pl.LazyFrame]:
    """Rows per target value (as text, nulls last), and the positive count, null targets and rows."""
    return [lf.group_by(pl.col(t).cast(pl.String)).agg(pl.len()).sort(t, nulls_last=True),
            lf.select(y_expr.sum(), pl.col(t).null_count().alias("nulls"), pl.len().alias("rows"))]


def _balance(counts: pl.DataFrame, totals: pl.DataFrame) -> tuple[dict, tuple[int, int]]:
    """The class balance of one split, and (positive rows, labelled rows)."""
    positives, nulls, rows = (int(v) for v in totals.row(0))
    labelled = rows - nulls
    return ({"counts": {str(k): int(v) for k, v in counts.iter_rows()},
             "positive_rate": _r(positives / max(labelled, 1))}, (positives, labelled))


def _hashes_like_group_by(dtype: pl.DataType) -> bool:
    """Types whose row hash agrees with group-by equality (-0.0 = 0.0, all NaNs equal, nulls equal)."""
    return (dtype.is_integer() or dtype.is_float() or dtype.is_temporal()
            or dtype in (pl.String, pl.Boolean, pl.Categorical) or isinstance(dtype, pl.Enum))


def _duplicate_groups(train: pl.DataFrame, columns: list[str], target: str) -> tuple[int, int, int]:
    """Distinct rows; groups of identical inputs with more than one label, and the rows in them.

    Equal rows hash equally, so a row whose hash over the inputs no other row shares has no duplicate and no
    conflicting label. Only rows sharing a hash (duplicates, plus the odd collision) go through the exact
    group-bys: a collision costs time, never correctness. On mostly-unique data this turns the heaviest step,
    a group-by over every column, into one hash and one sort of 8-byte integers. Columns of other types stay
    out of the hash, which only lets more rows through to the exact step.
    """
    singles, candidates = 0, train
    hashed = [c for c in columns if _hashes_like_group_by(train.schema[c])]
    if hashed:
        h = train.select(hashed).hash_rows(seed=0)
        ordered = h.sort()
        # one entry per hash held by two rows or more: the last of each run of equal hashes
        run_end = (ordered != ordered.shift(-1)).fill_null(True)
        repeated = ordered.filter((ordered == ordered.shift(1)) & run_end)
        del ordered
        shared = h.is_in(repeated.implode())
        singles = train.height - int(shared.sum())
        if singles:
            candidates = train.filter(shared)
    rows, labels = "__wb_rows__", "__wb_labels__"
    distinct = candidates.group_by(candidates.columns).agg(pl.len().alias(rows))
    # n_unique counts a null label as one more label, as the group-by on every column did
    conflicts = (distinct.group_by(columns).agg(pl.col(target).n_unique().alias(labels), pl.col(rows).sum())
                 .filter(pl.col(labels) > 1))
    return (singles + distinct.height, conflicts.height,
            int(conflicts.get_column(rows).sum()) if conflicts.height else 0)


def _rows_in(rows: pl.DataFrame, other: pl.DataFrame) -> int:
    """How many of ``rows`` also occur in ``other`` (same columns), judged by row hash (seed 7)."""
    h_rows, h_other = rows.hash_rows(seed=7), other.hash_rows(seed=7)
    # h_rows.is_in(h_other), without building a set of every hash of the (usually far larger) other side
    shared = h_other.filter(h_other.is_in(h_rows.implode()))
    return int(h_rows.is_in(shared.implode()).sum())


def _auc_from_profile(prof: pl.DataFrame, name: str, kind: str) -> float:
    n = prof.get_column(_N).to_numpy().astype(np.float64)
    pos = prof.get_column(_POS).to_numpy().astype(np.float64)
    neg = n - pos
    if kind == "numeric":
        auc = univariate_auc(pos, neg)  # already sorted by value, nulls first
    else:
        rate = pos / np.maximum(n, 1)
        order = np.lexsort((prof.get_column(name).cast(pl.String).fill_null("").to_numpy(), rate))
        auc = univariate_auc(pos[order], neg[order])
    return max(auc, 1 - auc)


# ---------------------------------------------------------------------------- cross-fitted single-feature scores
# Multiclass and regression score one feature by how well its per-value (categorical) or per-bin (numeric)
# target statistics, learned on one random half of the training rows, predict the other half (and the
# reverse, averaged). A value seen in one half only is predicted by that half's overall statistic, so an
# identifier scores like noise instead of perfectly. Everything comes from one group-by per column: per value,
# per half, the task's sufficient statistics (class counts, or count / sum / sum of squares).
_HALF = "__wb_half__"
_HALF_SEED = 20240611
_MAX_BINS = 50  # numeric features: up to this many bins of about equal row count (never splitting a value)


def _stat(h: int, j: int) -> str:
    return f"__wb_s{h}_{j}__"


def _half_column(n: int) -> pl.Series:
    return pl.Series(_HALF, np.random.default_rng(_HALF_SEED).integers(0, 2, n, dtype=np.int64))


def _half_stats(prof: pl.DataFrame, kind: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per group (a categorical value, or a bin of numeric values), each half's ``k`` statistics."""
    a = np.stack([prof.get_column(_stat(0, j)).to_numpy() for j in range(k)], axis=1).astype(np.float64)
    b = np.stack([prof.get_column(_stat(1, j)).to_numpy() for j in range(k)], axis=1).astype(np.float64)
    if kind != "numeric" or prof.height <= 2:
        return a, b
    values = prof.get_column(prof.columns[0])
    null = values.is_null().to_numpy()  # the profile is sorted by value, nulls first: nulls stay one group
    counts = prof.get_column(_N).to_numpy().astype(np.float64)
    rows = counts[~null]
    bins = min(_MAX_BINS, max(2, int(rows.sum()) // 30))
    edges = np.cumsum(rows) / rows.sum()
    groups = np.minimum((np.concatenate([[0.0], edges[:-1]]) * bins).astype(np.int64), bins - 1)
    ids = np.concatenate([np.full(int(null.sum()), -1), groups]) + 1
    out_a, out_b = np.zeros((bins + 1, k)), np.zeros((bins + 1, k))
    np.add.at(out_a, ids, a)
    np.add.at(out_b, ids, b)
    keep = (out_a.sum(axis=1) + out_b.sum(axis=1)) > 0
    return out_a[keep], out_b[keep]


def _ovr_auc(fit: np.ndarray, held: np.ndarray) -> float:
    """Macro one-vs-rest AUC on ``held`` (class counts per group) of the class rates learned on ``fit``."""
    n_fit, n_held = fit.sum(axis=1), held.sum(axis=1)
    prior = fit.sum(axis=0) / max(fit.sum(), 1)
    rates = np.where(n_fit[:, None] > 0, fit / np.maximum(n_fit, 1)[:, None], prior[None, :])
    aucs = []
    for j in range(fit.shape[1]):
        pos = held[:, j]
        if pos.sum() == 0 or pos.sum() == n_held.sum():
            continue
        score, inverse = np.unique(rates[:, j], return_inverse=True)  # merge groups of equal score
        p, q = np.zeros(len(score)), np.zeros(len(score))
        np.add.at(p, inverse, pos)
        np.add.at(q, inverse, n_held - pos)
        aucs.append(univariate_auc(p, q))
    return float(np.mean(aucs)) if aucs else 0.5


def _heldout_r2(fit: np.ndarray, held: np.ndarray) -> float:
    """R² on ``held`` (count, sum, sum of squares per group) of the group means learned on ``fit``."""
    n_f, s_f = fit[:, 0], fit[:, 1]
    n_h, s_h, q_h = held[:, 0], held[:, 1], held[:, 2]
    if n_h.sum() < 2 or n_f.sum() == 0:
        return 0.0
    mean_fit = np.where(n_f > 0, s_f / np.maximum(n_f, 1), s_f.sum() / n_f.sum())
    sse = float((q_h - 2 * mean_fit * s_h + n_h * mean_fit**2).sum())
    sst = float(q_h.sum() - s_h.sum() ** 2 / n_h.sum())
    return 1.0 - sse / sst if sst > 0 else 0.0


# ---------------------------------------------------------------------------- what differs by task, in one place
def _q(x: float | None, nd: int = 6) -> float | None:
    return None if x is None or not np.isfinite(x) else _r(x, nd)


@dataclass(frozen=True)
class _TaskAudit:
    """How the audit treats one task's target; one subclass per task, and the audit never asks the task name.

    score_name / leak / warn / informative:
        the single-feature score reported per column, the default block and warn levels of possible leakage
        (``brief.leakage.block_score`` / ``warn_score`` override them), and the value from which a feature
        counts as carrying signal (relevance). Measured: Adult's strongest honest feature (relationship) 0.78,
        penguins' flipper_length 0.894 (multiclass), Wage's education R² 0.24; COMPAS's post-outcome columns
        0.975-0.976 and Wage's logwage R² 0.98 must block.
    exclude_leaks:
        the contract keeps a column with a block-level signal out of the features (every task).
    conflicts_count:
        identical inputs with different targets count against consistency (not for a continuous target, where
        they are noise).
    """

    task: ClassVar[str]
    score_name: ClassVar[str]
    leak: ClassVar[float]
    warn: ClassVar[float]
    informative: ClassVar[float]
    exclude_leaks: ClassVar[bool]
    conflicts_count: ClassVar[bool] = True
    needs_halves: ClassVar[bool] = True
    leak_words: ClassVar[str]
    leak_verb: ClassVar[str] = "predicts"
    score_words: ClassVar[str]
    #: volume scores 5..1 from these counts of the smallest class (or of labelled rows), and what they count
    volume_bands: ClassVar[tuple[int, ...]] = (5000, 1000, 300, 100, 30)
    volume_unit: ClassVar[str | None] = None

    def y_expr(self, train: pl.DataFrame, brief: Brief, classes: list[str] | None) -> pl.Expr:
        """The encoded target ``_Y`` the profiles aggregate."""
        raise NotImplementedError

    def profile_aggs(self, k: int) -> list[pl.Expr]:
        """Per-value aggregations of one column: count, then each half's sufficient statistics."""
        raise NotImplementedError

    def score(self, prof: pl.DataFrame, name: str, kind: str, k: int) -> float:
        raise NotImplementedError

    def group_aggs(self, k: int) -> list[pl.Expr]:
        """Per sensitive group: ``count`` and the task's figures."""
        raise NotImplementedError

    def group_figures(self, r: dict, classes: list[str] | None) -> dict:
        raise NotImplementedError

    def describe_leak(self, c: str, v: float) -> str:
        return (f"'{c}' alone {self.leak_verb} the target almost perfectly ({self.leak_words} {v:.3f}): "
                "possible leakage")


@dataclass(frozen=True)
class _BinaryAudit(_TaskAudit):
    task: ClassVar[str] = "binary_classification"
    score_name: ClassVar[str] = "separation_auc"
    leak: ClassVar[float] = 0.95
    warn: ClassVar[float] = 0.90
    informative: ClassVar[float] = 0.55
    exclude_leaks: ClassVar[bool] = True
    needs_halves: ClassVar[bool] = False
    leak_words: ClassVar[str] = "AUC"
    leak_verb: ClassVar[str] = "separates"
    score_words: ClassVar[str] = "AUC"
    volume_unit: ClassVar[str | None] = "minority class"

    def y_expr(self, train, brief, classes):
        t = brief.target.column
        ty, pos = pl.col(t).cast(pl.String), str(brief.target.positive_label)
        if train.schema[t] != pl.String:
            ty, pos = ty.str.to_lowercase(), pos.lower()
        return (ty == pos).cast(pl.Int64).alias(_Y)

    def profile_aggs(self, k):
        return [pl.len().alias(_N), pl.col(_Y).sum().alias(_POS)]

    def score(self, prof, name, kind, k):  # in-sample, as the binary audit always measured it
        return _auc_from_profile(prof, name, kind)

    def group_aggs(self, k):
        return [pl.len().alias("count"), pl.col(_Y).mean().alias("positive_rate")]

    def group_figures(self, r, classes):
        return {"positive_rate": _r(r["positive_rate"])}


@dataclass(frozen=True)
class _MulticlassAudit(_TaskAudit):
    task: ClassVar[str] = "multiclass_classification"
    score_name: ClassVar[str] = "separation_auc_ovr"
    leak: ClassVar[float] = 0.97
    warn: ClassVar[float] = 0.93
    informative: ClassVar[float] = 0.55
    exclude_leaks: ClassVar[bool] = True
    leak_words: ClassVar[str] = "one-vs-rest macro AUC, cross-fitted,"
    score_words: ClassVar[str] = "cross-fitted one-vs-rest AUC"
    volume_unit: ClassVar[str | None] = "smallest class"

    def y_expr(self, train, brief, classes):
        return (pl.col(brief.target.column).cast(pl.String)
                .replace_strict(classes, list(range(len(classes))), default=None, return_dtype=pl.Int64)
                .alias(_Y))

    def profile_aggs(self, k):
        return [pl.len().alias(_N)] + [((pl.col(_HALF) == h) & (pl.col(_Y) == j)).sum().alias(_stat(h, j))
                                       for h in (0, 1) for j in range(k)]

    def score(self, prof, name, kind, k):
        a, b = _half_stats(prof, kind, k)
        return 0.5 * (_ovr_auc(a, b) + _ovr_auc(b, a))

    def group_aggs(self, k):
        return [pl.len().alias("count")] + [(pl.col(_Y) == j).mean().alias(_stat(0, j)) for j in range(k)]

    def group_figures(self, r, classes):
        shares = {c: _r(r[_stat(0, j)]) for j, c in enumerate(classes)}
        return {"majority_class": max(classes, key=lambda c: shares[c]), "class_shares": shares}


@dataclass(frozen=True)
class _RegressionAudit(_TaskAudit):
    task: ClassVar[str] = "regression"
    score_name: ClassVar[str] = "r2_cross_fit"
    leak: ClassVar[float] = 0.9
    warn: ClassVar[float] = 0.7
    informative: ClassVar[float] = 0.01
    exclude_leaks: ClassVar[bool] = True
    conflicts_count: ClassVar[bool] = False
    leak_words: ClassVar[str] = "R², cross-fitted,"
    score_words: ClassVar[str] = "cross-fitted R²"
    volume_bands: ClassVar[tuple[int, ...]] = (10000, 3000, 1000, 300, 100)

    def y_expr(self, train, brief, classes):
        t = brief.target.column
        center = train.get_column(t).cast(pl.Float64).mean() or 0.0  # centred: sums of squares stay exact
        return (pl.col(t).cast(pl.Float64) - center).alias(_Y)

    def profile_aggs(self, k):
        y = pl.col(_Y)
        return [pl.len().alias(_N)] + [e for h in (0, 1) for e in (
            (pl.col(_HALF) == h).sum().alias(_stat(h, 0)), y.filter(pl.col(_HALF) == h).sum().alias(_stat(h, 1)),
            (y * y).filter(pl.col(_HALF) == h).sum().alias(_stat(h, 2)))]

    def score(self, prof, name, kind, k):
        a, b = _half_stats(prof, kind, 3)
        return 0.5 * (_heldout_r2(a, b) + _heldout_r2(b, a))

    def group_aggs(self, k):
        return [pl.len().alias("count"), pl.col(_T).mean().alias("mean"), pl.col(_T).median().alias("median")]

    def group_figures(self, r, classes):
        return {"mean": _q(r["mean"]), "median": _q(r["median"])}


_T = "__wb_target__"  # the raw numeric target beside the centred one (per-group means in target units)
_AUDITS: dict[str, _TaskAudit] = {a.task: a for a in (_BinaryAudit(), _MulticlassAudit(), _RegressionAudit())}


def _labelled(train: pl.DataFrame, brief: Brief, spec: _TaskAudit, classes: list[str] | None) -> pl.LazyFrame:
    """The training rows with a target, with the encoded target (and the random half) the profiles use."""
    t = brief.target.column
    lf = train.lazy()
    if spec.needs_halves:  # drawn over every row, so the halves do not depend on which targets are missing
        lf = lf.with_columns(pl.lit(_half_column(train.height)))
    extra = [spec.y_expr(train, brief, classes)]
    if not get_task(spec.task).is_classifier:
        extra.append(pl.col(t).cast(pl.Float64).alias(_T))
    return lf.with_columns(extra).filter(pl.col(t).is_not_null())


def _profile_query(lf: pl.LazyFrame, c: str, spec: _TaskAudit | None = None, k: int = 0) -> pl.LazyFrame:
    """One column's distinct values with the task's per-value statistics, sorted by value (nulls first)."""
    spec = spec or _AUDITS["binary_classification"]
    return lf.group_by(c).agg(spec.profile_aggs(k)).sort(c, nulls_last=False)


def leakage_scores(df: pl.DataFrame, brief: Brief, kinds: dict[str, str], *,
                   classes: list[str] | None = None) -> tuple[dict[str, float], float, str]:
    """The task's single-feature score of each column in ``kinds`` (name -> "numeric" / "categorical").

    Returns the scores, the value from which a score flags possible leakage, and the score's name. Used by the
    audit and, for the tasks whose contract keeps flagged columns out of the features, by
    :func:`~workbench.data.contract.infer_contract`.
    """
    spec = _AUDITS[brief.task]
    k = len(classes or ())
    if not kinds:
        return {}, spec.leak, spec.score_name
    lf = _labelled(df, brief, spec, classes)
    frames = pl.collect_all([_profile_query(lf, c, spec, k) for c in kinds])
    return ({c: spec.score(f, c, kind, k) for (c, kind), f in zip(kinds.items(), frames, strict=True)},
            spec.leak, spec.score_name)


def leak_excluding_tasks() -> set[str]:
    """Tasks whose data contract keeps a column flagged as possible leakage out of the features."""
    return {name for name, a in _AUDITS.items() if a.exclude_leaks}


# ---------------------------------------------------------------------------------------------- leakage signals
_GENERIC_TOKENS = frozenset({
    "is", "has", "was", "the", "of", "and", "to", "in", "on", "at", "by", "for", "id", "no", "num", "number",
    "count", "two", "one", "year", "years", "month", "day", "days", "date", "time", "type", "code", "flag",
    "score", "value", "total", "rate", "level", "status", "class", "label", "target", "desc", "name", "log",
})
#: post_prediction_time: the share of rows (with both dates) whose date is later than the prediction time from
#: which the column warns, and from which it blocks
POST_TIME_WARN, POST_TIME_BLOCK = 0.005, 0.05
#: name_mirror: |Spearman| between a numeric column and a numeric target from which the column is read as a
#: monotone transform of the target (Wage's logwage: 1.0)
MIRROR_RANK_CORR = 0.995
#: below this many labelled rows a single-feature score is noise: no single_feature or value-mirror signal
MIN_ROWS_FOR_SIGNALS = 30


def leakage_levels(brief: Brief) -> tuple[float, float]:
    """The (warn, block) levels of the task's single-feature score: the brief's ``leakage`` section, or the
    task's defaults (binary ROC-AUC 0.90 / 0.95, multiclass macro one-vs-rest AUC 0.93 / 0.97, regression
    cross-fitted R² 0.70 / 0.90)."""
    spec = _AUDITS[brief.task]
    lk = brief.leakage
    block = lk.block_score if lk.block_score is not None else spec.leak
    warn = lk.warn_score if lk.warn_score is not None else min(spec.warn, block)
    return min(warn, block), block


def _signal(signal: str, column: str | None, value: float | None, threshold: float | None, level: str,
            evidence: str, brief: Brief) -> dict:
    ack = brief.leakage.acknowledge.get(column if column is not None else "held_out_metric")
    return {"signal": signal, "column": column, "value": None if value is None else _r(value, 4),
            "threshold": threshold, "level": level, "evidence": evidence, "acknowledged": ack}


def _tokens(name: str) -> list[str]:
    return [t for t in name.lower().split("_") if t]


def name_mirrors_target(column: str, target: str) -> str | None:
    """Why a column's name mirrors the target's (``<target>_...``, ``..._<target>``, or a distinctive word of
    the target's name inside it: ``is_recid`` vs ``two_year_recid``, ``logwage`` vs ``wage``), else None."""
    if column == target:
        return None
    if column.startswith(target + "_") or column.endswith("_" + target):
        return f"its name is the target's ('{target}') with a prefix or suffix"
    words = [t for t in _tokens(target) if len(t) >= 3 and t not in _GENERIC_TOKENS]
    for w in words:
        for c in _tokens(column):
            if c == w or (min(len(c), len(w)) >= 4 and (w in c or c in w)):
                return f"its name shares the word '{w}' with the target's ('{target}')"
    return None


def _score_words(brief: Brief) -> str:
    return {"binary_classification": "ROC-AUC", "multiclass_classification": "one-vs-rest macro AUC "
            "(cross-fitted)", "regression": "R² (cross-fitted)"}[brief.task]


def single_feature_signals(scores: dict[str, float], brief: Brief) -> list[dict]:
    """``single_feature`` signals: a column whose single-feature score reaches the warn or the block level."""
    warn, block = leakage_levels(brief)
    out: list[dict] = []
    for c, v in scores.items():
        if v >= block:
            level, cut = "block", block
        elif v >= warn:
            level, cut = "warn", warn
        else:
            continue
        out.append(_signal("single_feature", c, v, cut, level,
                           f"alone it predicts the target with {_score_words(brief)} {v:.3f} "
                           f"(>= the {level} level {cut:g})", brief))
    return out


def mirror_signals(df: pl.DataFrame, brief: Brief, columns: dict[str, str], *, values: bool = True) -> list[dict]:
    """``name_mirror`` signals: a name that mirrors the target's (warn), a numeric column that is a monotone
    transform of a numeric target (block; |Spearman| >= :data:`MIRROR_RANK_CORR`)."""
    t = brief.target.column
    out = []
    numeric_target = values and not get_task(brief.task).is_classifier
    rank = {}
    if numeric_target:
        num = [c for c, k in columns.items() if k == "numeric"]
        if num:
            y = pl.col(t).cast(pl.Float64)
            row = df.filter(pl.col(t).is_not_null()).select(
                [pl.corr(pl.col(c).cast(pl.Float64), y, method="spearman").alias(c) for c in num]).row(0, named=True)
            rank = {c: v for c, v in row.items() if v is not None and np.isfinite(v)}
    for c in columns:
        why = name_mirrors_target(c, t)
        rho = rank.get(c)
        if rho is not None and abs(rho) >= MIRROR_RANK_CORR:
            out.append(_signal("name_mirror", c, abs(rho), MIRROR_RANK_CORR, "block",
                               f"its values are a monotone transform of the target (|Spearman| {abs(rho):.4f})"
                               + (f"; {why}" if why else ""), brief))
        elif why:
            out.append(_signal("name_mirror", c, None, None, "warn", why, brief))
    return out


def post_time_signals(df: pl.DataFrame, brief: Brief, candidates: list[str], derived: list[dict]) -> list[dict]:
    """``post_prediction_time`` signals: a date column later than ``data.prediction_time`` on some rows (warn) or
    on :data:`POST_TIME_BLOCK` of them (block), and the derived features computed from it (same level)."""
    from .dates import as_datetime, is_date_dtype

    pt = brief.data.prediction_time
    if not pt or pt not in df.columns or not is_date_dtype(df.schema[pt]):
        return []
    dates = [c for c in candidates if c != pt and c in df.columns and is_date_dtype(df.schema[c])]
    if not dates:
        return []
    ref = as_datetime(df, pt)
    row = df.select([e for c in dates for e in (
        (as_datetime(df, c) > ref).sum().alias(f"after{c}"),
        (as_datetime(df, c).is_not_null() & ref.is_not_null()).sum().alias(f"both{c}"))]).row(0, named=True)
    out = []
    for c in dates:
        after, both = int(row[f"after{c}"] or 0), int(row[f"both{c}"] or 0)
        share = after / both if both else 0.0
        if share < POST_TIME_WARN or after == 0:
            continue
        level, cut = ("block", POST_TIME_BLOCK) if share >= POST_TIME_BLOCK else ("warn", POST_TIME_WARN)
        ev = (f"later than the prediction time {pt} on {share:.1%} of the rows with both dates "
              f"({after:,} of {both:,}): recorded after the prediction is made")
        out.append(_signal("post_prediction_time", c, share, cut, level, ev, brief))
        for d in derived:
            srcs = d.get("days_between") or [d.get("column")]
            if c in srcs:
                out.append(_signal("post_prediction_time", d["name"], share, cut, level,
                                   f"derived from {c}, which is {ev}", brief))
    return out


def blocked_columns(signals: list[dict]) -> dict[str, str]:
    """Columns with an unacknowledged block-level signal -> the evidence (the first such signal's)."""
    out: dict[str, str] = {}
    for s in signals:
        if s["level"] == "block" and not s["acknowledged"] and s["column"] and s["column"] not in out:
            out[s["column"]] = f"{s['signal']}: {s['evidence']}"
    return out


def _group_key(brief: Brief, c: str, train: pl.DataFrame) -> pl.Expr:
    """A sensitive feature's group label (:mod:`workbench.data.sensitive`); nulls stay null."""
    from .sensitive import group_expr, sensitive_bin_edges

    return group_expr(c, sensitive_bin_edges(train, brief).get(c))


def _describe_target(lf: pl.LazyFrame, t: str) -> pl.LazyFrame:
    x = pl.col(t).cast(pl.Float64)
    qs = {"q05": 0.05, "q25": 0.25, "median": 0.5, "q75": 0.75, "q95": 0.95}
    return lf.select(pl.len().alias("rows"), x.null_count().alias("nulls"), x.mean().alias("mean"),
                     x.std().alias("std"), x.min().alias("min"),
                     *[x.quantile(q, interpolation="linear").alias(k) for k, q in qs.items()],
                     x.max().alias("max"), x.skew().alias("skew"))


def _distribution(row: dict) -> dict:
    return {k: (v if k in ("rows", "nulls") else _q(v)) for k, v in row.items()}


def _score_completeness(missing_cells: float, worst: tuple[str, float], target_nulls: int, rows_any: float
                        ) -> DimensionScore:
    m, (wcol, w) = missing_cells, worst
    score = 0
    bands = ((0.01, 0.05), (0.03, 0.10), (0.07, 0.25), (0.15, 0.5), (0.3, 1.01))
    for s, (mm, ww) in zip((5, 4, 3, 2, 1), bands, strict=True):
        if m < mm and w < ww:
            score = s
            break
    ev = [f"{m:.2%} of cells missing", f"worst column {wcol} {w:.2%} missing",
          f"{rows_any:.2%} of rows have a gap"]
    if target_nulls:
        score = max(score - 1, 0)
        ev.append(f"{target_nulls} rows without a target value (dropped before modelling)")
    return DimensionScore("completeness", score, ev)


def _band(value: float, cuts: tuple[float, ...]) -> int:
    """5 when value >= cuts[0], 4 when >= cuts[1], ... 0 below the last cut."""
    for i, c in enumerate(cuts):
        if value >= c:
            return 5 - i
    return 0


# ----------------------------------------------------------------------------------------------- the audit
def audit_dataset(data: Dataset, brief: Brief, contract: DataContract, *, as_of: _dt.date | None = None,
                  leakage_auc: float | None = None, informative_auc: float = 0.55, leakage_r2: float | None = None,
                  informative_r2: float = 0.01, timings: dict[str, float] | None = None) -> AuditReport:
    """Audit the dataset and score its quality.

    Parameters
    ----------
    data, brief, contract:
        The loaded data, its brief and the contract inferred from the training split.
    as_of:
        The date timeliness is judged against (default: today). Fix it to make audits comparable across days.
    leakage_auc:
        Classification: a single feature whose separation reaches this is flagged as possible leakage, a
        block-level signal (binary: max(AUC, 1-AUC) in-sample; multiclass: the cross-fitted one-vs-rest macro
        AUC of the feature's per-value class rates). Default: ``brief.leakage.block_score`` or the task's level
        (:func:`leakage_levels`); the warn level is ``brief.leakage.warn_score`` or the task's.
    informative_auc:
        Classification: a feature whose separation reaches this counts as carrying signal (relevance).
    leakage_r2, informative_r2:
        Regression, the same two cut-offs for the cross-fitted R² of the feature's per-value (categorical) or
        per-bin (numeric) target mean.
    timings:
        When a dict is given, the wall-clock seconds of each stage of the audit are added into it (for
        benchmarks); the report is the same either way.
    """
    lap = _Laps(timings)
    as_of = as_of or _dt.date.today()
    spec = _AUDITS[brief.task]
    warn_cut, leak_cut = leakage_levels(brief)
    given = leakage_r2 if spec.score_name == "r2_cross_fit" else leakage_auc
    if given is not None:
        leak_cut, warn_cut = given, min(warn_cut, given)
    info_cut = informative_r2 if spec.score_name == "r2_cross_fit" else informative_auc
    t = brief.target.column
    train, test = data.train, data.test
    classes = contract.classes
    k = len(classes or ())
    y_expr = spec.y_expr(train, brief, classes)
    warnings: list[str] = []
    columns = [c for c in train.columns if c != t]
    features = contract.features
    n = train.height
    dropped = dict(getattr(data, "dropped_target", {}) or {})

    # ---- missingness (polars keeps null counts with the arrays: this reads no data)
    tr_nulls = train.null_count().row(0, named=True)
    te_nulls = test.null_count().row(0, named=True)
    missingness = [
        {"column": c, "train_nulls": tr_nulls[c], "train_fraction": _r(tr_nulls[c] / n),
         "test_nulls": te_nulls.get(c, 0), "test_fraction": _r(te_nulls.get(c, 0) / max(test.height, 1))}
        for c in train.columns
    ]
    used = features + [t]
    missing_cells = sum(tr_nulls[c] for c in used) / (n * len(used))
    worst = max(((c, tr_nulls[c] / n) for c in features), key=lambda x: x[1])
    rows_any = train.select(pl.any_horizontal(pl.col(used).is_null()).mean()).item()
    completeness = _score_completeness(missing_cells, worst, tr_nulls[t] + dropped.get("train", 0),
                                       float(rows_any or 0.0))
    lap("missingness")

    # ---- duplicates and conflicting labels
    distinct_rows, conflicting_groups, conflicting_rows = _duplicate_groups(train, columns, t)
    dup_rows = n - distinct_rows
    duplicates = {"duplicate_rows": dup_rows, "duplicate_fraction": _r(dup_rows / n),
                  "conflicting_groups": conflicting_groups, "conflicting_rows": conflicting_rows}
    lap("duplicates")

    # ---- train/test overlap (exact rows, by hash)
    common = [c for c in train.columns if c in test.columns]
    in_train = _rows_in(test.select(common), train.select(common)) if test.height else 0
    lap("overlap")

    # ---- the group-bys, run together: the target's balance or distribution (train and test), the target by
    # sensitive group and their intersection, and one profile per column (separation, sentinels, numbers
    # stored as text)
    groupings = [[s] for s in brief.sensitive_features]
    if len(brief.sensitive_features) > 1:
        groupings.append(list(brief.sensitive_features))
    profile_cols = [c for c in columns if contract.column(c).kind in ("numeric", "categorical")]
    labelled = _labelled(train, brief, spec, classes)
    if get_task(brief.task).is_classifier:
        queries = [*_balance_queries(train.lazy(), t, y_expr), *_balance_queries(test.lazy(), t, y_expr)]
    else:
        queries = [_describe_target(train.lazy(), t), _describe_target(test.lazy(), t)]
    head = len(queries)
    queries += [labelled.with_columns(_group_key(brief, c, train) for c in keys).group_by(keys)
                .agg(spec.group_aggs(k)).sort(["count", *keys], descending=[True] + [False] * len(keys))
                for keys in groupings]
    queries += [_profile_query(labelled, c, spec, k) for c in profile_cols]
    frames = pl.collect_all(queries)
    by_group = frames[head:head + len(groupings)]
    profiles = dict(zip(profile_cols, frames[head + len(groupings):], strict=True))
    lap("group_bys")

    # ---- the target: class balance (binary, multiclass) or distribution (regression)
    class_balance: dict = {}
    target_distribution: dict = {}
    if head == 4:
        (bal_train, (y_sum, labelled_rows)), (bal_test, _) = _balance(*frames[0:2]), _balance(*frames[2:4])
    if spec.task == "binary_classification":
        minority = min(bal_train["positive_rate"], 1 - bal_train["positive_rate"])
        imbalanced = minority < 0.35
        class_balance = {"train": bal_train, "test": bal_test, "minority_rate": _r(minority),
                         "imbalanced": imbalanced,
                         "suggested_metric": "pr_auc" if imbalanced else "roc_auc"}
        if imbalanced and brief.primary_metric not in ("pr_auc", "f1", "balanced_accuracy"):
            warnings.append(f"positive class is {minority:.1%} of rows but the brief's primary metric is "
                            f"{brief.primary_metric}; PR-AUC is the usual choice for a rare positive class")
        minority_count = min(y_sum, labelled_rows - y_sum)
    elif spec.task == "multiclass_classification":
        for bal in (bal_train, bal_test):
            counts = {c: bal["counts"].get(c, 0) for c in classes}
            bal["shares"] = {c: _r(v / max(sum(counts.values()), 1)) for c, v in counts.items()}
            del bal["positive_rate"]
        shares = bal_train["shares"]
        small_class = min(classes, key=lambda c: (shares[c], c))
        imbalanced = shares[small_class] < 0.5 / k
        class_balance = {"train": bal_train, "test": bal_test, "classes": classes,
                         "smallest_class": small_class, "smallest_share": shares[small_class],
                         "imbalanced": imbalanced, "suggested_metric": "macro_f1"}
        if imbalanced and brief.primary_metric == "accuracy":
            warnings.append(f"class {small_class!r} is {shares[small_class]:.1%} of rows but the brief's primary "
                            "metric is accuracy; macro F1 or balanced accuracy weigh every class")
        minority_count = bal_train["counts"].get(small_class, 0)
    else:
        target_distribution = {"train": _distribution(frames[0].row(0, named=True)),
                               "test": _distribution(frames[1].row(0, named=True)),
                               "missing_dropped": dropped.get("train", 0) + dropped.get("test", 0),
                               "missing_dropped_by_split": {"train": dropped.get("train", 0),
                                                            "test": dropped.get("test", 0)},
                               "suggested_metric": "mae"}
        labelled_rows = minority_count = n - tr_nulls[t]
        skew = target_distribution["train"]["skew"]
        if skew is not None and abs(skew) > 1 and brief.primary_metric in ("rmse", "r2"):
            warnings.append(f"the target is skewed ({skew:.2f}) and the brief's primary metric is "
                            f"{brief.primary_metric}: a few large values will dominate it; MAE is more robust")

    # ---- the target by sensitive group and their intersection
    target_by_group: dict[str, list[dict]] = {}
    for keys, g in zip(groupings, by_group, strict=True):
        rows = []
        for r in g.iter_rows(named=True):
            group = " & ".join("(missing)" if r[c] is None else str(r[c]) for c in keys)
            rows.append({"group": group, "count": r["count"], **spec.group_figures(r, classes),
                         "evidence": ("ok" if r["count"] >= brief.fairness.min_slice_size
                                      else "insufficient evidence")})
        target_by_group[" x ".join(keys)] = rows

    # ---- train/test overlap
    overlap = {"test_rows_in_train": in_train, "fraction": _r(in_train / max(test.height, 1))}
    if overlap["fraction"] > 0.01:
        warnings.append(f"{overlap['fraction']:.1%} of test rows also appear in train: "
                        "held-out scores will be optimistic")

    # ---- per-column profiles: separation (leakage / relevance), sentinels, numbers stored as text
    leakage, validity = [], []
    informative = 0
    screened_scores: dict[str, float] = {}
    enough_rows = labelled_rows >= MIN_ROWS_FOR_SIGNALS
    for c in profile_cols:
        cspec = contract.column(c)
        prof = profiles[c]
        sep = spec.score(prof, c, cspec.kind, k)
        screened = cspec.role == "feature" or (cspec.reason or "").startswith("possible leakage")
        flagged = sep >= leak_cut and screened and enough_rows
        level = (("block" if sep >= leak_cut else "warn" if sep >= warn_cut else None)
                 if screened and enough_rows else None)
        if screened:
            screened_scores[c] = sep
        if cspec.role == "feature" and sep >= info_cut:
            informative += 1
        leakage.append({"column": c, "role": cspec.role, spec.score_name: _r(sep, 4), "flagged": flagged,
                        "level": level})
        if flagged:
            warnings.append(spec.describe_leak(c, sep) + ("" if cspec.role == "feature"
                                                          else "; the data contract excludes it"))
        values = prof.get_column(c)
        if cspec.kind == "numeric" and values.null_count() < len(values):
            lo, hi = values.min(), values.max()  # nulls are skipped
            for v in (lo, hi):
                if v is not None and float(v).is_integer() and int(v) in _SENTINELS:
                    cnt = int(prof.filter(pl.col(c) == v).get_column(_N).sum())
                    if cnt >= 5:
                        validity.append({"column": c, "finding": f"possible sentinel or capped value {v:g}",
                                         "rows": cnt, "fraction": _r(cnt / n)})
        elif cspec.kind == "categorical":
            texts = values.drop_nulls()
            as_num = texts.str.replace_all(",", "").cast(pl.Float64, strict=False)
            numeric_share = as_num.is_not_null().mean() if len(texts) else 0.0
            if len(texts) >= 5 and 0.8 <= (numeric_share or 0) < 1.0:
                bad = texts.filter(as_num.is_null()).head(5).to_list()
                validity.append({"column": c,
                                 "finding": f"numbers stored as text; non-numeric values e.g. {bad}",
                                 "rows": None, "fraction": None})
            folded = texts.str.to_lowercase().str.replace_all(r"[\s_-]+", " ").str.strip_chars()
            if folded.n_unique() < len(texts):
                validity.append({"column": c,
                                 "finding": "categories differing only by case, spaces or dashes",
                                 "rows": None, "fraction": None})
    leakage.sort(key=lambda r: (-r[spec.score_name], r["column"]))
    signals = _audit_signals(train, brief, contract, screened_scores, warn_cut, leak_cut)
    for sig in signals:
        if sig["signal"] == "single_feature" and sig["level"] == "block":
            continue  # already said above, in the words it always had
        ack = f" (acknowledged: {sig['acknowledged']})" if sig["acknowledged"] else ""
        warnings.append(f"possible leakage ({sig['level']}, {sig['signal']}): '{sig['column']}' {sig['evidence']}"
                        + ack)
    lap("column_checks")

    test_check = contract.check(test, name="test split")
    unseen = sum(i["rows"] for i in test_check.issues if i["issue"].startswith("unseen"))
    out_of_range = sum(i["rows"] for i in test_check.issues if i["issue"].startswith("outside"))
    for i in test_check.issues:
        validity.append({"column": i["column"], "finding": f"test split: {i['issue']}", "rows": i["rows"],
                         "fraction": _r(i["fraction"])})
    lap("contract_check")

    # ---- the six dimensions
    acc_ev, acc = [], 5
    sentinel_cols = sorted({v["column"] for v in validity if "sentinel" in v["finding"]})
    if sentinel_cols:
        acc -= 1
        acc_ev.append(f"possible sentinel/capped values in {', '.join(sentinel_cols)}")
    text_num = [v["column"] for v in validity if "stored as text" in v["finding"]]
    if text_num:
        acc -= 1
        acc_ev.append(f"numbers stored as text in {', '.join(text_num)}")
    unseen_rate, oor_rate = unseen / max(test.height, 1), out_of_range / max(test.height, 1)
    if unseen_rate > 0.01:
        acc -= 1
    if oor_rate > 0.01:
        acc -= 1
    acc_ev.append(f"test rows with unseen categories {unseen_rate:.2%}, "
                  f"outside training ranges {oor_rate:.2%}")
    accuracy = DimensionScore("accuracy", max(acc, 0), acc_ev)

    dupf = dup_rows / n
    conf_rate = duplicates["conflicting_rows"] / n if spec.conflicts_count else 0.0
    cons = 0
    bands = ((0.001, 0.0), (0.01, 0.001), (0.05, 0.01), (0.10, 0.05), (0.25, 0.15))
    for s, (dd, cc) in zip((5, 4, 3, 2, 1), bands, strict=True):
        if dupf < dd + 1e-12 and conf_rate <= cc:
            cons = s
            break
    cons_ev = [f"{dup_rows} duplicate rows ({dupf:.2%})",
               f"{duplicates['conflicting_rows']} rows in groups with identical inputs but different labels"
               + ("" if spec.conflicts_count else " (noise for a numeric target: not scored)")]
    variants = [v["column"] for v in validity if "case" in v["finding"]]
    if variants:
        cons = max(cons - 1, 0)
        cons_ev.append(f"inconsistent category spelling in {', '.join(variants)}")
    consistency = DimensionScore("consistency", cons, cons_ev)

    collected = brief.data.collected
    if collected is None:
        timeliness = DimensionScore("timeliness", 2,
                                    ["collection date unknown: set data.collected in the brief"])
    else:
        cs = str(collected)
        try:
            cdate = _dt.date.fromisoformat(cs) if len(cs) > 4 else _dt.date(int(cs), 7, 1)
        except ValueError:
            cdate = None
        if cdate is None:
            timeliness = DimensionScore("timeliness", 2,
                                        [f"could not read data.collected={cs!r} as a year or date"])
        else:
            age = max((as_of - cdate).days / 365.25, 0.0)
            ratio = age / brief.data.max_age_years
            limits = zip((5, 4, 3, 2, 1), (0.5, 1, 2, 4, 8), strict=True)
            score = next((s for s, lim in limits if ratio <= lim), 0)
            timeliness = DimensionScore("timeliness", score, [
                f"collected {cs}, about {age:.0f} years before {as_of.isoformat()}",
                f"brief allows {brief.data.max_age_years:g} years"])

    n_feat = len(features)
    share = informative / max(n_feat, 1)
    rel = _band(share, (0.6, 0.4, 0.25, 0.1, 1e-9))
    rel_ev = [f"{informative}/{n_feat} features separate the target ({spec.score_words} >= {info_cut:g})"]
    leaks = [x["column"] for x in leakage if x["flagged"]]
    if leaks:
        rel = max(rel - 1, 0)
        rel_ev.append(f"possible leakage: {', '.join(leaks)}")
    auto_excl = {k: v for k, v in contract.excluded.items() if v != "excluded by the brief"}
    if auto_excl:
        rel_ev.append("auto-excluded: " + ", ".join(f"{k} ({v})" for k, v in auto_excl.items()))
        if len(auto_excl) > 0.2 * len(columns):
            rel = max(rel - 1, 0)
    relevance = DimensionScore("relevance", rel, rel_ev)

    vol = _band(minority_count, spec.volume_bands)
    vol_ev = [f"{labelled_rows} labelled training rows"
              + (f", {minority_count} in the {spec.volume_unit}" if spec.volume_unit else ""),
              f"{labelled_rows / max(n_feat, 1):.0f} rows per feature"]
    if labelled_rows < 10 * max(n_feat, 1):
        vol = min(vol, 1)
        vol_ev.append("fewer than 10 rows per feature")
    small = [f"{k}: {r['group']} ({r['count']})" for k, rows in target_by_group.items() for r in rows
             if r["evidence"] != "ok"]
    if small:
        vol_ev.append(f"{len(small)} sensitive groups below the minimum slice size "
                      f"{brief.fairness.min_slice_size}")
    volume = DimensionScore("volume", vol, vol_ev)

    quality = QualityScore([completeness, accuracy, consistency, timeliness, relevance, volume],
                           threshold=brief.min_quality_score)
    if quality.verdict != "proceed":
        warnings.insert(0, f"data quality {quality.total}/30 is below {brief.min_quality_score}: "
                           "fix data first")
    warnings.extend(data.notes)
    lap("scoring")
    return AuditReport(
        rows={"train": n, "test": test.height}, missingness=missingness, duplicates=duplicates,
        class_balance=class_balance, target_by_group=target_by_group, overlap=overlap, leakage=leakage,
        validity=validity, quality=quality, warnings=warnings, as_of=as_of.isoformat(), task=brief.task,
        target_distribution=target_distribution, leakage_signals=signals,
    )


def _audit_signals(train: pl.DataFrame, brief: Brief, contract: DataContract, scores: dict[str, float],
                   warn_cut: float, leak_cut: float) -> list[dict]:
    """Every leakage signal of Discovery, on the columns the brief does not exclude."""
    lk = brief.leakage
    if (lk.warn_score, lk.block_score) != (warn_cut, leak_cut):  # explicit audit_dataset levels win
        brief = brief.model_copy(update={"leakage": lk.model_copy(update={"warn_score": warn_cut,
                                                                          "block_score": leak_cut})})
    screened = {c.name: c.kind for c in contract.columns
                if c.role == "feature" or (c.reason or "").startswith("possible leakage")}
    screened = {c: k for c, k in screened.items() if k in ("numeric", "categorical")}
    enough = train.get_column(brief.target.column).drop_nulls().len() >= MIN_ROWS_FOR_SIGNALS
    signals = single_feature_signals(scores, brief) if enough else []
    signals += mirror_signals(train, brief, screened, values=enough)
    dates = [c.name for c in contract.columns if c.role == "date"]
    signals += post_time_signals(train, brief, dates, list(getattr(contract, "derive", []) or []))
    order = {"block": 0, "warn": 1}
    signals.sort(key=lambda x: (order[x["level"]], x["column"] or "", x["signal"]))
    return signals
