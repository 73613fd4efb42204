"""Score rows with an exported ONNX model (see :mod:`workbench.export.onnx` for the graph's signature)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["OnnxScorer"]

_PROBABILITIES = ["probabilities"]


class OnnxScorer:
    """An onnxruntime session plus the input layout: column values in, positive-class probabilities out.

    Parameters
    ----------
    model:
        Path to the ``.onnx`` file or its bytes.
    inputs:
        ``[{"name": ..., "kind": "numeric"|"categorical"}, ...]`` in feature order (``OnnxExport.inputs``).
    threads:
        onnxruntime intra-op threads. One is fastest for the small batches a service sees, and it does not
        compete with the server's own threads.
    """

    def __init__(self, model: str | Path | bytes, inputs: Sequence[Mapping[str, Any]], *, threads: int = 1) -> None:
        import onnxruntime as ort

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
