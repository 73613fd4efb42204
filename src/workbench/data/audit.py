"""The Discovery audit and the data quality score.

:func:`audit_dataset` measures missingness, duplicates and conflicting labels, class balance, the target rate by
sensitive group (and their intersection), train/test overlap, single-feature leakage and validity problems, then
scores the data on the methodology's six dimensions -- completeness, accuracy/validity, consistency, timeliness,
relevance, volume -- each 0-5 with the evidence behind the score. Below the brief's ``min_quality_score`` (18/30 by
default) the verdict is "fix data first", and the run stops there.

Everything is computed with polars aggregations (one group-by per column, reused for leakage, cardinality and
sentinel checks), so the audit grows linearly with rows.
"""

from __future__ import annotations

import datetime as _dt
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
            "rows": self.rows, "as_of": self.as_of, "missingness": self.missingness, "duplicates": self.duplicates,
            "class_balance": self.class_balance, "target_by_group": self.target_by_group, "overlap": self.overlap,
            "leakage": self.leakage, "validity": self.validity, "quality": self.quality.to_dict(),
            "warnings": self.warnings,
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
            parts.append("<h4>Warnings</h4><ul>" + "".join(f"<li>{esc(w)}</li>" for w in self.warnings) + "</ul>")
        cb = self.class_balance
        parts.append(f"<h4>Class balance</h4><p>positive rate: train {cb['train']['positive_rate']:.3%}, "
                     f"test {cb['test']['positive_rate']:.3%} ({'imbalanced' if cb['imbalanced'] else 'balanced'}); "
                     f"suggested primary metric: <b>{esc(cb['suggested_metric'])}</b></p>")
        miss = [m for m in self.missingness if m["train_nulls"] or m["test_nulls"]]
        parts.append("<h4>Missing values</h4>" + html_table(miss))
        d = self.duplicates
        parts.append(f"<h4>Duplicates</h4><p>{d['duplicate_rows']} duplicate rows ({d['duplicate_fraction']:.3%}); "
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
    """ROC-AUC of a score whose groups, in ascending score order, hold ``pos``/``neg`` counts (ties count half)."""
    p_tot, n_tot = pos.sum(), neg.sum()
    if p_tot == 0 or n_tot == 0:
        return 0.5
    neg_below = np.concatenate([[0], np.cumsum(neg)[:-1]])
    return float((pos * neg_below + 0.5 * pos * neg).sum() / (p_tot * n_tot))


def _column_profiles(df: pl.DataFrame, columns: list[str]) -> dict[str, pl.DataFrame]:
    """Per column: distinct values with their row count and positive count (one group-by each, run together)."""
    lf = df.lazy()
    queries = [
        lf.group_by(c).agg(pl.len().alias("n"), pl.col(_Y).sum().alias("pos")).sort(c, nulls_last=False)
        for c in columns
    ]
    return dict(zip(columns, pl.collect_all(queries), strict=True))


def _auc_from_profile(prof: pl.DataFrame, name: str, kind: str) -> float:
    n = prof.get_column("n").to_numpy().astype(np.float64)
    pos = prof.get_column("pos").to_numpy().astype(np.float64)
    neg = n - pos
    if kind == "numeric":
        order = np.arange(len(n))  # already sorted by value, nulls first
    else:
        rate = pos / np.maximum(n, 1)
        order = np.lexsort((prof.get_column(name).cast(pl.String).fill_null("").to_numpy(), rate))
    auc = univariate_auc(pos[order], neg[order])
    return max(auc, 1 - auc)


def _score_completeness(missing_cells: float, worst: tuple[str, float], target_nulls: int, rows_any: float
                        ) -> DimensionScore:
    m, (wcol, w) = missing_cells, worst
    score = 0
    for s, (mm, ww) in zip((5, 4, 3, 2, 1), ((0.01, 0.05), (0.03, 0.10), (0.07, 0.25), (0.15, 0.5), (0.3, 1.01))):
        if m < mm and w < ww:
            score = s
            break
    ev = [f"{m:.2%} of cells missing", f"worst column {wcol} {w:.2%} missing", f"{rows_any:.2%} of rows have a gap"]
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
                  leakage_auc: float = 0.98, informative_auc: float = 0.55) -> AuditReport:
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
    """
    as_of = as_of or _dt.date.today()
    t, pos_label = brief.target.column, str(brief.target.positive_label)
    train, test = data.train, data.test
    ty = pl.col(t).cast(pl.String)
    if train.schema[t] != pl.String:
        ty = ty.str.to_lowercase()
        pos_label = pos_label.lower()
    y_expr = (ty == pos_label).cast(pl.Int64).alias(_Y)
    train_y = train.with_columns(y_expr)
    warnings: list[str] = []
    columns = [c for c in train.columns if c != t]
    features = contract.features
    n = train.height

    # ---- missingness
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

    # ---- duplicates and conflicting labels (one heavy group-by; the second runs on its result)
    grouped = train.group_by(train.columns).len()
    dup_rows = n - grouped.height
    conflicts = (grouped.group_by(columns).agg(pl.col(t).n_unique().alias("labels"), pl.col("len").sum())
                 .filter(pl.col("labels") > 1))
    duplicates = {"duplicate_rows": dup_rows, "duplicate_fraction": _r(dup_rows / n),
                  "conflicting_groups": conflicts.height,
                  "conflicting_rows": int(conflicts.get_column("len").sum()) if conflicts.height else 0}

    # ---- class balance
    def balance(df: pl.DataFrame) -> dict:
        vc = df.get_column(t).cast(pl.String).value_counts().sort(t, nulls_last=True)
        counts = {str(k): int(v) for k, v in vc.iter_rows()}
        y = df.select(y_expr).get_column(_Y)
        labelled = df.height - df.get_column(t).null_count()
        return {"counts": counts, "positive_rate": _r(y.sum() / max(labelled, 1))}

    bal_train, bal_test = balance(train), balance(test)
    minority = min(bal_train["positive_rate"], 1 - bal_train["positive_rate"])
    imbalanced = minority < 0.35
    class_balance = {"train": bal_train, "test": bal_test, "minority_rate": _r(minority), "imbalanced": imbalanced,
                     "suggested_metric": "pr_auc" if imbalanced else "roc_auc"}
    if imbalanced and brief.success.metric not in ("pr_auc", "f1", "balanced_accuracy"):
        warnings.append(f"positive class is {minority:.1%} of rows but the brief's primary metric is "
                        f"{brief.success.metric}; PR-AUC is the usual choice for a rare positive class")

    # ---- target rate by sensitive group and their intersection
    target_by_group: dict[str, list[dict]] = {}
    groupings = [[s] for s in brief.sensitive_features]
    if len(brief.sensitive_features) > 1:
        groupings.append(list(brief.sensitive_features))
    labelled_train = train_y.filter(pl.col(t).is_not_null())
    for keys in groupings:
        g = (labelled_train.group_by(keys).agg(pl.len().alias("count"), pl.col(_Y).mean().alias("positive_rate"))
             .sort(["count", *keys], descending=[True] + [False] * len(keys)))
        rows = []
        for r in g.iter_rows(named=True):
            group = " & ".join("(missing)" if r[k] is None else str(r[k]) for k in keys)
            rows.append({"group": group, "count": r["count"], "positive_rate": _r(r["positive_rate"]),
                         "evidence": "ok" if r["count"] >= brief.fairness.min_slice_size else "insufficient evidence"})
        target_by_group[" x ".join(keys)] = rows

    # ---- train/test overlap (exact rows, by hash)
    common = [c for c in train.columns if c in test.columns]
    h_train = train.select(common).hash_rows(seed=7)
    h_test = test.select(common).hash_rows(seed=7)
    in_train = int(h_test.is_in(h_train.unique()).sum()) if test.height else 0
    overlap = {"test_rows_in_train": in_train, "fraction": _r(in_train / max(test.height, 1))}
    if overlap["fraction"] > 0.01:
        warnings.append(f"{overlap['fraction']:.1%} of test rows also appear in train: held-out scores will be optimistic")

    # ---- per-column profiles: separation (leakage / relevance), sentinels, numbers stored as text
    profile_cols = [c for c in columns if contract.column(c).kind in ("numeric", "categorical")]
    profiles = _column_profiles(labelled_train, profile_cols)
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
            warnings.append(f"'{c}' alone separates the target almost perfectly (AUC {sep:.3f}): possible leakage")
        values = prof.get_column(c)
        if spec.kind == "numeric" and values.null_count() < len(values):
            nn = prof.filter(pl.col(c).is_not_null())
            lo, hi = nn.get_column(c).min(), nn.get_column(c).max()
            for v in (lo, hi):
                if v is not None and float(v).is_integer() and int(v) in _SENTINELS:
                    cnt = int(nn.filter(pl.col(c) == v).get_column("n").sum())
                    if cnt >= 5:
                        validity.append({"column": c, "finding": f"possible sentinel or capped value {v:g}",
                                         "rows": cnt, "fraction": _r(cnt / n)})
        elif spec.kind == "categorical":
            texts = values.drop_nulls()
            as_num = texts.str.replace_all(",", "").cast(pl.Float64, strict=False)
            numeric_share = as_num.is_not_null().mean() if len(texts) else 0.0
            if len(texts) >= 5 and 0.8 <= (numeric_share or 0) < 1.0:
                bad = texts.filter(as_num.is_null()).head(5).to_list()
                validity.append({"column": c, "finding": f"numbers stored as text; non-numeric values e.g. {bad}",
                                 "rows": None, "fraction": None})
            folded = texts.str.to_lowercase().str.replace_all(r"[\s_-]+", " ").str.strip_chars()
            if folded.n_unique() < len(texts):
                validity.append({"column": c, "finding": "categories differing only by case, spaces or dashes",
                                 "rows": None, "fraction": None})
    leakage.sort(key=lambda r: (-r["separation_auc"], r["column"]))

    test_check = contract.check(test, name="test split")
    unseen = sum(i["rows"] for i in test_check.issues if i["issue"].startswith("unseen"))
    out_of_range = sum(i["rows"] for i in test_check.issues if i["issue"].startswith("outside"))
    for i in test_check.issues:
        validity.append({"column": i["column"], "finding": f"test split: {i['issue']}", "rows": i["rows"],
                         "fraction": _r(i["fraction"])})

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
    acc_ev.append(f"test rows with unseen categories {unseen_rate:.2%}, outside training ranges {oor_rate:.2%}")
    accuracy = DimensionScore("accuracy", max(acc, 0), acc_ev)

    dupf = dup_rows / n
    conf_rate = duplicates["conflicting_rows"] / n
    cons = 0
    for s, (dd, cc) in zip((5, 4, 3, 2, 1), ((0.001, 0.0), (0.01, 0.001), (0.05, 0.01), (0.10, 0.05), (0.25, 0.15))):
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
        timeliness = DimensionScore("timeliness", 2, ["collection date unknown: set data.collected in the brief"])
    else:
        cs = str(collected)
        try:
            cdate = _dt.date.fromisoformat(cs) if len(cs) > 4 else _dt.date(int(cs), 7, 1)
        except ValueError:
            cdate = None
        if cdate is None:
            timeliness = DimensionScore("timeliness", 2, [f"could not read data.collected={cs!r} as a year or date"])
        else:
            age = max((as_of - cdate).days / 365.25, 0.0)
            ratio = age / brief.data.max_age_years
            score = next((s for s, lim in zip((5, 4, 3, 2, 1), (0.5, 1, 2, 4, 8)) if ratio <= lim), 0)
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

    y_sum = int(labelled_train.get_column(_Y).sum())
    minority_count = min(y_sum, labelled_train.height - y_sum)
    vol = _band(minority_count, (5000, 1000, 300, 100, 30))
    vol_ev = [f"{labelled_train.height} labelled training rows, {minority_count} in the minority class",
              f"{labelled_train.height / max(n_feat, 1):.0f} rows per feature"]
    if labelled_train.height < 10 * max(n_feat, 1):
        vol = min(vol, 1)
        vol_ev.append("fewer than 10 rows per feature")
    small = [f"{k}: {r['group']} ({r['count']})" for k, rows in target_by_group.items() for r in rows
             if r["evidence"] != "ok"]
    if small:
        vol_ev.append(f"{len(small)} sensitive groups below the minimum slice size {brief.fairness.min_slice_size}")
    volume = DimensionScore("volume", vol, vol_ev)

    quality = QualityScore([completeness, accuracy, consistency, timeliness, relevance, volume],
                           threshold=brief.min_quality_score)
    if quality.verdict != "proceed":
        warnings.insert(0, f"data quality {quality.total}/30 is below {brief.min_quality_score}: fix data first")
    warnings.extend(data.notes)
    return AuditReport(
        rows={"train": n, "test": test.height}, missingness=missingness, duplicates=duplicates,
        class_balance=class_balance, target_by_group=target_by_group, overlap=overlap, leakage=leakage,
        validity=validity, quality=quality, warnings=warnings, as_of=as_of.isoformat(),
    )
