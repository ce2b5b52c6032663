"""Common contract tests over every registered component: they grow with the registries."""

import pytest

from releo_bench.checks import check_encoder, check_metric, check_probe, check_task
from releo_bench.errors import DataError, UsageError
from releo_bench.registries import ENCODERS, METRICS, PROBES, TASKS


@pytest.mark.parametrize("name", ENCODERS.names())
def test_encoder_contract(name):
    from releo_bench.weights import WeightsError, resolve

    cls = ENCODERS.get(name)
    for f in getattr(cls, "WEIGHTS", ()):
        try:
            resolve(f)
        except WeightsError as exc:  # a clone without ../shared/weights
            if "not found" in str(exc):
                pytest.skip(str(exc))
            raise
    check_encoder(cls())


@pytest.mark.parametrize("name", TASKS.names())
def test_task_contract(name):
    try:
        task = TASKS.get(name)()
        task.load("test")
    except DataError as exc:  # real-data tasks without their dataset (a clone without ../shared)
        if "dataset not found" in str(exc):
            pytest.skip(str(exc))
        raise
    except UsageError:
        pass  # a task that needs user data (custom): check_task checks it refuses to load
    check_task(task)


@pytest.mark.parametrize("name", PROBES.names())
def test_probe_contract(name):
    check_probe(PROBES.get(name))


@pytest.mark.parametrize("name", METRICS.names())
def test_metric_contract(name):
    check_metric(METRICS.get(name))


def test_per_date_raw_encoder_contract():
    check_encoder(ENCODERS.get("raw")(pooling="per_date"))


def test_list_tasks_shows_every_task_with_its_version(capsys, monkeypatch):
    from releo_bench.cli import main

    monkeypatch.setenv("COLUMNS", "250")
    assert main(["list", "tasks"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in TASKS.names():
        row = next((line for line in lines if f" {name} " in line), None)
        assert row is not None, f"{name} not listed"
        assert f" {TASKS.get(name).meta.version} " in row


@pytest.mark.parametrize("name", TASKS.names())
def test_every_benchmark_task_has_a_card(name):
    from pathlib import Path

    meta = TASKS.get(name).meta
    if meta.test_only:
        pytest.skip("test-only mock task: no card")
    card = Path(__file__).resolve().parent.parent / "tasks" / name / "README.md"
    assert card.is_file(), f"task {name!r} has no card at {card}"
    text = card.read_text(encoding="utf-8").lower()
    assert "changelog" in text, f"{card}: no changelog section"
