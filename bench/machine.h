// What the benchmarks compare against: the machine's peak FP32 FLOP/s and memory bandwidth, probed
// by the benchmarks themselves (not read off a data sheet), and the flags the benchmark binaries
// share.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace unet::bench {

struct Peak {
  double gflops = 0;  // FP32 FLOP/s / 1e9 (a fused multiply-add counts 2)
  double gbps = 0;    // memory bandwidth, GB/s (1e9 bytes)
};

// CPU: every OpenMP thread runs independent AVX2 FMA chains (enough to cover the FMA latency)
// for the FLOP/s; a STREAM-style triad a = b + s*c over arrays far larger than the last-level
// cache for the bandwidth (24 bytes per element: two reads and one write, no write-allocate
// counted, as STREAM does). Best of several runs of each.
Peak probe_cpu_peak();
std::string cpu_model();

// Our flags, taken out of argv before Google Benchmark parses the rest:
//   --threads=N   OpenMP threads (default: all cores)
//   --tiny        CI mode: tiny shapes, one iteration each, to prove every benchmark runs
//   --size=N, --batches=1,6,16   (bench_e2e) input size and batch sizes
//   --batch=N     (bench_kernels) the batch of the reference shapes (default 6)
struct Flags {
  int threads = 0;
  bool tiny = false;
  int size = 240;
  std::vector<int> batches{1, 6, 16};
  int batch = 6;
};
Flags take_flags(int* argc, char** argv);

// The main() of a benchmark binary: takes our flags, adds the CPU model and thread count to the
// report's context, lets `register_cases` register the benchmarks, and runs them. Errors end in
// one line on stderr, prefixed with `binary`, and exit code 1.
int benchmark_main(const char* binary, int argc, char** argv, const std::function<void(Flags&)>& register_cases);

}  // namespace unet::bench
