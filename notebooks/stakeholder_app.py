"""The stakeholder view of workbench runs and the production model (a marimo app).

    marimo run notebooks/stakeholder_app.py                   # interactive, at http://127.0.0.1:2718
    marimo export html notebooks/stakeholder_app.py -o app.html --no-include-code --no-sandbox [-- --run RUN_ID]

It reads run folders (``$WORKBENCH_RUNS_DIR``, default ``papermill_runs/``) and the model registry
(``$BENTOML_HOME``) and trains nothing; every helper lives in :mod:`workbench.app_data`. The run's evaluation and
fairness reports come back as their report objects (``run["evaluation"]``, ``run["fairness"]``), and the fairness
chart is the report's own (``fairness.chart(feature, figure)``).
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="workbench: stakeholder view")


@app.cell
def _():
    import marimo as mo

    from workbench import app_data as ad

    def lead(screen, text):
        """The sentence a screen opens with, for readers who are not data scientists."""
        return mo.Html(f"<p id='wb-lead-{screen}' class='wb-lead' style='font-size:1.08rem;line-height:1.5;"
                       f"border-left:4px solid #1f77b4;padding:6px 12px;background:#f3f7fb;margin:4px 0 10px'>"
                       f"{mo.md(text).text}</p>")

    def table(rows, label="", wrap=(), widths=None):
        """A stakeholder table: plain records (no data-type row), no column summaries, wrapped long text."""
        return mo.ui.table(rows, selection=None, pagination=False, show_column_summaries=False,
                           show_data_types=False, show_download=False, wrapped_columns=list(wrap),
                           column_widths=widths or None, label=label)

    def technical(title, *items):
        """Technical detail folded away (collapsed) for the specialists."""
        return mo.accordion({title: mo.vstack(list(items))})

    def chart(spec):
        """An interactive chart (altair, rendered by vega-embed): tooltips on hover, and the selection the spec
        defines itself (click to pick out, double-click to clear; the group chart's legend filters)."""
        return mo.ui.altair_chart(spec, chart_selection=False, legend_selection=False)

    return ad, chart, lead, mo, table, technical


@app.cell
def _(ad, mo):
    runs = ad.prototype_runs()
    production = ad.production_package()
    requested_run = mo.cli_args().get("run")
    opening_run = ad.default_run(runs, requested=requested_run, production_run=production.get("run_id"))
    return opening_run, production, runs


@app.cell
def _(mo, opening_run, runs):
    _labels = {r["label"]: r["run_id"] for r in runs}
    run_picker = mo.ui.dropdown(
        options=_labels,
        value=next((k for k, v in _labels.items() if v == opening_run), None),
        label="**Run**",
        full_width=True,
    )
    return (run_picker,)


@app.cell
def _(mo, production, run_picker, runs):
    if production["status"] == "ok":
        _prod = mo.callout(
            mo.md(f"**In production:** `{production['tag']}` (promoted from run `{production['run_id']}`). "
                  "The what-if form and the drift status below always use this model."),
            kind="success",
        )
    else:
        _prod = mo.callout(mo.md(f"**{production.get('message', '')}**"), kind="warn")
    mo.vstack([
        mo.md("# workbench: stakeholder view\n"
              "What a run found, whether its model passed the go/no-go gates, how it treats groups of people, "
              "what drives its scores, and how the production model scores one person. Everything here is read "
              "from run folders and the model registry; nothing is trained."),
        run_picker if runs else mo.md(""),
        _prod,
    ])
    return


@app.cell
def _(ad, mo, run_picker, runs):
    mo.stop(
        not runs,
        mo.callout(
            mo.md("### No runs yet\nThere is no succeeded run with a prototype phase to show. Run one with "
                  "`make run` (or `.venv/bin/workbench run`), then reload this page."),
            kind="warn",
        ),
    )
    run = ad.load_run(run_picker.value)
    return (run,)


@app.cell
def _(ad, lead, mo, production, run, table, technical):
    promotion = ad.promotion_status(run, production)
    _kinds = {"production": "success", "certified": "info", "refused": "danger", "not promoted": "warn"}
    _sections = ad.card_sections(promotion["card"]) if promotion["card"] else {}
    _proto = run["reports"].get("prototype", {})
    _brief = run["brief"]
    if run["task"] == "binary_classification":
        _decision = (f"decision threshold {_brief.get('target', {}).get('decision_threshold') or 0.5} "
                     f"(positive label `{_brief.get('target', {}).get('positive_label')}`)")
    elif run["task"] == "multiclass_classification":
        _decision = f"predicts one of {len(run['classes'] or [])} classes: {', '.join(run['classes'] or [])}"
    else:
        _decision = f"predicts `{_brief.get('target', {}).get('column')}` in its own units"
    _primary = _proto.get("primary_metric") or ""
    _summary = mo.md(
        f"**What the model is for.** {_brief.get('objective', '')}\n\n"
        f"**Task:** {run['task'].replace('_', ' ')} · {_decision}\n\n"
        f"**Selected model:** {ad.model_name(run['selected'])} · {ad.term(_primary)} "
        f"{_proto.get('primary_value') or 0:.3f} on test data it never saw (the brief asks for "
        f"{_brief.get('success', {}).get('threshold')}).\n\n"
        f"<small>{ad.explain(_primary)}.</small>"
    )
    _card = (
        mo.accordion({
            "Intended use": mo.md(_sections.get("Intended use", "")),
            "Out-of-scope uses": mo.md(_sections.get("Out-of-scope uses", "")),
            "Limitations": mo.md(_sections.get("Limitations", "")),
            "Ethical considerations": mo.md(_sections.get("Ethical considerations", "")),
        }, multiple=True, expanded=["Intended use"])
        if _sections else mo.md("_No model card: the card is written when a run passes the promotion gates._")
    )
    _gates = ad.gate_frame(promotion["gates"], run["manifest"])
    mo.vstack([
        mo.md(f"## 1 · Model card and gate verdicts\nRun `{run['run_id']}`"),
        lead("overview", ad.lead_overview(run, promotion)),
        mo.callout(mo.md(promotion["message"]), kind=_kinds[promotion["status"]]),
        _summary,
        _card,
        mo.md("**Go/no-go checks** (the run's own checks, then the promotion checks). *info* rows are reported, "
              "not gated: the brief sets no limit for them, so they cannot stop the model."),
        table(ad.gate_rows(promotion["gates"], run["manifest"]), label="gates", wrap=["in plain words"],
              widths={"in plain words": 560}),
        technical("Technical detail of the checks (values, thresholds, fingerprints)",
                  table(ad.records(_gates), label="gates (technical)", wrap=["detail", "threshold", "value"])),
    ])
    return


@app.cell
def _(ad, chart, lead, mo, run, table, technical):
    _lb = run["reports"]["leaderboard"]
    _perf = ad.performance_frame(_lb)
    _primary = _lb["primary"]
    mo.stop(not (_perf["role"] == "selected").any(),
            mo.md("## 2 · Performance against the baseline\n_This run selected no candidate._"))
    _sel = _perf.filter(_perf["role"] == "selected").row(0, named=True)
    _best = _perf.filter(_perf["role"] == "best baseline")
    _base = _best.row(0, named=True) if _best.height else None
    _stats = mo.hstack([
        mo.stat(f"{_sel[_primary]:.3f}", label=f"{ad.term(_primary)}: {ad.model_name(_sel['model'])}",
                caption="selected model, on test data"),
        mo.stat(f"{_base[_primary]:.3f}" if _base else "n/a",
                label=ad.model_name(_base["model"]) if _base else "baseline", caption="best simple rule"),
        mo.stat(f"{_sel['delta_vs_baseline']:+.3f}" if _sel["delta_vs_baseline"] is not None else "n/a",
                label="better than the rule by", caption=f"needs more than {_lb.get('min_improvement')}",
                direction="increase" if (_sel["delta_vs_baseline"] or 0) > 0 else "decrease"),
    ], justify="start", gap=2)
    _others = [c for c in _perf.columns if c not in ("model", "kind", "role", _primary, "cv_mean", "cv_std",
                                                      "delta_vs_baseline", "beats_baseline")]
    _plain = [{"model": ad.model_name(r["model"]), "role": r["role"],
               ad.term(_primary): "" if r[_primary] is None else f"{r[_primary]:.3f}",
               "better than the rule by": "" if r["delta_vs_baseline"] is None else f"{r['delta_vs_baseline']:+.3f}"}
              for r in _perf.iter_rows(named=True)]
    _all = ad.records(_perf, columns={"model": "model", "cv_mean": f"{ad.term(_primary)}, cross-validation mean",
                                      "cv_std": "cross-validation spread",
                                      **{c: ad.term(c) for c in _others}},
                      formats={c: ".4f" for c in ("cv_mean", "cv_std", *_others)})
    mo.vstack([
        mo.md("## 2 · Performance against the baseline"),
        lead("performance", ad.lead_performance(_lb, brief=run["brief"], evaluation=run["evaluation"])),
        mo.md("A model earns its place only by beating the best simple rule (a *baseline*) by the brief's margin, on "
              "test data it never saw."),
        _stats,
        chart(ad.chart_performance(_lb, success_threshold=run["brief"].get("success", {}).get("threshold"))),
        table(_plain, label="models"),
        technical("Every metric and the cross-validation figures",
                  table(_all, label="all metrics"),
                  table(ad.glossary([_primary, *_others]), label="what the metrics mean", wrap=["meaning"])),
    ])
    return


@app.cell
def _(ad, mo, run):
    fairness = run["fairness"]  # the FairnessReport object (None: the run has none)
    _choices = ad.fairness_choices(fairness)
    fair_feature = mo.ui.dropdown(options=_choices["features"], value=(_choices["features"] or [None])[0],
                                  label="Sensitive feature")
    # Regression opens on the mean residual: who the model under- or over-estimates is the first question.
    _first = next((k for k, v in _choices["metrics"].items() if v == "mean_residual"), None) \
        if ad.task_of(fairness) == "regression" else None
    fair_metric = mo.ui.dropdown(options=_choices["metrics"], value=_first or next(iter(_choices["metrics"]), None),
                                 label="Metric")
    return fair_feature, fair_metric, fairness


@app.cell
def _(ad, chart, fair_feature, fair_metric, fairness, lead, mo, run, table, technical):
    mo.stop(not fairness or fair_feature.value is None or fair_metric.value is None,
            mo.md("## 3 · Fairness slices\n_This run has no fairness report._"))
    _slice = ad.fairness_slice(fairness, fair_feature.value, fair_metric.value)
    _gaps = ad.fairness_gaps(fairness, fair_feature.value)
    _task = fairness.task
    _small = {"binary_classification": " (or positives/negatives, for TPR/FPR)",
              "multiclass_classification": " (or rows of the class, for a class's recall)"}.get(_task, "")
    _units = {"regression": "",
              "multiclass_classification": " The per-class gaps are the largest over the classes (the class "
                                           "column names it)."}.get(_task, "")
    _target = run["brief"].get("target") or {}
    _rate = not fair_metric.value.startswith(("mae", "mean_"))
    _show = (lambda v: "" if v is None else f"{100 * v:.1f}%") if _rate else (lambda v: "" if v is None else f"{v:.3g}")
    _groups = [{"group": r["group"], "people": r["n"], ad.term(fair_metric.value): _show(r["value"]),
                "likely range": "" if r["ci_low"] is None else f"{_show(r['ci_low'])} to {_show(r['ci_high'])}",
                "enough people to compare?": "yes" if r["evidence"] == "ok" else "no, too few",
                "note": r["note"].replace(" rows < min_slice_size ", " people; the minimum to compare is ")}
               for r in _slice.iter_rows(named=True)]
    _level = fairness.confidence_level or 0.95
    _gap_rows = [{"measure": ad.term(g["metric"]), **({"class": g["class"] or ""} if "class" in g else {}),
                  "gap": ad.gap_value_text(g["metric"], g["value"]),
                  f"at most ({_level:.0%} confidence)": ad.gap_value_text(g["metric"], g["ci_high"]),
                  "limit in the brief": ("none: reported, not gated" if g["threshold"] is None
                                         else ad.gap_value_text(g["metric"], g["threshold"])),
                  "verdict": ad.GAP_VERDICTS.get(g["verdict"], g["verdict"])}
                 for g in _gaps.iter_rows(named=True)]
    mo.vstack([
        mo.md("## 3 · Fairness slices"),
        lead("fairness", ad.lead_fairness(fairness, fair_feature.value, fair_metric.value,
                                          positive_label=_target.get("positive_label"))
             + (f" Amounts are in the units of {_target.get('column')}." if _task == "regression" else "")),
        mo.hstack([fair_feature, fair_metric], justify="start", gap=2),
        mo.md(f"Each group's {ad.explain(fair_metric.value)}, on test data, with the range the true figure likely "
              f"lies in ({_level:.0%} confidence). Groups with fewer than {fairness.min_slice_size} "
              f"people{_small} are shown but not compared: their ranges are too wide to conclude anything."
              f"{_units}"),
        chart(fairness.chart(fair_feature.value, fair_metric.value)),
        table(_groups, label=f"groups of {fair_feature.value}", wrap=["note"]),
        mo.md(f"**Gaps between the groups of {fair_feature.value}.** The check uses the upper end of the likely "
              "range, so a gap passes only if even its pessimistic value is within the limit. A gap with no limit "
              "is reported, not gated: the brief sets no limit for it."),
        table(_gap_rows, label="gaps", wrap=["verdict", "measure"]),
        technical("What the gap measures mean, and the exact figures",
                  table(ad.glossary([g["metric"] for g in _gaps.iter_rows(named=True)] + [fair_metric.value]),
                        label="what the measures mean", wrap=["meaning"]),
                  table(ad.records(_gaps, formats={c: ".4f" for c in ("value", "ci_low", "ci_high", "threshold")}),
                        label="gaps (technical)")),
    ])
    return


@app.cell
def _(ad, fairness, mo, run):
    shap = run["reports"].get("shap") or {}
    contributions = ad.load_contributions(run["dir"])
    _features = ad.driver_features(shap, contributions, fairness.features if fairness else [])
    driver_feature = mo.ui.dropdown(options=_features, value=(_features or [None])[0], label="Groups of")
    return contributions, driver_feature, shap


@app.cell
def _(ad, chart, contributions, driver_feature, fairness, lead, mo, shap, table, technical):
    mo.stop(not shap, mo.md("## 4 · What drives the scores\n_This run has no SHAP report._"))
    _imp = ad.shap_importance(shap)
    _add = shap.get("additivity", {})
    _unit = ad.shap_unit(shap)
    _what = {"regression": "how far each column moves the prediction, in the target's units",
             "multiclass_classification": "how far each column moves the classes' scores (mean |SHAP| over "
                                          "the classes' raw scores, the softmax logits)"}.get(
        shap.get("task"), "how far each column moves a score, in log-odds")
    _head = [
        mo.md("## 4 · What drives the scores"),
        lead("drivers", ad.lead_shap(shap, sensitive=fairness.features if fairness else None)),
        mo.md(f"Each bar is the average {ad.explain('shap')}, over {shap.get('sample_size')} people of the test "
              "data. Longer bars matter more; the bar says nothing about whether an input raises or lowers the "
              "answer."),
        technical("Technical detail of the explanation",
                  mo.md(f"SHAP values of `{shap.get('model')}` ({shap.get('explainer')} explainer) on "
                        f"{shap.get('sample_size')} held-out rows, summed back to the columns of the data: {_what}. "
                        f"Additivity check (contributions add up to the model's output): max error "
                        f"{_add.get('max_abs_error', float('nan')):.1e} "
                        f"({'passed' if _add.get('passed') else 'FAILED'}).")),
    ]
    _parts = [*_head, chart(ad.chart_importance(
        _imp, title=f"What the answers depend on most: {ad.model_name(shap.get('model'))}", unit=_unit))]
    if driver_feature.value is not None:
        _drivers = ad.group_drivers(shap, contributions, driver_feature.value)
        _signed = shap.get("task") != "multiclass_classification"
        _top = [{"group": r["group"], "people": r["n"], "rank": r["rank"], "input": r["feature"],
                 "how much it matters": f"{r['mean_abs_shap']:.3f}",
                 **({"direction on average": "" if r["mean_shap"] is None else
                     ("raises" if r["mean_shap"] > 0 else "lowers") + f" ({r['mean_shap']:+.3f})"}
                    if _signed else {})}
                for r in _drivers.filter(_drivers["rank"] <= 3).iter_rows(named=True)]
        _direction = ("the last column says whether the input raises or lowers the group's answers on average."
                      if _signed else "(per-class directions are in the run report's SHAP section).")
        _parts += [
            mo.md(f"**Drivers within groups.** The same measure inside each group; {_direction}"),
            driver_feature,
            chart(ad.chart_group_drivers(_drivers, feature=driver_feature.value, unit=_unit)),
            table(_top, label="top 3 drivers per group"),
        ]
    mo.vstack(_parts)
    return


@app.cell
def _(ad, production):
    # The what-if form is built from the production model's serving contract.
    if production["status"] == "ok":
        whatif_package = production["package"]
        whatif_fields = ad.whatif_fields(whatif_package["serving"], whatif_package["profile"])
    else:
        whatif_package, whatif_fields = None, []
    return whatif_fields, whatif_package


@app.cell
def _(ad, production, whatif_package):
    # The production run's notebook model explains what-if rows (verified against its sha256 first).
    whatif_model, whatif_run, whatif_background, whatif_note = None, None, None, ""
    if whatif_package is not None:
        try:
            whatif_run = ad.load_run(production["run_id"])
            whatif_model = ad.verified_model(whatif_run, whatif_package["metadata"].get("model"))
            whatif_background = ad.load_contributions(whatif_run["dir"])
        except Exception as _exc:  # noqa: BLE001 - shown, not fatal: the score does not need it
            whatif_note = f"Contributions unavailable: {ad.run_error(_exc)}"
    return whatif_background, whatif_model, whatif_note, whatif_run


@app.cell
def _(mo, whatif_fields):
    _elements = {}
    for _f in whatif_fields:
        if _f["kind"] == "categorical":
            _elements[_f["name"]] = mo.ui.dropdown(options=_f["options"], value=_f["default"], label=_f["name"])
        else:
            _elements[_f["name"]] = mo.ui.number(start=_f["min"], stop=_f["max"], step=_f["step"],
                                                 value=_f["default"], label=_f["name"])
    _grid = "".join(f"<div>{{{name}}}</div>" for name in _elements)
    whatif_form = (
        mo.Html(f"<div style='display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:10px 18px'>{_grid}</div>")
        .batch(**_elements)
        .form(submit_button_label="Score this person", bordered=True)
        if _elements else None
    )
    return (whatif_form,)


@app.cell
def _(ad, mo, production, whatif_form):
    mo.stop(
        production["status"] != "ok",
        mo.vstack([mo.md("## 5 · What-if: score one person"),
                   mo.callout(mo.md(f"**Nothing to score with.** {production.get('message', '')}"), kind="warn")]),
    )
    mo.vstack([
        mo.md("## 5 · What-if: score one person\n"
              f"Scored by the production ONNX model `{production['tag']}` "
              f"({ad.task_of(production['package']['serving']).replace('_', ' ')}), exactly as the service scores. "
              "Numbers are limited to the ranges seen in training; the form opens on a typical person "
              "(training medians and most common categories)."),
        whatif_form,
    ])
    return


@app.cell
def _(ad, chart, lead, mo, production, table, technical, whatif_background, whatif_fields, whatif_form,
      whatif_model, whatif_note, whatif_package, whatif_run):
    mo.stop(production["status"] != "ok")
    _submitted = whatif_form.value is not None
    _err = ""
    try:
        _row = ad.whatif_row(whatif_fields, whatif_form.value)
        _score = ad.score_whatif(whatif_package, _row)
    except Exception as _exc:  # noqa: BLE001 - a bad input is shown, not raised
        _row, _score, _err = None, None, ad.run_error(_exc)
    mo.stop(_score is None, mo.callout(mo.md(f"Cannot score this person: {_err}"), kind="danger"))
    _who = "the person you entered" if _submitted else "the typical person (submit the form to score your own)"
    _lead = lead("whatif", ad.lead_whatif(_score, submitted=_submitted))
    if _score["task"] == "regression":
        _std = f" (training std {_score['target_std']:.4g})" if _score.get("target_std") else ""
        _headline = mo.Html(
            f"<div id='wb-whatif-score' data-prediction='{_score['prediction']:.6f}' style='font-size:1.05rem'>"
            f"Prediction for {_who}: <b style='font-size:1.6rem'>{_score['prediction']:.4g}</b> "
            f"<i>{_score['target']}</i>, in the target's units{_std}</div>"
        )
        _parts = [_lead, mo.callout(_headline, kind="neutral")]
    elif _score["task"] == "multiclass_classification":
        _probs = " · ".join(f"{c} {p:.3f}" for c, p in _score["probabilities"].items())
        _headline = mo.Html(
            f"<div id='wb-whatif-score' data-label='{_score['label']}' "
            f"data-probability='{_score['probability']:.6f}' style='font-size:1.05rem'>"
            f"Class for {_who}: <b style='font-size:1.6rem'>{_score['label']}</b> "
            f"(probability {_score['probability']:.3f}; {_probs})</div>"
        )
        _parts = [_lead, mo.callout(_headline, kind="neutral"), chart(ad.chart_class_probabilities(_score))]
    else:
        _pos = _score["label"] == _score["positive_label"]
        _headline = mo.Html(
            f"<div id='wb-whatif-score' data-probability='{_score['probability']:.6f}' style='font-size:1.05rem'>"
            f"Score for {_who}: <b style='font-size:1.6rem'>{_score['probability']:.3f}</b> "
            f"→ <b>{_score['label']}</b> (threshold {_score['threshold']:g}; above it means "
            f"<i>{_score['positive_label']}</i>)</div>"
        )
        _parts = [_lead, mo.callout(_headline, kind="info" if _pos else "neutral")]
    if whatif_model is not None:
        try:
            _exp = ad.explain_whatif(whatif_model, whatif_run, _row, background=whatif_background,
                                     class_name=_score.get("label") if _score["task"] == "multiclass_classification"
                                     else None)
            _key = "prediction" if _score["task"] == "regression" else "probability"
            _of = f" of {_exp['class']}" if _exp.get("class") else ""
            _rows = [{"input": r["feature"], "value": r["value"],
                      "effect on the answer": ("raises it" if r["contribution"] > 0 else "lowers it")
                      + f" ({r['contribution']:+.3f})"} for r in _exp["contributions"].iter_rows(named=True)]
            _parts += [
                mo.md("**Why this answer.** Orange bars raise the answer, blue bars lower it (a direction, not good "
                      "or bad)."),
                chart(ad.chart_contributions(_exp)),
                table(_rows, label="contributions"),
                technical("Technical detail of the explanation",
                          mo.md(f"Contributions ({_exp['unit']}) from the run's notebook model `{_exp['model']}` "
                                f"({_exp['explainer']} SHAP; its {_key}{_of} {_exp[_key]:.4f} vs ONNX "
                                f"{_score[_key]:.4f}, |difference| "
                                f"{abs(_exp[_key] - _score[_key]):.1e}; the answer shown above is the ONNX one)."
                                + (" The model is calibrated: the contributions add up to its score before "
                                   "calibration, a monotone rescaling of the same ranking." if _exp.get("calibrated")
                                   else ""))),
            ]
        except Exception as _exc:  # noqa: BLE001 - shown, not fatal
            _parts.append(mo.md(f"_Contributions unavailable: {ad.run_error(_exc)}_"))
    elif whatif_note:
        _parts.append(mo.md(f"_{whatif_note}_"))
    mo.vstack(_parts)
    return


@app.cell
def _(ad, lead, mo, production, table, technical, whatif_package):
    mo.stop(
        production["status"] != "ok",
        mo.md("## 6 · Drift\n_No production model, so no drift to measure._"),
    )
    _d = ad.drift_status(whatif_package)
    _pred = {"regression": "the predicted values", "multiclass_classification": "the predicted class shares"}.get(
        ad.task_of(whatif_package["serving"]), "the predicted probability")
    _head = mo.vstack([
        mo.md("## 6 · Drift of production inputs"),
        lead("drift", ad.lead_drift(_d)),
        mo.md("Drift means the people the model now scores differ from those it learned from; then its answers "
              "deserve less trust until it is checked or retrained."),
        technical("How drift is measured",
                  mo.md("Logged requests against the reference profile saved at promotion (PSI/KS per feature, "
                        f"PSI/chi-square per category, and for {_pred}).")),
    ])
    if _d["report"] is None:
        _parts = [_head, mo.callout(mo.md(f"**{_d['message'].capitalize()}.** {_d.get('detail', '')}"),
                                    kind="neutral" if _d["status"] == "no log" else "danger")]
    else:
        _r = _d["report"]
        _kind = {"ok": "success", "warning": "warn", "critical": "danger"}[_r.severity]
        _rows = ad.records([{k: f.get(k) for k in ("feature", "severity", "top_change", "psi", "ks_stat")}
                            for f in _r.features],
                           columns={"feature": "input", "severity": "shift", "top_change": "largest change",
                                    "psi": "PSI", "ks_stat": "KS"}, formats={"psi": ".3f", "ks_stat": ".3f"})
        _parts = [
            _head,
            mo.callout(mo.md(f"**Drift: {_r.severity}** over {_r.rows} logged rows. Action: {_r.action}"),
                       kind=_kind),
            mo.md(ad.prediction_drift_summary(_r)),
            _r.plot(),
            table(_rows, label="drift", wrap=["largest change"]),
        ]
    mo.vstack(_parts)
    return


@app.cell
def _(mo, run):
    mo.md(f"<small>Run folder: `{run['dir']}` · built from `manifest.json`, `reports/*.json` and the model "
          "registry. Static copy: `marimo export html notebooks/stakeholder_app.py -o app.html --no-include-code "
          "--no-sandbox`.</small>")
    return


if __name__ == "__main__":
    app.run()
