"""Score rows with an exported ONNX model (see :mod:`workbench.export.onnx` for the graph's signature).

What a model's *scores* are, per task (the array conventions of the round-2 spec):

* ``binary_classification``: ``(n,)`` P(positive), the graph's ``probabilities[:, 1]``;
* ``multiclass_classification``: ``(n, K)`` float64, the graph's float32 ``probabilities`` renormalised in
  float64 so every row sums to 1 (to ~1e-16; the float32 rows sum to 1 within ~1e-7);
* ``regression``: ``(n,)`` float64, the graph's ``prediction[:, 0]``.

Imports numpy and onnxruntime only (never scikit-learn): this is the serving path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["OnnxScorer"]

_PROBABILITIES = ["probabilities"]
_PREDICTION = ["prediction"]
_TASKS = ("binary_classification", "multiclass_classification", "regression")


class OnnxScorer:
    """An onnxruntime session plus the input layout: column values in, the task's scores out.

    Parameters
    ----------
    model:
        Path to the ``.onnx`` file or its bytes.
    inputs:
        ``[{"name": ..., "kind": "numeric"|"categorical"}, ...]`` in feature order (``OnnxExport.inputs``).
    threads:
        onnxruntime intra-op threads. One is fastest for the small batches a service sees, and it does not
        compete with the server's own threads.
    task:
        ``"binary_classification"`` (default, what existing packages hold), ``"multiclass_classification"`` or
        ``"regression"``: which output :meth:`scores` and :meth:`run_raw_scores` read (module docstring).
    """

    def __init__(self, model: str | Path | bytes, inputs: Sequence[Mapping[str, Any]], *, threads: int = 1,
                 task: str = "binary_classification") -> None:
        import onnxruntime as ort

        if task not in _TASKS:
            raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(_TASKS)}")
        self.task = task

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        src = model if isinstance(model, bytes) else str(model)
        self.session = ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])
        self.inputs = [dict(i) for i in inputs]
        self.numeric = [i["name"] for i in self.inputs if i["kind"] == "numeric"]
        self.categorical = [i["name"] for i in self.inputs if i["kind"] == "categorical"]
        names = {i.name for i in self.session.get_inputs()}
        expected = {i["name"] for i in self.inputs}
        if names != expected:
            raise ValueError(f"ONNX inputs {sorted(names)} differ from the declared inputs {sorted(expected)}")
        # ``InferenceSession.run`` re-checks on every call what is fixed here: the feed names (checked just
        # above), graph capture and OrtValue ownership (neither is used: CPU provider, numpy feeds), then calls
        # the C++ session. About 3 us of a ~35 us single-row call (benchmarks/bench_serving.py), so the hot path
        # calls the C++ session itself; an onnxruntime without that attribute gets the public call.
        inner = getattr(self.session, "_sess", None)
        self._run = inner.run if inner is not None and hasattr(inner, "run") else self.session.run
        self._output = _PREDICTION if task == "regression" else _PROBABILITIES
        outputs = {o.name for o in self.session.get_outputs()}
        if self._output[0] not in outputs:
            raise ValueError(f"the ONNX graph has outputs {sorted(outputs)}, but a {task} model must have "
                             f"{self._output[0]!r}")
        # the task's raw scores of ready-made feeds as one closure per task (run_raw_scores without its branches)
        run, output = self._run, self._output
        if task == "binary_classification":
            self.raw_scores = lambda feeds: run(output, feeds, None)[0][:, 1]
        elif task == "regression":
            self.raw_scores = lambda feeds: run(output, feeds, None)[0].reshape(-1)
        else:
            self.raw_scores = lambda feeds: run(output, feeds, None)[0]
        self.n_classes: int | None = None
        """K of a classifier's ``probabilities`` output (None for regression or a dynamic shape)."""
        if task != "regression":
            shape = next(o.shape for o in self.session.get_outputs() if o.name == self._output[0])
            self.n_classes = shape[-1] if len(shape) == 2 and isinstance(shape[-1], int) else None

    def feeds(self, columns: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Model inputs from column values (lists or arrays). None/NaN numerics become NaN (imputed in the
        graph); None categoricals become ``""`` (the pipeline's missing marker)."""
        out: dict[str, np.ndarray] = {}
        for name in self.numeric:
            col = columns[name]
            arr = np.array([np.nan if v is None else v for v in col], dtype=np.float32) if isinstance(col, list) \
                else np.asarray(col, dtype=np.float32)
            out[name] = arr.reshape(-1, 1)
        for name in self.categorical:
            col = columns[name]
            arr = np.array(["" if v is None else str(v) for v in col], dtype=object)
            out[name] = arr.reshape(-1, 1)
        return out

    def predict_proba(self, columns: Mapping[str, Any]) -> np.ndarray:
        """Probability of the positive class, one float per row."""
        _, proba = self.session.run(["label", "probabilities"], self.feeds(columns))
        return proba[:, 1]

    def run_raw(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Positive-class probabilities of ready-made feeds (``{input: [n, 1] array}``, every input, the dtypes
        of :meth:`feeds`): the service's hot path, without per-call re-validation."""
        return self._run(_PROBABILITIES, feeds, None)[0][:, 1]

    def run_raw_scores(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """The task's raw output for ready-made feeds (the hot path, like :meth:`run_raw`): binary the float32
        positive-class column ``(n,)`` (= :meth:`run_raw`); multiclass the float32 ``probabilities`` ``(n, K)``
        as the graph gives them (not renormalised: :meth:`finish` does that); regression the float32
        ``prediction`` ``(n,)``. (:attr:`raw_scores` is the same function, without the method call.)"""
        return self.raw_scores(feeds)

    def finish(self, raw: np.ndarray) -> np.ndarray:
        """The task's scores (float64; see the module docstring) from :meth:`run_raw_scores` output.

        Multiclass rows are renormalised in float64 so each sums to 1; a row whose sum is not a positive
        finite number (a broken graph) becomes NaN rather than a plausible-looking distribution."""
        scores = np.asarray(raw, dtype=np.float64)
        if self.task != "multiclass_classification":
            return scores
        total = scores.sum(axis=1, keepdims=True)
        ok = np.isfinite(total) & (total > 0)
        return np.divide(scores, total, out=np.full_like(scores, np.nan), where=ok)

    def scores(self, columns: Mapping[str, Any]) -> np.ndarray:
        """The task's scores for column values (lists or arrays; see :meth:`feeds`): binary ``(n,)``
        P(positive), multiclass ``(n, K)`` rows summing to 1, regression ``(n,)`` predictions; all float64."""
        return self.finish(self.run_raw_scores(self.feeds(columns)))

    def labels(self, columns: Mapping[str, Any]) -> np.ndarray:
        """A classifier graph's ``label`` output (int64 class codes, ``(n,)``)."""
        if self.task == "regression":
            raise ValueError("a regression graph has no label output")
        return np.asarray(self.session.run(["label"], self.feeds(columns))[0]).reshape(-1)
