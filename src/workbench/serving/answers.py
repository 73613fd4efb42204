"""What a task's answer is: the one place where serving differs between binary, multiclass and regression.

:func:`answers_for` picks an answer shaper once, when the model is loaded; the predictor's hot path then calls
it without asking which task it serves. A shaper knows

* which ONNX output it reads (:meth:`run`): binary, P(positive) ``(n,)``; multiclass, the float32 probabilities
  ``(n, K)``, renormalised in float64 by :meth:`answer` so every row sums to 1; regression, predictions ``(n,)``;
* the per-record answers and what the prediction log records (:meth:`answer`), refusing outputs the task
  cannot have (a probability outside [0, 1], a non-finite prediction) with :class:`ValueError` -- the
  predictor turns that into a loud failure, never an answer;
* what the response carries besides the predictions (:attr:`envelope`: binary's ``threshold``) and what an
  all-missing record must score in the self-test (:meth:`self_test`);
* one record's answer in two steps, the shape of every one-record answer (the general path's and the formats'
  the predictor fills, :meth:`workbench.serving.predictor.Predictor._one_path_for`): :meth:`one_scores` (the label's
  index in :attr:`labels` and the output values, checked as :meth:`answer` checks them) and :meth:`one_record`
  (the answer dict and the log columns from a label and values -- also called with holes to make the formats).

Per record (``serving.json`` ``task``):

================  ===============================================================  ==============================
task              answer                                                           prediction log columns
================  ===============================================================  ==============================
binary            ``{"probability": p, "label": pos|neg, "flags"}``                ``probability``, ``label``
multiclass        ``{"label": argmax class, "probabilities": {class: p}, "flags"}``  ``label``, ``probabilities``
regression        ``{"prediction": yhat, "flags"}``                                ``prediction``
================  ===============================================================  ==============================

A multiclass label is the argmax of the renormalised probabilities, ties going to the first class in code
order (``numpy.argmax``), so the label always agrees with the probabilities it is shown with.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .schema import ServingConfig

__all__ = ["SMALL_BATCH", "BinaryAnswers", "MulticlassAnswers", "RegressionAnswers", "answers_for", "session_runner"]

Runner = Callable[[dict[str, np.ndarray]], np.ndarray]


def session_runner(scorer: Any, output: str) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """``feeds -> the named ONNX output``, through the scorer's C++ session call when it has one (the same call
    its ``run_raw`` makes: no per-call re-validation), else the public ``InferenceSession.run``."""
    run = getattr(scorer, "_run", None) or scorer.session.run
    names = [output]
    return lambda feeds: run(names, feeds, None)[0]


def _task_scores(scorer: Any, task: str) -> Runner | None:
    """The scorer's own per-task scores (``OnnxScorer(..., task=...).raw_scores``) when it offers them."""
    fn = getattr(scorer, "raw_scores", None) or getattr(scorer, "run_raw_scores", None)
    return fn if fn is not None and getattr(scorer, "task", None) == task else None


class BinaryAnswers:
    """Binary classification: P(positive), labelled by the threshold (``p > threshold``)."""

    task = "binary_classification"
    output = "probabilities"

    def __init__(self, config: ServingConfig) -> None:
        self.threshold = float(config.threshold)  # type: ignore[arg-type]  # required for binary (validator)
        self.positive = str(config.positive_label)
        self.negative = str(config.negative_label)
        self.envelope = {"threshold": self.threshold}
        self.labels = [self.positive, self.negative]
        self.n_outputs = 1

    def run(self, scorer: Any) -> Runner:
        return scorer.run_raw  # P(positive) of ready-made feeds, the service's hot path since round 1

    def answer(self, scores: np.ndarray, flags: Mapping[int, dict]) -> tuple[list[dict], dict]:
        if len(scores) == 1:  # one record, the common request: the same answer without the loops
            k, values = self.one_scores(scores)
            pred, logged = self.one_record(self.labels[k], values, flags.get(0, {}) if flags else {})
            return [pred], logged
        values = scores.tolist()
        if not all(0.0 <= p <= 1.0 for p in values):  # False for NaN too
            raise ValueError(f"the model returned probabilities outside [0, 1]: {values[:5]}")
        t, pos, neg = self.threshold, self.positive, self.negative
        if flags:
            preds = [{"probability": p, "label": pos if p > t else neg, "flags": flags.get(i, {})}
                     for i, p in enumerate(values)]
        else:
            preds = [{"probability": p, "label": pos if p > t else neg, "flags": {}} for p in values]
        return preds, {"probability": values, "label": [p["label"] for p in preds]}

    def one_scores(self, scores: np.ndarray) -> tuple[int, list[float]]:
        """``(index of the label in labels, [P(positive)])`` of a one-record score array (ValueError as
        :meth:`answer`)."""
        values = scores.tolist()
        if len(values) != 1:
            raise ValueError(f"the model returned {len(values)} probabilities for one record")
        p = values[0]
        if not 0.0 <= p <= 1.0:  # False for NaN too
            raise ValueError(f"the model returned probabilities outside [0, 1]: {values}")
        return (0 if p > self.threshold else 1), values

    def one_record(self, label: Any, values: list, flags: Any) -> tuple[dict, dict]:
        """One record's answer and prediction log columns from its label and output values."""
        return {"probability": values[0], "label": label, "flags": flags}, {"probability": values, "label": [label]}

    def self_test(self, scores: np.ndarray) -> str | None:
        if scores.shape == (1,) and math.isfinite(float(scores[0])) and 0.0 <= scores[0] <= 1.0:
            return None
        return f"an all-missing record scored {scores!r}, not one probability in [0, 1]"


SMALL_BATCH = 8
"""Up to this many records a multiclass answer is renormalised in plain Python (numpy's per-call overhead is
most of the cost of a one-record request); above, in numpy. Same float64 arithmetic, tested to agree."""


class MulticlassAnswers:
    """Multiclass classification: every class's probability (renormalised in float64) and the argmax class.

    :meth:`run` returns the graph's float32 probabilities as they are; :meth:`answer` renormalises them (and
    refuses a row that is not a distribution: negative, non-finite, or summing to 0).
    """

    task = "multiclass_classification"
    output = "probabilities"
    envelope: dict = {}

    def __init__(self, config: ServingConfig) -> None:
        self.classes = list(config.classes or [])
        self._one_row = (1, len(self.classes))
        self.labels = self.classes
        self.n_outputs = len(self.classes)

    def run(self, scorer: Any) -> Runner:
        return _task_scores(scorer, self.task) or session_runner(scorer, self.output)

    def normalise(self, raw: np.ndarray) -> np.ndarray:
        """Rows renormalised in float64 (float32 rows sum to 1 only within ~1e-7); ValueError for a row that
        is not a distribution or a column count that differs from the classes."""
        p = np.asarray(raw, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != len(self.classes):
            raise ValueError(f"the model returned probabilities of shape {p.shape} for {len(self.classes)} classes")
        total = p.sum(axis=1, keepdims=True)
        if not (np.isfinite(p).all() and (p >= 0).all() and (total > 0).all()):
            raise ValueError(f"the model returned non-finite or negative probabilities: {p[:3].tolist()}")
        return p / total

    def answer(self, scores: np.ndarray, flags: Mapping[int, dict]) -> tuple[list[dict], dict]:
        classes = self.classes
        if scores.shape == self._one_row:  # one record, the common request: the small-batch arithmetic, unrolled
            k, row = self.one_scores(scores)
            pred, logged = self.one_record(classes[k], row, flags.get(0, {}) if flags else {})
            return [pred], logged
        if len(scores) <= SMALL_BATCH and scores.ndim == 2 and scores.shape[1] == len(classes):
            rows = []
            for raw in scores.tolist():
                total = sum(raw)
                if not (0.0 < total < math.inf) or min(raw) < 0.0:  # False for NaN too
                    raise ValueError(f"the model returned non-finite or negative probabilities: {raw}")
                rows.append([v / total for v in raw])
            labels = [classes[row.index(max(row))] for row in rows]  # ties -> the first class
        else:
            p = self.normalise(scores)
            rows = p.tolist()
            labels = [classes[k] for k in p.argmax(axis=1).tolist()]  # ties -> the first class
        if flags:
            preds = [{"label": lab, "probabilities": dict(zip(classes, row, strict=True)), "flags": flags.get(i, {})}
                     for i, (lab, row) in enumerate(zip(labels, rows, strict=True))]
        else:
            preds = [{"label": lab, "probabilities": dict(zip(classes, row, strict=True)), "flags": {}}
                     for lab, row in zip(labels, rows, strict=True)]
        return preds, {"label": labels, "probabilities": rows}

    def one_scores(self, scores: np.ndarray) -> tuple[int, list[float]]:
        """``(index of the argmax class, the renormalised probabilities)`` of a ``(1, K)`` score array: the
        small-batch arithmetic of :meth:`answer` (ValueError likewise)."""
        if scores.shape != self._one_row:
            raise ValueError(f"the model returned probabilities of shape {scores.shape} for one record and "
                             f"{len(self.classes)} classes")
        (raw,) = scores.tolist()
        total = sum(raw)
        if not (0.0 < total < math.inf) or min(raw) < 0.0:  # False for NaN too
            raise ValueError(f"the model returned non-finite or negative probabilities: {raw}")
        row = [v / total for v in raw]
        return row.index(max(row)), row  # ties -> the first class

    def one_record(self, label: Any, values: list, flags: Any) -> tuple[dict, dict]:
        """One record's answer and prediction log columns from its label and probabilities (class order)."""
        return ({"label": label, "probabilities": dict(zip(self.classes, values, strict=True)), "flags": flags},
                {"label": [label], "probabilities": [values]})

    def self_test(self, scores: np.ndarray) -> str | None:
        k = len(self.classes)
        try:
            p = self.normalise(scores)
        except ValueError as exc:
            return f"an all-missing record scored {np.asarray(scores)!r}: {exc}"
        if p.shape == (1, k) and abs(float(np.asarray(scores, dtype=np.float64).sum()) - 1.0) <= 1e-4:
            return None
        return f"an all-missing record scored {np.asarray(scores)!r}, not {k} probabilities summing to 1"


class RegressionAnswers:
    """Regression: the predicted value (the graph's ``prediction`` output, ``[N, 1]``)."""

    task = "regression"
    output = "prediction"
    envelope: dict = {}

    def __init__(self, config: ServingConfig) -> None:
        self.target_std = config.target_std
        self.labels: list[str] = []
        self.n_outputs = 1

    def run(self, scorer: Any) -> Runner:
        fn = _task_scores(scorer, self.task)
        if fn is not None:
            return fn
        raw = session_runner(scorer, self.output)
        return lambda feeds: raw(feeds).reshape(-1)

    def answer(self, scores: np.ndarray, flags: Mapping[int, dict]) -> tuple[list[dict], dict]:
        if len(scores) == 1:  # one record, the common request
            _, values = self.one_scores(scores)
            pred, logged = self.one_record(None, values, flags.get(0, {}) if flags else {})
            return [pred], logged
        values = scores.tolist()
        if not all(math.isfinite(v) for v in values):
            bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
            raise ValueError(f"the model predicted a non-finite value for record(s) {bad[:10]}: "
                             f"{[values[i] for i in bad[:5]]}")
        if flags:
            preds = [{"prediction": v, "flags": flags.get(i, {})} for i, v in enumerate(values)]
        else:
            preds = [{"prediction": v, "flags": {}} for v in values]
        return preds, {"prediction": values}

    def one_scores(self, scores: np.ndarray) -> tuple[None, list[float]]:
        """``(None: no label, [prediction])`` of a one-record score array (ValueError as :meth:`answer`)."""
        values = scores.tolist()
        if len(values) != 1:
            raise ValueError(f"the model predicted {len(values)} values for one record")
        if not math.isfinite(values[0]):
            raise ValueError(f"the model predicted a non-finite value for record(s) [0]: {values}")
        return None, values

    def one_record(self, label: Any, values: list, flags: Any) -> tuple[dict, dict]:
        """One record's answer and prediction log columns from its prediction (``label`` is unused)."""
        return {"prediction": values[0], "flags": flags}, {"prediction": values}

    def self_test(self, scores: np.ndarray) -> str | None:
        if scores.shape == (1,) and math.isfinite(float(scores[0])):
            return None
        return f"an all-missing record scored {scores!r}, not one finite prediction"


_SHAPERS = {"binary_classification": BinaryAnswers, "multiclass_classification": MulticlassAnswers,
            "regression": RegressionAnswers}


def answers_for(config: ServingConfig) -> BinaryAnswers | MulticlassAnswers | RegressionAnswers:
    """The answer shaper of ``config.task`` (chosen once, at load)."""
    return _SHAPERS[config.task](config)
