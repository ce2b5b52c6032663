"""PROSAIL throughput: the torch port (releo_bench.physics.prosail) against the ``prosail`` package.

Run:  .venv/bin/python benchmarks/bench_prosail.py [--quick]
Prints a Markdown table of spectra per second, with the speed-up over prosail.run_prosail
(which always computes the full 400-2500 nm spectrum, one parameter set per call), for
batches of 1, 1k and 100k random parameter sets, float32 and float64, the full spectrum and
the wavelengths Sentinel-2 needs (where the official S2A responses are non-zero; from
../shared/data/s2_srf if present, else the union of centre +- FWHM of the bands). Backends:
"fused" (compiled CPU kernel, the default without gradients) and "torch" (autograd; CPU and,
when present, CUDA). Large batches are computed in blocks of 10k rows so memory stays bounded.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from releo_bench.physics.prosail import PROSAIL_RANGES, run_prosail

ROOT = Path(__file__).resolve().parent.parent
SRF_CSV = Path(os.environ.get("RELEO_SHARED_DIR", ROOT.parent / "shared")) / "data" / "s2_srf" / \
    "S2-SRF_COPE-GSEG-EOPG-TN-15-0007_3.0_S2A.csv"
BLOCK = 10_000


def s2_wavelengths() -> tuple[torch.Tensor, str]:
    """Whole nm where any S2A band responds: official table if available, else centre +- FWHM."""
    if SRF_CSV.is_file():
        df = pd.read_csv(SRF_CSV)
        bands = df[[c for c in df.columns if c.startswith("S2A_SR_AV_B")]].to_numpy()
        wl = df["SR_WL"].to_numpy()[(bands > 0).any(axis=1)]
        source = "official S2A SRF support"
    else:
        from releo_bench.physics.srf import S2_BAND_TABLE

        wl = np.unique(np.concatenate([np.arange(np.ceil(c - w), np.floor(c + w) + 1)
                                       for c, w in S2_BAND_TABLE["s2a"].values()]))
        source = "S2A centre +- FWHM"
    wl = np.unique(np.rint(wl).astype(np.int64))
    wl = wl[(wl >= 400) & (wl <= 2500)]
    return torch.from_numpy(wl), source


def sample(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    p = {k: rng.uniform(*PROSAIL_RANGES[k][:2], n)
         for k in ("n", "cab", "car", "cbrown", "cw", "cm", "lai", "hspot", "ant", "rsoil", "psoil")}
    p.update(tts=rng.uniform(0, 60, n), tto=rng.uniform(0, 60, n), psi=rng.uniform(0, 180, n))
    kind = rng.integers(1, 3, n)
    a = rng.uniform(-1, 1, n)
    p["typelidf"] = kind.astype(np.float64)
    p["lidfa"] = np.where(kind == 1, a, rng.uniform(0, 90, n))
    p["lidfb"] = np.where(kind == 1, rng.uniform(-1, 1, n) * (1 - np.abs(a)), 0.0)
    return p


def reference_rate(calls: int, rng: np.random.Generator) -> float:
    """prosail.run_prosail spectra per second: median over 5 blocks of calls/5 random sets."""
    import prosail

    p = sample(calls, rng)
    rows = [{k: float(v[i]) for k, v in p.items()} for i in range(calls)]
    for r in rows:
        r["typelidf"] = int(r["typelidf"])
    prosail.run_prosail(**rows[0], prospect_version="D")  # numba warm-up
    block = max(1, calls // 5)
    rates = []
    for start in range(0, block * 5, block):
        t = time.perf_counter()
        for r in rows[start:start + block]:
            prosail.run_prosail(**r, prospect_version="D", factor="SDR")
        rates.append(block / (time.perf_counter() - t))
    return statistics.median(rates)


def timed(fn: Callable[[], None], warm_up: Callable[[], None], sync: Callable[[], None],
          repeat: int) -> float:
    """Median wall time of ``fn`` after a warm-up call."""
    warm_up()
    sync()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def port_rate(batch: int, dtype: torch.dtype, wl: torch.Tensor | None, backend: str, device: str,
              rng: np.random.Generator) -> float:
    p = {k: torch.tensor(v, dtype=dtype, device=device) for k, v in sample(min(batch, BLOCK), rng).items()}
    wl_dev = None if wl is None else wl.to(device)
    blocks = max(1, batch // BLOCK)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def one() -> None:
        run_prosail(p, wavelengths=wl_dev, dtype=dtype, backend=backend)

    def run() -> None:
        for _ in range(blocks):  # the same block again: bounded memory, same work
            one()

    repeat = 30 if batch == 1 else (5 if batch <= BLOCK else 3)
    return batch / timed(run, one, sync, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="batches 1 and 1k only")
    parser.add_argument("--reference-calls", type=int, default=300)
    parser.add_argument("--devices", default="cpu,cuda",
                        help="comma-separated subset of cpu,cuda (cuda only when available)")
    args = parser.parse_args()
    devices = set(args.devices.split(","))
    rng = np.random.default_rng(0)
    s2, s2_source = s2_wavelengths()
    ref = reference_rate(args.reference_calls, rng)
    batches = (1, 1_000) if args.quick else (1, 1_000, 100_000)
    configs = []
    if "cpu" in devices:
        configs += [("fused", "cpu", b) for b in batches] + [("torch", "cpu", b) for b in (1, 1_000)]
    if "cuda" in devices and torch.cuda.is_available():
        configs += [("torch", "cuda", b) for b in batches]
    rows = []
    for backend, device, batch in configs:
        for dtype in (torch.float32, torch.float64):
            for name, wl in (("S2 support", s2), ("full", None)):
                rate = port_rate(batch, dtype, wl, backend, device, rng)
                rows.append((backend, device, str(dtype).replace("torch.", ""), name, batch, rate))

    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores{gpu}, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"prosail package (reference, full spectrum, one call per set): {ref:.0f} spectra/s "
          f"(median of 5 blocks of {args.reference_calls // 5} calls)")
    print(f"S2 support: {len(s2)} wavelengths ({s2_source}); full: 2101 wavelengths")
    print()
    print("| backend | device | dtype | wavelengths | batch | spectra/s | speed-up vs prosail |")
    print("|---|---|---|---|---|---|---|")
    for backend, device, dtype, name, batch, rate in rows:
        print(f"| {backend} | {device} | {dtype} | {name} | {batch:,} | {rate:,.0f} | {rate / ref:,.1f}x |")


if __name__ == "__main__":
    main()
