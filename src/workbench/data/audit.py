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
from typing import Literal

import numpy as np
import polars as pl

from .._report import Report, esc, html_table
from ..brief import Brief
from .contract import DataContract
from .io import Dataset

__all__ = ["AuditReport", "QualityScore", "DimensionScore", "audit_dataset", "univariate_auc"]

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

    def to_dict(self) -> dict:
        return {
            "rows": self.rows, "as_of": self.as_of, "missingness": self.missingness,
            "duplicates": self.duplicates, "class_balance": self.class_balance,
            "target_by_group": self.target_by_group, "overlap": self.overlap, "leakage": self.leakage,
            "validity": self.validity, "quality": self.quality.to_dict(), "warnings": self.warnings,
        }

    def summary(self) -> dict:
        return {
            "quality_score": self.quality.total, "quality_verdict": self.quality.verdict,
            "quality_dimensions": {d.name: d.score for d in self.quality.dimensions},
            "rows": self.rows, "positive_rate_train": self.class_balance["train"]["positive_rate"],
            "duplicate_rows_train": self.duplicates["duplicate_rows"],
            "leakage_flags": [x["column"] for x in self.leakage if x["flagged"]],
        }

    def _html_body(self) -> str:
        parts = [self.quality._repr_html_()]
        if self.warnings:
            items = "".join(f"<li>{esc(w)}</li>" for w in self.warnings)
            parts.append("<h4>Warnings</h4><ul>" + items + "</ul>")
        cb = self.class_balance
        parts.append(f"<h4>Class balance</h4><p>positive rate: train {cb['train']['positive_rate']:.3%}, "
                     f"test {cb['test']['positive_rate']:.3%} "
                     f"({'imbalanced' if cb['imbalanced'] else 'balanced'}); "
                     f"suggested primary metric: <b>{esc(cb['suggested_metric'])}</b></p>")
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
            parts.append(f"<h4>Target rate by {esc(key)}</h4>" + html_table(rows))
        parts.append("<h4>Single-feature separation (leakage check)</h4>" + html_table(self.leakage))
        if self.validity:
            parts.append("<h4>Validity findings</h4>" + html_table(self.validity))
        return "".join(parts)


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


def _profile_query(lf: pl.LazyFrame, c: str) -> pl.LazyFrame:
    """One column's distinct values with their row count and positive count, sorted by value (nulls first)."""
    return lf.group_by(c).agg(pl.len().alias(_N), pl.col(_Y).sum().alias(_POS)).sort(c, nulls_last=False)


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
                  leakage_auc: float = 0.98, informative_auc: float = 0.55,
                  timings: dict[str, float] | None = None) -> AuditReport:
    """Audit the dataset and score its quality.

    Parameters
    ----------
    data, brief, contract:
        The loaded data, its brief and the contract inferred from the training split.
    as_of:
        The date timeliness is judged against (default: today). Fix it to make audits comparable across days.
    leakage_auc:
        A single feature whose separation (max(AUC, 1-AUC)) reaches this is flagged as possible leakage.
    informative_auc:
        A feature whose separation reaches this counts as carrying signal (relevance).
    timings:
        When a dict is given, the wall-clock seconds of each stage of the audit are added into it (for
        benchmarks); the report is the same either way.
    """
    lap = _Laps(timings)
    as_of = as_of or _dt.date.today()
    t, pos_label = brief.target.column, str(brief.target.positive_label)
    train, test = data.train, data.test
    ty = pl.col(t).cast(pl.String)
    if train.schema[t] != pl.String:
        ty = ty.str.to_lowercase()
        pos_label = pos_label.lower()
    y_expr = (ty == pos_label).cast(pl.Int64).alias(_Y)
    warnings: list[str] = []
    columns = [c for c in train.columns if c != t]
    features = contract.features
    n = train.height

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
    completeness = _score_completeness(missing_cells, worst, tr_nulls[t], float(rows_any or 0.0))
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

    # ---- the group-bys, run together: class balance (train and test), target rate by sensitive group and
    # their intersection, and one profile per column (separation, sentinels, numbers stored as text)
    groupings = [[s] for s in brief.sensitive_features]
    if len(brief.sensitive_features) > 1:
        groupings.append(list(brief.sensitive_features))
    profile_cols = [c for c in columns if contract.column(c).kind in ("numeric", "categorical")]
    labelled = train.lazy().with_columns(y_expr).filter(pl.col(t).is_not_null())
    queries = [*_balance_queries(train.lazy(), t, y_expr), *_balance_queries(test.lazy(), t, y_expr)]
    queries += [labelled.group_by(keys).agg(pl.len().alias("count"), pl.col(_Y).mean().alias("positive_rate"))
                .sort(["count", *keys], descending=[True] + [False] * len(keys)) for keys in groupings]
    queries += [_profile_query(labelled, c) for c in profile_cols]
    frames = pl.collect_all(queries)
    (bal_train, (y_sum, labelled_rows)), (bal_test, _) = _balance(*frames[0:2]), _balance(*frames[2:4])
    by_group = frames[4:4 + len(groupings)]
    profiles = dict(zip(profile_cols, frames[4 + len(groupings):], strict=True))
    lap("group_bys")

    # ---- class balance
    minority = min(bal_train["positive_rate"], 1 - bal_train["positive_rate"])
    imbalanced = minority < 0.35
    class_balance = {"train": bal_train, "test": bal_test, "minority_rate": _r(minority),
                     "imbalanced": imbalanced,
                     "suggested_metric": "pr_auc" if imbalanced else "roc_auc"}
    if imbalanced and brief.success.metric not in ("pr_auc", "f1", "balanced_accuracy"):
        warnings.append(f"positive class is {minority:.1%} of rows but the brief's primary metric is "
                        f"{brief.success.metric}; PR-AUC is the usual choice for a rare positive class")

    # ---- target rate by sensitive group and their intersection
    target_by_group: dict[str, list[dict]] = {}
    for keys, g in zip(groupings, by_group, strict=True):
        rows = []
        for r in g.iter_rows(named=True):
            group = " & ".join("(missing)" if r[k] is None else str(r[k]) for k in keys)
            rows.append({"group": group, "count": r["count"], "positive_rate": _r(r["positive_rate"]),
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
    for c in profile_cols:
        spec = contract.column(c)
        prof = profiles[c]
        sep = _auc_from_profile(prof, c, spec.kind)
        flagged = sep >= leakage_auc and spec.role == "feature"
        if spec.role == "feature" and sep >= informative_auc:
            informative += 1
        leakage.append({"column": c, "role": spec.role, "separation_auc": _r(sep, 4), "flagged": flagged})
        if flagged:
            warnings.append(f"'{c}' alone separates the target almost perfectly (AUC {sep:.3f}): "
                            "possible leakage")
        values = prof.get_column(c)
        if spec.kind == "numeric" and values.null_count() < len(values):
            lo, hi = values.min(), values.max()  # nulls are skipped
            for v in (lo, hi):
                if v is not None and float(v).is_integer() and int(v) in _SENTINELS:
                    cnt = int(prof.filter(pl.col(c) == v).get_column(_N).sum())
                    if cnt >= 5:
                        validity.append({"column": c, "finding": f"possible sentinel or capped value {v:g}",
                                         "rows": cnt, "fraction": _r(cnt / n)})
        elif spec.kind == "categorical":
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
    leakage.sort(key=lambda r: (-r["separation_auc"], r["column"]))
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
    conf_rate = duplicates["conflicting_rows"] / n
    cons = 0
    bands = ((0.001, 0.0), (0.01, 0.001), (0.05, 0.01), (0.10, 0.05), (0.25, 0.15))
    for s, (dd, cc) in zip((5, 4, 3, 2, 1), bands, strict=True):
        if dupf < dd + 1e-12 and conf_rate <= cc:
            cons = s
            break
    cons_ev = [f"{dup_rows} duplicate rows ({dupf:.2%})",
               f"{duplicates['conflicting_rows']} rows in groups with identical inputs but different labels"]
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
    rel_ev = [f"{informative}/{n_feat} features separate the target (AUC >= {informative_auc})"]
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

    minority_count = min(y_sum, labelled_rows - y_sum)
    vol = _band(minority_count, (5000, 1000, 300, 100, 30))
    vol_ev = [f"{labelled_rows} labelled training rows, {minority_count} in the minority class",
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
        validity=validity, quality=quality, warnings=warnings, as_of=as_of.isoformat(),
    )
