from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from testkit import ADULT_BRIEF, ROOT, write_brief
from workbench.brief import load_brief
from workbench.data import load_dataset
from workbench.errors import BriefError


def test_adult_brief_loads():
    b = load_brief(ADULT_BRIEF)
    assert b.target.column == "income" and b.target.positive_label == ">50K"
    assert b.sensitive_features == ["sex", "race"]
    assert b.success.metric == "pr_auc"
    assert b.train_path.name == "adult_train.parquet" and b.train_path.is_file()
    assert [k.check for k in b.kill_criteria][0] == "quality_score_below"


def test_column_names_are_normalised(tmp_path):
    p = write_brief(tmp_path / "b.yaml", "x.csv", target={"column": "Churned Flag", "positive_label": 1},
                    sensitive_features=["Home-Region"])
    b = load_brief(p)
    assert b.target.column == "churned_flag"
    assert b.sensitive_features == ["home_region"]


def test_unknown_key_names_file_key_and_expected(tmp_path):
    p = write_brief(tmp_path / "b.yaml", "x.csv", data={"train": "x.csv", "tset": "y.csv"})
    with pytest.raises(BriefError) as e:
        load_brief(p)
    msg = str(e.value)
    assert str(p) in msg and "data.tset" in msg and "unknown key" in msg and "Did you mean 'test'" in msg
    assert e.value.key == "data.tset" and e.value.exit_code == 2


def test_wrong_type_names_key(tmp_path):
    p = write_brief(tmp_path / "b.yaml", "x.csv", success={"metric": "pr_auc", "threshold": "high"})
    with pytest.raises(BriefError) as e:
        load_brief(p)
    assert "success.threshold" in str(e.value) and "'high'" in str(e.value)


def test_invalid_choice_lists_options(tmp_path):
    p = write_brief(tmp_path / "b.yaml", "x.csv", success={"metric": "auc", "threshold": 0.5})
    with pytest.raises(BriefError, match="success.metric.*pr_auc"):
        load_brief(p)


def test_missing_required_key(tmp_path):
    p = tmp_path / "b.yaml"
    p.write_text(yaml.safe_dump({"name": "x", "objective": "y", "data": {"train": "a.csv"},
                                 "target": {"column": "t", "positive_label": 1}, "latency_budget_ms": 5}))
    with pytest.raises(BriefError, match="key 'success': required key is missing"):
        load_brief(p)


def test_not_yaml_and_missing_file(tmp_path):
    p = tmp_path / "b.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(BriefError, match="not valid YAML at line"):
        load_brief(p)
    with pytest.raises(BriefError, match="brief file not found"):
        load_brief(tmp_path / "nope.yaml")


def test_column_not_in_data_names_key_and_suggests(tmp_path, churn_project):
    p = write_brief(churn_project.parent / "b2.yaml", "churn.csv", sensitive_features=["Regoin"])
    with pytest.raises(BriefError) as e:
        load_dataset(load_brief(p))
    msg = str(e.value)
    assert "sensitive_features[0]" in msg and "'regoin'" in msg and "Did you mean 'region'" in msg


def test_positive_label_not_in_target(tmp_path, churn_project):
    p = write_brief(churn_project.parent / "b3.yaml", "churn.csv", target={"column": "Churned", "positive_label": "yes"})
    with pytest.raises(BriefError, match="target.positive_label.*expected one of '0', '1'"):
        load_dataset(load_brief(p))


def test_target_listed_as_sensitive_is_refused(tmp_path):
    p = write_brief(tmp_path / "b.yaml", "x.csv", sensitive_features=["Churned"])
    with pytest.raises(BriefError, match="sensitive_features lists the target"):
        load_brief(p)


def test_cli_bad_brief_exits_2_with_named_key(tmp_path):
    p = write_brief(tmp_path / "b.yaml", "x.csv", latency_budget_ms="fast")
    out = subprocess.run([sys.executable, "-m", "workbench", "check", str(p)], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "latency_budget_ms" in out.stderr and str(p) in out.stderr.replace("\n", "")


def test_fairness_acknowledgements_name_features_as_the_sensitive_features_are_named(tmp_path):
    """A new user writes the column as the data spells it ("Region", "Sex & Race"): the acknowledgement must
    reach the snake_case feature the fairness report uses, not acknowledge nothing."""
    raw = yaml.safe_load(ADULT_BRIEF.read_text())
    raw["data"] = {k: str((ADULT_BRIEF.parent / v).resolve()) if k in ("train", "test") else v
                   for k, v in raw["data"].items()}
    raw["fairness"]["acknowledge"] = [
        {"feature": "Race", "groups": ["Other"], "reason": "small"},
        {"feature": "Sex & Race", "groups": ["Male & Other"], "reason": "small"}]
    p = tmp_path / "b.yaml"
    p.write_text(yaml.safe_dump(raw))
    assert [a.feature for a in load_brief(p).fairness.acknowledge] == ["race", "sex & race"]
