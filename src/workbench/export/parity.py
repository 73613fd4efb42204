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

Multiclass classification and regression
----------------------------------------
The same four rules, measured per task by a small policy object (:func:`task_policy`; binary is the policy
above, unchanged):

* **multiclass** (K >= 3 classes, models trained on the int codes): a row's difference is the max over classes
  of ``|dp|`` between the whole probability vectors (the ONNX side renormalised in float64, as the service
  answers); rule 1 is 100% agreement of the graph's ``label`` output with ``predict`` *and* of the argmax of
  the two probability vectors (the label the service answers); the float32 explanation compares the whole
  vector. ``near_threshold`` counts rows whose top-two probability margin is within ``max_tolerance``.
* **regression**: a row's difference is ``|dyhat|``; the bounds scale with the training target's standard
  deviation (p99 ``<= tolerance x target_std``, any row ``<= max_tolerance x target_std``), so they mean the
  same for a target in dollars or in millions of dollars; ``tolerance`` and ``max_tolerance`` in the
  certificate are those absolute bounds (target units). No labels. Besides a one-float32-step input move, a
  row is explained by float32 rounding when ``|dyhat|`` is within the float32 precision of the prediction
  itself (8 float32 epsilons of ``|yhat|``): a linear model given ``1e9`` predicts ~1e8 and no float32 graph
  can answer that to 1e-2 x target_std.

The p99 rule is never excused by an explanation: a target whose mean dwarfs its spread (values near 1e6 with
a standard deviation of 1) cannot be represented to 1e-4 x target_std in a float32 output, and fails.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .._report import Report, esc, html_table, jsonable
from ..errors import ContractError, ParameterError
from .onnx import ONNX_OUTPUTS, ExportError, OnnxExport, check_task

__all__ = ["DEFAULT_MAX_TOLERANCE", "DEFAULT_TOLERANCE", "ParityCertificate", "edge_case_frame",
           "judge_parity", "parity_certificate", "task_policy"]

log = logging.getLogger(__name__)

MISSING_CATEGORY = ""
"""A missing category in the model frame and the ONNX string input (``workbench.modeling.MISSING_CATEGORY``;
repeated here so that importing :mod:`workbench.export` does not import scikit-learn)."""

DEFAULT_TOLERANCE = 1e-4
"""Bound on the p99 of the row differences over the test split (regression: times ``target_std``)."""

DEFAULT_MAX_TOLERANCE = 1e-2
"""Bound on one row's difference (test split, edge cases) unless float32 rounding explains it (regression:
times ``target_std``)."""

EXTREME_VALUES = (0.0, 1e9, -1e9, 1e-30)
"""Extreme numerics tried on every numeric column, besides ``min - 1`` and ``max + 1``."""

N_WORST = 5

OUTPUT_PRECISION_EPS = 8
"""Regression: a row is explained by the float32 output when ``|dyhat| <= 8 * eps32 * |yhat|``."""

_FIELDS = (
    "passed", "failures", "task", "onnx_sha256", "opset", "rows", "threshold", "classes", "target_std",
    "label_agreement", "decision_agreement", "label_disagreements", "decision_disagreements", "max_abs_diff",
    "p99_abs_diff", "mean_abs_diff",
    "rows_above_tolerance", "rows_above_max_tolerance", "explained_by_float32", "non_finite", "tolerance",
    "max_tolerance", "policy", "policy_short", "headline", "reason", "near_threshold", "float32", "edge_cases",
    "worst_rows", "versions", "seconds", "created_at", "notes",
)
_DERIVED = {"policy_short", "headline", "reason"}
MAX_EXPLAINED = 200
"""At most this many rows above ``tolerance`` are checked for a float32 explanation (more fail the p99 rule
on any split of 20,000 rows or fewer anyway)."""


# ---------------------------------------------------------------------------------------------- the policies
@dataclass(frozen=True)
class _Policy:
    """What differs between tasks: how each side scores, how one row's difference is measured, what the
    decision is, and the rules in words. ``tolerance`` / ``max_tolerance`` are the bounds applied to the
    row differences (regression: already multiplied by ``target_std``)."""

    tolerance: float
    max_tolerance: float

    task: ClassVar[str]
    classifier: ClassVar[bool] = True
    key: ClassVar[str] = "p"  # score fields of a row: p_sklearn / p_onnx, or yhat_sklearn / yhat_onnx
    symbol: ClassVar[str] = "dp"
    noun: ClassVar[str] = "probabilities"
    base_name: ClassVar[str] = "borderline"

    # -- scoring
    def score_pipeline(self, pipeline: Any, X: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def score_sklearn(self, pipeline: Any, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        return self.score_pipeline(pipeline, X), np.asarray(pipeline.predict(X))

    def score_onnx(self, scorer: Any, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores exactly as the service computes them; the graph's ``label`` output on the same feeds."""
        columns = {c: X[c].to_numpy() for c in X.columns}
        return np.asarray(scorer.scores(columns), dtype=np.float64), scorer.labels(columns)

    def empty_scores(self, n: int) -> np.ndarray:
        return np.full(n, np.nan)

    def row_diff(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """One non-negative difference per row (NaN when either side is not finite)."""
        return np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))

    # -- decisions
    def decisions(self, scores: np.ndarray) -> np.ndarray | None:
        return None

    def distance(self, scores: np.ndarray) -> np.ndarray | None:
        """Each row's distance to a decision boundary (None: the task has no decision)."""
        return None

    def output_precision(self, s_sk: np.ndarray, s_ox: np.ndarray) -> np.ndarray:
        """Rows whose difference is within the float32 precision of the output itself."""
        return np.zeros(len(s_sk), dtype=bool)

    # -- words
    def tol_text(self) -> str:
        return f"{self.tolerance:g}"

    def max_text(self) -> str:
        return f"{self.max_tolerance:g}"

    def decision_failure(self, bad: int, n: int) -> str:
        raise NotImplementedError

    def text(self) -> str:
        raise NotImplementedError

    def short(self) -> str:
        raise NotImplementedError

    def as_value(self, score: Any) -> Any:
        """A row's score as a report value (float, or a list for a probability vector)."""
        return np.asarray(score, dtype=np.float64).tolist()


@dataclass(frozen=True)
class _Binary(_Policy):
    threshold: float = 0.5
    task: ClassVar[str] = "binary_classification"

    def score_pipeline(self, pipeline: Any, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(pipeline.predict_proba(X))[:, 1]

    def score_onnx(self, scorer: Any, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        columns = {c: X[c].to_numpy() for c in X.columns}
        p = np.asarray(scorer.predict_proba(columns), dtype=np.float64)
        labels = scorer.session.run([ONNX_OUTPUTS[0]], scorer.feeds(columns))[0]
        return p, np.asarray(labels).reshape(-1)

    def decisions(self, scores: np.ndarray) -> np.ndarray:
        return scores > self.threshold

    def distance(self, scores: np.ndarray) -> np.ndarray:
        return np.abs(scores - self.threshold)

    def decision_failure(self, bad: int, n: int) -> str:
        return f"label disagreement: the decision at threshold {self.threshold:g} differs on {bad} of {n} test rows"

    def text(self) -> str:
        return policy_text(self.threshold, self.tolerance, self.max_tolerance)

    def short(self) -> str:
        return (f"100% labels at {self.threshold:g} (test + edge cases), p99 |dp| <= {self.tolerance:g}, "
                f"max |dp| <= {self.max_tolerance:g} unless float32 rounding explains the row")


@dataclass(frozen=True)
class _Multiclass(_Policy):
    n_classes: int | None = None
    task: ClassVar[str] = "multiclass_classification"

    def score_pipeline(self, pipeline: Any, X: pd.DataFrame) -> np.ndarray:
        p = np.asarray(pipeline.predict_proba(X), dtype=np.float64)
        if self.n_classes is not None and (p.ndim != 2 or p.shape[1] != self.n_classes):
            raise ParameterError(f"predict_proba gives shape {p.shape}, but there are {self.n_classes} classes",
                                 parameter="classes", hint="pass the task's classes in code order")
        return p

    def empty_scores(self, n: int) -> np.ndarray:
        return np.full((n, self.n_classes or 1), np.nan)

    def row_diff(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
        return d.max(axis=1) if d.shape[1] else np.full(len(d), np.nan)  # NaN in any class -> NaN

    def decisions(self, scores: np.ndarray) -> np.ndarray:
        return np.argmax(scores, axis=1)  # ties -> the first class, as the service answers

    def distance(self, scores: np.ndarray) -> np.ndarray:
        top2 = np.sort(scores, axis=1)[:, -2:]
        return top2[:, 1] - top2[:, 0]

    def decision_failure(self, bad: int, n: int) -> str:
        return (f"label disagreement: the argmax of the ONNX probabilities differs from scikit-learn's on {bad} "
                f"of {n} test rows")

    def text(self) -> str:
        t, m = self.tolerance, self.max_tolerance
        return (f"Pass requires (1) 100% agreement on every test row and every edge case, both of the ONNX "
                f"label output with scikit-learn's predict and of the argmax of the two probability vectors "
                f"(ties go to the first class, as the service answers); (2) p99 over the test split of each "
                f"row's max-over-classes |dp| <= {t:g}; (3) every row's max-over-classes |dp| <= {m:g}: rare "
                f"rows may exceed {t:g} (float32 tree thresholds can move a row by about 1e-2 while every "
                f"label agrees) and are counted and shown; beyond {m:g} a row fails unless the pipeline "
                f"reproduces the whole ONNX probability vector (within {t:g}) when one of its numeric inputs "
                f"moves by one float32 step (then it is float32 rounding, not a conversion error); (4) finite "
                f"probabilities everywhere. scikit-learn scores the float64 model frame; ONNX scores it "
                f"through the service's OnnxScorer (float32 inputs, probabilities renormalised in float64), "
                f"so input rounding counts as a difference.")

    def short(self) -> str:
        return (f"100% labels (label output and argmax; test + edge cases), p99 max-over-classes |dp| <= "
                f"{self.tolerance:g}, max |dp| <= {self.max_tolerance:g} unless float32 rounding explains "
                f"the row")


@dataclass(frozen=True)
class _Regression(_Policy):
    target_std: float = 1.0
    task: ClassVar[str] = "regression"
    classifier: ClassVar[bool] = False
    key: ClassVar[str] = "yhat"
    symbol: ClassVar[str] = "dyhat"
    noun: ClassVar[str] = "predictions"
    base_name: ClassVar[str] = "extreme_prediction"

    def score_pipeline(self, pipeline: Any, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(pipeline.predict(X), dtype=np.float64).reshape(-1)

    def score_sklearn(self, pipeline: Any, X: pd.DataFrame) -> tuple[np.ndarray, None]:
        return self.score_pipeline(pipeline, X), None

    def score_onnx(self, scorer: Any, X: pd.DataFrame) -> tuple[np.ndarray, None]:
        columns = {c: X[c].to_numpy() for c in X.columns}
        return np.asarray(scorer.scores(columns), dtype=np.float64), None

    def output_precision(self, s_sk: np.ndarray, s_ox: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            scale = np.maximum(np.abs(s_sk), np.abs(s_ox))
            return np.abs(s_ox - s_sk) <= OUTPUT_PRECISION_EPS * float(np.finfo(np.float32).eps) * scale

    def _rel(self, bound: float) -> float:
        return bound / self.target_std

    def tol_text(self) -> str:
        return f"{self._rel(self.tolerance):g} x target_std {self.target_std:.4g} = {self.tolerance:.3g}"

    def max_text(self) -> str:
        return f"{self._rel(self.max_tolerance):g} x target_std {self.target_std:.4g} = {self.max_tolerance:.3g}"

    def text(self) -> str:
        return (f"Pass requires (1) p99 |dyhat| <= {self.tol_text()} over the test split; (2) every row's "
                f"|dyhat| <= {self.max_text()} (test split and edge cases): rare rows may exceed the p99 bound "
                f"and are counted and shown; beyond the max bound a row fails unless float32 rounding explains "
                f"it: the pipeline reproduces the ONNX prediction (within {self.tolerance:.3g}) when one of its "
                f"numeric inputs moves by one float32 step, or |dyhat| is within the float32 precision of the "
                f"prediction itself ({OUTPUT_PRECISION_EPS} float32 epsilons of |yhat|); (3) finite predictions "
                f"everywhere, and both sides score every edge case. The bounds scale with the training "
                f"target's standard deviation, so they mean the same in any unit. scikit-learn scores the "
                f"float64 model frame; ONNX scores it through the service's OnnxScorer (float32 inputs and "
                f"output), so rounding counts as a difference.")

    def short(self) -> str:
        return (f"p99 |dyhat| <= {self.tol_text()}, max |dyhat| <= {self.max_text()} unless float32 rounding "
                f"explains the row, finite predictions (test + edge cases)")

    def as_value(self, score: Any) -> Any:
        return float(score)


def task_policy(task: str = "binary_classification", *, threshold: float | None = None,
                classes: list | None = None, target_std: float | None = None,
                tolerance: float = DEFAULT_TOLERANCE, max_tolerance: float = DEFAULT_MAX_TOLERANCE) -> _Policy:
    """The task's parity policy, its parameters checked (see the module docstring).

    ``threshold`` is binary's decision threshold (required there, ignored otherwise); ``classes`` the
    multiclass class names in code order (optional: K is then read from the scores); ``target_std`` the
    regression target's standard deviation (required there): the tolerances are multiplied by it.

    Raises
    ------
    ParameterError
        An unknown task, a missing or invalid parameter of the task, or not ``0 < tolerance <= max_tolerance``.
    """
    check_task(task)
    if not 0.0 < tolerance <= max_tolerance:
        raise ParameterError(f"need 0 < tolerance <= max_tolerance, got {tolerance} and {max_tolerance}",
                             parameter="tolerance")
    if task == "binary_classification":
        if threshold is None or not 0.0 < threshold < 1.0:
            raise ParameterError(f"must lie in (0, 1), got {threshold}", parameter="threshold",
                                 hint="pass the brief's target.decision_threshold")
        return _Binary(float(tolerance), float(max_tolerance), threshold=float(threshold))
    if task == "multiclass_classification":
        if classes is not None and len(classes) < 3:
            raise ParameterError(f"multiclass needs at least 3 classes, got {list(classes)}", parameter="classes",
                                 hint="use task='binary_classification' for two classes")
        return _Multiclass(float(tolerance), float(max_tolerance),
                           n_classes=None if classes is None else len(classes))
    if target_std is None or not np.isfinite(target_std) or target_std <= 0:
        raise ParameterError(f"regression needs a positive finite target_std, got {target_std}",
                             parameter="target_std", hint="pass the training target's standard deviation")
    std = float(target_std)
    return _Regression(float(tolerance) * std, float(max_tolerance) * std, target_std=std)


def _policy_of(cert: ParityCertificate) -> _Policy:
    """The policy a certificate applied, rebuilt from its fields (its bounds are already absolute)."""
    if cert.task == "regression":
        return _Regression(cert.tolerance, cert.max_tolerance, target_std=float(cert.target_std or 1.0))
    if cert.task == "multiclass_classification":
        return _Multiclass(cert.tolerance, cert.max_tolerance,
                           n_classes=None if cert.classes is None else len(cert.classes))
    return _Binary(cert.tolerance, cert.max_tolerance, threshold=cert.threshold)


# ---------------------------------------------------------------------------------------------- the report
@dataclass
class ParityCertificate(Report):
    """ONNX vs scikit-learn on the test split and edge cases, judged by the module's policy for ``task``.

    Attributes
    ----------
    passed:
        True only when every rule of the policy holds; ``failures`` says which did not.
    task:
        ``binary_classification`` (the default: certificates written before round 2 are binary),
        ``multiclass_classification`` or ``regression``; ``classes`` (multiclass, in code order) and
        ``target_std`` (regression) are what the policy used.
    label_agreement, decision_agreement:
        Classifiers: fractions of test rows where the graph's ``label`` equals ``predict``, and where the
        decisions agree (binary: at ``threshold``; multiclass: the argmax of the probabilities). Edge cases
        are counted separately in ``edge_cases``. None for regression.
    max_abs_diff, p99_abs_diff, mean_abs_diff:
        Statistics of the row differences over the test rows with finite scores: ``|p_onnx - p_sklearn|``
        (multiclass: the max over classes), or ``|yhat_onnx - yhat_sklearn|`` in target units.
    tolerance, max_tolerance:
        The bounds applied to those differences (regression: the relative bounds times ``target_std``).
    rows_above_tolerance, rows_above_max_tolerance, explained_by_float32:
        Test rows with a difference ``> tolerance`` (allowed: rare rows), ``> max_tolerance`` (allowed only
        when explained), and how many of the former float32 rounding explains.
    near_threshold:
        Classifiers: ``margin`` (= ``max_tolerance``), ``rows`` whose pipeline scores lie within it of the
        decision boundary (binary: the threshold; multiclass: the top-two margin), ``within_observed_max``
        and ``closest`` distance. None for regression.
    float32:
        ``inputs_exact``: whether every numeric test input is exact in float32; ``columns_not_exact``.
    edge_cases:
        One dict per generated case: ``case``, ``base``, ``column``, ``value``, both sides' scores
        (``p_sklearn``/``p_onnx``, or ``yhat_sklearn``/``yhat_onnx``), ``abs_diff``, classifiers' labels and
        decisions, ``explained_by``, ``error`` (a side refused the row), ``ok`` and ``problem``.
    worst_rows:
        The test rows with the largest differences, with their inputs and ``explained_by`` (None, or the
        float32 rounding that explains the difference).
    """

    passed: bool
    failures: list[str]
    onnx_sha256: str
    opset: int
    rows: int
    threshold: float | None
    label_agreement: float | None
    decision_agreement: float | None
    label_disagreements: int | None
    decision_disagreements: int | None
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
    near_threshold: dict | None
    float32: dict
    edge_cases: list[dict]
    worst_rows: list[dict]
    versions: dict
    seconds: float
    created_at: str
    notes: list[str] = field(default_factory=list)
    title: str = "ONNX parity certificate"
    task: str = "binary_classification"
    classes: list[str] | None = None
    target_std: float | None = None

    # ------------------------------------------------------------------ views
    @property
    def policy_short(self) -> str:
        return _policy_of(self).short()

    @property
    def headline(self) -> str:
        """The figures a gate shows in one line (binary: ``labels 100.000%, p99 |dp| 1.2e-07``)."""
        sym = _policy_of(self).symbol
        if self.label_agreement is None:
            scale = f" ({self.p99_abs_diff / self.target_std:.1e} x target_std)" if self.target_std else ""
            return f"p99 |{sym}| {self.p99_abs_diff:.2e}{scale}, max {self.max_abs_diff:.2e}"
        return f"labels {100 * self.label_agreement:.3f}%, p99 |{sym}| {self.p99_abs_diff:.2e}"

    @property
    def reason(self) -> str:
        """One line: why it failed, or what it certified."""
        if self.failures:
            return "; ".join(self.failures)
        policy = _policy_of(self)
        agree = "every label agrees, " if policy.classifier else ""
        return (f"{self.rows} test rows and {len(self.edge_cases)} edge cases: {agree}"
                f"max |{policy.symbol}| {self.max_abs_diff:.2e}")

    @property
    def edge_cases_passed(self) -> int:
        return sum(1 for c in self.edge_cases if c["ok"])

    def to_dict(self) -> dict:
        return jsonable({k: getattr(self, k) for k in _FIELDS})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ParityCertificate:
        """Rebuild a certificate from :meth:`to_dict` output (e.g. a saved ``parity.json``; one written before
        round 2 has no ``task`` and is binary)."""
        return cls(**{k: v for k, v in d.items() if k not in _DERIVED})

    def summary(self) -> dict:
        return {"passed": self.passed, "task": self.task, "onnx_sha256": self.onnx_sha256, "rows": self.rows,
                "label_agreement": self.label_agreement, "decision_agreement": self.decision_agreement,
                "max_abs_diff": self.max_abs_diff, "p99_abs_diff": self.p99_abs_diff,
                "tolerance": self.tolerance, "edge_cases": f"{self.edge_cases_passed}/{len(self.edge_cases)}"}

    def _html_body(self) -> str:
        policy = _policy_of(self)
        sym, key = policy.symbol, policy.key
        verdict = "<span class='wb-ok'>PASSED</span>" if self.passed else "<span class='wb-bad'>FAILED</span>"
        rows: list[tuple[str, Any]] = [("task", self.task), ("rows (test split)", self.rows)]
        if policy.classifier:
            decision = (f"decision agreement (p > {self.threshold:g})" if self.threshold is not None
                        else "argmax agreement (ONNX probabilities vs scikit-learn's)")
            rows += [("label agreement (label output vs predict)", f"{100 * self.label_agreement:.4f}%"),
                     (decision, f"{100 * self.decision_agreement:.4f}%")]
        if self.classes:
            rows.append(("classes (code order)", ", ".join(map(str, self.classes))))
        if self.target_std is not None:
            rows.append(("target_std (training)", f"{self.target_std:.4g}"))
        rows += [(f"max |{sym}|", f"{self.max_abs_diff:.3e}"), (f"p99 |{sym}|", f"{self.p99_abs_diff:.3e}"),
                 (f"mean |{sym}|", f"{self.mean_abs_diff:.3e}"),
                 (f"rows with |{sym}| > {self.tolerance:.3g} (explained by float32)",
                  f"{self.rows_above_tolerance} ({self.explained_by_float32})")]
        if self.near_threshold is not None:
            where = "the threshold" if self.threshold is not None else "a top-two tie"
            rows.append((f"rows within {self.max_tolerance:g} of {where}", self.near_threshold["rows"]))
        rows += [("edge cases passed", f"{self.edge_cases_passed}/{len(self.edge_cases)}"),
                 ("ONNX sha256", self.onnx_sha256), ("opset", self.opset),
                 ("versions", ", ".join(f"{k} {v}" for k, v in self.versions.items())),
                 ("seconds", f"{self.seconds:.2f}")]
        figures = [{"figure": k, "value": v} for k, v in rows]
        failures = ("<ul>" + "".join(f"<li class='wb-bad'>{esc(f)}</li>" for f in self.failures) + "</ul>"
                    if self.failures else "")
        edges = sorted(self.edge_cases,
                       key=lambda c: (c["ok"], -(np.inf if c["abs_diff"] is None else c["abs_diff"])))
        edge_cols = ["case", "base", "column", "value", f"{key}_sklearn", f"{key}_onnx", "abs_diff", "ok",
                     "problem"]
        worst = [{"row": w["row"], f"{key}_sklearn": w[f"{key}_sklearn"], f"{key}_onnx": w[f"{key}_onnx"],
                  "abs_diff": w["abs_diff"], "explained_by": w["explained_by"],
                  "inputs": ", ".join(f"{k}={v}" for k, v in w["inputs"].items())} for w in self.worst_rows]
        notes = "".join(f"<p>{esc(n)}</p>" for n in self.notes)
        return (f"<p>{verdict} &mdash; {esc(self.reason)}</p>{failures}"
                f"{html_table(figures)}<p><b>Policy.</b> {esc(self.policy)}</p>{notes}"
                f"<h4>Worst test rows</h4>{html_table(worst)}"
                f"<h4>Edge cases (failing first)</h4>{html_table(edges, edge_cols, max_rows=60)}")


# ---------------------------------------------------------------------------------------------- the rules
def policy_text(threshold: float, tolerance: float, max_tolerance: float) -> str:
    """The binary policy in words, with the numbers this certificate applied (other tasks: ``_Policy.text``)."""
    return (f"Pass requires (1) 100% agreement on every test row and every edge case, both of the "
            f"decision p > {threshold:g} and of the ONNX label output with scikit-learn's predict; "
            f"(2) p99 |dp| <= {tolerance:g} over the test split; (3) every row's |dp| <= {max_tolerance:g}: "
            f"rare rows may exceed {tolerance:g} (float32 tree thresholds can move a row by about 1e-2 while "
            f"every label agrees) and are counted and shown; beyond {max_tolerance:g} a row fails unless the "
            f"pipeline reproduces the ONNX probability when one of its numeric inputs moves by one float32 "
            f"step (then it is float32 rounding, not a conversion error); (4) finite probabilities "
            f"everywhere. scikit-learn scores the float64 model frame; ONNX scores it through the service's "
            f"OnnxScorer (float32 inputs), so input rounding counts as a difference.")


def judge_parity(p_sklearn: np.ndarray, p_onnx: np.ndarray, label_sklearn: np.ndarray | None,
                 label_onnx: np.ndarray | None, *, threshold: float | None = None,
                 tolerance: float = DEFAULT_TOLERANCE, max_tolerance: float = DEFAULT_MAX_TOLERANCE,
                 explained: np.ndarray | None = None, task: str = "binary_classification",
                 classes: list | None = None, target_std: float | None = None) -> tuple[dict, list[str]]:
    """Apply the policy's test-split rules to two sets of scores (pure; no models).

    Parameters
    ----------
    p_sklearn, p_onnx:
        The task's scores: ``(n,)`` probabilities (binary), ``(n, K)`` probabilities (multiclass) or
        ``(n,)`` predictions (regression).
    label_sklearn, label_onnx:
        ``predict`` and the graph's ``label`` output (classifiers; None for regression).
    threshold, classes, target_std, tolerance, max_tolerance:
        As for :func:`parity_certificate` (regression's tolerances are relative to ``target_std``).
    explained:
        Boolean mask of rows whose difference is explained by float32 rounding (see the module docstring);
        such rows may exceed ``max_tolerance``. Default: none is.

    Returns
    -------
    (figures, failures)
        ``figures``: agreement fractions and counts (None for regression), difference statistics,
        ``near_threshold``; ``failures``: one sentence per broken rule (empty when the split passes).
    """
    policy = task_policy(task, threshold=threshold, classes=classes, target_std=target_std,
                         tolerance=tolerance, max_tolerance=max_tolerance)
    return _judge(policy, p_sklearn, p_onnx, label_sklearn, label_onnx, explained)


def _judge(policy: _Policy, s_sklearn: np.ndarray, s_onnx: np.ndarray, label_sklearn: Any, label_onnx: Any,
           explained: np.ndarray | None) -> tuple[dict, list[str]]:
    s_sk = np.asarray(s_sklearn, dtype=np.float64)
    s_ox = np.asarray(s_onnx, dtype=np.float64)
    n = len(s_sk)
    tolerance, max_tolerance, sym = policy.tolerance, policy.max_tolerance, policy.symbol
    explained = np.zeros(n, dtype=bool) if explained is None else np.asarray(explained, dtype=bool)
    diff = policy.row_diff(s_ox, s_sk)
    finite = np.isfinite(diff)
    d = diff[finite]
    max_d = float(d.max()) if d.size else float("nan")
    p99 = float(np.quantile(d, 0.99)) if d.size else float("nan")
    beyond = finite & (diff > max_tolerance)
    mean = float(d.mean()) if d.size else float("nan")
    figures: dict[str, Any] = {
        "label_agreement": None, "decision_agreement": None, "label_disagreements": None,
        "decision_disagreements": None,
        "max_abs_diff": max_d, "p99_abs_diff": p99, "mean_abs_diff": mean,
        "rows_above_tolerance": int(np.sum(d > tolerance)), "rows_above_max_tolerance": int(beyond.sum()),
        "explained_by_float32": int(np.sum(explained & finite & (diff > tolerance))),
        "non_finite": int(n - finite.sum()), "near_threshold": None,
    }
    failures = []
    if policy.classifier:
        label_bad = int(np.sum(np.asarray(label_sklearn) != np.asarray(label_onnx)))
        decision_bad = int(np.sum(policy.decisions(s_ox) != policy.decisions(s_sk)))
        distance = policy.distance(s_sk)
        figures.update({
            "label_agreement": 1.0 - label_bad / n, "decision_agreement": 1.0 - decision_bad / n,
            "label_disagreements": label_bad, "decision_disagreements": decision_bad,
            "near_threshold": {"margin": max_tolerance, "rows": int(np.sum(distance <= max_tolerance)),
                               "within_observed_max": int(np.sum(distance <= (max_d if d.size else 0.0))),
                               "closest": float(np.nanmin(distance)) if n else None},
        })
        if decision_bad:
            failures.append(policy.decision_failure(decision_bad, n))
        if label_bad:
            failures.append(f"label disagreement: the ONNX label output differs from predict on {label_bad} of "
                            f"{n} test rows")
    if figures["non_finite"]:
        failures.append(f"non-finite {policy.noun} on {figures['non_finite']} of {n} test rows")
    if d.size and p99 > tolerance:
        failures.append(f"p99 |{sym}| {p99:.3e} exceeds the tolerance {policy.tol_text()} (a systematic "
                        "difference)")
    unexplained = int(np.sum(beyond & ~explained))
    if unexplained:
        failures.append(f"max |{sym}| {max_d:.3e} exceeds the bound {policy.max_text()} on {unexplained} test "
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
def _score_rows(score: Callable[[pd.DataFrame], tuple], X: pd.DataFrame, who: str, empty: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """``score(X) -> (scores, labels or None)`` over all rows; when the batch raises, row by row, recording
    each refusal (so one bad edge case is reported, not fatal). ``empty``: the all-NaN scores of ``X``."""
    def labels_of(lab: Any, n: int) -> np.ndarray:
        return np.full(n, None, dtype=object) if lab is None else np.asarray(lab).astype(object)

    try:
        s, lab = score(X)
        return np.asarray(s, dtype=np.float64), labels_of(lab, len(X)), [None] * len(X)
    except Exception:  # noqa: BLE001 - any refusal is reported per row below
        pass
    s = empty.copy()
    lab = np.full(len(X), None, dtype=object)
    errors: list[str | None] = []
    for i in range(len(X)):
        try:
            si, li = score(X.iloc[[i]])
            s[i], lab[i] = np.asarray(si, dtype=np.float64)[0], labels_of(li, 1)[0]
            errors.append(None)
        except Exception as exc:  # noqa: BLE001
            errors.append(f"{who} raised {type(exc).__name__}: {exc}"[:300])
    return s, lab, errors


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



def _explain_float32(policy: _Policy, pipeline: Any, X: pd.DataFrame, rows: np.ndarray, s_onnx: np.ndarray,
                     numeric: tuple[str, ...], s_sklearn: np.ndarray | None = None) -> dict[int, str]:
    """For each position in ``rows``: the float32 rounding that explains its difference (see the module
    docstring): the output's own float32 precision (regression), or the one-float32-step move of its inputs
    under which the pipeline reproduces the ONNX scores within the policy's ``tolerance``. Rows without one
    are left out."""
    out: dict[int, str] = {}
    rows = np.asarray(rows, dtype=int)
    if s_sklearn is not None and rows.size:
        precise = policy.output_precision(s_sklearn[rows], s_onnx[rows])
        for i in rows[precise]:
            scale = max(abs(float(s_sklearn[i])), abs(float(s_onnx[i])))
            out[int(i)] = (f"float32 output precision: |d{policy.key}| {abs(s_onnx[i] - s_sklearn[i]):.3g} is "
                           f"within {OUTPUT_PRECISION_EPS} float32 epsilons of |{policy.key}| {scale:.4g}")
    variants: list[dict] = []
    owner: list[tuple[int, str]] = []
    for i in rows:
        if int(i) in out:
            continue
        for text, variant in _float32_moves(X.iloc[int(i)].to_dict(), numeric):
            variants.append(variant)
            owner.append((int(i), text))
    if not variants:
        return out
    V = pd.DataFrame({c: pd.Series([v[c] for v in variants], dtype=X[c].dtype) for c in X.columns})
    try:
        s = policy.score_pipeline(pipeline, V)
    except Exception:  # noqa: BLE001 - no explanation, the row stays unexplained
        return out
    target = np.asarray(s_onnx)[[i for i, _ in owner]]
    close = policy.row_diff(s, target) <= policy.tolerance
    for (i, text), ok in zip(owner, close, strict=True):
        if i not in out and ok:
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
def parity_certificate(pipeline: Any, export: OnnxExport, X: pd.DataFrame, *,
                       task: str = "binary_classification", threshold: float | None = None,
                       classes: list | None = None, target_std: float | None = None,
                       tolerance: float = DEFAULT_TOLERANCE, max_tolerance: float = DEFAULT_MAX_TOLERANCE,
                       edge_cases: bool = True, contract: Any = None) -> ParityCertificate:
    """Certify that ``export`` scores like ``pipeline`` on ``X`` (the test split) and on edge cases.

    Parameters
    ----------
    pipeline:
        The fitted scikit-learn pipeline (model frame in; ``predict_proba`` and ``predict`` out for a
        classifier, ``predict`` for a regressor).
    export:
        Its ONNX export (:func:`~workbench.export.export_onnx`, made for the same ``task``); scored through
        :class:`~workbench.serving.OnnxScorer`.
    X:
        The test split as a model frame (:func:`~workbench.modeling.to_model_frame`): every ONNX input column,
        float numerics, ``""`` for a missing category.
    task:
        ``brief.task``; it selects the policy (module docstring).
    threshold:
        Binary only (required there): the brief's decision threshold; positive when ``p > threshold``.
        Ignored for the other tasks.
    classes:
        Multiclass: the class names in code order (recorded; K is checked against ``predict_proba``).
    target_std:
        Regression (required there): the training target's standard deviation; the tolerances are
        multiplied by it.
    tolerance:
        Bound on the p99 of the row differences over the test split (regression: relative to ``target_std``).
    max_tolerance:
        Bound on any single row's difference (see the policy in the module docstring).
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
        An unknown task or one the export was not made for; binary ``threshold`` outside (0, 1); regression
        without a positive ``target_std``; multiclass ``classes`` fewer than 3 or not matching the model;
        tolerances not ``0 < tolerance <= max_tolerance``.
    ContractError
        ``X`` lacks an input column, is empty, or holds None/NaN in a categorical column.
    ExportError
        onnxruntime cannot load the exported graph or score the test split with it.
    """
    from ..serving.scorer import OnnxScorer

    policy = task_policy(task, threshold=threshold, classes=classes, target_std=target_std,
                         tolerance=tolerance, max_tolerance=max_tolerance)
    exported_for = getattr(export, "task", "binary_classification")
    if exported_for != task:
        raise ParameterError(f"the export was made for {exported_for}, not {task}", parameter="task",
                             hint=f"export with export_onnx(..., task={task!r})")
    start = time.perf_counter()
    roles = _check_inputs(X, export)
    X = X[list(roles.order)]
    try:
        scorer = OnnxScorer(export.model_bytes, export.inputs, task=task)
    except Exception as exc:  # onnxruntime raises its own types
        raise ExportError(f"onnxruntime cannot load the exported graph: {type(exc).__name__}: {exc}",
                          hint="export the pipeline again with workbench.export.export_onnx") from None

    s_sk, lab_sk = policy.score_sklearn(pipeline, X)
    if task == "multiclass_classification" and policy.n_classes is None:
        policy = _Multiclass(policy.tolerance, policy.max_tolerance, n_classes=s_sk.shape[1])
    try:
        s_ox, lab_ox = policy.score_onnx(scorer, X)
    except Exception as exc:  # onnxruntime raises its own types
        raise ExportError(f"onnxruntime cannot score the test split: {type(exc).__name__}: {exc}",
                          hint="the graph does not accept the model frame: export it again") from None
    if s_ox.shape != s_sk.shape:
        raise ExportError(f"the graph's scores have shape {s_ox.shape}, the pipeline's {s_sk.shape}",
                          hint="export the pipeline this certificate is for")
    diff = policy.row_diff(s_ox, s_sk)
    ranked = np.argsort(-np.where(np.isfinite(diff), diff, -1.0), kind="stable")
    to_explain = ranked[: int(np.sum(np.isfinite(diff) & (diff > policy.tolerance)))][:MAX_EXPLAINED]
    explanations = _explain_float32(policy, pipeline, X, to_explain, s_ox, roles.numeric, s_sk)
    explained = np.zeros(len(X), dtype=bool)
    explained[list(explanations)] = True
    figures, failures = _judge(policy, s_sk, s_ox, lab_sk, lab_ox, explained)
    nonfinite_first = np.argsort(-np.where(np.isfinite(diff), diff, np.inf), kind="stable")[:N_WORST]
    key = policy.key
    worst = []
    for i in nonfinite_first:
        w = {"row": X.index[i], f"{key}_sklearn": policy.as_value(s_sk[i]),
             f"{key}_onnx": policy.as_value(s_ox[i]), "abs_diff": float(diff[i])}
        if policy.classifier:
            w.update({"label_sklearn": lab_sk[i], "label_onnx": lab_ox[i]})
        w.update({"explained_by": explanations.get(int(i)), "inputs": X.iloc[i].to_dict()})
        worst.append(w)
    inexact = _inexact_float32(X, roles.numeric)

    edges: list[dict] = []
    if edge_cases:
        edges = _certify_edge_cases(policy, pipeline, scorer, X, roles, s_sk, contract=contract)
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
        notes.append(f"{figures['rows_above_tolerance']} test rows differ by more than {policy.tolerance:.3g} "
                     f"(at most {figures['max_abs_diff']:.2e}); {figures['explained_by_float32']} of them are "
                     "explained by float32 rounding (see worst_rows).")
    if inexact:
        notes.append(f"numeric inputs not exact in float32 ({', '.join(inexact)}): the service rounds them, "
                     "and that rounding is part of what this certificate measures.")
    seconds = time.perf_counter() - start
    cert = ParityCertificate(
        passed=not failures, failures=failures, onnx_sha256=export.sha256, opset=export.opset, rows=len(X),
        threshold=float(threshold) if task == "binary_classification" else None,
        tolerance=float(policy.tolerance), max_tolerance=float(policy.max_tolerance), policy=policy.text(),
        float32={"inputs_exact": not inexact, "columns_not_exact": inexact}, edge_cases=jsonable(edges),
        worst_rows=jsonable(worst), versions=_versions(), seconds=round(seconds, 4),
        created_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), notes=notes, task=task,
        classes=None if classes is None else [str(c) for c in classes],
        target_std=float(target_std) if task == "regression" else None, **figures,
    )
    if policy.classifier:
        log.info("parity %s (%s): %d rows, labels %.4f, decisions %.4f, max |d| %.2e, p99 %.2e, edge %d/%d, "
                 "%.2f s", "passed" if cert.passed else "FAILED", task, cert.rows, cert.label_agreement,
                 cert.decision_agreement, cert.max_abs_diff, cert.p99_abs_diff, cert.edge_cases_passed,
                 len(edges), seconds)
    else:
        log.info("parity %s (%s): %d rows, max |d| %.2e, p99 %.2e, edge %d/%d, %.2f s",
                 "passed" if cert.passed else "FAILED", task, cert.rows, cert.max_abs_diff, cert.p99_abs_diff,
                 cert.edge_cases_passed, len(edges), seconds)
    return cert


def _second_base(policy: _Policy, s_sk: np.ndarray) -> int | None:
    """The test row a second set of edge cases perturbs. Classifiers: the row nearest the decision boundary
    but at least ``max_tolerance`` away (a mis-handled value that moves it shows as a flip); regression: the
    row predicted furthest from the median prediction (another region of the model)."""
    distance = policy.distance(s_sk)
    if distance is not None:
        eligible = np.flatnonzero(distance >= policy.max_tolerance)
        return int(eligible[np.argmin(distance[eligible])]) if eligible.size else None
    finite = np.flatnonzero(np.isfinite(s_sk))
    if not finite.size:
        return None
    spread = np.abs(s_sk[finite] - np.median(s_sk[finite]))
    return int(finite[np.argmax(spread)])


def _certify_edge_cases(policy: _Policy, pipeline: Any, scorer: Any, X: pd.DataFrame, roles: Any,
                        s_sk: np.ndarray, *, contract: Any) -> list[dict]:
    """Generate the edge cases (two base rows, see the module docstring), score both sides, judge each row."""
    bases = {"typical": _typical_row(X, roles)}
    second = _second_base(policy, s_sk)
    if second is not None:
        bases[policy.base_name] = X.iloc[second].to_dict()
    E, edges = edge_case_frame(X, roles, contract=contract, bases=bases)
    empty = policy.empty_scores(len(E))
    e_sk, e_lab_sk, sk_errors = _score_rows(lambda F: policy.score_sklearn(pipeline, F), E, "scikit-learn", empty)
    e_ox, e_lab_ox, ox_errors = _score_rows(lambda F: policy.score_onnx(scorer, F), E, "onnxruntime", empty)
    e_diff = policy.row_diff(e_ox, e_sk)
    large = np.flatnonzero(np.isfinite(e_diff) & (e_diff > policy.max_tolerance))
    explanations = _explain_float32(policy, pipeline, E, large, e_ox, roles.numeric, e_sk)
    e_dec_sk = policy.decisions(e_sk) if policy.classifier else None
    e_dec_ox = policy.decisions(e_ox) if policy.classifier else None
    key, one = policy.key, "probability" if policy.key == "p" else "prediction"
    for k, case in enumerate(edges):
        dp = float(e_diff[k])
        case.update({f"{key}_sklearn": policy.as_value(e_sk[k]), f"{key}_onnx": policy.as_value(e_ox[k]),
                     "abs_diff": dp})
        if policy.classifier:
            case.update({"label_sklearn": e_lab_sk[k], "label_onnx": e_lab_ox[k],
                         "decision_sklearn": e_dec_sk[k].item(), "decision_onnx": e_dec_ox[k].item()})
        case.update({"explained_by": explanations.get(k), "error": sk_errors[k] or ox_errors[k]})
        reasons = []
        if sk_errors[k]:
            reasons.append("scikit-learn cannot score it")
        elif ox_errors[k]:
            reasons.append("onnxruntime cannot score it")
        elif not np.all(np.isfinite(e_ox[k])):
            reasons.append(f"ONNX {one} is not finite")
        else:
            if policy.classifier and (case["decision_sklearn"] != case["decision_onnx"]
                                      or e_lab_sk[k] != e_lab_ox[k]):
                reasons.append("label disagreement")
            if dp > policy.max_tolerance and k not in explanations:
                reasons.append(f"|{policy.symbol}| {dp:.3e} > {policy.max_text()}")
        case["ok"] = not reasons
        case["problem"] = ", ".join(reasons)
    return edges
