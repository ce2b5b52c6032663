"""Harness throughput: embedding extraction cold vs. cached, and the probe + metrics stage.

Run:  .venv/bin/python benchmarks/bench_harness.py [--repeat N]
Prints a Markdown table; docs/benchmarks.md records the numbers of one run with the machine.
Uses the mock tasks only (no downloads); tracking is off so only the harness is measured.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
from pathlib import Path

import torch

from releo_bench.runner import RunConfig, run


def one(model: str, task: str, cache_dir: Path, out: Path, seeds: int) -> tuple[float, float, float]:
    r = run(RunConfig(model=model, task=task, seeds=seeds, device="cpu", output=out,
                      tracking_uri="none", cache_dir=cache_dir)).result
    return r.timings.embedding_s, r.timings.probe_s + r.timings.metrics_s, r.timings.total_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for model, task in (("raw", "mock-regression"), ("random", "mock-regression"),
                        ("raw", "mock-classification")):
        cold, warm, probe = [], [], []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                t = Path(tmp)
                e1, p1, _ = one(model, task, t / "cache", t / "a", args.seeds)
                e2, _, _ = one(model, task, t / "cache", t / "b", args.seeds)
                cold.append(e1), warm.append(e2), probe.append(p1)
        rows.append((model, task, statistics.median(cold), statistics.median(warm),
                     statistics.median(probe)))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}; median of {args.repeat}")
    print()
    print("| model | task | embedding, cold (s) | embedding, cached (s) | probe + metrics, "
          f"{args.seeds} seeds (s) |")
    print("|---|---|---|---|---|")
    for m, t, c, w, p in rows:
        print(f"| {m} | {t} | {c:.3f} | {w:.3f} | {p:.3f} |")


if __name__ == "__main__":
    main()
