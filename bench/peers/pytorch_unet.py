#!/usr/bin/env python3
"""Peer benchmark: our engine's reference U-Net against the same model in PyTorch, on the CPU or a GPU.

Builds the reference model of models/unet.{h,cpp} in PyTorch, times a training step and an
inference pass for each batch size in both of PyTorch's CPU memory layouts, NCHW
(torch.contiguous_format) and channels_last (NHWC in memory, model and tensors converted with
memory_format=torch.channels_last), runs our bench/bench_e2e (or reads its saved JSON) for the
same shapes and thread count, and prints both PyTorch timings, the faster of the two ("torch
best") and our speed relative to that best, so that PyTorch is compared in its best layout.

On a GPU (--device cuda) every (phase, batch) runs in FP32 and in TF32 (--precisions), each in
NCHW and channels_last, in one process (the memory figure is then torch.cuda.max_memory_allocated,
reset before each run), with torch.backends.cudnn.benchmark on (PyTorch's fastest convolution
algorithms, not deterministic ones); "fp32" also turns off TF32 in cuDNN, which PyTorch allows by
default. Our side is bench_e2e's cuda/ rows: cuDNN in plain FP32 (CUDNN_FMA_MATH), deterministic
algorithms. scripts/gpu_check.sh runs it this way on a lent GPU.

This is a comparison tool only: the engine neither needs Python nor PyTorch to build, test or run.

Dependencies (a CPU-only wheel is enough; if PyPI's default wheel pulls in CUDA libraries, they
are unused here):
    python3 -m pip install torch numpy       # numpy only silences a warning of torch's import
    python3 -m pip install torch --index-url https://download.pytorch.org/whl/cpu   # smaller

Usage (from the repository root; build our binary first with scripts/build.sh):
    python3 bench/peers/pytorch_unet.py                                  # batches 1,6,16 at 240
    python3 bench/peers/pytorch_unet.py --batches 1,6,16 --size 240 --threads 2 --iters 3
    python3 bench/peers/pytorch_unet.py --ours-json saved.json --markdown  # for docs/BENCHMARKS.md
    python3 bench/peers/pytorch_unet.py --torch-only
    python3 bench/peers/pytorch_unet.py --layouts channels_last           # one layout only
    python3 bench/peers/pytorch_unet.py --device cuda --batches 1,6,16,64 --ours-json e2e.json
Our binary is run as
    build/bench/bench_e2e --threads=N --size=240 --batches=1,6,16 --benchmark_filter='^cpu/' \\
        --benchmark_format=json

What is the same on both sides: the architecture (3 -> 1 channels, 16 base filters, depth 4, so
240-120-60-30-15; [3x3 conv with bias -> BatchNorm(eps 1e-3, momentum 0.1) -> ReLU] x 2 per block;
2x2 max pool + dropout 0.05, 0.025 after the first pooling; 3x3 stride-2 'same' transposed convs;
concat(upsampled, skip) + dropout 0.05; 1x1 conv head; sigmoid), 2,164,593 parameters counting
the BN running statistics as Keras does, the initialisation (truncated He normal for the 3x3
convs, Glorot uniform for the transposed convs and the head, zero biases), float32 inputs,
batch size, image size, thread count, and the training step: forward, sigmoid, mean squared error
against a random 0/1 mask, zero_grad, backward, Adam(lr 2e-3, betas 0.9/0.999, eps 1e-7).
Inference is eval mode (BN running statistics, no dropout) under torch.inference_mode().

Remaining differences:
  * Layout: ours is NCHW; PyTorch runs each (phase, batch) in NCHW and in channels_last (weights,
    input and target converted, from which its kernels propagate the layout to activations,
    gradients and Adam's state), and the faster is the one compared (--layouts restricts the set).
  * Transposed conv alignment: PyTorch's ConvTranspose2d(k=3, stride=2, padding=1,
    output_padding=1) crops the first row and column of the full (2n+1)-sized result, while Keras'
    'same' (and our engine) drops the last. Same output size, same FLOPs, shifted by one pixel.
  * PyTorch runs ReLU in place after BN; we fuse it into BN. PyTorch's Adam uses its default
    (per-tensor, non-fused) CPU implementation; ours updates every parameter in one fused call.
  * Dropout masks come from different generators (ours: Philox), which affects no timing.
  * Memory is not the same measure: ours is the engine's own peak (peak_MB counter), PyTorch's is
    the growth of the process's peak RSS (VmHWM, reset through /proc/self/clear_refs) over the
    current RSS just after `import torch`: weights, Adam state, activations, gradients, plus
    allocator and oneDNN caches, reported for each layout. Each PyTorch (phase, batch, layout)
    runs in a fresh process.
Timings are medians of steps after one untimed warm-up step: PyTorch --iters steps, ours
bench_e2e's 3 (its median_ms counter).
"""
import argparse
import contextlib
import json
import multiprocessing
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    sys.exit("error: PyTorch is not installed; run: python3 -m pip install torch numpy")

REPO = Path(__file__).resolve().parents[2]
EXPECTED_PARAMS = 2_164_593  # trainable 2,161,649 + 2,944 BN running statistics
PHASES = ("train_step", "inference")
BN_EPS, BN_MOMENTUM = 1e-3, 0.1
LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
PRECISIONS = ("fp32", "tf32")  # GPU only
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl")  # /proc/cpuinfo names


def conv_block(cin, cout):
    layers = []
    for c in (cin, cout):
        layers += [nn.Conv2d(c, cout, 3, padding=1),
                   nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class UNet(nn.Module):
    def __init__(self, in_channels=3, out_channels=1, base=16, depth=4, dropout=0.05):
        super().__init__()
        widths = [base << i for i in range(depth)]
        ins = [in_channels] + widths[:-1]
        self.enc = nn.ModuleList(conv_block(i, o) for i, o in zip(ins, widths))
        self.pool_drop = nn.ModuleList(nn.Dropout(dropout * 0.5 if i == 0 else dropout)
                                       for i in range(depth))
        self.bottleneck = conv_block(widths[-1], base << depth)
        self.up = nn.ModuleList(nn.ConvTranspose2d(2 * w, w, 3, stride=2, padding=1, output_padding=1)
                                for w in widths)
        self.concat_drop = nn.ModuleList(nn.Dropout(dropout) for _ in range(depth))
        self.dec = nn.ModuleList(conv_block(2 * w, w) for w in widths)
        self.head = nn.Conv2d(base, out_channels, 1)
        for m in self.modules():  # Keras' initialisers, as engine/layers.cpp
            if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3):
                std = (2.0 / (m.in_channels * 9)) ** 0.5 / 0.87962566103423978
                nn.init.trunc_normal_(m.weight, 0.0, std, -2 * std, 2 * std)
            elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(m.weight)  # ConvTranspose2d fans match Keras' layout
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.zeros_(m.bias)

    def forward(self, x):  # logits
        skips = []
        for enc, drop in zip(self.enc, self.pool_drop):
            x = enc(x)
            skips.append(x)
            x = drop(F.max_pool2d(x, 2))
        x = self.bottleneck(x)
        for i in reversed(range(len(self.enc))):
            x = torch.cat([self.up[i](x), skips[i]], dim=1)
            x = self.dec[i](self.concat_drop[i](x))
        return self.head(x)


def count_parameters(model):
    trainable = sum(p.numel() for p in model.parameters())
    stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    return trainable, stats


def make_step(phase, batch, size, device, memory_format):
    """One training step (forward, MSE on the sigmoid, backward, Adam) or one inference pass of a
    fresh model on random data, as a closure. On the GPU a step ends as ours does: with the loss,
    or the probabilities, on the host."""
    model = UNet().to(device).to(memory_format=memory_format)  # before Adam: its state takes the same layout
    x = torch.rand(batch, 3, size, size, device=device).contiguous(memory_format=memory_format)
    on_gpu = device != "cpu"
    if phase == "train_step":
        target = (torch.rand(batch, 1, size, size, device=device) < 0.5).float().contiguous(
            memory_format=memory_format)
        opt = torch.optim.Adam(model.parameters(), lr=2e-3, betas=(0.9, 0.999), eps=1e-7)
        model.train()

        def step():
            loss = F.mse_loss(torch.sigmoid(model(x)), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if on_gpu:
                loss.item()
        return step
    model.eval()

    def step():
        with torch.inference_mode():
            probabilities = torch.sigmoid(model(x))
            if on_gpu:
                probabilities.cpu()
    return step


def measure(phase, batch, size, threads, iters, layout):
    """One (phase, batch, layout) in a fresh process: (median ms per step, peak RSS growth in MB)."""
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    base_kb = reset_peak_rss()
    torch.manual_seed(0)
    memory_format = LAYOUTS[layout]
    step = make_step(phase, batch, size, "cpu", memory_format)
    times = []
    for _ in range(iters + 1):  # the first is the warm-up
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    peak_mb = None if base_kb is None else (status_kb("VmHWM") - base_kb) / 1024
    return statistics.median(times[1:]), peak_mb


def measure_cuda(phase, batch, size, iters, layout, precision):
    """One (phase, batch, layout, precision) on the GPU: (median ms per step, peak allocated MB)."""
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    memory_format = LAYOUTS[layout]
    step = make_step(phase, batch, size, "cuda", memory_format)
    for _ in range(2):  # warm-up: cudnn.benchmark tries its algorithms on the first call
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    peak_mb = torch.cuda.max_memory_allocated() / 1e6
    del step
    torch.cuda.empty_cache()
    return statistics.median(times), peak_mb


def status_kb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"no {field} in /proc/self/status")


def reset_peak_rss():
    """Resets the peak RSS (VmHWM) to the current RSS and returns it in kB; None off Linux.

    Not ru_maxrss: a spawned child inherits its parent's high-water mark through exec."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return status_kb("VmRSS")
    except OSError:
        return None


@contextlib.contextmanager
def quiet_stderr():  # the profiler's native logging writes to fd 2 directly
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def conv_backends(size, layout):
    """The ATen convolution kernels one eval forward of batch 1 in that layout dispatches to."""
    memory_format = LAYOUTS[layout]
    model = UNet().to(memory_format=memory_format).eval()
    generic = {"aten::conv2d", "aten::conv_transpose2d", "aten::convolution", "aten::_convolution"}
    with quiet_stderr(), torch.inference_mode(), torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        model(torch.rand(1, 3, size, size).contiguous(memory_format=memory_format))
    return sorted({e.name for e in prof.events() if "conv" in e.name and e.name not in generic})


def cpu_info():
    """The first CPU's model name and flag set from /proc/cpuinfo ("unknown" and empty off Linux)."""
    model, flags = "unknown", set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and model == "unknown":
                model = value.strip()
            elif key == "flags" and not flags:
                flags = set(value.split())
    return model, flags


def load_ours(args):
    """{(phase, batch): (ms, images/s, peak MB)} from bench_e2e's Google Benchmark JSON."""
    if args.ours_json:
        text = Path(args.ours_json).read_text()
    else:
        cmd = [args.ours, f"--threads={args.threads}", f"--size={args.size}",
               f"--batches={','.join(map(str, args.batches))}", f"--benchmark_filter=^{args.device}/",
               "--benchmark_format=json"]
        print("running:", shlex.join(cmd), flush=True)
        text = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    to_ms = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
    ours, rank = {}, {}
    for b in json.loads(text).get("benchmarks", []):
        m = re.match(rf"{args.device}/(train_step|inference)/batch:(\d+)", b.get("name", ""))
        if not m or b.get("error_occurred"):
            continue
        aggregate = b.get("run_type") == "aggregate"
        if aggregate and b.get("aggregate_name") != "median":
            continue
        key = (m.group(1), int(m.group(2)))
        if rank.get(key, -1) > int(aggregate):  # a median beats single repetitions
            continue
        # The median step where bench_e2e reports it (as for PyTorch below), else the mean.
        ms = b.get("median_ms", b["real_time"] * to_ms[b.get("time_unit", "ns")])
        ours[key] = (ms, key[1] * 1e3 / ms, b.get("peak_MB"))
        rank[key] = int(aggregate)
    return ours


def fmt(value, digits=1):
    return "n/a" if value is None else f"{value:,.{digits}f}"


def choices(known, what):
    """An argparse type: a comma-separated list of names from `known`, unique, in the order given."""
    def parse(text):
        names = text.split(",")
        unknown = [name for name in names if name not in known]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(unknown)}; choose from {', '.join(known)}")
        return list(dict.fromkeys(names))
    return parse


def print_table(head, rows, markdown, gpu):
    left = [h in ("phase", "faster") for h in head]  # text columns; numbers align right
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join("---" if is_left else "---:" for is_left in left) + "|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
        for row in [head] + rows:
            print("  ".join(c.ljust(w) if is_left else c.rjust(w)
                            for c, w, is_left in zip(row, widths, left)))
    print("\nfaster: the PyTorch configuration with the lower time; torch best ms and img/s are its.")
    print("speed ours/torch best = torch best ms / ours ms: > 1 means ours is faster.")
    if gpu:
        print("* torch peak MB: torch.cuda.max_memory_allocated during the timed steps (ours: the "
              "engine allocator's peak).")
    else:
        print("* torch peak MB: growth of the process's peak RSS during that run (not the same measure "
              "as ours, the engine's own peak).")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", default="1,6,16", type=lambda s: [int(b) for b in s.split(",")])
    p.add_argument("--size", type=int, default=240)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    p.add_argument("--threads", type=int, default=cores)
    p.add_argument("--iters", type=int, default=3, help="timed steps after one warm-up")
    p.add_argument("--ours", default=str(REPO / "build/bench/bench_e2e"), help="our bench_e2e binary")
    p.add_argument("--ours-json", help="saved bench_e2e JSON output, instead of running the binary")
    p.add_argument("--torch-only", action="store_true")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--layouts", default=",".join(LAYOUTS), type=choices(LAYOUTS, "layout"),
                   help="PyTorch memory layouts to run, comma-separated (default: %(default)s)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where both sides run (cuda: ours from bench_e2e's cuda/ rows)")
    p.add_argument("--precisions", default=",".join(PRECISIONS), type=choices(PRECISIONS, "precision"),
                   help="GPU only: fp32 and/or tf32 (default: %(default)s)")
    args = p.parse_args()
    if args.device == "cuda":
        return main_cuda(args)
    if not (args.torch_only or args.ours_json or Path(args.ours).is_file()):
        print(f"error: our benchmark binary {args.ours} is missing; build it with scripts/build.sh "
              "(or pass --ours-json FILE, or --torch-only)", file=sys.stderr)
        return 1

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    model_name, flags = cpu_info()
    print(f"CPU: {model_name}")
    print("ISA: " + ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in ISA_FLAGS))
    print(f"threads: {args.threads}; image {args.size}x{args.size}; batches "
          f"{','.join(map(str, args.batches))}; median of {args.iters} after 1 warm-up")
    print(f"torch {torch.__version__}; CPU capability {torch.backends.cpu.get_cpu_capability()}")
    for line in torch.__config__.parallel_info().splitlines()[:8]:
        print("  " + line.strip())
    print(f"oneDNN (mkldnn): available {torch.backends.mkldnn.is_available()}, "
          f"enabled {torch.backends.mkldnn.enabled}")
    for layout in args.layouts:
        print(f"  {layout} convolutions run by {', '.join(conv_backends(args.size, layout))}")
    trainable, stats = count_parameters(UNet())
    print(f"parameters: {trainable + stats:,} (trainable {trainable:,} + BN statistics {stats:,})")
    assert trainable + stats == EXPECTED_PARAMS, f"expected {EXPECTED_PARAMS:,} parameters"

    ours = {} if args.torch_only else load_ours(args)
    print(flush=True)
    spawn = multiprocessing.get_context("spawn")
    head = ["phase", "batch", "ours ms", *(f"torch {layout} ms" for layout in args.layouts), "faster",
            "torch best ms", "speed ours/torch best (>1: ours faster)", "ours img/s", "torch best img/s",
            "ours peak MB", *(f"torch {layout} peak MB*" for layout in args.layouts)]
    rows = []
    for phase in PHASES:
        for batch in args.batches:
            torch_runs = {}  # layout: (ms, peak MB)
            for layout in args.layouts:
                with spawn.Pool(1) as pool:
                    torch_runs[layout] = pool.apply(
                        measure, (phase, batch, args.size, args.threads, args.iters, layout))
                print(f"  torch {phase} batch {batch} {layout}: {torch_runs[layout][0]:.1f} ms",
                      file=sys.stderr, flush=True)
            best = min(torch_runs, key=lambda layout: torch_runs[layout][0])
            best_ms = torch_runs[best][0]
            ours_ms, ours_ips, ours_mb = ours.get((phase, batch), (None, None, None))
            ratio = best_ms / ours_ms if ours_ms else None
            rows.append([phase, str(batch), fmt(ours_ms), *(fmt(ms) for ms, _ in torch_runs.values()), best,
                         fmt(best_ms), fmt(ratio, 2), fmt(ours_ips, 2), fmt(batch * 1e3 / best_ms, 2),
                         fmt(ours_mb, 0), *(fmt(mb, 0) for _, mb in torch_runs.values())])
    print_table(head, rows, args.markdown, gpu=False)
    return 0


def main_cuda(args):
    """--device cuda: every (precision, layout) in this process, against bench_e2e's cuda/ rows."""
    if not torch.cuda.is_available():
        print("error: PyTorch sees no CUDA device", file=sys.stderr)
        return 1
    if not (args.torch_only or args.ours_json or Path(args.ours).is_file()):
        print(f"error: our benchmark binary {args.ours} is missing (or pass --ours-json FILE, or --torch-only)",
              file=sys.stderr)
        return 1
    props = torch.cuda.get_device_properties(0)
    print(f"GPU: {props.name}, {props.multi_processor_count} SMs; torch {torch.__version__}, CUDA "
          f"{torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}; cudnn.benchmark on")
    print(f"image {args.size}x{args.size}; batches {','.join(map(str, args.batches))}; "
          f"median of {args.iters} after 2 warm-ups")
    trainable, stats = count_parameters(UNet())
    assert trainable + stats == EXPECTED_PARAMS, f"expected {EXPECTED_PARAMS:,} parameters"
    ours = {} if args.torch_only else load_ours(args)
    configs = [(precision, layout) for precision in args.precisions for layout in args.layouts]
    names = [f"{precision} {layout}" for precision, layout in configs]
    head = ["phase", "batch", "ours ms", *(f"torch {n} ms" for n in names), "faster", "torch best ms",
            "speed ours/torch best (>1: ours faster)", "ours img/s", "torch best img/s", "ours peak MB",
            *(f"torch {n} peak MB*" for n in names)]
    rows = []
    for phase in PHASES:
        for batch in args.batches:
            runs = {}
            for (precision, layout), name in zip(configs, names):
                runs[name] = measure_cuda(phase, batch, args.size, args.iters, layout, precision)
                print(f"  torch {phase} batch {batch} {name}: {runs[name][0]:.2f} ms", file=sys.stderr, flush=True)
            best = min(runs, key=lambda name: runs[name][0])
            best_ms = runs[best][0]
            ours_ms, ours_ips, ours_mb = ours.get((phase, batch), (None, None, None))
            ratio = best_ms / ours_ms if ours_ms else None
            rows.append([phase, str(batch), fmt(ours_ms, 2), *(fmt(ms, 2) for ms, _ in runs.values()), best,
                         fmt(best_ms, 2), fmt(ratio, 2), fmt(ours_ips, 0), fmt(batch * 1e3 / best_ms, 0),
                         fmt(ours_mb, 0), *(fmt(mb, 0) for _, mb in runs.values())])
    print_table(head, rows, args.markdown, gpu=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
