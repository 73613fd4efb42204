"""The app's interactive charts (altair specs from workbench.app_data) for each task: valid Vega-Lite specs built
from the same frames as the matplotlib figures, with tooltips, selections and the colour convention."""

from __future__ import annotations

import json

import polars as pl
import pytest

from workbench import app_data as ad

pytestmark = [pytest.mark.notebook, pytest.mark.timeout(900)]


def _spec(chart, chart_id: str) -> dict:
    """The chart as Vega-Lite (``to_dict`` validates it against the schema), checked for its id and data."""
    import altair as alt

    assert isinstance(chart, alt.TopLevelMixin), type(chart)
    spec = chart.to_dict()  # raises on an invalid spec
    assert "vega-lite" in spec["$schema"] and spec["usermeta"] == {"wb_chart": f"wb-chart-{chart_id}"}
    assert spec.get("title") and spec.get("width") == ad.CHART_WIDTH
    assert ad._RED not in json.dumps(spec), "red is only for failures"
    return spec


def _layers(spec: dict) -> list[dict]:
    return spec.get("layer") or [spec]


def _tooltips(spec: dict) -> list[str]:
    """Tooltip titles (or fields) over every layer."""
    out = []
    for layer in _layers(spec):
        for t in (layer.get("encoding") or {}).get("tooltip") or []:
            out.append(t.get("title") or t["field"])
    return out


def _rows(spec: dict, layer: int = 0) -> list[dict]:
    """The inline rows a layer draws (altair puts them in ``datasets`` by name)."""
    data = _layers(spec)[layer].get("data") or spec["data"]
    return spec["datasets"][data["name"]]


def _scale(spec: dict, channel: str) -> dict:
    for layer in _layers(spec):
        enc = (layer.get("encoding") or {}).get(channel)
        if enc and "scale" in enc:
            return enc["scale"]
    raise AssertionError(f"no {channel} scale")


def _params(spec: dict) -> list[dict]:
    """Selections and other params (altair lifts a layer's selection to the top level)."""
    return [*(spec.get("params") or []), *(p for layer in _layers(spec) for p in layer.get("params") or [])]


def _check_charts(run: dict, prod: dict) -> None:
    """Every chart function of app_data, on this run: valid spec, same data as the matplotlib figure's frame,
    tooltips, a selection, and the colours of the convention."""
    task = run["task"]
    lb, fair, shap = run["reports"]["leaderboard"], run["reports"]["fairness"], run["reports"]["shap"]

    # performance: one bar per model, the selected one orange, rules for the bar to beat and the success threshold
    spec = _spec(ad.chart_performance(lb, success_threshold=run["brief"]["success"]["threshold"]), "performance")
    perf = ad.performance_frame(lb)
    bars = _rows(spec)
    assert [r["model"] for r in bars] == perf["model"].to_list()
    assert [r["value"] for r in bars] == pytest.approx([v or 0.0 for v in perf[lb["primary"]].to_list()], abs=1e-6)
    roles = _scale(spec, "color")
    assert dict(zip(roles["domain"], roles["range"], strict=True))["selected"] == ad._ORANGE
    assert {"model", "role", ad.term(lb["primary"])} <= set(_tooltips(spec))
    lines = {r["kind"] for r in _rows(spec, 2)}
    assert lines == {"to beat", "success threshold"}
    assert any(p.get("select", {}).get("fields") == ["model"] for p in _params(spec))
    assert ad.plot_performance(lb, success_threshold=run["brief"]["success"]["threshold"]).axes  # kept for report
    # ... the chart the leaderboard object draws, read back from its JSON
    from workbench.experiments import Leaderboard

    board = Leaderboard.from_dict(lb)
    assert board.selected == lb["selected"] and list(board.results) == list(lb["models"])
    assert board.chart(success_threshold=run["brief"]["success"]["threshold"], metric_label=ad.term(lb["primary"]),
                       model_label=ad.model_name).to_dict() == spec

    # fairness: every feature and figure the app offers; hover names the group, people, figure, range and evidence
    choices = ad.fairness_choices(fair)
    assert choices["features"] and choices["metrics"]
    for feature in choices["features"]:
        for label, metric in choices["metrics"].items():
            frame = ad.fairness_slice(fair, feature, metric)
            spec = _spec(ad.chart_fairness_slice(frame, feature=feature, metric=metric,
                                                 overall=(fair.get("overall") or {}).get(metric),
                                                 confidence_level=fair.get("confidence_level")), "fairness")
            tips = _tooltips(spec)
            assert {feature, "people", label, "evidence"} <= set(tips), tips
            assert any(t.endswith("likely range") for t in tips), tips
            points = [r for r in _rows(spec, len(_layers(spec)) - 1)]
            shown = frame.filter(pl.col("value").is_not_null())
            assert [r["group"] for r in points] == shown["group"].to_list()
            assert [r["people"] for r in points] == shown["n"].to_list()
            assert all(r["evidence"] in ("enough people to compare", "too few people to compare") for r in points)
            assert all(r["interval"] for r in points if r["ci_low"] is not None)
            assert dict(zip(*(_scale(spec, "color")[k] for k in ("domain", "range")), strict=True)) == {
                "enough people to compare": ad._BLUE, "too few people to compare": ad._GREY}
            assert any(p.get("select", {}).get("fields") == ["group"] for p in _params(spec))
            if ad._is_rate(metric):
                assert all(r["figure"].endswith("%") for r in points)

    # SHAP importance and the group drivers
    imp = ad.shap_importance(shap)
    spec = _spec(ad.chart_importance(imp, title="importance", unit=ad.shap_unit(shap)), "importance")
    assert [r["feature"] for r in _rows(spec)] == imp["feature"].to_list()[:15]
    assert spec["mark"]["color"] == ad._BLUE and "input" in _tooltips(spec)
    contrib = ad.load_contributions(run["dir"])
    # ... the charts the saved SHAP report draws (shap.json with the contributions Parquet)
    from workbench.evaluation._shap_saved import SavedShap

    saved = SavedShap.from_saved(shap, contrib)
    assert saved.chart(title="importance").to_dict() == spec and saved.unit == ad.shap_unit(shap)
    assert saved.importance_frame().equals(imp) and saved.plot().axes
    features = ad.driver_features(shap, contrib, fair["features"])
    assert features
    for feature in features:
        drivers = ad.group_drivers(shap, contrib, feature)
        spec = _spec(ad.chart_group_drivers(drivers, feature=feature, unit=ad.shap_unit(shap)), "drivers")
        assert saved.drivers_frame(feature).equals(drivers)
        assert saved.drivers_chart(feature).to_dict() == spec and saved.plot_drivers(feature).axes
        rows = _rows(spec)
        assert {r["group"] for r in rows} == set(drivers["group"]) and len({r["feature"] for r in rows}) <= 8
        assert {feature, "people", "input", "rank in the group", "direction on average"} <= set(_tooltips(spec))
        colours = _scale(spec, "color")["range"]
        assert not {ad._UP, ad._DOWN} & set(colours), "groups never take the direction colours"
        assert any(p.get("bind") == "legend" for p in _params(spec))
        directions = {r["direction"].split(" ")[0] for r in rows}
        assert directions <= ({"raises", "lowers"} if task != "multiclass_classification" else {"(not"})

    # what-if: the production ONNX answer and the notebook model's contributions
    pkg = prod["package"]
    row = ad.whatif_row(ad.whatif_fields(pkg["serving"], pkg["profile"]), {})
    score = ad.score_whatif(pkg, row)
    model = ad.verified_model(run, pkg["metadata"]["model"])
    exp = ad.explain_whatif(model, run, row, background=contrib,
                            class_name=score.get("label") if task == "multiclass_classification" else None)
    spec = _spec(ad.chart_contributions(exp), "contributions")
    rows = _rows(spec)
    top = exp["contributions"].head(10)
    assert [r["feature"] for r in rows] == top["feature"].to_list()
    assert all(r["direction"] == ("raises it" if r["contribution"] > 0 else "lowers it") for r in rows)
    assert dict(zip(*(_scale(spec, "color")[k] for k in ("domain", "range")), strict=True)) == {
        "raises it": ad._UP, "lowers it": ad._DOWN}
    assert {"input", "value", "effect"} <= set(_tooltips(spec))
    assert ad.plot_contributions(exp).axes  # kept for the report
    if task == "multiclass_classification":
        spec = _spec(ad.chart_class_probabilities(score), "classes")
        assert {r["class"]: r["answer"] for r in _rows(spec)}[score["label"]] == "predicted"


def test_charts_of_a_binary_run(promoted):
    run = ad.load_run(promoted.run_id)
    assert run["task"] == "binary_classification"
    _check_charts(run, ad.production_package())


def test_charts_of_the_other_tasks(task_env):
    run = ad.load_run(task_env.run_id)
    assert run["task"] in ("regression", "multiclass_classification")
    _check_charts(run, ad.production_package())
