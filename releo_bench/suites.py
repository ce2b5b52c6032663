"""Suites: the tasks (with versions), probes, label fractions and seeds that make runs comparable.

A suite is a YAML file in ``configs/suites/`` (or any path): a leaderboard can be restricted to
it, ``submit`` checks that a submission covers it, and ``run_suite`` produces it for one model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import UsageError

SUITES_DIR = Path(__file__).resolve().parent.parent / "configs" / "suites"


class Suite(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: int = Field(ge=1)
    description: str = ""
    seeds: int = Field(ge=1, description="seeds 0 .. seeds-1 are required")
    label_fractions: tuple[float, ...] = (1.0,)
    probes: dict[str, str] = Field(description="probe per target kind (regression, classification)")
    tasks: dict[str, int] = Field(description="task name -> required task version")
    models: tuple[str, ...] = Field((), description="models the suite is run with by default "
                                                    "(e.g. the baselines of a CI suite)")

    @model_validator(mode="after")
    def _check(self) -> "Suite":
        if not self.tasks:
            raise ValueError("a suite needs at least one task")
        bad = [f for f in self.label_fractions if not 0.0 < f <= 1.0]
        if bad:
            raise ValueError(f"label fractions must be in (0, 1], got {bad}")
        unknown = sorted(set(self.probes) - {"regression", "classification"})
        if unknown:
            raise ValueError(f"probes are given per target kind, unknown kinds {unknown}")
        return self

    def probe_for(self, task: str) -> str:
        """The suite's probe for ``task`` (by its target kind)."""
        from .registries import TASKS

        kind = TASKS.get(task).meta.target.kind
        if kind not in self.probes:
            raise UsageError(f"suite {self.name!r} names no probe for {kind} tasks ({task!r})")
        return self.probes[kind]

    def check_registered(self) -> None:
        """Every task exists at the version the suite requires (exit 2 otherwise)."""
        from .registries import TASKS

        for task, version in self.tasks.items():
            have = TASKS.get(task).meta.version
            if have != version:
                raise UsageError(f"suite {self.name!r} requires task {task!r} version {version}; "
                                 f"this releo-bench has version {have}")

    def required_runs(self) -> list[tuple[str, str, float]]:
        """(task, probe, label fraction) of every run a complete submission holds."""
        return [(t, self.probe_for(t), f) for t in self.tasks for f in self.label_fractions]


def load_suite(name_or_path: str | Path) -> Suite:
    """A suite by name (``configs/suites/<name>.yaml``) or by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SUITES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))
        raise UsageError(f"suite {str(name_or_path)!r} not found ({path}); known suites: {known}")
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Suite.model_validate(data)
    except (yaml.YAMLError, ValidationError) as exc:
        raise UsageError(f"{path}: not a valid suite: {exc}") from exc


def run_suite(suite: Suite, model: str, output: Path, *, tracking_uri: str | None = "none",
              device: str = "auto", on_done: Any = None) -> list[Path]:
    """Run ``model`` on every (task, probe, label fraction) of ``suite`` with its seeds; one
    results directory each under ``output/<suite>/<model>/<task>-<probe>-lf<fraction>/``.
    Deterministic: the same suite and model give the same numbers."""
    from .runner import RunConfig, run

    suite.check_registered()
    out = []
    for task, probe, fraction in suite.required_runs():
        target = Path(output) / suite.name / model / f"{task}-{probe}-lf{fraction:g}"
        res = run(RunConfig(model=model, task=task, probe=probe, seeds=suite.seeds,
                            label_fraction=fraction, tracking_uri=tracking_uri, device=device,
                            output=target, plots=False))
        out.append(res.output_dir)
        if on_done is not None:
            on_done(res.output_dir)
    return out


def suite_names() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


__all__ = ["Suite", "load_suite", "run_suite", "suite_names", "SUITES_DIR"]
