"""Checks of a results.json before it is submitted to a public leaderboard (see
:mod:`releo_bench.submit`): format, size, content, ranges, consistency, task, weights, suite."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, get_args

from .errors import UsageError
from .results import RunResult

MAX_BYTES = 5 * 1024 * 1024  # a results.json is ~10-100 kB; anything this big is not one
MEAN_TOL = 1e-6  # summary vs per-seed values: |stored - recomputed| <= tol * max(1, |value|)
RANGE_EPS = 1e-9  # floating-point slack on metric bounds
SUPPORTED_SCHEMA_VERSIONS: tuple[str, ...] = get_args(RunResult.model_fields["schema_version"].annotation)

# -- what a string may not contain ------------------------------------------------------------
_MARKUP = re.compile(
    r"<\s*[/!?]?\s*[A-Za-z]"  # an HTML/XML tag, comment or processing instruction
    r"|(?:java|vb)script\s*:"  # script URLs
    r"|data\s*:\s*text/html"
    r"|&#?[A-Za-z0-9]+;",  # character references (markup smuggled past an escaper)
    re.IGNORECASE)
_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")  # text-direction overrides
_URL_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s/@:]+:[^\s/@]+@")
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
_SHA256 = re.compile(r"[0-9a-f]{64}(?:\+[0-9a-f]{64})*")
_PLOT_NAME = re.compile(r"[\w.\-]{1,128}")
_IDENT_MAX = 200  # names and versions of models, tasks, probes

# -- metric bounds (by registered metric name; per-output keys use their base name) -----------
_UNIT = (0.0, 1.0)
_NONNEG = (0.0, math.inf)
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "overall_accuracy": _UNIT, "balanced_accuracy": _UNIT, "macro_f1": _UNIT, "miou": _UNIT,
    "ece": _UNIT, "mce": _UNIT, "rms_calibration_error": _UNIT,
    "kappa": (-1.0, 1.0), "brier": (0.0, 2.0), "log_loss": _NONNEG,
    "picp_50": _UNIT, "picp_80": _UNIT, "picp_90": _UNIT, "picp_95": _UNIT,
    "coverage_error_90": _UNIT, "miscalibration_area": (0.0, 0.5), "pit_deviation": (0.0, 2.0),
    "rmse": _NONNEG, "mae": _NONNEG, "crps": _NONNEG, "sam": (0.0, 180.0),
    "mpiw_50": _NONNEG, "mpiw_80": _NONNEG, "mpiw_90": _NONNEG, "mpiw_95": _NONNEG,
    "r2": (-math.inf, 1.0),
}


class SubmissionError(UsageError):
    """A results file that cannot be submitted; the message names the file and the field."""

    def __init__(self, source: str, field: str, problem: str) -> None:
        self.source, self.field, self.problem = source, field, problem
        super().__init__(_plain(f"{source}: {field}: {problem}"))


def _plain(text: str) -> str:
    """``text`` safe to print with rich (the CLI's error printer reads markup)."""
    try:
        from rich.markup import escape
    except ImportError:  # pragma: no cover - rich is a dependency of the CLI
        return text
    return escape(text)


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


# -- validation -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Submission:
    """One validated results.json: where it came from, its exact text and its record."""

    source: str
    text: str
    result: RunResult

    @property
    def run_id(self) -> str:
        return self.result.run_id


def find_results(paths: Sequence[str | Path]) -> list[Path]:
    """results.json files: the paths given, or the results.json of (or under) a directory."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            direct = p / "results.json"
            found = [direct] if direct.is_file() else sorted(
                q for q in p.rglob("results.json") if q.is_file())
            if not found:
                raise UsageError(_plain(f"{p}: no results.json in this directory or below"))
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise UsageError(_plain(f"{p}: no such file or directory"))
    seen: set[Path] = set()
    unique = []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def read_capped(path: Path) -> bytes:
    """The bytes of ``path``, refusing files over :data:`MAX_BYTES` without reading them."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise SubmissionError(str(path), "size", f"{size} bytes, over the {MAX_BYTES} byte "
                                                     "limit of a results.json submission")
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise SubmissionError(str(path), "file", f"cannot be read ({exc})") from exc
    if len(data) > MAX_BYTES:  # grew while we looked
        raise SubmissionError(str(path), "size", f"over the {MAX_BYTES} byte limit of a "
                                                 "results.json submission")
    return data


def validate_file(path: str | Path) -> Submission:
    path = Path(path)
    return validate_bytes(read_capped(path), str(path))


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:  # parsers disagree on which value wins: refuse the ambiguity
            raise _DuplicateKey(k)
        out[k] = v
    return out


def validate_bytes(data: bytes, source: str) -> Submission:
    """Parse and check one results.json; raise :class:`SubmissionError` on the first problem."""
    if len(data) > MAX_BYTES:
        raise SubmissionError(source, "size", f"{len(data)} bytes, over the {MAX_BYTES} byte "
                                              "limit of a results.json submission")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SubmissionError(source, "file", f"not UTF-8 text, so not a results.json ({exc})") from exc
    try:
        raw = json.loads(text, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as exc:
        raise SubmissionError(source, _show(exc.args[0]), "key appears twice in one JSON object") from exc
    except json.JSONDecodeError as exc:
        raise SubmissionError(source, "file", f"not valid JSON, so not a results.json (line "
                                              f"{exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    except (RecursionError, ValueError) as exc:
        raise SubmissionError(source, "file", f"not a readable JSON document ({exc})") from exc
    if not isinstance(raw, dict):
        raise SubmissionError(source, "file", f"a JSON {type(raw).__name__}, not a results.json object")
    version = raw.get("schema_version")
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        raise SubmissionError(source, "schema_version",
                              f"{_show(version)} is not a supported results.json schema version "
                              f"(supported: {', '.join(SUPPORTED_SCHEMA_VERSIONS)})")
    check_content(raw, source)
    result = _model(raw, source)
    check_result(result, source)
    return Submission(source=source, text=text, result=result)


def _field(parent: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    key = str(key)
    if re.fullmatch(r"[A-Za-z_][\w\-/]*", key):
        return f"{parent}.{key}" if parent else key
    return f"{parent}[{_show(key)}]"


def string_problem(s: str) -> str | None:
    """Why ``s`` may not appear in a submission, or None."""
    for ch in s:
        if ch in _BIDI:
            return f"contains the text-direction control U+{ord(ch):04X}"
        code = ord(ch)
        if code < 0x20 or 0x7F <= code <= 0x9F:
            return f"contains the control character U+{code:04X}"
        if 0xD800 <= code <= 0xDFFF:
            return f"contains the lone surrogate U+{code:04X}"
    m = _MARKUP.search(s)
    if m:
        excerpt = s[m.start(): m.start() + 24]
        return f"contains markup or script content {_show(excerpt)}, which a web page could run"
    if _URL_PASSWORD.search(s):
        return "contains a URL with a password; remove the credentials before submitting"
    return None


def check_content(raw: Any, source: str) -> None:
    """Every string (keys too) free of markup/control characters; every number finite."""
    stack: list[tuple[str, Any]] = [("", raw)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, dict):
            for k, v in value.items():
                problem = string_problem(k)
                if problem:
                    raise SubmissionError(source, f"{where or '(top level)'} key {_show(k)}", problem)
                stack.append((_field(where, k), v))
        elif isinstance(value, list):
            stack += [(_field(where, i), v) for i, v in enumerate(value)]
        elif isinstance(value, str):
            problem = string_problem(value)
            if problem:
                raise SubmissionError(source, where, problem)
        elif isinstance(value, float) and not math.isfinite(value):
            raise SubmissionError(source, where, f"non-finite number {value!r}; a results.json "
                                                 "holds finite numbers only")


def _model(raw: dict[str, Any], source: str) -> RunResult:
    from pydantic import ValidationError

    try:
        return RunResult.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        parts = []
        for e in errors[:5]:
            where = ""
            for key in e.get("loc", ()):
                where = _field(where, key)
            parts.append(f"{where or '(top level)'}: {e.get('msg', 'invalid')}")
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        first = parts[0].split(": ", 1)
        raise SubmissionError(source, first[0], f"{first[1]}; not a valid results.json (schema "
                                                f"{raw.get('schema_version')})"
                              + ("; also " + "; ".join(parts[1:]) if parts[1:] else "") + more) from exc


def check_result(r: RunResult, source: str) -> None:
    """The checks a schema cannot express: identity, registry, seeds, numbers, weights."""
    def bad(field: str, problem: str) -> SubmissionError:
        return SubmissionError(source, field, problem)

    if not _RUN_ID.fullmatch(r.run_id):
        raise bad("run_id", f"{_show(r.run_id)} is not a run id (letters, digits, '.', '_', "
                            "'-'; at most 128 characters)")
    try:
        datetime.fromisoformat(r.created.replace("Z", "+00:00"))
    except ValueError:
        raise bad("created", f"{_show(r.created)} is not an ISO 8601 time") from None
    for field, value in (("model.name", r.model.name), ("model.version", r.model.version),
                         ("task.name", r.task.name), ("probe.name", r.probe.name)):
        if not value.strip() or len(value) > _IDENT_MAX:
            raise bad(field, f"must be a non-empty name of at most {_IDENT_MAX} characters")
    for i, name in enumerate(r.plots):
        if not _PLOT_NAME.fullmatch(name) or name.startswith("."):
            raise bad(f"plots[{i}]", f"{_show(name)} is not a plain file name")
    for field, value in r.timings.model_dump().items():
        if value < 0:
            raise bad(f"timings.{field}", f"{value} is negative")
    _check_task(r, bad)
    _check_probe(r, bad)
    _check_seeds(r, bad)
    for kind in ("metrics", "unscaled_metrics"):
        _check_metrics(r, kind, bad)
    _check_weights(r, bad)


def _check_task(r: RunResult, bad: Callable[[str, str], SubmissionError]) -> None:
    from .registries import TASKS

    t = r.task
    if t.name == "custom":
        raise bad("task.name", "'custom' runs use the submitter's own data: they are not "
                               "comparable and cannot be submitted")
    if t.name not in TASKS:
        try:
            TASKS.get(t.name)
        except UsageError as exc:
            raise bad("task.name", str(exc)) from None
    meta = getattr(TASKS.get(t.name), "meta", None)
    if not hasattr(meta, "version"):  # metadata only known once built with options
        raise bad("task.name", f"task {t.name!r} declares no fixed metadata (name, version), "
                               "so its runs cannot be checked and are not accepted")
    if t.version != meta.version:
        raise bad("task.version", f"{t.version}, but task {t.name!r} is version {meta.version} "
                                  f"in this releo-bench; only results of the registered version "
                                  f"are accepted (re-run the task)")
    if t.target_kind != meta.target.kind:
        raise bad("task.target_kind", f"{t.target_kind!r}, but task {t.name!r} is a "
                                      f"{meta.target.kind} task")
    if t.main_score != meta.main_score:
        raise bad("task.main_score", f"{t.main_score!r}, but task {t.name!r} is scored by "
                                     f"{meta.main_score!r}")
    want_outputs = list(meta.target.outputs) if meta.target.outputs else None
    if (t.outputs or None) != want_outputs:
        raise bad("task.outputs", f"{t.outputs}, but task {t.name!r} has outputs {want_outputs}")
    if t.main_score not in r.metrics:
        raise bad("metrics", f"no entry for the task's main score {t.main_score!r}")
    for split, n in t.n_samples.items():
        if n < 0:
            raise bad(f"task.n_samples.{split}", f"{n} is negative")
    if t.train_task is not None:
        name, version = t.train_task.get("name"), t.train_task.get("version")
        if not isinstance(name, str) or name == "custom" or name not in TASKS:
            raise bad("task.train_task.name", f"{_show(name)} is not a registered task")
        have = TASKS.get(name).meta.version
        if version != have:
            raise bad("task.train_task.version", f"{_show(version)}, but task {name!r} is "
                                                 f"version {have} in this releo-bench")


def _check_probe(r: RunResult, bad: Callable[[str, str], SubmissionError]) -> None:
    from .registries import PROBES

    if r.probe.name != "none" and r.probe.name not in PROBES:  # "none": a Retriever's own prediction
        try:
            PROBES.get(r.probe.name)
        except UsageError as exc:
            raise bad("probe.name", str(exc)) from None


def _check_seeds(r: RunResult, bad: Callable[[str, str], SubmissionError]) -> None:
    n = len(r.seeds)
    if n == 0 or r.seeds != list(range(n)):
        raise bad("seeds", f"{r.seeds} must be the seeds 0..n-1 in order (e.g. {list(range(max(n, 1)))})")
    if len(r.per_seed) != n:
        raise bad("per_seed", f"{len(r.per_seed)} entries for {n} seeds")
    for i, (s, seed) in enumerate(zip(r.per_seed, r.seeds)):
        if s.seed != seed:
            raise bad(f"per_seed[{i}].seed", f"{s.seed}, expected {seed} (the order of seeds)")
        if s.n_train < 0:
            raise bad(f"per_seed[{i}].n_train", f"{s.n_train} is negative")


def _metric(name: str, r: RunResult, where: str, bad: Callable[[str, str], SubmissionError]) -> Any:
    from .metrics.multi_output import get_metric

    base, sep, output = name.partition("/")
    if sep and (not r.task.outputs or output not in r.task.outputs):
        raise bad(where, f"per-output metric for {output!r}, which is not one of the task's "
                         f"outputs {r.task.outputs}")
    try:
        return get_metric(base)
    except UsageError:
        raise bad(where, f"{base!r} is not a registered metric") from None


def _in_range(value: float, bounds: tuple[float, float]) -> bool:
    lo, hi = bounds
    return lo - RANGE_EPS <= value <= hi + RANGE_EPS


def _check_metrics(r: RunResult, kind: str, bad: Callable[[str, str], SubmissionError]) -> None:
    from .stats import mean_ci

    summaries = getattr(r, kind)
    per_seed = [getattr(s, kind) for s in r.per_seed]
    for i, values in enumerate(per_seed):
        extra = sorted(set(values) - set(summaries))
        if extra:
            raise bad(f"per_seed[{i}].{kind}", f"{extra} have no summary in {kind}")
    for name, s in summaries.items():
        where = _field(kind, name)
        m = _metric(name, r, where, bad)
        if s.direction != m.direction or s.family != m.family:
            raise bad(f"{where}.direction", f"{s.direction!r}/{s.family!r}, but metric {m.name!r} "
                                            f"is {m.direction!r}/{m.family!r}")
        if s.ideal is not None and m.ideal is not None and abs(s.ideal - m.ideal) > RANGE_EPS:
            raise bad(f"{where}.ideal", f"{s.ideal}, but metric {m.name!r} has ideal {m.ideal}")
        bounds = METRIC_RANGES.get(m.name, (-math.inf, math.inf))
        values = []
        for i, seed_values in enumerate(per_seed):
            if name not in seed_values:
                raise bad(f"per_seed[{i}].{kind}", f"no value for {name!r}, which {kind} summarises")
            v = seed_values[name]
            if not _in_range(v, bounds):
                raise bad(_field(f"per_seed[{i}].{kind}", name), f"{v} is outside the range "
                                                                 f"{list(bounds)} of {m.name!r}")
            values.append(v)
        for field in ("mean", "seed_boot_low", "seed_boot_high", "sample_ci_low", "sample_ci_high"):
            v = getattr(s, field)
            if v is not None and not _in_range(v, bounds):
                raise bad(f"{where}.{field}", f"{v} is outside the range {list(bounds)} of {m.name!r}")
        for lo, hi in (("ci_low", "ci_high"), ("seed_boot_low", "seed_boot_high"),
                       ("sample_ci_low", "sample_ci_high")):
            a, b = getattr(s, lo), getattr(s, hi)
            if a is not None and b is not None and a > b + RANGE_EPS:
                raise bad(f"{where}.{lo}", f"{a} is above {hi} {b}")
        if s.n_boot < 0:
            raise bad(f"{where}.n_boot", f"{s.n_boot} is negative")
        # the summary must be what the per-seed values give (catches an edited mean or CI)
        expected = mean_ci(values)
        if s.n != expected.n:
            raise bad(f"{where}.n", f"{s.n}, but per_seed has {expected.n} value(s) of {name!r}")
        for field in ("mean", "std", "ci_low", "ci_high"):
            stored, want = getattr(s, field), getattr(expected, field)
            if abs(stored - want) > MEAN_TOL * max(1.0, abs(want)):
                what = "mean" if field == "mean" else field
                raise bad(f"{where}.{field}", f"{stored!r} is not the {what} of the per-seed "
                                              f"values per_seed[*].{kind}.{name} {values} "
                                              f"({want!r}); summary and per-seed values disagree")


def expected_weights_sha256(model: str, config: dict[str, Any]) -> set[str] | None:
    """The sha256 a run of registered pretrained encoder ``model`` records, or None when the
    model is not registered here or declares no weights files (nothing to compare)."""
    from .registries import ENCODERS

    if model not in ENCODERS:
        return None
    cls = ENCODERS.get(model)
    files = tuple(getattr(cls, "WEIGHTS", ()) or ())
    if not files:
        return None
    options = {k: v for k, v in config.items() if k != "weights"}
    try:
        return {cls(device="cpu", **options).weights_sha256}
    except Exception:  # noqa: BLE001 - options this version does not take: fall back below
        pass
    accepted = {f.sha256 for f in files if f.sha256}
    accepted.add("+".join(f.sha256 or "" for f in files))
    try:
        accepted.add(cls(device="cpu").weights_sha256)
    except Exception:  # noqa: BLE001
        pass
    return {a for a in accepted if a}


def _check_weights(r: RunResult, bad: Callable[[str, str], SubmissionError]) -> None:
    sha = r.model.weights_sha256
    if sha is not None and not _SHA256.fullmatch(sha):
        raise bad("model.weights_sha256", f"{_show(sha)} is not a sha256 (64 lowercase hex digits)")
    expected = expected_weights_sha256(r.model.name, r.model.config)
    if expected is not None and sha not in expected:
        want = " or ".join(sorted(expected))
        raise bad("model.weights_sha256", f"{_show(sha)} differs from the sha256 of the published "
                                          f"weights of registered model {r.model.name!r} ({want}): "
                                          "tampered or foreign weights are not accepted")


def check_suite(subs: Sequence[Submission], suite: Any) -> None:
    """Every model in ``subs`` covers every (task, probe, label fraction) of ``suite`` with
    seeds 0..seeds-1 at the suite's task versions; UsageError listing what is missing."""
    suite.check_registered()
    required = suite.required_runs()
    seeds = list(range(suite.seeds))
    models = sorted({s.result.model.name for s in subs})
    problems = []
    for model in models:
        runs = [s.result for s in subs if s.result.model.name == model]
        missing = []
        for task, probe, fraction in required:
            version = suite.tasks[task]
            near = [r for r in runs if r.task.name == task and r.probe.name == probe
                    and abs(r.label_fraction - fraction) <= 1e-9 and r.task.train_task is None]
            if any(r.task.version == version and r.seeds == seeds for r in near):
                continue
            why = ""
            if near:
                why = " (have " + ", ".join(sorted({f"version {r.task.version} seeds {r.seeds}"
                                                    for r in near})) + ")"
            missing.append(f"task {task} v{version} / probe {probe} / label_fraction "
                           f"{fraction:g} / seeds 0..{suite.seeds - 1}{why}")
        if missing:
            problems.append(f"model {model!r} misses {len(missing)} of {len(required)} required "
                            "run(s): " + "; ".join(missing))
    if problems:
        raise UsageError(_plain(f"suite {suite.name!r} (version {suite.version}) is not covered: "
                                + " | ".join(problems)))


def validate_paths(paths: Sequence[str | Path], suite: Any = None) -> list[Submission]:
    """Validate every file (all problems reported together), then the submission as a whole."""
    if not paths:
        raise UsageError("nothing to submit: give results.json files or run directories")
    errors: list[str] = []
    subs: list[Submission] = []
    for path in find_results(paths):
        try:
            subs.append(validate_file(path))
        except UsageError as exc:
            errors.append(str(exc))
    if errors:
        n = len(errors)
        head = "" if n == 1 else f"{n} files cannot be submitted:\n"
        raise UsageError(head + "\n".join(errors))
    unique: dict[str, Submission] = {}
    for s in subs:
        other = unique.get(s.run_id)
        if other is None:
            unique[s.run_id] = s
        elif other.result != s.result:
            raise SubmissionError(s.source, "run_id", f"{s.run_id!r} is also the run id of "
                                                      f"{other.source}, with different content")
    subs = list(unique.values())
    if suite is not None:
        check_suite(subs, suite)
    return subs
