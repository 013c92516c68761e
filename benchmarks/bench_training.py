"""Speed and memory of ntkeq.training against an idiomatic PyTorch loop.

Run by hand from the repository root:

    python3 benchmarks/bench_training.py [--quick] [--json results.json]

Everything is measured in one process run, side by side: the machine's copy
bandwidth and float32 matrix-product rate, then ms per SGD step of ntkeq's
trainer and of the textbook loop (nn.Sequential, DataLoader, optim.SGD,
default threads) for the paper's NN1 and NN2. Medians over repeats; the
figures go into docs/training.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import multiprocessing as mp
import platform
import statistics
import time
from typing import Any

import numpy as np
import torch

from ntkeq.networks import MLP
from ntkeq.training import TrainConfig, estimate_cost, train

D_IN, N_FIT, BATCH, LR = 15, 469, 8, 0.002


def machine_rates() -> dict[str, float]:
    """Copy bandwidth (bytes read + written per second) and sgemm GFLOP/s."""
    torch.set_num_threads(torch.get_num_threads())
    a = torch.ones(125_000_000)  # 500 MB
    b = torch.empty_like(a)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        b.copy_(a)
        times.append(time.perf_counter() - t0)
    bandwidth = 2 * a.numel() * 4 / statistics.median(times)
    del a, b
    n = 4096
    A, B = torch.randn(n, n), torch.randn(n, n)
    C = torch.empty(n, n)
    torch.mm(A, B, out=C)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        torch.mm(A, B, out=C)
        times.append(time.perf_counter() - t0)
    return {
        "copy_GBps": bandwidth / 1e9,
        "sgemm_GFLOPps": 2 * n**3 / statistics.median(times) / 1e9,
    }


class _Scale(torch.nn.Module):
    def __init__(self, s: float) -> None:
        super().__init__()
        self.s = s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.s


def idiomatic_ms_per_step(depth: int, width: int, steps: int) -> float:
    """The published script's network written the usual PyTorch way."""
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = [_Scale(1 / math.sqrt(D_IN))]
    fan_in = D_IN
    for _ in range(depth):
        layers += [
            torch.nn.Linear(fan_in, width),
            torch.nn.ReLU(),
            _Scale(1 / width**0.5),
        ]
        fan_in = width
    layers.append(torch.nn.Linear(fan_in, 1))
    net = torch.nn.Sequential(*layers)
    for p in net.parameters():
        torch.nn.init.normal_(p)
    X, y = torch.randn(N_FIT, D_IN), torch.randn(N_FIT, 1)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(X, y), batch_size=BATCH, shuffle=True
    )
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    loss_fn = torch.nn.MSELoss()
    times: list[float] = []
    while len(times) < steps:
        t0 = time.perf_counter()
        for xb, yb in loader:
            opt.zero_grad()
            loss_fn(net(xb), yb).backward()
            opt.step()
            t1 = time.perf_counter()
            times.append(t1 - t0)
            t0 = t1
            if len(times) >= steps:
                break
    return 1e3 * statistics.median(times[1:])


def ours_ms_per_step(depth: int, width: int, steps: int, batch: int | None) -> float:
    cfg = TrainConfig(LR, 1, batch, device="cpu")
    spec = {"d_in": D_IN, "depth": depth, "width": width, "parameterization": "ntkj"}
    return 1e3 * estimate_cost(spec, N_FIT, cfg, warmup_steps=steps).seconds_per_step


def _peak_child(width: int, queue: Any) -> None:
    def status(key: str) -> int:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
        return 0

    X = np.random.default_rng(0).normal(size=(N_FIT, D_IN))
    y = X[:, 0]
    net = MLP(D_IN, 2, width, "ntkj", seed=0)
    param_bytes = sum(p.numel() * 4 for p in net.parameters())
    # reset the peak-RSS mark so MLP's float64 drawing does not count
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    base = status("VmRSS")
    train(net, X, y, TrainConfig(LR, 1, BATCH, device="cpu"), X_eval=X)
    queue.put((param_bytes, status("VmHWM") - base))


def peak_memory(width: int) -> tuple[int, int]:
    """(parameter bytes, peak RSS growth over the built model) of one NN2 epoch."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_peak_child, args=(width, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    q = args.quick
    res: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "machine": platform.processor() or platform.machine(),
        "cores": torch.get_num_threads(),
        "torch": torch.__version__,
    }

    param_bytes, peak = peak_memory(10_000)
    res["nn2_param_MB"], res["nn2_peak_growth_MB"] = param_bytes / 1e6, peak / 1e6
    res.update(machine_rates())

    rows = []
    for name, depth, width, n_ours, n_idio in [
        ("NN1", 1, 10_000, 300 if not q else 60, 60 if not q else 15),
        ("NN2", 2, 2_000, 100 if not q else 20, 30 if not q else 8),
        ("NN2", 2, 10_000, 30 if not q else 8, 5 if not q else 3),
    ]:
        ours = ours_ms_per_step(depth, width, n_ours, BATCH)
        idio = idiomatic_ms_per_step(depth, width, n_idio)
        rows.append((name, width, ours, idio))
        res[f"{name}_{width}_ours_ms"] = ours
        res[f"{name}_{width}_idiomatic_ms"] = idio

    # bandwidth use of NN2 width 10,000 batch 8: W_1 read (forward), then read
    # and written once by the blocked backward-and-update pass
    w1 = 10_000 * 10_000 * 4
    ms2 = res["NN2_10000_ours_ms"]
    res["NN2_bytes_per_step_GB"] = 3 * w1 / 1e9
    res["NN2_achieved_GBps"] = 3 * w1 / (ms2 / 1e3) / 1e9

    # full batch NN2 width 10,000: forward, grad wrt h_1, and update GEMMs
    full = ours_ms_per_step(2, 10_000, 3 if q else 5, None)
    sizes = [10_000 * D_IN, 10_000 * 10_000, 10_000]
    flops = 2 * N_FIT * (2 * sum(sizes) + sum(sizes[1:]))
    res["full_batch_ms"] = full
    res["full_batch_GFLOPps"] = flops / (full / 1e3) / 1e9

    # the paper preset: 50 trials of NN1 (3000 epochs) and NN2 (6000 epochs)
    spe = math.ceil(N_FIT / BATCH)
    t1, t2 = res["NN1_10000_ours_ms"], ms2
    res["preset_hours"] = 50 * spe * (3000 * t1 + 6000 * t2) / 1e3 / 3600
    ti1, ti2 = res["NN1_10000_idiomatic_ms"], res["NN2_10000_idiomatic_ms"]
    res["preset_hours_idiomatic"] = 50 * spe * (3000 * ti1 + 6000 * ti2) / 1e3 / 3600

    print(
        f"{res['date']}  {res['machine']}  {res['cores']} threads  torch {res['torch']}"
    )
    print(
        f"copy bandwidth {res['copy_GBps']:.1f} GB/s, "
        f"sgemm {res['sgemm_GFLOPps']:.0f} GFLOP/s"
    )
    print(f"{'net':5}{'width':>8}{'ours ms':>10}{'idiom. ms':>11}{'speed-up':>10}")
    for name, width, ours, idio in rows:
        print(f"{name:5}{width:>8}{ours:>10.3f}{idio:>11.2f}{idio / ours:>9.1f}x")
    print(
        f"NN2 10k batch 8: {res['NN2_bytes_per_step_GB']:.2f} GB/step -> "
        f"{res['NN2_achieved_GBps']:.1f} GB/s "
        f"({res['NN2_achieved_GBps'] / res['copy_GBps']:.0%} of copy bandwidth)"
    )
    print(
        f"NN2 10k full batch: {full:.0f} ms/step, {res['full_batch_GFLOPps']:.0f} "
        f"GFLOP/s ({res['full_batch_GFLOPps'] / res['sgemm_GFLOPps']:.0%} of sgemm)"
    )
    print(
        f"NN2 10k peak RSS growth {res['nn2_peak_growth_MB']:.0f} MB = "
        f"{peak / param_bytes:.2f} x parameters ({res['nn2_param_MB']:.0f} MB)"
    )
    print(
        f"paper preset (50 trials) on this CPU: {res['preset_hours']:.0f} h "
        f"(idiomatic loop: {res['preset_hours_idiomatic']:.0f} h)"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)


if __name__ == "__main__":
    main()
