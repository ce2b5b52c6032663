"""Encode throughput per model and harness overhead (run wall time / pure encoder forward time).

Run:  .venv/bin/python benchmarks/bench_encoders.py [--pairs alise:lai,raw:lai] [--device cpu]
      [--main-job]

For each (model, task) pair, on every split of the task:

* forward: the encoder alone on inputs the harness has already prepared (bands, units,
  context scenes or tiles, all in memory): ``encode`` over batches of ``--batch-size``
  samples, or ``encode_dense`` over the scenes when the task gives pixel context; the faster
  of two passes. Reported as samples/s (pixels or patches of the task) and seconds.
* run: ``releo_bench.runner.run`` on the same task with the embedding cache off, one seed,
  tracking off, no plots (data loading from memory/disk caches, harness preparation, the same
  forward passes, the default probe, metrics and bootstrap intervals, results written).
* overhead = run / forward (target <= 1.3 for pretrained encoders, where the forward is most of
  the work; weight-free baselines encode in milliseconds, so their ratio only says that the
  probe dominates), and embedding stage / forward: the harness's own cost around the encoder
  (preparation, unit conversion, context or tiling, checks), without the probe.

``--main-job`` also times ``releo-bench run --model alise --task lai --seeds 3`` as ``make run``
does, in a fresh cache directory (cold: simulates and caches the six scenes, encodes) and then
again (warm: scene and embedding caches hit), as subprocesses (Python start-up included).
Weights come from $RELEO_WEIGHTS_DIR (../shared/weights when unset and present).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PAIRS = ("raw:lai,random:lai,snap:lai,prosail-vae:lai,prosail-mlp:lai,alise:lai,"
                 "ubarn:lai,malice:lai,presto:lai,galileo-nano:lai,alise:eurosat-ms,"
                 "galileo-nano:eurosat-ms")


def _forward_seconds(encoder, data, batch_size: int) -> tuple[float, int]:
    """Seconds of pure encoder forward over one split (inputs prepared beforehand)."""
    from releo_bench.encoders.adapt import prepare_batch, spatial_context, tile_pixels

    meta = encoder.meta
    mode = spatial_context(encoder, data)
    if mode == "scene":
        batches = [prepare_batch(data.context.scenes.index([s]), meta)
                   for s in range(len(data.context.scenes))]
        call = encoder.encode_dense
    else:
        batches = [tile_pixels(prepare_batch(data.batch.index(slice(a, a + batch_size)), meta),
                               meta.min_patch_size)
                   for a in range(0, len(data), batch_size)]
        call = encoder.encode
    batches = [b.to(encoder.device) for b in batches]
    if encoder.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.no_grad():
        for b in batches:
            call(b)
    if encoder.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, len(data)


def bench_pair(model: str, task_name: str, device: str, batch_size: int) -> dict:
    from releo_bench.registries import ENCODERS, TASKS
    from releo_bench.runner import RunConfig, run

    task = TASKS.get(task_name)()
    data = {s: task.load(s) for s in task.meta.splits}
    encoder = ENCODERS.get(model)(device=device).adapt_to(data["train"])
    # warm-up: weights read, kernels compiled, training of generated models (not timed)
    from releo_bench.encoders.adapt import encode_batch

    encode_batch(encoder, data["train"].batch.index(slice(0, 2)))
    forward, n = float("inf"), 0
    for _ in range(2):  # the first pass also pays one-time kernel selection: keep the faster
        total, n = 0.0, 0
        for d in data.values():
            sec, k = _forward_seconds(encoder, d, batch_size)
            total += sec
            n += k
        forward = min(forward, total)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        res = run(RunConfig(model=model, task=task_name, seeds=1, device=device,
                            output=Path(tmp) / "r", tracking_uri="none", use_cache=False,
                            plots=False, batch_size=batch_size)).result
        wall = time.perf_counter() - start
    return {"model": model, "task": task_name, "samples": n, "forward_s": forward,
            "samples_per_s": n / forward, "run_s": wall, "overhead": wall / forward,
            "embedding_s": res.timings.embedding_s, "probe_s": res.timings.probe_s,
            "spatial_context": res.model.spatial_context}


def main_job() -> dict:
    env = dict(os.environ)
    shared = ROOT.parent / "shared" / "weights"
    if "RELEO_WEIGHTS_DIR" not in env and shared.is_dir():
        env["RELEO_WEIGHTS_DIR"] = str(shared)
    cmd = [str(ROOT / ".venv" / "bin" / "releo-bench"), "run", "--model", "alise", "--task", "lai",
           "--seeds", "3"]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        env.update(RELEO_CACHE_DIR=f"{tmp}/cache", RELEO_DATA_DIR=f"{tmp}/data",
                   MLFLOW_TRACKING_URI=f"sqlite:///{tmp}/mlflow.db")
        for label in ("cold", "warm"):
            start = time.perf_counter()
            subprocess.run(cmd + ["--output", f"{tmp}/{label}"], env=env, check=True,
                           stdout=subprocess.DEVNULL)
            out[f"{label}_s"] = time.perf_counter() - start
            res = json.loads(next(Path(tmp, label).rglob("results.json")).read_text())
            out[f"{label}_crps"] = res["metrics"]["crps"]["mean"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", default=DEFAULT_PAIRS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--main-job", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    os.environ.setdefault("RELEO_WEIGHTS_DIR", str(ROOT.parent / "shared" / "weights"))
    os.environ.setdefault("RELEO_DATASETS_DIR", str(ROOT.parent / "shared" / "data"))
    rows = []
    for pair in args.pairs.split(","):
        model, task = pair.split(":")
        try:
            rows.append(bench_pair(model, task, args.device, args.batch_size))
        except Exception as exc:  # noqa: BLE001 (report and go on: one table for all models)
            print(f"{model} on {task}: {type(exc).__name__}: {exc}", file=sys.stderr)
    dev = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else \
        f"{platform.machine()}, {os.cpu_count()} cores, threads {torch.get_num_threads()}"
    print(f"device: {dev}; torch {torch.__version__}")
    print()
    print("| model | task | samples | context | forward (s) | samples/s | embedding stage (s) | "
          "probe (s) | run (s) | embedding / forward | run / forward |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| `{r['model']}` | `{r['task']}` | {r['samples']} | {r['spatial_context']} | "
              f"{r['forward_s']:.2f} | {r['samples_per_s']:.0f} | {r['embedding_s']:.2f} | "
              f"{r['probe_s']:.2f} | {r['run_s']:.2f} | {r['embedding_s'] / r['forward_s']:.2f} | "
              f"{r['overhead']:.2f} |")
    if args.main_job:
        mj = main_job()
        print()
        print(f"main job (alise on lai, 3 seeds): cold {mj['cold_s']:.1f} s, warm "
              f"{mj['warm_s']:.1f} s; CRPS {mj['cold_crps']:.4f} / {mj['warm_crps']:.4f}")
        rows.append({"main_job": mj})
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
