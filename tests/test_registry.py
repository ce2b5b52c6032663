import sys
import textwrap

import pytest

from releo_bench.errors import DuplicateNameError, ReleoError, UnknownNameError
from releo_bench.registries import ENCODERS, METRICS, PROBES, TASKS
from releo_bench.registry import Registry, nearest_names


def test_lookup_and_duplicates():
    reg: Registry[int] = Registry("thing")
    reg.register("alpha", 1)
    assert reg.get("alpha") == 1 and "alpha" in reg and reg.names() == ["alpha"]
    with pytest.raises(DuplicateNameError, match="already registered"):
        reg.register("alpha", 2)
    reg.register("alpha", 3, overwrite=True)
    assert reg.get("alpha") == 3


def test_typo_suggests_nearest_names():
    reg: Registry[int] = Registry("model")
    for i, n in enumerate(["alise", "malice", "ubarn", "presto", "prosail-vae"]):
        reg.register(n, i)
    with pytest.raises(UnknownNameError) as info:
        reg.get("alsie")
    assert info.value.suggestions[0] == "alise"
    assert "did you mean 'alise'" in str(info.value)
    assert "available models" in str(info.value)
    # nothing close: still offers the least-far names rather than nothing
    assert nearest_names("zzz", ["raw", "random"]) != []
    assert nearest_names("prosail", ["alise", "prosail-vae"]) == ["prosail-vae"]


def test_lazy_entries_import_on_first_get():
    reg: Registry[object] = Registry("thing")
    reg.register_lazy("ordered", "collections:OrderedDict", summary="stdlib")
    assert reg._entries["ordered"].obj is None  # not imported by registration or listing
    assert reg.names() == ["ordered"] and reg.summary("ordered") == "stdlib"
    from collections import OrderedDict
    assert reg.get("ordered") is OrderedDict
    reg.register_lazy("broken", "releo_bench.no_such_module:X")
    with pytest.raises(ReleoError, match="cannot import thing 'broken'"):
        reg.get("broken")
    with pytest.raises(ValueError):
        reg.register_lazy("bad", "no-colon")


def test_entry_point_plugin_registers_an_encoder(tmp_path, monkeypatch):
    """A package installed beside releo-bench registers an encoder without touching our code."""
    (tmp_path / "releo_plugin_demo.py").write_text(textwrap.dedent("""
        from releo_bench.encoders.raw import RawEncoder
        class DemoEncoder(RawEncoder):
            pass
    """))
    dist = tmp_path / "releo_plugin_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: releo-plugin-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[releo_bench.encoders]\ndemo-encoder = releo_plugin_demo:DemoEncoder\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry[object] = Registry("model", entry_point_group="releo_bench.encoders")
    assert "demo-encoder" in reg.names()
    assert reg._entries["demo-encoder"].origin == "entry point of releo-plugin-demo"
    assert reg.get("demo-encoder").__name__ == "DemoEncoder"
    sys.modules.pop("releo_plugin_demo", None)


def test_builtin_registries_are_populated():
    assert {"raw", "random"} <= set(ENCODERS.names())
    assert {"mock-regression", "mock-classification"} <= set(TASKS.names())
    assert {"ridge", "logistic"} <= set(PROBES.names())
    assert {"rmse", "crps", "ece", "overall_accuracy"} <= set(METRICS.names())
