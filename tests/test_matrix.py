"""Every model x every task: accepted (and how pixels meet patch models) or refused with a
message that names the model, the task and what is missing. The full runs of every accepted
pair are in docs/model-task-matrix.md (scripts/model_task_matrix.py)."""

from __future__ import annotations

import pytest

from releo_bench.compat import all_pairs, check_pair
from releo_bench.errors import DataError
from releo_bench.registries import TASKS

_LOADED: dict[str, object] = {}


def _loaded(task_name: str):
    if task_name not in _LOADED:
        task = TASKS.get(task_name)()
        try:
            _LOADED[task_name] = (task, task.load("train"))
        except DataError as exc:
            _LOADED[task_name] = exc
    got = _LOADED[task_name]
    if isinstance(got, DataError):
        if "dataset not found" in str(got):
            pytest.skip(str(got))
        raise got
    return got


@pytest.mark.parametrize("model,task", all_pairs())
def test_accepted_or_refused_clearly(model, task):
    c = check_pair(model, task, loaded=_loaded(task))
    if c.accepted:
        assert c.spatial_context in ("scene", "tiled", "none")
        return
    msg = c.problem
    assert model in msg, msg
    assert "needs" in msg, msg  # says what is missing


# the decisions a researcher would expect, pinned
EXPECTED = {
    ("alise", "lai"): "scene", ("ubarn", "crop-phenology"): "scene",
    ("malice", "land-cover"): "scene", ("alise", "gap-filling"): "tiled",
    ("alise", "eurosat-ms"): "none", ("raw", "lai"): "none",
    ("prosail-mlp", "cab"): "none", ("snap", "lai"): "none",
    ("presto", "fuel-moisture"): "none", ("presto", "land-cover"): "none",
    ("malice", "worldcereal-croptype"): "tiled",
}
REFUSED = {
    ("malice", "eurosat-ms"): "s1",  # S2-only task
    ("snap", "eurosat-ms"): "angles",
    ("prosail-mlp", "lai-insitu"): "angles",
    ("alise", "eolearn-lulc"): "B2",  # NDVI only
    ("alise", "tempcnn-toulouse"): "formosat2",  # a Formosat-2 task
}


@pytest.mark.parametrize("pair", sorted(EXPECTED))
def test_expected_acceptances(pair):
    c = check_pair(*pair, loaded=_loaded(pair[1]))
    assert c.accepted, c.problem
    assert c.spatial_context == EXPECTED[pair]


@pytest.mark.parametrize("pair", sorted(REFUSED))
def test_expected_refusals(pair):
    c = check_pair(*pair, loaded=_loaded(pair[1]))
    assert not c.accepted
    assert pair[0] in c.problem and REFUSED[pair] in c.problem
