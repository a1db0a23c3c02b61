#!/usr/bin/env bash
# Fuzzes every file reader (npy, PNG, JPEG, BMP, TIFF, NIfTI .nii and .nii.gz, checkpoint, split
# file) with libFuzzer under AddressSanitizer + UndefinedBehaviorSanitizer (clang), each target in
# turn, from a seed corpus of valid files (fuzz/make_corpus.cpp, plus the reproducers of
# ../shared/reliability when present).
#
#   scripts/fuzz.sh                       every target for 60 s (CI's mode)
#   scripts/fuzz.sh --seconds 1800        a campaign: 30 minutes per target
#   scripts/fuzz.sh --seconds 600 jpeg    some targets only
#
# Each target runs with -rss_limit_mb=1024 (a reader must never need 1 GB), -timeout=10 and leak
# detection. The corpus grows in build-fuzz/corpus/<target>/ and is kept between runs; findings
# (crash-*, leak-*, timeout-*, oom-*, slow-unit-* for one over 10 s) go to build-fuzz/findings/<target>/ and make the script
# fail, naming them: turn each into a regression test under tests/. Findings of an earlier run
# are replayed before fuzzing: those that pass now (fixed) are removed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
missing=()
for p in clang libclang-rt-14-dev libomp-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "fuzz: installing ${missing[*]}"
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

seconds=60
targets=()
while (($#)); do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
((${#targets[@]})) || targets=(npy png jpeg bmp tiff nifti nifti_gz checkpoint split)

# clang reports loops it could not vectorise as warnings (errors under -Werror): not a defect.
flags="-fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=undefined -fno-omit-frame-pointer -Wno-pass-failed"
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DUNET_CUDA=OFF \
  -DUNET_BENCH=OFF -DBUILD_TESTING=OFF -DUNET_FUZZ=ON -DUNET_EMU_UCONTEXT=ON \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build build-fuzz -j "$(nproc 2>/dev/null || echo 2)" --target make_corpus "${targets[@]/#/fuzz_}"

seeds=build-fuzz/seeds
rm -rf "$seeds"
ASAN_OPTIONS=detect_leaks=0 build-fuzz/fuzz/make_corpus "$seeds"
declare -A reproducers=([npy]=npy [png]=png [jpeg]=jpg [tiff]=tif [nifti_gz]=nii.gz [checkpoint]=ckpt)
failed=()
for t in "${targets[@]}"; do
  corpus=build-fuzz/corpus/$t findings=build-fuzz/findings/$t
  mkdir -p "$corpus" "$findings"
  cp -n "$seeds/$t"/* "$corpus"/ 2>/dev/null || true
  ext=${reproducers[$t]:-}
  if [ -n "$ext" ] && compgen -G "../shared/reliability/*.$ext" >/dev/null; then
    cp -n ../shared/reliability/*."$ext" "$corpus"/ 2>/dev/null || true
  fi
  # Findings of earlier runs are replayed first: one that no longer fails was fixed, and goes.
  for old in $(find "$findings" -maxdepth 1 -type f ! -name log.txt); do
    if ASAN_OPTIONS=detect_leaks=1 "build-fuzz/fuzz/fuzz_$t" -rss_limit_mb=1024 -timeout=10 "$old" >/dev/null 2>&1; then
      echo "fuzz: $t: $(basename "$old") from an earlier run passes now; removed"
      rm -f "$old"
    fi
  done
  echo "fuzz: $t for ${seconds} s (corpus: $(ls "$corpus" | wc -l) files)"
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 UBSAN_OPTIONS=print_stacktrace=1 \
    "build-fuzz/fuzz/fuzz_$t" "$corpus" -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=10 \
    -max_len=1048576 -artifact_prefix="$findings/" -print_final_stats=1 >"$findings/log.txt" 2>&1 || true
  grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$findings/log.txt" | sed "s/^/fuzz: $t /" || true
  found=$(find "$findings" -maxdepth 1 -type f ! -name log.txt | sort)
  if [ -n "$found" ]; then
    echo "fuzz: $t FOUND:"; echo "$found" | sed 's/^/  /'
    grep -m5 -E 'ERROR|SUMMARY|runtime error' "$findings/log.txt" | sed 's/^/  /' || true
    failed+=("$t")
  fi
done
if ((${#failed[@]})); then
  echo "fuzz: findings in ${failed[*]} (inputs and logs under build-fuzz/findings/)"
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${seconds} s each, no findings"
