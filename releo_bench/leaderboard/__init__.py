"""The leaderboard: runs (MLflow or results.json files) -> comparable groups -> normalised,
IQM-aggregated, ranked tables in Markdown, CSV, JSON (``releo-leaderboard/1``) and HTML.

See docs/leaderboard.md. ``build_leaderboard`` is the whole pipeline; the submodules are
:mod:`.collect` (reading runs), :mod:`.aggregate` (statistics) and :mod:`.formats` (writers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import UsageError
from .aggregate import DEFAULT_BASELINE, FAMILIES, FORMAT, N_BOOT, build_board
from .collect import Collection, collect_from_mlflow, collect_from_paths
from .formats import FORMATS, markdown_tables, to_markdown, write


def build_leaderboard(*, results: list[Path] | None = None, tracking_uri: str | None = None,
                      experiment: str | None = None, suite: str | Path | None = None,
                      baseline_model: str = DEFAULT_BASELINE, n_boot: int = N_BOOT) -> dict[str, Any]:
    """Read runs (``results`` paths, else the MLflow store at ``tracking_uri``), build the board.

    Raises :class:`UsageError` (exit 2) when no run matches.
    """
    from ..suites import load_suite
    from ..tracking import DEFAULT_EXPERIMENT, redact_uri, resolve_tracking_uri

    suite_obj = load_suite(suite) if suite is not None else None
    if results:
        col = collect_from_paths(results)
        where = "the given --results (" + ", ".join(str(p) for p in results) + ")"
    else:
        uri = resolve_tracking_uri(tracking_uri)
        if uri is None:
            raise UsageError("tracking is disabled (--tracking-uri none): give --results "
                             "PATH to build the leaderboard from results.json files")
        col = collect_from_mlflow(uri, experiment or DEFAULT_EXPERIMENT)
        where = f"experiment {experiment or DEFAULT_EXPERIMENT!r} at {redact_uri(uri)}"
    board = build_board(col.runs, suite=suite_obj, baseline_model=baseline_model,
                        source=col.source, n_boot=n_boot, skipped=col.skipped)
    if not board["groups"]:
        detail = f"{col.n_read} run(s) read, {len(col.runs)} valid"
        if col.skipped:
            detail += f", {len(col.skipped)} skipped (e.g. {col.skipped[0][0]}: {col.skipped[0][1]})"
        if suite_obj is not None and col.runs:
            detail += (f"; none is on suite {suite_obj.name!r}'s tasks at its versions "
                       f"({', '.join(f'{t} v{v}' for t, v in suite_obj.tasks.items())}), probes "
                       f"({', '.join(f'{k}: {p}' for k, p in suite_obj.probes.items())}) and "
                       f"label fractions ({', '.join(f'{f:g}' for f in suite_obj.label_fractions)})")
        raise UsageError(f"no runs match in {where}: {detail}")
    return board


__all__ = ["Collection", "DEFAULT_BASELINE", "FAMILIES", "FORMAT", "FORMATS", "N_BOOT",
           "build_board", "build_leaderboard", "collect_from_mlflow", "collect_from_paths",
           "markdown_tables", "to_markdown", "write"]
