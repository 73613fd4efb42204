"""Bad input gets a bounded, named error: a deep YAML is a brief error (exit 2), a huge header is cut."""

from __future__ import annotations

import pytest

from workbench.brief import load_brief
from workbench.errors import MAX_MESSAGE, BriefError, DataError


def test_a_deeply_nested_yaml_is_a_brief_error(tmp_path):
    p = tmp_path / "deep.yaml"
    p.write_text("a: " + "[" * 50000 + "]" * 50000)
    with pytest.raises(BriefError, match="nested too deeply") as e:
        load_brief(p)
    assert e.value.exit_code == 2


def test_messages_are_bounded():
    e = DataError("column " + "x" * 100_000 + " is missing", hint="y" * 100_000)
    assert len(e.message) < MAX_MESSAGE + 100 and "more characters" in e.message
    assert len(e.hint) < MAX_MESSAGE + 100
    short = DataError("short", hint="fix it")
    assert short.message.endswith("short") and short.hint == "fix it"


def test_a_header_longer_than_the_sniffing_sample_is_read_whole(tmp_path):
    from workbench.data.io import read_table

    names = [f"c{i}" for i in range(20000)]  # ~130 KB header: longer than the 64 KB sniffing sample
    p = tmp_path / "wide.csv"
    p.write_text(",".join(names) + "\n" + ",".join("1" for _ in names) + "\n")
    df, _ = read_table(p)
    assert df.width == 20000 and df.columns[-1] == "c19999"


def test_a_missing_target_is_refused_from_the_header_alone(tmp_path, monkeypatch):
    import yaml

    from workbench.data import io

    p = tmp_path / "big.csv"
    p.write_text("a,b,y\n" + "1,2,3\n" * 1000)
    b = tmp_path / "b.yaml"
    b.write_text(yaml.safe_dump({"name": "t", "objective": "x", "task": "regression", "data": {"train": str(p)},
                                 "target": {"column": "yy"}, "success": {"threshold": 1}, "latency_budget_ms": 10}))

    def no_read(*a, **k):
        raise AssertionError("the whole file was read before the header check")

    monkeypatch.setattr(io, "read_table", no_read)
    with pytest.raises(DataError, match="target column 'yy'") as e:
        io.load_dataset(load_brief(b))
    assert "did you mean 'y'" in str(e.value) or "'y'" in str(e.value)
