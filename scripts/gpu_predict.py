#!/usr/bin/env python3
"""Predictions on paper: every primitive call of one training step on an H200, from a profile trace.

Reads the Chrome trace that `unet profile` writes (engine/profiler.h: one event per primitive call
with its FLOPs and compulsory bytes; the calls and their shapes are the same on every device), takes
the calls inside the first `train_step` range, and prints Markdown for docs/GPU.md: per primitive a
floor time (roofline: the larger of FLOPs at the peak rate and compulsory bytes at the bandwidth),
an expected time under the stated efficiencies and launch cost, the step totals and images/s.

    python3 scripts/gpu_predict.py docs/results/profile_trace_batch6.json \\
        docs/results/profile_trace_batch64.json --detail   # the tables of docs/GPU.md

With --measured TRACE (a trace of `unet profile --device cuda`, e.g. from scripts/gpu_check.sh) it
puts the measured time per primitive beside the prediction for the same batch.

Reference tool only: the engine needs no Python.
"""
import argparse
import collections
import json
import sys
from pathlib import Path

CONV = ("conv2d_forward", "conv2d_backward_data", "conv2d_backward_filter",
        "conv_transpose2d_forward", "conv_transpose2d_backward_data", "conv_transpose2d_backward_filter")
# Training batch norm (kernels/cuda/batchnorm.cu) streams with C x B blocks of 512 threads, each at
# a per-block rate: B slices per channel, C x B near 512 blocks but no slice under 4096 values.
BLOCK_PER_SLICE = ("batchnorm_forward_train", "batchnorm_backward_train")
BN_TARGET_BLOCKS, BN_MIN_SLICE = 512, 4096


def bn_blocks(shape):
    """C x B of a batch-norm shape 'NxCxHW ...', as kernels/cuda/batchnorm.cu cuts it."""
    n, c, hw = (int(v) for v in shape.split()[0].split("x")[:3])
    wanted = (BN_TARGET_BLOCKS + c - 1) // c
    return c * max(1, min(wanted, n * hw // BN_MIN_SLICE))
# Traffic per compulsory traffic: training forward reads x three times (mean, variance,
# normalise) and writes y once, against 1 read + 1 write compulsory; backward reads y (the ReLU
# mask), dy and x in each of its two passes and writes dx, against 3 reads + 1 write.
BN_TRAFFIC = {"batchnorm_forward_train": 4 / 2, "batchnorm_backward_train": 7 / 4}
# Host <-> device copies run over PCIe, not HBM: `unet profile` uploads the batch (image and mask)
# inside each step and reads the loss back; bench_e2e keeps its batch on the device.
HOST_COPY = ("copy_from_host", "copy_to_host")


def load_step(path):
    """(device, batch, [(name, shape, flop, bytes, measured_us)]) of the first train_step range."""
    trace = json.loads(Path(path).read_text())
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    steps = sorted((e for e in events if e.get("cat") == "range" and e.get("name") == "train_step"),
                   key=lambda e: e["ts"])
    if not steps:
        sys.exit(f"error: {path} has no train_step range; write it with `unet profile --trace FILE`")
    first = steps[0]
    begin, end = first["ts"], first["ts"] + first["dur"]
    calls = [e for e in events if e.get("cat") == "kernel" and begin <= e["ts"] < end]
    calls.sort(key=lambda e: e["ts"])
    rows = [(e["name"], e["args"].get("shape", ""), e["args"]["GFLOP"] * 1e9, e["args"]["MB"] * 1e6, e["dur"])
            for e in calls]
    batch = None
    for name, shape, *_ in rows:
        if name == "conv2d_forward":
            batch = int(shape.split("x")[0])
            break
    device = trace.get("otherData", {}).get("device", "?") if isinstance(trace, dict) else "?"
    return device, batch, rows


class Model:
    def __init__(self, a):
        self.bw = a.bandwidth * 1e12
        self.fp32 = a.fp32 * 1e12
        self.tf32 = a.tf32 * 1e12
        self.launch = a.launch_us * 1e-6
        self.conv_eff = a.conv_efficiency
        self.mem_eff = a.memory_efficiency
        self.sm_bw = a.sm_bandwidth * 1e9
        self.sms = a.sms
        self.host_bw = a.host_bandwidth * 1e9

    def floor(self, name, flop, nbytes, tf32=False):
        """Roofline seconds: no launch cost, peak rate, compulsory bytes at the full bandwidth."""
        if name in HOST_COPY:
            return nbytes / 2 / self.host_bw  # the trace counts a copy's bytes twice (read + write)
        rate = self.tf32 if (tf32 and name in CONV) else self.fp32
        return max(flop / rate, nbytes / self.bw)

    def expected(self, name, shape, flop, nbytes, tf32=False):
        """Seconds under the stated efficiencies, never below one launch."""
        if name in HOST_COPY:
            return max(self.floor(name, flop, nbytes), self.launch)
        if name in CONV:
            rate = (self.tf32 if tf32 else self.fp32) * self.conv_eff
            t = max(flop / rate, nbytes / (self.bw * self.mem_eff))
        elif name in BLOCK_PER_SLICE:
            bw = min(self.bw * self.mem_eff, bn_blocks(shape) * self.sm_bw)
            t = max(flop / self.fp32, nbytes * BN_TRAFFIC[name] / bw)
        else:
            t = max(flop / self.fp32, nbytes / (self.bw * self.mem_eff))
        return max(t, self.launch)

    def bound(self, name, flop, nbytes, tf32=False):
        rate = self.tf32 if (tf32 and name in CONV) else self.fp32
        return "compute" if flop / rate > nbytes / self.bw else "memory"


def us(seconds):
    return f"{seconds * 1e6:,.1f}"


def summarise(path, model, measured=None):
    device, batch, rows = load_step(path)
    out = []
    p = out.append
    total_flop = sum(r[2] for r in rows)
    total_bytes = sum(r[3] for r in rows if r[0] not in HOST_COPY)
    floor32 = sum(model.floor(n, f, b) for n, _, f, b, _ in rows)
    floor_tf = sum(model.floor(n, f, b, tf32=True) for n, _, f, b, _ in rows)
    exp32 = sum(model.expected(n, s, f, b) for n, s, f, b, _ in rows)
    exp_tf = sum(model.expected(n, s, f, b, tf32=True) for n, s, f, b, _ in rows)
    launches = len(rows) * model.launch
    upload = sum(model.expected(n, s, f, b) for n, s, f, b, _ in rows if n in HOST_COPY)
    p(f"#### Batch {batch}: {len(rows)} primitive calls, {total_flop / 1e9:,.1f} GFLOP, "
      f"{total_bytes / 1e9:,.2f} GB compulsory per step")
    p("")
    p(f"Source: `{path}` (first training step; traced on the {device}).")
    p("")
    p("| | FP32 (as built: handwritten and cuDNN `CUDNN_FMA_MATH`) | TF32 convolutions (what-if) |")
    p("|---|---:|---:|")
    p(f"| floor: sum of max(FLOP / peak, bytes / bandwidth), no launches | {floor32 * 1e3:,.2f} ms | {floor_tf * 1e3:,.2f} ms |")
    p(f"| floor + {model.launch * 1e6:g} us per call ({len(rows)} calls: {launches * 1e3:.2f} ms) | "
      f"{(floor32 + launches) * 1e3:,.2f} ms | {(floor_tf + launches) * 1e3:,.2f} ms |")
    p(f"| **expected** (efficiencies below, each call at least one launch) | **{exp32 * 1e3:,.2f} ms** | "
      f"**{exp_tf * 1e3:,.2f} ms** |")
    p(f"| of which host copies (the batch upload and the loss read-back) | {upload * 1e3:,.2f} ms | {upload * 1e3:,.2f} ms |")
    p(f"| expected without them (bench_e2e's step: its batch stays on the GPU) | {(exp32 - upload) * 1e3:,.2f} ms | "
      f"{(exp_tf - upload) * 1e3:,.2f} ms |")
    p(f"| images/s at the floor | {batch / floor32:,.0f} | {batch / floor_tf:,.0f} |")
    p(f"| **images/s expected** | **{batch / exp32:,.0f}** | **{batch / exp_tf:,.0f}** |")
    p(f"| images/s expected without host copies | {batch / (exp32 - upload):,.0f} | {batch / (exp_tf - upload):,.0f} |")
    if measured:
        total = sum(measured.values()) / 1e3
        p(f"| measured: sum of the calls per step (with one synchronisation pair each) | {total:,.2f} ms | |")
    p("")
    by = collections.OrderedDict()
    for n, s, f, b, m in rows:
        agg = by.setdefault(n, [0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
        agg[0] += 1
        agg[1] += f
        agg[2] += b
        agg[3] += model.floor(n, f, b)
        agg[4] += model.expected(n, s, f, b)
        agg[5] += model.expected(n, s, f, b, tf32=True)
        agg[6] += m
    head = "| primitive | calls | GFLOP | MB | floor FP32 us | expected FP32 us | share | expected TF32 us |"
    if measured:
        head += " measured us | measured / expected FP32 |"
    p(head)
    p("|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if measured else ""))
    for n, (calls, f, b, fl, e32, etf, _) in sorted(by.items(), key=lambda kv: -kv[1][4]):
        line = (f"| {n} | {calls} | {f / 1e9:,.3f} | {b / 1e6:,.1f} | {us(fl)} | {us(e32)} | "
                f"{100 * e32 / exp32:.1f}% | {us(etf)} |")
        if measured:
            mus = measured.get(n)
            line += f" {mus:,.1f} | {mus / (e32 * 1e6):.2f} |" if mus else " n/a | n/a |"
        p(line)
    p("")
    return out, rows, batch


def detail(rows, model):
    out = ["| # | primitive | shape | GFLOP | MB | bound | floor FP32 us | floor TF32 us | expected FP32 us |",
           "|---:|---|---|---:|---:|---|---:|---:|---:|"]
    for i, (n, s, f, b, _) in enumerate(rows, 1):
        tf = us(model.floor(n, f, b, tf32=True)) if n in CONV else ""
        out.append(f"| {i} | {n} | {s} | {f / 1e9:,.4f} | {b / 1e6:,.2f} | {model.bound(n, f, b)} | "
                   f"{us(model.floor(n, f, b))} | {tf} | {us(model.expected(n, s, f, b))} |")
    out.append("")
    return out


def measured_per_name(path):
    """{primitive: mean microseconds per step} over every step of a measured (CUDA) trace."""
    trace = json.loads(Path(path).read_text())
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    ranges = [e for e in events if e.get("cat") == "range" and e.get("name") == "train_step"]
    total = collections.defaultdict(float)
    for r in ranges:
        for e in events:
            if e.get("cat") == "kernel" and r["ts"] <= e["ts"] < r["ts"] + r["dur"]:
                total[e["name"]] += e["dur"]
    return {n: t / max(1, len(ranges)) for n, t in total.items()}, len(ranges)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("traces", nargs="+", help="profile traces (unet profile --trace), one per batch size")
    ap.add_argument("--bandwidth", type=float, default=4.3, help="TB/s (measured device copy; default %(default)s)")
    ap.add_argument("--fp32", type=float, default=67.0, help="FP32 non-tensor TFLOP/s (default %(default)s)")
    ap.add_argument("--tf32", type=float, default=495.0, help="TF32 tensor TFLOP/s, dense (default %(default)s)")
    ap.add_argument("--sms", type=int, default=132)
    ap.add_argument("--host-bandwidth", type=float, default=20.0,
                    help="GB/s of a pageable host-device copy (default %(default)s)")
    ap.add_argument("--launch-us", type=float, default=4.0, help="cost of one primitive call (default %(default)s)")
    ap.add_argument("--conv-efficiency", type=float, default=0.5,
                    help="fraction of the FLOP rate convolutions reach (default %(default)s)")
    ap.add_argument("--memory-efficiency", type=float, default=0.8,
                    help="fraction of the bandwidth memory-bound kernels reach (default %(default)s)")
    ap.add_argument("--sm-bandwidth", type=float, default=8.0,
                    help="GB/s one 512-thread block streams in a training BN kernel (default %(default)s)")
    ap.add_argument("--measured", help="a CUDA profile trace of the same batch to compare with")
    ap.add_argument("--detail", action="store_true", help="also list every call (appendix tables)")
    a = ap.parse_args()
    model = Model(a)
    print(f"Assumed: {a.bandwidth} TB/s, FP32 {a.fp32} TFLOP/s, TF32 {a.tf32} TFLOP/s, {a.sms} SMs; "
          f"expected = convolutions at {a.conv_efficiency:.0%} of the FLOP rate, memory-bound kernels at "
          f"{a.memory_efficiency:.0%} of the bandwidth, training BN at C x B blocks x "
          f"{a.sm_bandwidth:g} GB/s (at most that bandwidth) with its extra passes, host copies at {a.host_bandwidth:g} GB/s, every call at "
          f"least {a.launch_us:g} us.\n")
    measured = None
    if a.measured:
        measured, steps = measured_per_name(a.measured)
        print(f"Measured: `{a.measured}`, mean of {steps} steps (each call timed between two synchronisations).\n")
    details = []
    for path in a.traces:
        lines, rows, batch = summarise(path, model, measured)
        print("\n".join(lines))
        details.append((batch, rows))
    for batch, rows in details if a.detail else []:
        print(f"#### Every call of the batch-{batch} step\n")
        print("\n".join(detail(rows, model)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
