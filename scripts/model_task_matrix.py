"""Run every model on every benchmark task; write the outcome table (docs/model-task-matrix.md).

Run:  .venv/bin/python scripts/model_task_matrix.py [--timeout 180] [--out docs/model-task-matrix.md]
      [--models alise,raw] [--tasks lai,cab]

Each accepted pair (releo_bench.compat.check_pair) is run as ``releo-bench run --model M
--task T --seeds 1 --n-boot 0 --no-plots --tracking-uri none`` in a subprocess with a wall-time
limit; a pair that exceeds it is then checked by encoding its first 8 training samples (the
run works, it is only slow on this machine: typically patch models on pixel tasks without
scene context, each pixel tiled to 16 x 16, on a CPU). Refused pairs show the refusal message.
Data from $RELEO_DATASETS_DIR (../shared/data when unset), weights from $RELEO_WEIGHTS_DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for var, sub in (("RELEO_DATASETS_DIR", "data"), ("RELEO_WEIGHTS_DIR", "weights")):
        if var not in env and (ROOT.parent / "shared" / sub).is_dir():
            env[var] = str(ROOT.parent / "shared" / sub)
    return env


def _run(model: str, task: str, timeout: float, env: dict[str, str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [str(ROOT / ".venv" / "bin" / "releo-bench"), "run", "--model", model, "--task",
               task, "--seeds", "1", "--n-boot", "0", "--no-plots", "--tracking-uri", "none",
               "--output", f"{tmp}/r"]
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"status": "slow", "seconds": timeout}
        sec = time.perf_counter() - start
        if proc.returncode != 0:
            return {"status": f"exit {proc.returncode}", "seconds": sec,
                    "message": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}
        res = json.loads(next(Path(tmp).rglob("results.json")).read_text())
        main = res["task"]["main_score"]
        return {"status": "ok", "seconds": sec, "main_score": main,
                "value": res["metrics"][main]["mean"], "context": res["model"]["spatial_context"]}


def _encode_check(model: str, task: str) -> str:
    from releo_bench.encoders.adapt import SceneEmbeddings, encode_batch, spatial_context
    from releo_bench.registries import ENCODERS, TASKS

    data = TASKS.get(task)().load("train")
    enc = ENCODERS.get(model)().adapt_to(data)
    if spatial_context(enc, data) == "scene":
        SceneEmbeddings(enc, data.context)(0, 8)
    else:
        encode_batch(enc, data.batch.index(slice(0, 8)))
    return "first 8 samples encoded"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "model-task-matrix.md")
    parser.add_argument("--models", default="")
    parser.add_argument("--tasks", default="")
    parser.add_argument("--skip-tiled", action="store_true",
                        help="for pairs where pixels are tiled into patches (no scene context), "
                             "only encode the first 8 samples (full runs take hours on a CPU)")
    args = parser.parse_args()
    env = _env()
    os.environ.update({k: v for k, v in env.items() if k.startswith("RELEO_")})
    from releo_bench.compat import all_pairs, check_pair
    from releo_bench.registries import TASKS

    pairs = [(m, t) for m, t in all_pairs()
             if (not args.models or m in args.models.split(","))
             and (not args.tasks or t in args.tasks.split(","))]
    loaded: dict[str, object] = {}
    rows = []
    for model, task in pairs:
        if task not in loaded:
            tk = TASKS.get(task)()
            loaded[task] = (tk, tk.load("train"))
        c = check_pair(model, task, loaded=loaded[task])  # type: ignore[arg-type]
        if not c.accepted:
            rows.append((model, task, "refused", c.problem))
            continue
        if args.skip_tiled and c.spatial_context == "tiled":
            try:
                note = _encode_check(model, task)
                rows.append((model, task, "tiled", f"not run in full (--skip-tiled); {note}"))
            except Exception as exc:  # noqa: BLE001
                rows.append((model, task, "FAILED", f"encode check: {type(exc).__name__}: {exc}"))
            print(*rows[-1], sep=" | ", flush=True)
            continue
        r = _run(model, task, args.timeout, env)
        if r["status"] == "ok":
            rows.append((model, task, "ok", f"{r['main_score']} {r['value']:.4g} "
                                            f"({r['seconds']:.0f} s, {r['context']})"))
        elif r["status"] == "slow":
            try:
                note = _encode_check(model, task)
            except Exception as exc:  # noqa: BLE001
                note = f"encode check failed: {type(exc).__name__}: {exc}"
            rows.append((model, task, "slow", f"over {args.timeout:.0f} s on this machine "
                                              f"({c.spatial_context}); {note}"))
        else:
            rows.append((model, task, "FAILED", f"{r['status']}: {r.get('message')}"))
        print(*rows[-1], sep=" | ", flush=True)
    lines = [
        "# Every model on every task",
        "",
        f"Generated {date.today().isoformat()} by `.venv/bin/python scripts/model_task_matrix.py "
        f"--timeout {args.timeout:.0f}{' --skip-tiled' if args.skip_tiled else ''}` (1 seed, no "
        "bootstrap, default probe; CPU, 2 cores, shared with other work while it ran).",
        "`ok`: the run finished, with the task's main score and wall time (and how pixels met a "
        "patch model: `scene` = real neighbours from the task's scenes, `tiled` = pixel "
        "repeated, `none` = not applicable); `slow`: still running at the time limit, then "
        "checked by encoding 8 samples; `tiled`: a patch model on pixels without scene context "
        "(each pixel repeated into a 16 x 16 tile), only its first 8 samples encoded here: a "
        "full run takes hours on this CPU (a GPU job); `refused`: exit code 2 with the message "
        "shown.",
        "",
        "| model | task | outcome | detail |",
        "|---|---|---|---|",
    ]
    for model, task, status, detail in rows:
        lines.append(f"| `{model}` | `{task}` | {status} | {str(detail).replace('|', '/')} |")
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    failed = [r for r in rows if r[2] == "FAILED"]
    print(f"{len(rows)} pairs, {len(failed)} failed; table: {args.out}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
