"""``releo-bench submit``: check results.json files, send them to a shared MLflow server, and
keep them in a local queue while that server cannot be reached.

Submissions end up on a public leaderboard, so nothing is sent before every file passed
:func:`validate_bytes`: a readable results.json of a supported schema version, small, with no
markup or control characters in any string (the leaderboard renders HTML), only finite
numbers in range, summaries that agree with the per-seed values (a hand-edited mean is
caught), a task and version this releo-bench knows, and, for a registered pretrained encoder,
the sha256 of its published weights. With a suite, the submission must also hold every run
the suite requires.

Sending is idempotent by the results' ``run_id`` (MLflow tag ``releo.run_id``): a run whose
tag is already on the server as a FINISHED run is not logged again. When the server cannot
be reached, the validated files go to a queue directory, one JSON file per (run_id, target),
written atomically; :func:`flush` sends them later and removes an entry only once its upload
succeeded (or the server already has the run), so an interrupted or repeated flush loses and
duplicates nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import ReleoError, UsageError
from .tracking import DEFAULT_EXPERIMENT, redact_uri, resolve_tracking_uri

# the public API: checks and transport live in their own modules
from .submit_checks import (MAX_BYTES, Submission, SubmissionError, check_content, check_result,
    check_suite, expected_weights_sha256, find_results, string_problem, validate_bytes,
    validate_file, validate_paths)  # noqa: F401
from .submit_queue import (Outcome, default_queue_dir, enqueue, is_unreachable, queue_file,
    queued, quick_http, read_entry, send)  # noqa: F401


# -- the two commands -------------------------------------------------------------------------

def target_uri(tracking_uri: str | None) -> str:
    """The server to submit to: ``--tracking-uri`` or ``$MLFLOW_TRACKING_URI`` (required)."""
    uri = (tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")).strip()
    if not uri:
        raise UsageError("submit needs --tracking-uri URI (the MLflow server to submit to) or "
                         "$MLFLOW_TRACKING_URI")
    resolved = resolve_tracking_uri(uri)
    if resolved is None:
        raise UsageError(f"--tracking-uri {uri!r} disables tracking; submit needs a server")
    return resolved


def submit(paths: Sequence[str | Path], tracking_uri: str | None, *, suite: Any = None,
           experiment: str = DEFAULT_EXPERIMENT, queue_dir: Path | None = None,
           on_outcome: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Validate everything, then send each run; queue the rest once the server is unreachable.

    Raises UsageError (nothing sent) on an invalid submission. Runs the server refused for
    another reason come back with status ``failed``.
    """
    uri = target_uri(tracking_uri)
    problem = string_problem(experiment) if experiment.strip() else "is empty"
    if problem:
        raise UsageError(f"--experiment {experiment!r} {problem}")
    if isinstance(suite, (str, Path)):
        from .suites import load_suite

        suite = load_suite(suite)
    subs = validate_paths(paths, suite)
    queue_dir = Path(queue_dir) if queue_dir is not None else default_queue_dir()
    outcomes: list[Outcome] = []
    unreachable: str | None = None
    with quick_http():
        for sub in subs:
            if unreachable is None:
                try:
                    outcome = send(sub, uri, experiment, queue_dir)
                except ReleoError as exc:
                    if not is_unreachable(exc):
                        outcome = Outcome(sub.source, sub.run_id, "failed", detail=str(exc))
                    else:
                        unreachable = str(exc)
                if unreachable is None:
                    outcomes.append(outcome)
                    if on_outcome:
                        on_outcome(outcome)
                    continue
            path = enqueue(sub, uri, experiment, queue_dir)
            outcome = Outcome(sub.source, sub.run_id, "queued", detail=unreachable or "",
                              queue_file=path)
            outcomes.append(outcome)
            if on_outcome:
                on_outcome(outcome)
    return outcomes


def flush(queue_dir: Path | None = None, tracking_uri: str | None = None,
          experiment: str | None = None,
          on_outcome: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Send queued submissions (only those for ``tracking_uri`` / ``experiment`` when given).

    An entry is deleted only after its run is on the server (sent now, or found there). Each
    entry is validated again first; an entry that no longer validates stays (``invalid``).
    """
    queue_dir = Path(queue_dir) if queue_dir is not None else default_queue_dir()
    uri_filter = resolve_tracking_uri(tracking_uri) if tracking_uri else None
    outcomes: list[Outcome] = []
    down: dict[str, str] = {}

    def report(o: Outcome) -> None:
        outcomes.append(o)
        if on_outcome:
            on_outcome(o)

    with quick_http():
        for path in queued(queue_dir):
            try:
                entry = read_entry(path)
            except UsageError as exc:
                report(Outcome(str(path), "?", "invalid", detail=str(exc), queue_file=path))
                continue
            if uri_filter is not None and entry.tracking_uri != uri_filter:
                continue
            if experiment is not None and entry.experiment != experiment:
                continue
            if entry.tracking_uri in down:
                report(Outcome(entry.source, entry.run_id, "still queued",
                               detail=down[entry.tracking_uri], queue_file=path))
                continue
            try:
                sub = validate_bytes(entry.results.encode("utf-8"), f"{path} (from {entry.source})")
            except UsageError as exc:
                report(Outcome(entry.source, entry.run_id, "invalid", detail=str(exc), queue_file=path))
                continue
            try:
                outcome = send(sub, entry.tracking_uri, entry.experiment, queue_dir)
            except ReleoError as exc:
                if is_unreachable(exc):
                    down[entry.tracking_uri] = str(exc)
                    report(Outcome(entry.source, entry.run_id, "still queued", detail=str(exc),
                                   queue_file=path))
                else:
                    report(Outcome(entry.source, entry.run_id, "failed", detail=str(exc),
                                   queue_file=path))
                continue
            path.unlink(missing_ok=True)  # only now: the run is on the server
            outcome.source = entry.source
            report(outcome)
    return outcomes


def other_targets(queue_dir: Path | None, tracking_uri: str | None,
                  experiment: str | None) -> list[str]:
    """Redacted targets of queued entries that a filtered flush left alone."""
    uri_filter = resolve_tracking_uri(tracking_uri) if tracking_uri else None
    out = set()
    for path in queued(queue_dir):
        try:
            e = read_entry(path)
        except UsageError:
            continue
        if (uri_filter is not None and e.tracking_uri != uri_filter) or \
                (experiment is not None and e.experiment != experiment):
            out.add(f"{redact_uri(e.tracking_uri)} (experiment {e.experiment})")
    return sorted(out)


__all__ = [
    "MAX_BYTES", "Outcome", "Submission", "SubmissionError",
    "check_content", "check_result", "check_suite", "default_queue_dir", "enqueue",
    "expected_weights_sha256", "find_results", "flush", "is_unreachable", "queue_file",
    "queued", "read_entry", "send", "string_problem", "submit", "target_uri", "validate_bytes",
    "validate_file", "validate_paths",
]
