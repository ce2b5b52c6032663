"""Suites: the shipped ones load and name registered tasks at their versions."""

import pytest

from releo_bench.errors import UsageError
from releo_bench.suites import load_suite, suite_names


@pytest.mark.parametrize("name", suite_names())
def test_shipped_suites_are_consistent(name):
    suite = load_suite(name)
    suite.check_registered()
    runs = suite.required_runs()
    assert len(runs) == len(suite.tasks) * len(suite.label_fractions)
    assert all(p in ("ridge", "logistic") for _, p, _ in runs)


def test_ci_fast_suite():
    s = load_suite("ci-fast")
    assert s.models == ("raw", "random") and s.seeds == 2
    assert s.probe_for("land-cover") == "logistic" and s.probe_for("lai") == "ridge"


def test_bad_suites(tmp_path):
    with pytest.raises(UsageError, match="known suites"):
        load_suite("nope")
    p = tmp_path / "s.yaml"
    p.write_text("name: x\nversion: 1\nseeds: 1\nprobes: {regression: ridge}\ntasks: {lai: 7}\n")
    with pytest.raises(UsageError, match="version 7"):
        load_suite(p).check_registered()
    p.write_text("name: x\nversion: 1\nseeds: 1\nprobes: {}\ntasks: {}\n")
    with pytest.raises(UsageError, match="at least one task"):
        load_suite(p)
