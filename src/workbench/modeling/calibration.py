"""Probability calibration of the selected classifier, decided on cross-validated predictions only.

:func:`calibrate` measures the selected model's expected calibration error (ECE) on out-of-fold predictions of
the training split (binary: P(positive) in 10 quantile bins; multiclass: the top-label confidence). Above
``brief.calibration.ece_tolerance`` it tries both of scikit-learn's calibrators -- ``sigmoid`` and ``isotonic``
-- on those out-of-fold scores (a second, seeded CV over them: the calibrator never sees the rows it is judged
on), picks the method with the lower CV log-loss, and keeps it only if the CV Brier score *and* the CV log-loss
both improve on the uncalibrated model. The kept model is
``Pipeline([("prep", ...), ("model", CalibratedClassifierCV(<the selected estimator>, method, cv=k,
ensemble=False))])``: scikit-learn refits the estimator on the whole training split and fits the calibrator on
its k-fold out-of-fold scores -- exactly what was evaluated -- so the calibrated model is the selected model
followed by one monotone map per class. It is what gets saved and certified (DESIGN: isotonic steps convert
with large ``|dp|`` in float32; the parity certificate decides, and :func:`calibrate` can run it before keeping).

The test split is never used here. The :class:`CalibrationReport` holds the decision, the CV figures of every
option and the reliability diagram's points before and after.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._report import Report, esc, html_table, jsonable

__all__ = ["CalibrationReport", "calibrate", "expected_calibration_error", "METHODS"]

log = logging.getLogger(__name__)

METHODS = ("sigmoid", "isotonic")
N_BINS = 10


def _reliability(y: np.ndarray, p: np.ndarray, n_bins: int = N_BINS) -> dict:
    """Quantile-binned reliability points and ECE. ``p``: P(positive) (binary) or proba (n, K): top label."""
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y)
    if p.ndim == 2:
        conf = p.max(axis=1)
        hit = (p.argmax(axis=1) == y).astype(np.float64)
    else:
        conf, hit = p, (y == 1).astype(np.float64)
    if conf.size == 0:
        return {"prob_pred": [], "prob_true": [], "count": [], "ece": None}
    edges = np.unique(np.quantile(conf, np.linspace(0, 1, n_bins + 1)))
    idx = np.clip(np.searchsorted(edges[1:-1], conf, side="right"), 0, max(len(edges) - 2, 0))
    pred, true, count = [], [], []
    for b in range(max(len(edges) - 1, 1)):
        m = idx == b
        if m.any():
            pred.append(float(conf[m].mean()))
            true.append(float(hit[m].mean()))
            count.append(int(m.sum()))
    c = np.asarray(count, dtype=np.float64)
    ece = float(np.sum(c / c.sum() * np.abs(np.asarray(true) - np.asarray(pred))))
    return {"prob_pred": pred, "prob_true": true, "count": count, "ece": ece}


def expected_calibration_error(y: Any, p: Any, *, n_bins: int = N_BINS) -> float:
    """ECE over quantile bins: binary ``p`` = P(positive); multiclass ``p`` (n, K) = top-label confidence."""
    return float(_reliability(np.asarray(y), np.asarray(p), n_bins)["ece"])


def _figures(y: np.ndarray, p: np.ndarray) -> dict:
    from sklearn.metrics import log_loss

    eps = 1e-15
    if p.ndim == 2:
        onehot = np.eye(p.shape[1])[y]
        brier = float(np.mean(np.sum((p - onehot) ** 2, axis=1)))
        ll = float(log_loss(y, np.clip(p, eps, 1), labels=list(range(p.shape[1]))))
    else:
        brier = float(np.mean((p - y) ** 2))
        ll = float(log_loss(y, np.clip(p, eps, 1 - eps), labels=[0, 1]))
    return {"brier": brier, "log_loss": ll, "ece": expected_calibration_error(y, p)}


@dataclass
class CalibrationReport(Report):
    """Whether the selected model was calibrated, how, and the CV evidence for the decision."""

    model: str
    task: str
    ece_tolerance: float
    applied: bool
    method: str | None
    decision: str
    cv: dict  # option -> {"brier", "log_loss", "ece"}; options "uncalibrated", "sigmoid", "isotonic"
    reliability: dict  # "before" / "after" -> {"prob_pred", "prob_true", "count", "ece"}
    cv_folds: int
    seed: int
    seconds: float
    parity: dict | None = None
    notes: list[str] = field(default_factory=list)
    title: str = "Calibration"

    def to_dict(self) -> dict:
        return jsonable({k: v for k, v in self.__dict__.items() if k != "title"})

    def summary(self) -> dict:
        before = self.cv.get("uncalibrated", {})
        after = self.cv.get(self.method, {}) if self.method else {}
        return {"applied": self.applied, "method": self.method, "ece_before": before.get("ece"),
                "ece_after": after.get("ece") if self.applied else None, "decision": self.decision}

    def _html_body(self) -> str:
        rows = [{"option": k, **{m: round(v, 5) for m, v in fig.items()}} for k, fig in self.cv.items()]
        css = "wb-ok" if self.applied else "wb-warn" if self.cv.get("uncalibrated", {}).get("ece", 0) \
            > self.ece_tolerance else "wb-ok"
        notes = "".join(f"<li>{esc(n)}</li>" for n in self.notes)
        return (f"<p>Model <b>{esc(self.model)}</b>; tolerance ECE {self.ece_tolerance:g} on {self.cv_folds}-fold "
                f"out-of-fold predictions. <span class='{css}'>{esc(self.decision)}</span></p>"
                + html_table(rows) + (f"<ul>{notes}</ul>" if notes else ""))

    def plot(self, ax: Any = None) -> Any:
        """Reliability diagram (out-of-fold), before and after calibration."""
        from matplotlib.figure import Figure

        fig = None
        if ax is None:
            fig = Figure(figsize=(4.6, 4.2))
            ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8)
        for key, color in (("before", "#d95f02"), ("after", "#1b9e77")):
            r = self.reliability.get(key)
            if r and r.get("prob_pred"):
                label = "uncalibrated" if key == "before" else f"{self.method}"
                ax.plot(r["prob_pred"], r["prob_true"], "o-", color=color, ms=4,
                        label=f"{label} (ECE {r['ece']:.3f})")
        what = "P(positive)" if self.task == "binary_classification" else "top-label confidence"
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=f"mean predicted {what}", ylabel="observed frequency",
               title=f"Reliability (CV): {'calibrated, ' + str(self.method) if self.applied else 'not calibrated'}")
        ax.legend(fontsize=8, loc="upper left")
        return fig if fig is not None else ax


def _calibration_base(estimator: Any) -> Any:
    """The estimator CalibratedClassifierCV wraps. For workbench's LightGBM/XGBoost subclasses, the library's
    own class with the same parameters: without ``decision_function`` scikit-learn calibrates
    ``predict_proba``, which is what skl2onnx's calibrated converter feeds the calibrator from onnxmltools'
    graphs (they have no raw-score option). With the subclass, scikit-learn calibrated the raw margin and the
    graph the probabilities: measured on penguins, 80% label agreement -- the parity check caught it."""
    from sklearn.base import clone

    from . import _gbm

    if isinstance(estimator, _gbm.GBM_ESTIMATORS):
        plain = type(estimator).__mro__[1]
        return plain(**estimator.get_params(deep=False))
    return clone(estimator)


def _response(model: Any, X: Any, k: int) -> np.ndarray:
    """What CalibratedClassifierCV calibrates: decision_function if the estimator has one, else
    predict_proba (binary: the positive column)."""
    if hasattr(model, "decision_function"):
        r = np.asarray(model.decision_function(X), dtype=np.float64)
    else:
        r = np.asarray(model.predict_proba(X), dtype=np.float64)
        if k == 2:
            r = r[:, 1]
    return r if k > 2 else r.reshape(-1)


def _fit_predict_calibrator(method: str, r_fit: np.ndarray, y_fit: np.ndarray, r_new: np.ndarray, k: int
                            ) -> np.ndarray:
    from sklearn.calibration import _SigmoidCalibration
    from sklearn.isotonic import IsotonicRegression

    def one(rf: np.ndarray, yf: np.ndarray, rn: np.ndarray) -> np.ndarray:
        cal = _SigmoidCalibration() if method == "sigmoid" else IsotonicRegression(out_of_bounds="clip")
        cal.fit(rf, yf)
        return np.asarray(cal.predict(rn), dtype=np.float64)

    if k == 2:
        return np.clip(one(r_fit, y_fit, r_new), 0.0, 1.0)
    p = np.column_stack([one(r_fit[:, j], (y_fit == j).astype(np.float64), r_new[:, j]) for j in range(k)])
    s = p.sum(axis=1, keepdims=True)
    return np.where(s == 0, 1.0 / k, p / np.where(s == 0, 1.0, s))  # as scikit-learn normalises


def calibrate(fitted: Any, X: Any, y: Any, *, task: str, seed: int, cv_folds: int = 3, ece_tolerance: float = 0.02,
              check_parity: bool = True, threshold: float | None = None) -> tuple[Any, CalibrationReport]:
    """Decide on and fit a calibrated version of ``fitted`` (a :class:`~workbench.modeling.FittedModel`).

    Parameters
    ----------
    fitted:
        The selected candidate, fitted on ``X, y`` (the training split's model frame and encoded target).
    task:
        ``"binary_classification"`` or ``"multiclass_classification"`` (regression: nothing to calibrate).
    cv_folds, seed:
        Folds of the out-of-fold predictions (and of the calibrator inside CalibratedClassifierCV).
    ece_tolerance:
        ``brief.calibration.ece_tolerance``.
    check_parity:
        Export the calibrated pipeline and certify it on a sample of the *training* rows (the test split stays
        unseen) before keeping it; a calibrated model that would fail the promotion's parity gate is not kept.

    Returns
    -------
    (FittedModel, CalibrationReport)
        The calibrated model (a new FittedModel, same name, ``extra["calibration"]``) or ``fitted`` itself.
    """
    from sklearn.base import clone
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import Pipeline

    start = time.perf_counter()
    y = np.asarray(y, dtype=np.int64)
    Xf = X[fitted.features]
    if task not in ("binary_classification", "multiclass_classification"):
        return fitted, CalibrationReport(fitted.name, task, ece_tolerance, False, None,
                                         "not a classification task: nothing to calibrate", {}, {}, cv_folds,
                                         int(seed), 0.0)
    k = int(y.max()) + 1
    folds = list(StratifiedKFold(cv_folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
    proba = np.zeros((len(y), k))
    resp = np.zeros((len(y), k)) if k > 2 else np.zeros(len(y))
    base = Pipeline([("prep", clone(fitted.model.named_steps["prep"])),
                     ("model", _calibration_base(fitted.model.named_steps["model"]))])
    for tr, va in folds:
        m = clone(base).fit(Xf.iloc[tr], y[tr])
        proba[va] = np.asarray(m.predict_proba(Xf.iloc[va]), dtype=np.float64)
        resp[va] = _response(m, Xf.iloc[va], k)
    p_before = proba[:, 1] if k == 2 else proba
    cv = {"uncalibrated": _figures(y, p_before)}
    reliability = {"before": _reliability(y, p_before)}
    ece = cv["uncalibrated"]["ece"]
    notes: list[str] = []

    def report(applied: bool, method: str | None, decision: str, parity: dict | None = None) -> CalibrationReport:
        return CalibrationReport(fitted.name, task, float(ece_tolerance), applied, method, decision, cv,
                                 reliability, int(cv_folds), int(seed), time.perf_counter() - start, parity, notes)

    if ece <= ece_tolerance:
        return fitted, report(False, None, f"CV ECE {ece:.4f} is within the tolerance {ece_tolerance:g}: "
                                           "kept uncalibrated")
    inner = list(StratifiedKFold(cv_folds, shuffle=True, random_state=seed + 1).split(np.zeros(len(y)), y))
    calibrated_p: dict[str, np.ndarray] = {}
    for method in METHODS:
        p = np.zeros_like(p_before)
        for tr, va in inner:
            p[va] = _fit_predict_calibrator(method, resp[tr], y[tr], resp[va], k)
        calibrated_p[method] = p
        cv[method] = _figures(y, p)
    best = min(METHODS, key=lambda m: (cv[m]["log_loss"], cv[m]["brier"]))
    before = cv["uncalibrated"]
    if not (cv[best]["brier"] < before["brier"] and cv[best]["log_loss"] < before["log_loss"]):
        reliability["after"] = _reliability(y, calibrated_p[best])
        return fitted, report(False, None, f"CV ECE {ece:.4f} exceeds {ece_tolerance:g}, but {best} calibration "
                                           "does not improve both CV Brier and log-loss: kept uncalibrated")
    pipe = fitted.model
    est = CalibratedClassifierCV(_calibration_base(pipe.named_steps["model"]), method=best,
                                 cv=StratifiedKFold(cv_folds, shuffle=True, random_state=seed), ensemble=False)
    model = Pipeline([("prep", clone(pipe.named_steps["prep"])), ("model", est)])
    t0 = time.perf_counter()
    model.fit(Xf, y)
    fit_seconds = time.perf_counter() - t0
    reliability["after"] = _reliability(y, calibrated_p[best])
    parity = None
    if check_parity:
        parity = _parity_check(model, fitted, Xf, task=task, seed=seed, threshold=threshold)
        if not parity["passed"]:
            notes.append(f"{best} calibration improves CV Brier/log-loss but its ONNX graph fails parity: "
                         f"{'; '.join(parity.get('failures', []))[:300]}")
            return fitted, report(False, best, f"{best} calibration fails the parity certificate: kept "
                                               "uncalibrated", parity)
    import dataclasses

    new = dataclasses.replace(
        fitted, model=model, fit_seconds=fitted.fit_seconds + fit_seconds,
        description=f"{fitted.description}, calibrated ({best}, {cv_folds}-fold, ensemble=False)",
        extra={**fitted.extra, "calibration": {"method": best, "cv": cv, "base_params": fitted.params}})
    decision = (f"CV ECE {ece:.4f} exceeds {ece_tolerance:g}; {best} calibration lowers CV Brier "
                f"{before['brier']:.5f} -> {cv[best]['brier']:.5f} and log-loss {before['log_loss']:.5f} -> "
                f"{cv[best]['log_loss']:.5f}: calibrated model kept")
    return new, report(True, best, decision, parity)


def _parity_check(model: Any, fitted: Any, X: Any, *, task: str, seed: int, threshold: float | None,
                  n_rows: int = 2000) -> dict:
    """Export ``model`` and certify it on a seeded sample of training rows (never the test split)."""
    from ..errors import WorkbenchError
    from ..export.onnx import export_onnx
    from ..export.parity import parity_certificate
    from .frame import column_roles

    roles = column_roles(X)
    rng = np.random.default_rng(seed)
    rows = X.iloc[np.sort(rng.choice(len(X), size=min(n_rows, len(X)), replace=False))].reset_index(drop=True)
    try:
        exp = export_onnx(model, features=list(roles.order), numeric=list(roles.numeric), task=task)
        cert = parity_certificate(model, exp, rows, task=task, threshold=threshold,
                                  classes=fitted.classes if task == "multiclass_classification" else None)
    except WorkbenchError as exc:
        return {"passed": False, "failures": [exc.message], "rows": len(rows)}
    d = cert.to_dict()
    return {"passed": bool(d.get("passed")), "failures": list(d.get("failures") or []), "rows": len(rows),
            "max_abs_diff": d.get("max_abs_diff"), "p99_abs_diff": d.get("p99_abs_diff"),
            "label_agreement": d.get("label_agreement")}
