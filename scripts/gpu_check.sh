#!/usr/bin/env bash
# One prepared command for a lent GPU machine (docs/GPU.md): proves and measures the CUDA backend
# from the binaries that scripts/gpu_bundle.sh packed into .gpu-bundle/, stage by stage, each
# reporting pass / fail / skip with its reason and each time-boxed, the whole within 8 minutes:
#   bundle        manifest, glibc, cuDNN found, every library of every binary resolved (audit)
#   smoke         the bundled binaries start; cuDNN's descriptor tests; a tiny CPU step, profile, training
#   gpu           GPU name, SMs, driver / CUDA / cuDNN versions, copy bandwidth, FP32 and TF32 peaks
#   test_cuda     every handwritten kernel against its CPU twin on the GPU
#   test_backend  the CUDA backend against the CPU backend (cuDNN and handwritten convolutions)
#   training      the reference model, one epoch on a phantom: CPU vs CUDA (cuDNN, handwritten)
#   sanitizer     compute-sanitizer memcheck and racecheck on a subset of the kernel tests
#   bench_kernels every CUDA kernel (handwritten and cuDNN) on the reference shapes
#   bench_e2e     training step and inference at batch 1, 6, 16, 64: images/s, peak memory
#   profile       `unet profile --device cuda` at batch 6 and 64, traces, and predicted vs measured
#   pytorch       the same training step in PyTorch on the GPU (FP32/TF32, NCHW/channels_last)
# Results: summary.md, summary.json, logs/ and every JSON/trace in build-gpu-check/, all of them
# but the checkpoints also packed as results.tar.gz; with OUT set (the GPU machine), in a scratch folder, and $OUT gets
# summary.md, summary.json and results.tar.gz. The summary is printed last. Exit status 1 when a
# stage failed.
#
# Usage: scripts/gpu_check.sh [--dry-run] [--bundle DIR]
#   --dry-run  no GPU needed: runs bundle and smoke with only the bundle's libraries (and the
#              machine's cuDNN) on the library path, reports every GPU stage as skipped. CI runs it.
# Environment: OUT (results folder), UNET_PYTHON (a Python with PyTorch), UNET_CUDNN_DIR (a folder
# holding libcudnn.so.9, when discovery does not find the right one), UNET_SYSTEM_CXX=1 (use the
# machine's libstdc++ even where the bundle's would load; the dry run's way to test that path).
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=0
bundle=.gpu-bundle
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --bundle) bundle=${2:?--bundle needs a folder}; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
# The device machine sends back only a few files from $OUT, so with OUT set the stages write to a
# scratch folder and $OUT receives summary.md, summary.json and results.tar.gz (everything).
dest=${OUT:-}
out=build-gpu-check
[ -z "$dest" ] || out=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
mkdir -p "$out/logs"
out=$(cd "$out" && pwd)
bundle=$(cd "$bundle" 2>/dev/null && pwd || echo "$PWD/$bundle")
results="$out/stages.tsv"
: >"$results"
start=$(date +%s)
deadline=$((start + 450))  # 7.5 minutes of stages; the summary follows

# A Python with PyTorch (the GPU machine's environment; optional for the dry run).
py=""
for candidate in ${UNET_PYTHON:-} python3 python; do
  if command -v "$candidate" >/dev/null && timeout 60 "$candidate" -c 'import torch' 2>/dev/null; then
    py=$(command -v "$candidate")
    break
  fi
done

# cuDNN: the machine's own libcudnn.so.9 and its sub-libraries, with the other NVIDIA wheel
# libraries beside it (cuDNN loads cuBLASLt and NVRTC at run time). Order: UNET_CUDNN_DIR,
# PyTorch's nvidia-cudnn wheel, torch/lib, the dynamic linker's cache, the usual folders.
cudnn_dir=""
wheel_dirs=""
if [ -n "$py" ]; then
  wheel_dirs=$(timeout 60 "$py" - <<'EOF' 2>/dev/null || true
import importlib.util, pathlib
spec = importlib.util.find_spec("nvidia")
for root in (spec.submodule_search_locations if spec else []):
    for lib in sorted(pathlib.Path(root).glob("*/lib")):
        print(lib)
spec = importlib.util.find_spec("torch")
if spec and spec.origin:
    print(pathlib.Path(spec.origin).parent / "lib")
EOF
)
fi
for dir in ${UNET_CUDNN_DIR:-} $wheel_dirs \
           $(ldconfig -p 2>/dev/null | awk '/libcudnn\.so\.9 / { sub(/\/[^\/]*$/, "", $NF); print $NF }') \
           /usr/local/cuda/lib64 /usr/lib/x86_64-linux-gnu; do
  if [ -e "$dir/libcudnn.so.9" ] && [ -e "$dir/libcudnn_cnn.so.9" ]; then
    cudnn_dir=$dir
    break
  fi
done
cudnn_version=unknown
if [ -n "$cudnn_dir" ] && [ -f "$cudnn_dir/../include/cudnn_version.h" ]; then
  cudnn_version=$(awk '/#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) / { v = v (v ? "." : "") $3 } END { print v }' \
                  "$cudnn_dir/../include/cudnn_version.h")
fi
# The bundle's libstdc++ (lib-cxx/) where this glibc can load it, else the machine's own.
host_glibc=$(getconf GNU_LIBC_VERSION | awk '{ print $2 }')
cxx_glibc=$(sed -n 's/^glibc_required_by_lib_cxx=//p' "$bundle/manifest.txt" 2>/dev/null)
libpath="$bundle/lib"
cxx="the machine's libstdc++ (glibc $host_glibc < ${cxx_glibc:-?}, which the bundle's needs)"
if [ "${UNET_SYSTEM_CXX:-0}" = 1 ]; then
  cxx="the machine's libstdc++ (UNET_SYSTEM_CXX=1)"
elif [ -n "$cxx_glibc" ] && [ "$(printf '%s\n%s\n' "$cxx_glibc" "$host_glibc" | sort -V | head -1)" = "$cxx_glibc" ]; then
  libpath="$libpath:$bundle/lib-cxx"
  cxx="the bundle's libstdc++"
fi
[ -z "$cudnn_dir" ] || libpath="$libpath:$cudnn_dir"
for dir in $wheel_dirs; do
  [ "$dir" = "$cudnn_dir" ] || [[ "$dir" == */torch/lib ]] || libpath="$libpath:$dir"
done

# The GPU probe (stage gpu), run by the machine's Python: names, versions, copy bandwidth, sgemm peaks.
read -r -d '' gpu_probe_py <<'EOF' || true
import json, sys, torch
path, cudnn_dir, cudnn_header = sys.argv[1:4]
env = {"torch": torch.__version__, "torch_cuda": torch.version.cuda,
       "torch_cudnn": torch.backends.cudnn.version(), "our_cudnn_dir": cudnn_dir,
       "our_cudnn_version": cudnn_header, "cuda_available": torch.cuda.is_available()}
if not env["cuda_available"]:
    json.dump(env, open(path, "w"), indent=1)
    sys.exit("PyTorch sees no CUDA device")
p = torch.cuda.get_device_properties(0)
env.update(name=p.name, sms=p.multi_processor_count, capability=f"{p.major}.{p.minor}",
           memory_gib=round(p.total_memory / 2**30, 1))

def timed(fn, reps):
    fn()
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(reps):
        fn()
    b.record()
    b.synchronize()
    return a.elapsed_time(b) / 1e3 / reps

src = torch.empty(2**28, device="cuda")  # 1 GiB
dst = torch.empty_like(src)
env["copy_gbps"] = round(2 * src.numel() * 4 / timed(lambda: dst.copy_(src), 20) / 1e9, 1)
del src, dst
n = 8192
x, y = torch.randn(n, n, device="cuda"), torch.randn(n, n, device="cuda")
for key, tf32 in (("fp32_tflops", False), ("tf32_tflops", True)):
    torch.backends.cuda.matmul.allow_tf32 = tf32
    env[key] = round(2 * n**3 / timed(lambda: x @ y, 10) / 1e12, 1)
json.dump(env, open(path, "w"), indent=1)
print(json.dumps(env, indent=1))
EOF

# Runs one of the bundle's binaries with the bundle's library path.
ours() {
  LD_LIBRARY_PATH="$libpath" "$bundle/bin/$1" "${@:2}"
}
# Seconds left in the current stage (each stage's shell gets STAGE_END).
left() {
  echo $((STAGE_END - $(date +%s)))
}
# Records the stage's one-line reason (the last call wins).
reason() {
  echo "$*" >"$out/logs/$STAGE.reason"
}
# Reads key=value from the bundle's manifest.
manifest() {
  sed -n "s/^$1=//p" "$bundle/manifest.txt" 2>/dev/null
}

stage_bundle() {
  if [ ! -f "$bundle/manifest.txt" ]; then
    reason "no $bundle/manifest.txt: run scripts/gpu_bundle.sh on the build machine and carry .gpu-bundle"
    return 1
  fi
  cat "$bundle/manifest.txt"
  local need
  need=$(manifest glibc_required)
  echo "glibc: this machine $host_glibc, the bundle needs >= $need; C++ runtime: $cxx"
  if [ "$(printf '%s\n%s\n' "$need" "$host_glibc" | sort -V | head -1)" != "$need" ]; then
    reason "glibc $host_glibc here, the bundle needs >= $need (rebuild the bundle on an older distribution)"
    return 1
  fi
  if [ -z "$cudnn_dir" ]; then
    reason "no libcudnn.so.9 found (PyTorch's nvidia-cudnn wheel, ldconfig, /usr/local/cuda/lib64): set UNET_CUDNN_DIR"
    return 1
  fi
  echo "cuDNN: $cudnn_dir (version $cudnn_version; built against $(manifest cudnn_built_against))"
  echo "library path of our binaries: $libpath"
  # Every library must resolve into the bundle, the cuDNN / NVIDIA wheel folders, or be one the
  # machine provides (glibc, the driver, and the C++ runtime when lib-cxx/ is off the path):
  # anything else would be missing on a bare GPU machine. Every version and symbol must bind.
  local provided='^(linux-vdso|ld-linux-x86-64|libc|libm|libdl|librt|libpthread|libresolv|libcuda)\.so'
  [[ ":$libpath:" == *":$bundle/lib-cxx:"* ]] || provided='^(linux-vdso|ld-linux-x86-64|libc|libm|libdl|librt|libpthread|libresolv|libcuda|libstdc\+\+|libgcc_s)\.so'
  local bad=0 name arrow path rest listing undefined
  for b in "$bundle"/bin/*; do
    listing=$(LD_LIBRARY_PATH="$libpath" ldd "$b" 2>&1)
    if grep 'version .* not found' <<<"$listing"; then
      bad=1
    fi
    while read -r name arrow path rest; do
      if [ "$arrow" != "=>" ]; then
        continue
      elif [ "$path" = "not" ]; then
        echo "MISSING: $(basename "$b") needs $name: not found"
        bad=1
      elif [[ "$name" =~ $provided ]] || [[ "$path" == "$bundle/lib/"* ]] || [[ ":$libpath:" == *":$(dirname "$path"):"* ]]; then
        continue
      else
        echo "OUTSIDE THE BUNDLE: $(basename "$b") takes $name from $path"
        bad=1
      fi
    done <<<"$listing"
    # Every symbol binds too (an older cuDNN 9 than the one we built against may lack some).
    undefined=$(LD_LIBRARY_PATH="$libpath" ldd -r "$b" 2>&1 | grep 'undefined symbol' || true)
    if [ -n "$undefined" ]; then
      echo "UNBOUND in $(basename "$b"): $undefined"
      bad=1
    fi
  done
  if [ "$bad" = 1 ]; then
    reason "libraries missing or taken from outside the bundle (see the log)"
    return 1
  fi
  reason "$(ls "$bundle/bin" | wc -l) binaries resolve with $cxx; cuDNN $cudnn_version from $cudnn_dir;" \
    "commit $(manifest commit)"
}

stage_smoke() {
  ours unet --help >/dev/null
  # Catch2 v2 exits with the number of names listed: count the lines instead.
  local tests_cuda tests_backend
  tests_cuda=$( (ours test_cuda --list-test-names-only || true) | grep -c . || true)
  tests_backend=$( (ours test_backend --list-test-names-only || true) | grep -c . || true)
  echo "test_cuda lists $tests_cuda cases, test_backend $tests_backend"
  if [ "$tests_cuda" = 0 ] || [ "$tests_backend" = 0 ]; then
    reason "test_cuda or test_backend listed no test case (did it start? see the log)"
    return 1
  fi
  # cuDNN's descriptor cases need no GPU: they load the machine's cuDNN and its sub-libraries.
  ours test_backend "[cudnn]~[backend]"
  ours bench_e2e --tiny --benchmark_filter='^cpu/' --benchmark_format=json >"$out/smoke_bench_e2e_tiny.json"
  ours unet profile --device cpu --size 32 --base-filters 4 --depth 2 --batch 2 --steps 1 --warmup 0 \
    --trace "$out/smoke_profile_trace.json"
  ours unet train --data phantom:3 --size 32 --base-filters 4 --depth 2 --epochs 1 --batch 4 --device cpu \
    --out "$out/smoke_train"
  reason "binaries start; $tests_cuda + $tests_backend test cases listed; cuDNN descriptor cases pass;" \
    "tiny CPU step, profile and training run"
}

# The later GPU stages run when nvidia-smi lists a GPU or PyTorch sees one (gpu_ok).
stage_gpu() {
  if command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit \
       --format=csv | tee "$out/logs/nvidia-smi.csv" | grep -q .; then
    touch "$out/gpu_ok"
  else
    echo "nvidia-smi: not found or no GPU listed"
  fi
  if [ -z "$py" ]; then
    reason "no Python with PyTorch found (set UNET_PYTHON): no probe of bandwidth and peaks"
    return 1
  fi
  if ! "$py" -c "$gpu_probe_py" "$out/gpu_env.json" "$cudnn_dir" "$cudnn_version"; then
    reason "the PyTorch probe failed: $(tail -1 "$out/logs/gpu.log")"
    return 1
  fi
  touch "$out/gpu_ok"
  reason "$("$py" -c "
import json; e = json.load(open('$out/gpu_env.json'))
print(f\"{e['name']}, {e['sms']} SMs, sm_{e['capability']}, driver $(sed -n 2p "$out/logs/nvidia-smi.csv" 2>/dev/null | cut -d, -f2 | tr -d ' '), torch {e['torch']} (CUDA {e['torch_cuda']}, cuDNN {e['torch_cudnn']}); copy {e['copy_gbps']} GB/s, sgemm FP32 {e['fp32_tflops']} / TF32 {e['tf32_tflops']} TFLOP/s\")")"
}

# Runs a Catch2 test binary of the bundle; fails when its cases skipped for want of a GPU.
catch_run() {
  local log="$out/logs/$STAGE.catch.log" rc=0
  ours "$@" --durations yes >"$log" 2>&1 || rc=$?
  cat "$log"
  if grep -q "skipped: " "$log"; then
    reason "$(grep -m1 -o 'skipped: .*' "$log")"
    return 1
  fi
  reason "$(grep -E '^(All tests passed|test cases:)' "$log" | tail -1)"
  return "$rc"
}

stage_test_cuda() {
  catch_run test_cuda
}

stage_test_backend() {
  catch_run test_backend
}

stage_training() {
  # After an epoch, val_loss depends chaotically on round-off (the model is early in training and
  # eval-mode batch norm uses running statistics of a few steps): two correct CPU kernel sets
  # differ by ~4% here. So: the epoch's training loss must agree within 1e-3; the CPU's best
  # checkpoint, scored on CUDA, must give the CPU's pooled Dice and pixel accuracy within 1e-3
  # (same weights: only round-off near the threshold); and val_loss must stay within 3x the
  # spread of the two CPU kernel sets (at least 1e-3), which only a real fault exceeds.
  local run summary="" bad=0 t=$out/training
  ours unet train --data phantom:5 --size 128 --epochs 1 --batch 6 --seed 1 --device cpu --out "$t/cpu"
  ours unet train --data phantom:5 --size 128 --epochs 1 --batch 6 --seed 1 --device cpu \
    --kernels im2col_gemm --out "$t/cpu_im2col_gemm"
  for run in auto cudnn handwritten; do
    ours unet train --data phantom:5 --size 128 --epochs 1 --batch 6 --seed 1 --device cuda --conv "$run" \
      --out "$t/cuda_$run"
  done
  for run in cpu cuda; do
    ours unet eval --checkpoint "$t/cpu/best.ckpt" --data phantom:5 --split "$t/cpu/split.txt" --device "$run" \
      --overlays 0 --out "$t/eval_$run"
  done
  # rel_diff A B COLUMN: |B - A| / |A| of a log.csv column (2: loss, 3: val_loss) of runs A and B.
  rel_diff() {
    paste -d, <(sed -n 2p "$t/$1/log.csv") <(sed -n 2p "$t/$2/log.csv") |
      awk -F, -v c="$3" '{ n = NF / 2; d = ($(n + c) - $c) / $c; printf "%.2e", d < 0 ? -d : d }'
  }
  # pooled FIELD RUN: that field of the "pooled" line of an eval's summary.json.
  pooled() { grep '"pooled"' "$t/$2/summary.json" | grep -o "\"$1\": [-0-9.e]*" | awk '{ print $2 }'; }
  above() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'; }
  local spread bound
  spread=$(rel_diff cpu cpu_im2col_gemm 3)
  bound=$(awk -v s="$spread" 'BEGIN { b = 3 * s; printf "%.2e", (b > 1e-3 ? b : 1e-3) }')
  for run in auto cudnn handwritten; do
    local loss val
    loss=$(rel_diff cpu "cuda_$run" 2) val=$(rel_diff cpu "cuda_$run" 3)
    summary="$summary $run: loss rel. diff $loss, val_loss $val;"
    if above "$loss" 1e-3 || above "$val" "$bound"; then bad=1; fi
  done
  local field scores=""
  for field in dice accuracy; do
    local a b d
    a=$(pooled "$field" eval_cpu) b=$(pooled "$field" eval_cuda)
    d=$(awk -v a="$a" -v b="$b" 'BEGIN { d = b - a; printf "%.1e", d < 0 ? -d : d }')
    scores="$scores $field $a vs $b (|diff| $d);"
    if [ -z "$a" ] || [ -z "$b" ] || above "$d" 1e-3; then bad=1; fi
  done
  reason "reference model, 1 epoch (4 patients, 128 px, batch 6) vs CPU:$summary tolerances 1e-3 (loss), $bound (val_loss: 3x the CPU kernel sets' $spread); CPU checkpoint scored on CUDA (--conv auto):$scores tolerance 1e-3"
  return "$bad"
}

stage_sanitizer() {
  local tool sanitizer="" rc status="" log
  for candidate in "$(command -v compute-sanitizer || true)" "$(dirname "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)")/compute-sanitizer" \
                   /usr/local/cuda/bin/compute-sanitizer; do
    if [ -x "$candidate" ]; then
      sanitizer=$candidate
      break
    fi
  done
  if [ -z "$sanitizer" ]; then
    reason "compute-sanitizer not found (PATH, beside nvcc, /usr/local/cuda/bin)"
    return 2
  fi
  # memcheck: every global access of the memory-bound kernels and a small convolution;
  # racecheck: the kernels that share memory inside a block (reductions, conv tiles).
  for tool in memcheck racecheck; do
    local subset="[pool],[concat],[dropout],[batchnorm],[loss],cuda conv2d: U-Net 3x3 'same' layer at 15"
    [ "$tool" = racecheck ] && subset="[batchnorm],[loss],cuda conv2d: U-Net 3x3 'same' layer at 15"
    log="$out/logs/sanitizer_$tool.log"
    rc=0
    timeout -k 5 $(( $(left) / 2 > 5 ? $(left) / 2 : 5 )) \
      env LD_LIBRARY_PATH="$libpath" "$sanitizer" --tool "$tool" --error-exitcode 99 --print-limit 20 \
      "$bundle/bin/test_cuda" "$subset" >"$log" 2>&1 || rc=$?
    tail -5 "$log"
    if grep -qiE 'not supported|unable to|insufficient|could not' "$log" && ! grep -q 'ERROR SUMMARY' "$log"; then
      reason "compute-sanitizer refused: $(grep -m1 -iE 'not supported|unable to|insufficient|could not' "$log")"
      return 2
    fi
    status="$status $tool: $(grep -m1 -o 'ERROR SUMMARY: .*' "$log" || echo "exit $rc")"
    [ "$rc" = 0 ] || { reason "$status (rc $rc; see logs/sanitizer_$tool.log)"; return 1; }
  done
  reason "$status"
}

stage_bench_kernels() {
  ours bench_kernels --benchmark_filter='^(cuda|cudnn)/' --benchmark_min_time=0.02 \
    --benchmark_out="$out/bench_kernels.json" --benchmark_out_format=json
  reason "$(grep -c '"name"' "$out/bench_kernels.json") CUDA/cuDNN kernel cases -> bench_kernels.json"
}

stage_bench_e2e() {
  ours bench_e2e --batches=1,6,16,64 --benchmark_filter='^cuda/' \
    --benchmark_out="$out/bench_e2e.json" --benchmark_out_format=json
  reason "training step and inference at batch 1, 6, 16, 64 -> bench_e2e.json"
}

stage_profile() {
  local batch conv
  for batch in 6 64; do
    for conv in auto cudnn handwritten; do
      ours unet profile --device cuda --conv "$conv" --batch "$batch" --steps 3 --warmup 1 \
        --trace "$out/profile_trace_cuda_${conv}_batch$batch.json" >"$out/profile_cuda_${conv}_batch$batch.txt"
      grep '^per step' "$out/profile_cuda_${conv}_batch$batch.txt"
      if [ -n "$py" ]; then
        "$py" scripts/gpu_predict.py "docs/results/profile_trace_batch$batch.json" \
          --measured "$out/profile_trace_cuda_${conv}_batch$batch.json" >"$out/predicted_vs_measured_${conv}_batch$batch.md"
      fi
    done
  done
  reason "$(grep -h '^per step' "$out"/profile_cuda_auto_batch6.txt "$out"/profile_cuda_auto_batch64.txt | tr '\n' ' ')"
}

stage_pytorch() {
  if [ -z "$py" ]; then
    reason "no Python with PyTorch found (set UNET_PYTHON)"
    return 2
  fi
  local ours_flag=(--torch-only)
  [ -s "$out/bench_e2e.json" ] && ours_flag=(--ours-json "$out/bench_e2e.json")
  "$py" bench/peers/pytorch_unet.py --device cuda --batches 1,6,16,64 --iters 5 "${ours_flag[@]}" --markdown \
    >"$out/pytorch_peer.md"
  cat "$out/pytorch_peer.md"
  reason "PyTorch $("$py" -c 'import torch; print(torch.__version__)') FP32/TF32 x NCHW/channels_last -> pytorch_peer.md"
}

export bundle out libpath py dry_run cudnn_dir cudnn_version gpu_probe_py host_glibc cxx
export -f ours left reason manifest catch_run stage_bundle stage_smoke stage_gpu stage_test_cuda \
  stage_test_backend stage_training stage_sanitizer stage_bench_kernels stage_bench_e2e stage_profile stage_pytorch

# run_stage NAME CAP_SECONDS cpu|probe|gpu: runs stage_NAME under a timeout (its cap, cut to what
# is left of the budget) and appends "name status seconds reason" to stages.tsv. probe and gpu
# stages skip in a dry run; gpu stages also skip when the probe found no usable GPU.
run_stage() {
  local name=$1 cap=$2 needs=$3 status rc=0 why="" t0 budget
  t0=$(date +%s)
  budget=$((deadline - t0 < cap ? deadline - t0 : cap))
  rm -f "$out/logs/$name.reason"
  if [ "$needs" != cpu ] && [ "$dry_run" = 1 ]; then
    status=skip why="dry run: needs the GPU"
  elif [ "$needs" = gpu ] && [ ! -e "$out/gpu_ok" ]; then
    status=skip why="no usable GPU (see the gpu stage)"
  elif [ "$budget" -lt 10 ]; then
    status=skip why="out of time: the stages' 7.5-minute budget is spent"
  else
    printf '== %s (up to %d s)\n' "$name" "$budget"
    STAGE=$name STAGE_END=$((t0 + budget)) timeout -k 5 "$budget" bash -c "set -euo pipefail; stage_$name" \
      >"$out/logs/$name.log" 2>&1 || rc=$?
    case $rc in
      0) status=pass ;;
      2) status=skip ;;
      124 | 137) status=fail why="timed out after ${budget} s" ;;
      *) status=fail ;;
    esac
    [ -n "$why" ] || why=$(cat "$out/logs/$name.reason" 2>/dev/null || true)
    [ -n "$why" ] || why="exit status $rc; last line: $(tail -1 "$out/logs/$name.log")"
  fi
  printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$(($(date +%s) - t0))" "$why" >>"$results"
  printf '   %s: %s (%s)\n' "$name" "$status" "$why"
}

rm -f "$out/gpu_ok"
echo "gpu_check: bundle $bundle, results $out$([ "$dry_run" = 1 ] && echo ', dry run (no GPU stages)')"
echo "gpu_check: Python with PyTorch: ${py:-none}; cuDNN: ${cudnn_dir:-not found}"
run_stage bundle 30 cpu
run_stage smoke 90 cpu
run_stage gpu 60 probe
run_stage test_cuda 120 gpu
run_stage test_backend 60 gpu
run_stage training 90 gpu
run_stage sanitizer 90 gpu
run_stage bench_kernels 150 gpu
run_stage bench_e2e 90 gpu
run_stage profile 60 gpu
run_stage pytorch 120 gpu

# Summary: JSON for tools, Markdown for people (printed last).
json_string() {
  printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | tr '\t\n\r' '   ')"
}
{
  printf '{\n  "dry_run": %s,\n  "started": %s,\n  "seconds": %d,\n' \
    "$([ "$dry_run" = 1 ] && echo true || echo false)" "$(json_string "$(date -u -d "@$start" +%FT%TZ)")" \
    $(($(date +%s) - start))
  printf '  "python": %s,\n  "cudnn_dir": %s,\n  "cudnn_version": %s,\n' "$(json_string "$py")" \
    "$(json_string "$cudnn_dir")" "$(json_string "$cudnn_version")"
  printf '  "bundle": {'
  sep=""
  while IFS='=' read -r key value; do
    printf '%s\n    %s: %s' "$sep" "$(json_string "$key")" "$(json_string "$value")"
    sep=","
  done < <(cat "$bundle/manifest.txt" 2>/dev/null)
  printf '\n  },\n  "stages": ['
  sep=""
  while IFS=$'\t' read -r name status seconds why; do
    log=null
    [ ! -f "$out/logs/$name.log" ] || log=$(json_string "logs/$name.log")
    printf '%s\n    {"name": %s, "status": %s, "seconds": %s, "reason": %s, "log": %s}' "$sep" "$(json_string "$name")" \
      "$(json_string "$status")" "$seconds" "$(json_string "$why")" "$log"
    sep=","
  done <"$results"
  printf '\n  ]\n}\n'
} >"$out/summary.json"

failed=$(awk -F'\t' '$2 == "fail"' "$results" | wc -l)
{
  echo "# gpu_check $([ "$dry_run" = 1 ] && echo '(dry run)') $(date -u -d "@$start" '+%F %H:%M UTC')"
  echo
  echo "Host $(hostname), $(nproc) cores; bundle $(manifest commit) built $(manifest built);" \
    "Python ${py:-none}; cuDNN ${cudnn_dir:-not found} ($cudnn_version); $(($(date +%s) - start)) s in all."
  echo
  echo "| stage | status | s | reason |"
  echo "|---|---|---:|---|"
  awk -F'\t' '{ gsub(/\|/, "\\|", $4); printf "| %s | %s | %s | %s |\n", $1, toupper($2), $3, $4 }' "$results"
  for part in pytorch_peer.md predicted_vs_measured_auto_batch6.md; do
    if [ -s "$out/$part" ]; then
      echo
      echo "## $part"
      echo
      cat "$out/$part"
    fi
  done
  echo
  echo "$failed stage(s) failed. Files: ${dest:-$out} (results.tar.gz holds every file but the checkpoints; logs/ each stage's output)."
} >"$out/summary.md"
# Without the checkpoints (8.6 MB each for the reference model): a file comes back from the GPU
# machine only under 16 MiB.
tar --exclude='*.ckpt' -czf "$out.tar.gz" -C "$out" . && mv "$out.tar.gz" "$out/results.tar.gz"
if [ "$(stat -c %s "$out/results.tar.gz")" -gt $((15 << 20)) ]; then
  echo "gpu_check: results.tar.gz is over 15 MiB and may not come back from the GPU machine" >&2
fi
if [ -n "$dest" ]; then
  mkdir -p "$dest"
  cp "$out/summary.md" "$out/summary.json" "$out/results.tar.gz" "$dest/"
fi
cat "$out/summary.md"
[ "$failed" = 0 ]
