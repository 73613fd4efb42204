"""What the service records about its traffic: the prediction log and the Prometheus counters.

* :func:`prediction_log_for` -- a :class:`~workbench.monitoring.log.PredictionLog` for the served model, unless
  ``WORKBENCH_PREDICTION_LOG=off``; ``WORKBENCH_LOG_DIR``, ``WORKBENCH_LOG_RETENTION_DAYS`` and
  ``WORKBENCH_LOG_FSYNC=always`` configure it. Creating it touches no file: the service probes it
  (:meth:`~workbench.monitoring.log.PredictionLog.check`) and starts unavailable, never crashing, when the folder
  is unwritable.
* :func:`log_failure_hook` -- ``workbench_prediction_log_failures_total`` (by model version and policy) for every
  line the log could not write, and ``workbench_prediction_log_lost_total`` for the requests answered anyway under
  ``WORKBENCH_LOG_ON_FAILURE=serve``.
* :func:`prometheus_hook` -- counters on the service's ``/metrics``: ``workbench_predictions_total`` (rows scored)
  and ``workbench_flagged_inputs_total`` (by field and flag: ``unseen_category``, ``out_of_range``, ``missing``),
  both labelled with the model version. ``prometheus_client`` is imported here, at worker start-up, after
  BentoML has set up its multi-process collector directory.
* :func:`deploy_metrics` -- when the service follows the production pointer (hot swap, the default;
  :mod:`workbench.serving.deploy`): ``workbench_model_swaps_total`` (by model version and role, champion or
  challenger), ``workbench_model_swap_failures_total`` (by model version, role and reason: ``missing``,
  ``package``, ``sha256``, ``self_test``, ``config``, ``pointer``, ``invalid``; the full reason is logged),
  ``workbench_shadow_dropped_total`` (shadow queue full), ``workbench_automatic_rollbacks_total`` (rollbacks a
  worker decided itself, by model version and trigger, ``errors`` or ``latency``) and the gauge
  ``workbench_challenger_rollbacks`` (by model version and trigger, ``errors``, ``latency`` or ``metric``: the
  automatic rollbacks of a challenger the ledger records, set by every worker that saw it leave the pointer,
  whoever rolled it back; multiprocess mode ``max``, so N workers show the ledger's count, not N times it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

__all__ = ["deploy_metrics", "log_failure_hook", "log_on_failure", "prediction_log_for", "prometheus_hook"]

_COUNTERS: dict[str, Any] = {}


def log_on_failure() -> str:
    """``$WORKBENCH_LOG_ON_FAILURE``: ``refuse`` (default) or ``serve`` (:mod:`workbench.monitoring.log`)."""
    from ..monitoring.log import log_on_failure as policy

    return policy()


def prediction_log_for(tag: str) -> Any:
    if os.environ.get("WORKBENCH_PREDICTION_LOG", "on").lower() in ("off", "0", "false", "no"):
        return None
    from ..monitoring.log import PredictionLog

    return PredictionLog(tag, retention_days=float(os.environ.get("WORKBENCH_LOG_RETENTION_DAYS", "30")),
                         fsync=os.environ.get("WORKBENCH_LOG_FSYNC", "never"))


def prometheus_hook(tag: str) -> Callable[[int, dict], None]:
    import prometheus_client as prom

    if not _COUNTERS:
        _COUNTERS["rows"] = prom.Counter("workbench_predictions", "Rows scored by the workbench service",
                                         ["model_version"])
        _COUNTERS["flags"] = prom.Counter("workbench_flagged_inputs", "Input values flagged by the guard",
                                          ["model_version", "field", "flag"])
    rows = _COUNTERS["rows"].labels(model_version=tag)
    flagged = _COUNTERS["flags"]

    def on_scored(n: int, flags: dict[int, dict[str, str]]) -> None:
        rows.inc(n)
        for per_row in flags.values():
            for field, flag in per_row.items():
                flagged.labels(model_version=tag, field=field, flag=flag).inc()

    return on_scored


def log_failure_hook(tag: str) -> Callable[[BaseException, str], None]:
    """The predictor's ``on_log_failure``: count a failed log write (and, under ``serve``, the lost line)."""
    import prometheus_client as prom

    if "log_failures" not in _COUNTERS:
        _COUNTERS["log_failures"] = prom.Counter(
            "workbench_prediction_log_failures", "Prediction log lines that could not be written",
            ["model_version", "policy"])
        _COUNTERS["log_lost"] = prom.Counter(
            "workbench_prediction_log_lost", "Requests answered without their prediction log line "
            "(WORKBENCH_LOG_ON_FAILURE=serve)", ["model_version"])
    failures, lost = _COUNTERS["log_failures"], _COUNTERS["log_lost"].labels(model_version=tag)

    def on_log_failure(exc: BaseException, policy: str) -> None:
        failures.labels(model_version=tag, policy=policy).inc()
        if policy == "serve":
            lost.inc()

    return on_log_failure


class _DeployMetrics:
    """The :class:`~workbench.serving.deploy.Deployment`'s counters on ``/metrics``."""

    def __init__(self) -> None:
        import prometheus_client as prom

        if "swaps" not in _COUNTERS:
            _COUNTERS["swaps"] = prom.Counter("workbench_model_swaps", "Models swapped in without a restart",
                                              ["model_version", "role"])
            _COUNTERS["swap_failures"] = prom.Counter(
                "workbench_model_swap_failures", "Models the production pointer named that failed verification "
                "and were not swapped in", ["model_version", "role", "reason"])
            _COUNTERS["shadow_dropped"] = prom.Counter(
                "workbench_shadow_dropped", "Requests the shadow challenger did not score (queue full)",
                ["model_version"])
            _COUNTERS["rollbacks"] = prom.Counter(
                "workbench_automatic_rollbacks", "Challengers this worker rolled back automatically",
                ["model_version", "trigger"])
            _COUNTERS["challenger_rollbacks"] = prom.Gauge(
                "workbench_challenger_rollbacks", "Automatic rollbacks of a challenger recorded in the ledger "
                "(by any worker or by workbench feedback), seen when it left the production pointer",
                ["model_version", "trigger"], multiprocess_mode="max")
        self._c = _COUNTERS

    def swapped(self, tag: str, role: str) -> None:
        self._c["swaps"].labels(model_version=tag, role=role).inc()

    def swap_failed(self, tag: str, role: str, reason: str) -> None:
        self._c["swap_failures"].labels(model_version=tag, role=role, reason=reason).inc()

    def shadow_dropped(self, tag: str) -> None:
        self._c["shadow_dropped"].labels(model_version=tag).inc()

    def rolled_back(self, tag: str, trigger: str) -> None:
        self._c["rollbacks"].labels(model_version=tag, trigger=trigger).inc()

    def challenger_rolled_back(self, tag: str, trigger: str, count: int) -> None:
        self._c["challenger_rollbacks"].labels(model_version=tag, trigger=trigger).set(count)


def deploy_metrics() -> _DeployMetrics:
    """The hot-swap / challenger counters (see the module docstring)."""
    return _DeployMetrics()
