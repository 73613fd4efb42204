"""The parity certificate: evidence that the exported ONNX graph scores like the scikit-learn pipeline.

:func:`parity_certificate` scores the whole test split, plus generated edge cases, twice -- with the fitted
pipeline (``predict_proba[:, 1]`` and ``predict``) and with the ONNX graph through
:class:`~workbench.serving.OnnxScorer`, the very code the service uses (its ``feeds`` conversion and its
``predict_proba``) -- and returns a :class:`ParityCertificate`: a report the promotion gate reads.

Which inputs the scikit-learn side sees
---------------------------------------
The pipeline scores the model frame *as it is* (float64 numerics), never float32-rounded copies. The scorer
rounds numerics to float32 because the graph takes float32, so the comparison is "the model whose metrics the
run reported" against "what the service will answer for the same rows". Rounding the scikit-learn side too
would hide the difference the service shows on live float64 inputs, and it compares a float32 input against a
float64 threshold -- a combination neither side ever computes. Measured: HistGradientBoosting's split
thresholds mostly *equal* a training value (573 of 600 in a 20-iteration model on continuous synthetic data),
so for such a value ``x <= t`` holds in float64 and in the graph (both sides rounded) but not always for
``float32(x) <= t``; on 1,000 of those rows, pipeline-on-float64 vs ONNX differed by at most 8e-8, while
pipeline-on-float32-rounded vs ONNX differed on 10 rows by up to 0.17, flipping one label. (Adult's
numerics are integers, exact in float32: there the question does not arise, and ``float32["inputs_exact"]``
says so.)

What the float32 trap looks like, and how it is told apart from a broken graph
-----------------------------------------------------------------------------
The graph stores tree thresholds in float32 and compares float32 inputs, so a value in the float64 gap
``(t, float32(t)]`` takes the other branch: that row moves (by ~1e-2 or more, depending on the split) while
the rest agree to ~1e-7. For every row whose ``|dp|`` exceeds ``tolerance`` the certificate asks the pipeline
itself: does moving one numeric input of this row by one float32 step (down, up, or onto its float32 value),
or rounding all of them, reproduce the ONNX probability within ``tolerance``? If so the row is *explained by
float32 rounding* (``explained_by`` names the column and move); a mis-converted graph (a wrong imputation,
native categoricals, a perturbed weight) is not explained that way.

The policy (also stated in every certificate's ``policy`` text)
----------------------------------------------------------------
A certificate passes only when all of these hold:

1. **Labels, 100%.** On every test row and every edge case, the decision at the brief's threshold agrees
   (``p_onnx > threshold`` iff ``p_sklearn > threshold``) and the graph's ``label`` output equals the
   pipeline's ``predict``. A single flip fails, explained or not: a flip is a person the service treats
   differently from the evaluated model.
2. **Typical rows agree to float32 precision:** the p99 of ``|dp|`` over the test split is at most
   ``tolerance`` (default 1e-4; both Adult candidates measure about 1e-7). At most 1% of rows may be rare.
3. **Rare rows may differ up to ``max_tolerance``** (default 1e-2, the float32 envelope measured in this
   stack), test split and edge cases alike; they are counted (``rows_above_tolerance``) and shown
   (``worst_rows``). A row beyond ``max_tolerance`` fails **unless it is explained by float32 rounding**
   (above): an unexplained difference that large is a conversion error, not rounding.
4. **Every probability is finite**, and both sides can score every edge case.

Why not one bound: a tight bound fails correct tree models on one rare row; a loose one lets a systematic
shift through. The p99 catches a systematic shift, the max bound plus the float32 explanation catches a broken
branch, and the label rule is what the service's users see. Rows whose pipeline probability lies within
``max_tolerance`` of the threshold -- where an allowed difference *could* flip a decision -- are counted in
``near_threshold``, so a reader sees how close the certificate came to a flip.

Edge cases
----------
Built deterministically (no randomness) from the contract (ranges, categories) or, without one, from the model
frame. Two base rows: ``typical`` (numeric medians, most frequent categories) and ``borderline`` (the test row
whose pipeline probability is nearest the threshold but at least ``max_tolerance`` away, so that a mis-handled
value that moves it visibly shows as a flip). On each: a missing numeric (NaN) per numeric column, a missing
category (``""``) and an unseen category per categorical column, extreme numerics (min - 1, max + 1, 0, 1e9,
-1e9, 1e-30) per numeric column; plus one all-missing row.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .._report import Report, esc, html_table, jsonable
from ..errors import ContractError, ParameterError
from .onnx import ONNX_OUTPUTS, ExportError, OnnxExport

__all__ = ["DEFAULT_MAX_TOLERANCE", "DEFAULT_TOLERANCE", "ParityCertificate", "edge_case_frame",
           "judge_parity", "parity_certificate"]

log = logging.getLogger(__name__)

MISSING_CATEGORY = ""
"""A missing category in the model frame and the ONNX string input (``workbench.modeling.MISSING_CATEGORY``;
repeated here so that importing :mod:`workbench.export` does not import scikit-learn)."""

DEFAULT_TOLERANCE = 1e-4
"""Bound on the p99 of ``|p_onnx - p_sklearn|`` over the test split."""

DEFAULT_MAX_TOLERANCE = 1e-2
"""Bound on one row's ``|p_onnx - p_sklearn|`` (test split, edge cases) unless float32 rounding explains it"""

EXTREME_VALUES = (0.0, 1e9, -1e9, 1e-30)
"""Extreme numerics tried on every numeric column, besides ``min - 1`` and ``max + 1``."""

N_WORST = 5

_FIELDS = (
    "passed", "failures", "onnx_sha256", "opset", "rows", "threshold", "label_agreement",
    "decision_agreement", "label_disagreements", "decision_disagreements", "max_abs_diff", "p99_abs_diff",
    "mean_abs_diff",
    "rows_above_tolerance", "rows_above_max_tolerance", "explained_by_float32", "non_finite", "tolerance",
    "max_tolerance", "policy", "policy_short", "reason", "near_threshold", "float32", "edge_cases",
    "worst_rows", "versions", "seconds", "created_at", "notes",
)
MAX_EXPLAINED = 200
"""At most this many rows above ``tolerance`` are checked for a float32 explanation (more fail the p99 rule
on any split of 20,000 rows or fewer anyway)."""


# ---------------------------------------------------------------------------------------------- the report
@dataclass
class ParityCertificate(Report):
    """ONNX vs scikit-learn on the test split and edge cases, judged by the module's policy.

    Attributes
    ----------
    passed:
        True only when every rule of the policy holds; ``failures`` says which did not.
    label_agreement, decision_agreement:
        Fractions of test rows where the graph's ``label`` equals ``predict``, and where the decisions at
        ``threshold`` agree. Edge cases are counted separately in ``edge_cases``.
    max_abs_diff, p99_abs_diff, mean_abs_diff:
        Statistics of ``|p_onnx - p_sklearn|`` over the test rows with finite probabilities.
    rows_above_tolerance, rows_above_max_tolerance, explained_by_float32:
        Test rows with ``|dp| > tolerance`` (allowed: rare rows), with ``|dp| > max_tolerance`` (allowed only
        when explained), and how many of the former a one-float32-step input move explains.
    near_threshold:
        ``margin`` (= ``max_tolerance``), ``rows`` whose pipeline probability lies within it of the threshold,
        ``within_observed_max`` (rows within the observed max ``|dp|``) and ``closest`` distance.
    float32:
        ``inputs_exact``: whether every numeric test input is exact in float32; ``columns_not_exact``.
    edge_cases:
        One dict per generated case: ``case``, ``base``, ``column``, ``value``, ``p_sklearn``, ``p_onnx``,
        ``abs_diff``, labels and decisions of both sides, ``explained_by``, ``error`` (a side refused the
        row), ``ok`` and ``problem`` (why not ok; empty when ok).
    worst_rows:
        The test rows with the largest ``|dp|``, with their inputs and ``explained_by`` (None, or the
        float32 move that explains the difference).
    """

    passed: bool
    failures: list[str]
    onnx_sha256: str
    opset: int
    rows: int
    threshold: float
    label_agreement: float
    decision_agreement: float
    label_disagreements: int
    decision_disagreements: int
    max_abs_diff: float
    p99_abs_diff: float
    mean_abs_diff: float
    rows_above_tolerance: int
    rows_above_max_tolerance: int
    explained_by_float32: int
    non_finite: int
    tolerance: float
    max_tolerance: float
    policy: str
    near_threshold: dict
    float32: dict
    edge_cases: list[dict]
    worst_rows: list[dict]
    versions: dict
    seconds: float
    created_at: str
    notes: list[str] = field(default_factory=list)
    title: str = "ONNX parity certificate"

    # ------------------------------------------------------------------ views
    @property
    def policy_short(self) -> str:
        return (f"100% labels at {self.threshold:g} (test + edge cases), p99 |dp| <= {self.tolerance:g}, "
                f"max |dp| <= {self.max_tolerance:g} unless float32 rounding explains the row")

    @property
    def reason(self) -> str:
        """One line: why it failed, or what it certified."""
        if self.failures:
            return "; ".join(self.failures)
        return (f"{self.rows} test rows and {len(self.edge_cases)} edge cases: every label agrees, "
                f"max |dp| {self.max_abs_diff:.2e}")

    @property
    def edge_cases_passed(self) -> int:
        return sum(1 for c in self.edge_cases if c["ok"])

    def to_dict(self) -> dict:
        return jsonable({k: getattr(self, k) for k in _FIELDS})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ParityCertificate:
        """Rebuild a certificate from :meth:`to_dict` output (e.g. a saved ``parity.json``)."""
        derived = {"policy_short", "reason"}
        return cls(**{k: v for k, v in d.items() if k not in derived})

    def summary(self) -> dict:
        return {"passed": self.passed, "onnx_sha256": self.onnx_sha256, "rows": self.rows,
                "label_agreement": self.label_agreement, "decision_agreement": self.decision_agreement,
                "max_abs_diff": self.max_abs_diff, "p99_abs_diff": self.p99_abs_diff,
                "tolerance": self.tolerance, "edge_cases": f"{self.edge_cases_passed}/{len(self.edge_cases)}"}

    def _html_body(self) -> str:
        verdict = "<span class='wb-ok'>PASSED</span>" if self.passed else "<span class='wb-bad'>FAILED</span>"
        figures = [{"figure": k, "value": v} for k, v in (
            ("rows (test split)", self.rows),
            ("label agreement (label output vs predict)", f"{100 * self.label_agreement:.4f}%"),
            (f"decision agreement (p > {self.threshold:g})", f"{100 * self.decision_agreement:.4f}%"),
            ("max |dp|", f"{self.max_abs_diff:.3e}"),
            ("p99 |dp|", f"{self.p99_abs_diff:.3e}"),
            ("mean |dp|", f"{self.mean_abs_diff:.3e}"),
            (f"rows with |dp| > {self.tolerance:g} (explained by float32)",
             f"{self.rows_above_tolerance} ({self.explained_by_float32})"),
            (f"rows within {self.max_tolerance:g} of the threshold", self.near_threshold["rows"]),
            ("edge cases passed", f"{self.edge_cases_passed}/{len(self.edge_cases)}"),
            ("ONNX sha256", self.onnx_sha256),
            ("opset", self.opset),
            ("versions", ", ".join(f"{k} {v}" for k, v in self.versions.items())),
            ("seconds", f"{self.seconds:.2f}"),
        )]
        failures = ("<ul>" + "".join(f"<li class='wb-bad'>{esc(f)}</li>" for f in self.failures) + "</ul>"
                    if self.failures else "")
        edges = sorted(self.edge_cases,
                       key=lambda c: (c["ok"], -(np.inf if c["abs_diff"] is None else c["abs_diff"])))
        edge_cols = ["case", "base", "column", "value", "p_sklearn", "p_onnx", "abs_diff", "ok", "problem"]
        worst = [{"row": w["row"], "p_sklearn": w["p_sklearn"], "p_onnx": w["p_onnx"],
                  "abs_diff": w["abs_diff"], "explained_by": w["explained_by"],
                  "inputs": ", ".join(f"{k}={v}" for k, v in w["inputs"].items())} for w in self.worst_rows]
        notes = "".join(f"<p>{esc(n)}</p>" for n in self.notes)
        return (f"<p>{verdict} &mdash; {esc(self.reason)}</p>{failures}"
                f"{html_table(figures)}<p><b>Policy.</b> {esc(self.policy)}</p>{notes}"
                f"<h4>Worst test rows</h4>{html_table(worst)}"
                f"<h4>Edge cases (failing first)</h4>{html_table(edges, edge_cols, max_rows=60)}")


# ---------------------------------------------------------------------------------------------- the policy
def policy_text(threshold: float, tolerance: float, max_tolerance: float) -> str:
    """The policy in words, with the numbers this certificate applied."""
    return (f"Pass requires (1) 100% agreement on every test row and every edge case, both of the "
            f"decision p > {threshold:g} and of the ONNX label output with scikit-learn's predict; "
            f"(2) p99 |dp| <= {tolerance:g} over the test split; (3) every row's |dp| <= {max_tolerance:g}: "
            f"rare rows may exceed {tolerance:g} (float32 tree thresholds can move a row by about 1e-2 while "
            f"every label agrees) and are counted and shown; beyond {max_tolerance:g} a row fails unless the "
            f"pipeline reproduces the ONNX probability when one of its numeric inputs moves by one float32 "
            f"step (then it is float32 rounding, not a conversion error); (4) finite probabilities "
            f"everywhere. scikit-learn scores the float64 model frame; ONNX scores it through the service's "
            f"OnnxScorer (float32 inputs), so input rounding counts as a difference.")


def judge_parity(p_sklearn: np.ndarray, p_onnx: np.ndarray, label_sklearn: np.ndarray,
                 label_onnx: np.ndarray, *, threshold: float, tolerance: float = DEFAULT_TOLERANCE,
                 max_tolerance: float = DEFAULT_MAX_TOLERANCE,
                 explained: np.ndarray | None = None) -> tuple[dict, list[str]]:
    """Apply the policy's test-split rules to two sets of scores (pure; no models).

    Parameters
    ----------
    explained:
        Boolean mask of rows whose difference is explained by float32 rounding (see the module docstring);
        such rows may exceed ``max_tolerance``. Default: none is.

    Returns
    -------
    (figures, failures)
        ``figures``: agreement fractions and counts, ``|dp|`` statistics, ``near_threshold``;
        ``failures``: one sentence per broken rule (empty when the split passes).
    """
    p_sk = np.asarray(p_sklearn, dtype=np.float64)
    p_ox = np.asarray(p_onnx, dtype=np.float64)
    n = len(p_sk)
    explained = np.zeros(n, dtype=bool) if explained is None else np.asarray(explained, dtype=bool)
    diff = np.abs(p_ox - p_sk)
    finite = np.isfinite(diff)
    d = diff[finite]
    label_bad = int(np.sum(np.asarray(label_sklearn) != np.asarray(label_onnx)))
    decision_bad = int(np.sum((p_ox > threshold) != (p_sk > threshold)))
    max_d = float(d.max()) if d.size else float("nan")
    p99 = float(np.quantile(d, 0.99)) if d.size else float("nan")
    distance = np.abs(p_sk - threshold)
    beyond = finite & (diff > max_tolerance)
    mean = float(d.mean()) if d.size else float("nan")
    figures = {
        "label_agreement": 1.0 - label_bad / n, "decision_agreement": 1.0 - decision_bad / n,
        "label_disagreements": label_bad, "decision_disagreements": decision_bad,
        "max_abs_diff": max_d, "p99_abs_diff": p99, "mean_abs_diff": mean,
        "rows_above_tolerance": int(np.sum(d > tolerance)), "rows_above_max_tolerance": int(beyond.sum()),
        "explained_by_float32": int(np.sum(explained & finite & (diff > tolerance))),
        "non_finite": int(n - finite.sum()),
        "near_threshold": {"margin": max_tolerance, "rows": int(np.sum(distance <= max_tolerance)),
                           "within_observed_max": int(np.sum(distance <= (max_d if d.size else 0.0))),
                           "closest": float(np.nanmin(distance)) if n else None},
    }
    failures = []
    if decision_bad:
        failures.append(f"label disagreement: the decision at threshold {threshold:g} differs on "
                        f"{decision_bad} of {n} test rows")
    if label_bad:
        failures.append(f"label disagreement: the ONNX label output differs from predict on {label_bad} of "
                        f"{n} test rows")
    if figures["non_finite"]:
        failures.append(f"non-finite probabilities on {figures['non_finite']} of {n} test rows")
    if d.size and p99 > tolerance:
        failures.append(f"p99 |dp| {p99:.3e} exceeds the tolerance {tolerance:g} (a systematic difference)")
    unexplained = int(np.sum(beyond & ~explained))
    if unexplained:
        failures.append(f"max |dp| {max_d:.3e} exceeds the bound {max_tolerance:g} on {unexplained} test "
                        "rows not explained by float32 rounding")
    return figures, failures


# ---------------------------------------------------------------------------------------------- edge cases
def _contract_facts(contract: Any, X: pd.DataFrame, roles: Any) -> tuple[dict, dict]:
    """Numeric ranges ``{col: (min, max)}`` and known categories ``{col: set}`` from the contract, else X.

    ``contract`` may be a :class:`~workbench.data.DataContract` (or its ``to_dict()``), or a mapping
    ``{"ranges": {col: [min, max]}, "categories": {col: [...]}}``.
    """
    ranges: dict[str, tuple[float, float]] = {}
    cats: dict[str, set] = {}
    if contract is not None:
        if isinstance(contract, Mapping) and ("ranges" in contract or "categories" in contract):
            ranges = {k: (float(v[0]), float(v[1])) for k, v in (contract.get("ranges") or {}).items()
                      if v is not None and v[0] is not None and v[1] is not None}
            cats = {k: set(map(str, v)) for k, v in (contract.get("categories") or {}).items() if v}
        else:
            columns = contract["columns"] if isinstance(contract, Mapping) else contract.columns
            for spec in columns:
                get = spec.get if isinstance(spec, Mapping) else (lambda k, s=spec: getattr(s, k, None))
                name = get("name")
                if get("min") is not None and get("max") is not None:
                    ranges[name] = (float(get("min")), float(get("max")))
                if get("categories"):
                    cats[name] = set(map(str, get("categories")))
    for c in roles.numeric:
        if c not in ranges:
            col = X[c].to_numpy(dtype=np.float64)
            ok = col[np.isfinite(col)]
            ranges[c] = (float(ok.min()), float(ok.max())) if ok.size else (0.0, 0.0)
    for c in roles.categorical:
        cats[c] = cats.get(c, set()) | set(map(str, X[c].unique()))
    return ranges, cats


def _typical_row(X: pd.DataFrame, roles: Any) -> dict:
    row: dict[str, Any] = {}
    for c in roles.order:
        if c in roles.numeric:
            col = X[c].to_numpy(dtype=np.float64)
            row[c] = float(np.nanmedian(col)) if np.isfinite(col).any() else float("nan")
        else:
            present = X[c][X[c] != MISSING_CATEGORY]
            # most frequent; ties broken alphabetically so the row never depends on row order
            counts = present.value_counts()
            row[c] = min(counts.index[counts == counts.max()]) if len(counts) else MISSING_CATEGORY
    return row


def _unseen(known: set) -> str:
    value = "__unseen__"
    while value in known:
        value += "_"
    return value


def edge_case_frame(X: pd.DataFrame, roles: Any, *, contract: Any = None,
                    bases: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[pd.DataFrame, list[dict]]:
    """The edge-case rows (a model frame) and one description per row (``case``, ``base``, ``column``,
    ``value``). Deterministic: the same inputs give the same rows.

    Parameters
    ----------
    X:
        The model frame the ranges and modes are read from when the contract does not give them.
    roles:
        Which columns are numeric and categorical, in feature order (a
        :class:`~workbench.modeling.ColumnRoles`).
    contract:
        A :class:`~workbench.data.DataContract`, its ``to_dict()``, or ``{"ranges": ..., "categories": ...}``.
    bases:
        Named base rows to perturb; default ``{"typical": medians and modes}``.
    """
    ranges, cats = _contract_facts(contract, X, roles)
    bases = dict(bases) if bases else {"typical": _typical_row(X, roles)}
    rows: list[dict] = []
    cases: list[dict] = []

    def add(base_name: str, base: Mapping, case: str, column: str | None, value: Any) -> None:
        row = {c: base[c] for c in roles.order}
        if column is not None:
            row[column] = value
        rows.append(row)
        cases.append({"case": case, "base": base_name, "column": column, "value": value})

    for base_name, base in bases.items():
        for c in roles.numeric:
            add(base_name, base, "missing_numeric", c, float("nan"))
            lo, hi = ranges[c]
            values: list[float] = []
            for v in (lo - 1.0, hi + 1.0, *EXTREME_VALUES):
                if v not in values:
                    values.append(v)
            for v in values:
                add(base_name, base, "extreme_numeric", c, v)
        for c in roles.categorical:
            add(base_name, base, "missing_categorical", c, MISSING_CATEGORY)
            add(base_name, base, "unseen_category", c, _unseen(cats.get(c, set())))
    all_missing = {c: (float("nan") if c in roles.numeric else MISSING_CATEGORY) for c in roles.order}
    add("none", all_missing, "all_missing", None, None)
    numeric = set(roles.numeric)
    frame = pd.DataFrame({c: pd.Series([r[c] for r in rows], dtype=np.float64 if c in numeric else object)
                          for c in roles.order})
    return frame, cases


# ---------------------------------------------------------------------------------------------- scoring
def _score_sklearn(pipeline: Any, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(pipeline.predict_proba(X))[:, 1], np.asarray(pipeline.predict(X))


def _score_rows(score: Any, X: pd.DataFrame, who: str) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """``score(X) -> (p, labels)`` over all rows; when the batch raises, row by row, recording each refusal
    (so one bad edge case is reported, not fatal)."""
    try:
        p, lab = score(X)
        return np.asarray(p, dtype=np.float64), np.asarray(lab).astype(object), [None] * len(X)
    except Exception:  # noqa: BLE001 - any refusal is reported per row below
        pass
    p = np.full(len(X), np.nan)
    lab = np.full(len(X), None, dtype=object)
    errors: list[str | None] = []
    for i in range(len(X)):
        try:
            pi, li = score(X.iloc[[i]])
            p[i], lab[i] = pi[0], li[0]
            errors.append(None)
        except Exception as exc:  # noqa: BLE001
            errors.append(f"{who} raised {type(exc).__name__}: {exc}"[:300])
    return p, lab, errors


def _score_onnx(scorer: Any, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities exactly as the service computes them; the graph's ``label`` output on the same feeds."""
    columns = {c: X[c].to_numpy() for c in X.columns}
    p = np.asarray(scorer.predict_proba(columns), dtype=np.float64)
    labels = scorer.session.run([ONNX_OUTPUTS[0]], scorer.feeds(columns))[0]
    return p, np.asarray(labels).reshape(-1)


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("onnxruntime", "skl2onnx", "protobuf", "onnx", "scikit-learn", "numpy"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    return out


def _inexact_float32(X: pd.DataFrame, numeric: tuple[str, ...]) -> list[str]:
    """Numeric columns holding a value that float32 cannot represent exactly."""
    out = []
    for c in numeric:
        col = X[c].to_numpy(dtype=np.float64)
        if not np.array_equal(col, col.astype(np.float32).astype(np.float64), equal_nan=True):
            out.append(c)
    return out


def _float32_moves(row: Mapping[str, Any], numeric: tuple[str, ...]) -> list[tuple[str, dict]]:
    """Variants of a row within one float32 step: each numeric input moved onto its float32 value, one float32
    step down, one up; and all of them rounded to float32 at once."""
    out: list[tuple[str, dict]] = []
    rounded = dict(row)
    for c in numeric:
        x = float(row[c])
        if not np.isfinite(x):
            continue
        v = np.float32(x)
        rounded[c] = float(v)
        for label, moved in (("float32", v), ("one float32 step down", np.nextafter(v, np.float32(-np.inf))),
                             ("one float32 step up", np.nextafter(v, np.float32(np.inf)))):
            if float(moved) != x:
                out.append((f"{c}: {x!r} -> {float(moved)!r} ({label})", {**row, c: float(moved)}))
    out.append(("all numerics rounded to float32", rounded))
    return out


def _explain_float32(pipeline: Any, X: pd.DataFrame, rows: np.ndarray, p_onnx: np.ndarray,
                     numeric: tuple[str, ...], tolerance: float) -> dict[int, str]:
    """For each position in ``rows``: the one-float32-step move of its inputs under which the pipeline
    reproduces the ONNX probability within ``tolerance`` (see the module docstring); rows without one are
    left out."""
    variants: list[dict] = []
    owner: list[tuple[int, str]] = []
    for i in rows:
        for text, variant in _float32_moves(X.iloc[int(i)].to_dict(), numeric):
            variants.append(variant)
            owner.append((int(i), text))
    if not variants:
        return {}
    V = pd.DataFrame({c: pd.Series([v[c] for v in variants], dtype=X[c].dtype) for c in X.columns})
    try:
        p = np.asarray(pipeline.predict_proba(V))[:, 1]
    except Exception:  # noqa: BLE001 - no explanation, the row stays unexplained
        return {}
    out: dict[int, str] = {}
    for (i, text), pv in zip(owner, p, strict=True):
        if i not in out and abs(pv - p_onnx[i]) <= tolerance:
            out[i] = text
    return out


def _check_inputs(X: Any, export: OnnxExport) -> Any:
    from ..modeling.frame import ColumnRoles, check_model_frame

    roles = ColumnRoles(
        numeric=tuple(i["name"] for i in export.inputs if i["kind"] == "numeric"),
        categorical=tuple(i["name"] for i in export.inputs if i["kind"] == "categorical"),
        order=tuple(i["name"] for i in export.inputs),
    )
    check_model_frame(X, roles)
    if len(X) == 0:
        raise ContractError("the frame to certify on has no rows", hint="pass the whole test split")
    for c in roles.numeric:
        if not pd.api.types.is_numeric_dtype(X[c]):
            raise ContractError(f"is numeric in the ONNX graph but has dtype {X[c].dtype} in the frame",
                                column=c, hint="build the frame with workbench.modeling.to_model_frame")
    return roles


# ---------------------------------------------------------------------------------------------- entry point
def parity_certificate(pipeline: Any, export: OnnxExport, X: pd.DataFrame, *, threshold: float,
                       tolerance: float = DEFAULT_TOLERANCE, max_tolerance: float = DEFAULT_MAX_TOLERANCE,
                       edge_cases: bool = True, contract: Any = None) -> ParityCertificate:
    """Certify that ``export`` scores like ``pipeline`` on ``X`` (the test split) and on edge cases.

    Parameters
    ----------
    pipeline:
        The fitted scikit-learn pipeline (model frame in, ``predict_proba`` and ``predict`` out).
    export:
        Its ONNX export (:func:`~workbench.export.export_onnx`); scored through
        :class:`~workbench.serving.OnnxScorer`.
    X:
        The test split as a model frame (:func:`~workbench.modeling.to_model_frame`): every ONNX input column,
        float numerics, ``""`` for a missing category.
    threshold:
        The brief's decision threshold (``target.decision_threshold``): positive when ``p > threshold``.
    tolerance:
        Bound on the p99 of ``|dp|`` over the test split.
    max_tolerance:
        Bound on any single row's ``|dp|`` (see the policy in the module docstring).
    edge_cases:
        Also certify the generated edge cases (missing, unseen, extreme values, an all-missing row).
    contract:
        Ranges and categories for the edge cases: a :class:`~workbench.data.DataContract`, its ``to_dict()``,
        or ``{"ranges": {col: [min, max]}, "categories": {col: [...]}}``; default: read from ``X``.

    Returns
    -------
    ParityCertificate
        ``passed`` is the verdict; a failed certificate is returned, not raised.

    Raises
    ------
    ParameterError
        ``threshold`` outside (0, 1) or tolerances not ``0 < tolerance <= max_tolerance``.
    ContractError
        ``X`` lacks an input column, is empty, or holds None/NaN in a categorical column.
    ExportError
        onnxruntime cannot load the exported graph or score the test split with it.
    """
    from ..serving.scorer import OnnxScorer

    if not 0.0 < threshold < 1.0:
        raise ParameterError(f"must lie in (0, 1), got {threshold}", parameter="threshold",
                             hint="pass the brief's target.decision_threshold")
    if not 0.0 < tolerance <= max_tolerance:
        raise ParameterError(f"need 0 < tolerance <= max_tolerance, got {tolerance} and {max_tolerance}",
                             parameter="tolerance")
    start = time.perf_counter()
    roles = _check_inputs(X, export)
    X = X[list(roles.order)]
    try:
        scorer = OnnxScorer(export.model_bytes, export.inputs)
    except Exception as exc:  # onnxruntime raises its own types
        raise ExportError(f"onnxruntime cannot load the exported graph: {type(exc).__name__}: {exc}",
                          hint="export the pipeline again with workbench.export.export_onnx") from None

    p_sk, lab_sk = _score_sklearn(pipeline, X)
    try:
        p_ox, lab_ox = _score_onnx(scorer, X)
    except Exception as exc:  # onnxruntime raises its own types
        raise ExportError(f"onnxruntime cannot score the test split: {type(exc).__name__}: {exc}",
                          hint="the graph does not accept the model frame: export it again") from None
    diff = np.abs(p_ox - p_sk)
    ranked = np.argsort(-np.where(np.isfinite(diff), diff, -1.0), kind="stable")
    to_explain = ranked[: int(np.sum(np.isfinite(diff) & (diff > tolerance)))][:MAX_EXPLAINED]
    explanations = _explain_float32(pipeline, X, to_explain, p_ox, roles.numeric, tolerance)
    explained = np.zeros(len(X), dtype=bool)
    explained[list(explanations)] = True
    figures, failures = judge_parity(p_sk, p_ox, lab_sk, lab_ox, threshold=threshold, tolerance=tolerance,
                                     max_tolerance=max_tolerance, explained=explained)
    nonfinite_first = np.argsort(-np.where(np.isfinite(diff), diff, np.inf), kind="stable")[:N_WORST]
    worst = [{"row": X.index[i], "p_sklearn": float(p_sk[i]), "p_onnx": float(p_ox[i]),
              "abs_diff": float(diff[i]), "label_sklearn": lab_sk[i], "label_onnx": lab_ox[i],
              "explained_by": explanations.get(int(i)), "inputs": X.iloc[i].to_dict()}
             for i in nonfinite_first]
    inexact = _inexact_float32(X, roles.numeric)

    edges: list[dict] = []
    if edge_cases:
        edges = _certify_edge_cases(pipeline, scorer, X, roles, p_sk, threshold=threshold,
                                    tolerance=tolerance, max_tolerance=max_tolerance, contract=contract)
        bad = [c for c in edges if not c["ok"]]
        if bad:
            named = "; ".join(f"{c['case']}({c['column'] or 'all'}, {c['base']}): {c['problem']}"
                              for c in bad[:5])
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            kind = ("label disagreement on edge cases" if any("label" in c["problem"] for c in bad)
                    else "edge cases fail")
            failures.append(f"{kind}: {len(bad)} of {len(edges)} -- {named}{more}")

    notes = []
    if figures["rows_above_tolerance"]:
        notes.append(f"{figures['rows_above_tolerance']} test rows differ by more than {tolerance:g} (at "
                     f"most {figures['max_abs_diff']:.2e}); {figures['explained_by_float32']} of them are "
                     "explained by a one-float32-step move of an input (see worst_rows).")
    if inexact:
        notes.append(f"numeric inputs not exact in float32 ({', '.join(inexact)}): the service rounds them, "
                     "and that rounding is part of what this certificate measures.")
    seconds = time.perf_counter() - start
    cert = ParityCertificate(
        passed=not failures, failures=failures, onnx_sha256=export.sha256, opset=export.opset, rows=len(X),
        threshold=float(threshold), tolerance=float(tolerance), max_tolerance=float(max_tolerance),
        policy=policy_text(threshold, tolerance, max_tolerance),
        float32={"inputs_exact": not inexact, "columns_not_exact": inexact}, edge_cases=jsonable(edges),
        worst_rows=jsonable(worst), versions=_versions(), seconds=round(seconds, 4),
        created_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), notes=notes, **figures,
    )
    log.info("parity %s: %d rows, labels %.4f, decisions %.4f, max |dp| %.2e, p99 %.2e, edge %d/%d, %.2f s",
             "passed" if cert.passed else "FAILED", cert.rows, cert.label_agreement, cert.decision_agreement,
             cert.max_abs_diff, cert.p99_abs_diff, cert.edge_cases_passed, len(edges), seconds)
    return cert


def _certify_edge_cases(pipeline: Any, scorer: Any, X: pd.DataFrame, roles: Any, p_sk: np.ndarray, *,
                        threshold: float, tolerance: float, max_tolerance: float,
                        contract: Any) -> list[dict]:
    """Generate the edge cases (two base rows, see the module docstring), score both sides, judge each row."""
    bases = {"typical": _typical_row(X, roles)}
    distance = np.abs(p_sk - threshold)
    eligible = np.flatnonzero(distance >= max_tolerance)
    if eligible.size:
        bases["borderline"] = X.iloc[int(eligible[np.argmin(distance[eligible])])].to_dict()
    E, edges = edge_case_frame(X, roles, contract=contract, bases=bases)
    e_sk, e_lab_sk, sk_errors = _score_rows(lambda F: _score_sklearn(pipeline, F), E, "scikit-learn")
    e_ox, e_lab_ox, ox_errors = _score_rows(lambda F: _score_onnx(scorer, F), E, "onnxruntime")
    e_diff = np.abs(e_ox - e_sk)
    large = np.flatnonzero(np.isfinite(e_diff) & (e_diff > max_tolerance))
    explanations = _explain_float32(pipeline, E, large, e_ox, roles.numeric, tolerance)
    for k, case in enumerate(edges):
        dp = float(e_diff[k])
        case.update({
            "p_sklearn": float(e_sk[k]), "p_onnx": float(e_ox[k]), "abs_diff": dp,
            "label_sklearn": e_lab_sk[k], "label_onnx": e_lab_ox[k],
            "decision_sklearn": bool(e_sk[k] > threshold), "decision_onnx": bool(e_ox[k] > threshold),
            "explained_by": explanations.get(k), "error": sk_errors[k] or ox_errors[k],
        })
        reasons = []
        if sk_errors[k]:
            reasons.append("scikit-learn cannot score it")
        elif ox_errors[k]:
            reasons.append("onnxruntime cannot score it")
        elif not np.isfinite(e_ox[k]):
            reasons.append("ONNX probability is not finite")
        else:
            if case["decision_sklearn"] != case["decision_onnx"] or e_lab_sk[k] != e_lab_ox[k]:
                reasons.append("label disagreement")
            if dp > max_tolerance and k not in explanations:
                reasons.append(f"|dp| {dp:.3e} > {max_tolerance:g}")
        case["ok"] = not reasons
        case["problem"] = ", ".join(reasons)
    return edges
