#include "bench/machine.h"

#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace unet::bench {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// 10 independent FMA chains of 8 lanes: FMA latency (4-5 cycles) x 2 ports needs at least 8-10
// chains in flight to keep both FMA units busy.
double fma_gflops(long iterations) {
  double flops = 0;
  const auto start = std::chrono::steady_clock::now();
#pragma omp parallel reduction(+ : flops)
  {
    __m256 acc[10];
    const float seed = float(omp_get_thread_num() + 1) * 1e-3f;
    for (int i = 0; i < 10; ++i) acc[i] = _mm256_set1_ps(seed * float(i));
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (long it = 0; it < iterations; ++it) {
      for (int i = 0; i < 10; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    }
    __m256 total = acc[0];
    for (int i = 1; i < 10; ++i) total = _mm256_add_ps(total, acc[i]);
    float lanes[8];
    _mm256_storeu_ps(lanes, total);
    // Keeps the chains alive: the compiler cannot drop work whose result is used.
    if (lanes[0] == 12345.0f) flops += 1;
    flops += double(iterations) * 10 * 8 * 2;
  }
  return flops / seconds_since(start) / 1e9;
}

double triad_gbps(std::vector<float>& a, const std::vector<float>& b, const std::vector<float>& c) {
  const long n = long(a.size());
  const float s = 0.5f;
  const auto start = std::chrono::steady_clock::now();
#pragma omp parallel for schedule(static)
  for (long i = 0; i < n; ++i) a[std::size_t(i)] = b[std::size_t(i)] + s * c[std::size_t(i)];
  return 3.0 * sizeof(float) * double(n) / seconds_since(start) / 1e9;
}

int int_flag(const std::string& flag, const char* value) {
  try {
    std::size_t used = 0;
    const int v = std::stoi(value, &used);
    if (value[used] == '\0') return v;
  } catch (const std::exception&) {
  }
  throw std::invalid_argument(flag + ": expected an integer, got '" + value + "'");
}

}  // namespace

Peak probe_cpu_peak() {
  Peak peak;
  fma_gflops(1 << 20);  // wakes the cores and their clocks up
  for (int run = 0; run < 5; ++run) peak.gflops = std::max(peak.gflops, fma_gflops(1 << 24));
  const std::size_t n = std::size_t(32) << 20;  // 3 x 128 MiB
  std::vector<float> a(n), b(n, 1.0f), c(n, 2.0f);
#pragma omp parallel for schedule(static)
  for (long i = 0; i < long(n); ++i) a[std::size_t(i)] = 0;  // first touch by the thread that uses it
  for (int run = 0; run < 5; ++run) peak.gbps = std::max(peak.gbps, triad_gbps(a, b, c));
  return peak;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown CPU";
}

Flags take_flags(int* argc, char** argv) {
  Flags f;
  int kept = 1;
  for (int i = 1; i < *argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* name) -> const char* {
      const std::size_t len = std::strlen(name);
      return arg.compare(0, len, name) == 0 ? argv[i] + len : nullptr;
    };
    if (const char* v = value("--threads=")) {
      f.threads = int_flag("--threads", v);
    } else if (const char* v2 = value("--size=")) {
      f.size = int_flag("--size", v2);
    } else if (const char* v3 = value("--batches=")) {
      f.batches.clear();
      std::stringstream list(v3);
      for (std::string item; std::getline(list, item, ',');) f.batches.push_back(int_flag("--batches", item.c_str()));
    } else if (const char* v4 = value("--batch=")) {
      f.batch = int_flag("--batch", v4);
    } else if (arg == "--tiny") {
      f.tiny = true;
    } else {
      argv[kept++] = argv[i];
    }
  }
  *argc = kept;
  if (f.threads < 0 || f.size < 16 || f.batches.empty() || f.batch < 1 ||
      std::any_of(f.batches.begin(), f.batches.end(), [](int b) { return b < 1; })) {
    throw std::invalid_argument("bad flags: --threads must be >= 0, --size >= 16, --batch and --batches positive");
  }
  if (f.threads > 0) omp_set_num_threads(f.threads);
  return f;
}

int benchmark_main(const char* binary, int argc, char** argv, const std::function<void(Flags&)>& register_cases) {
  try {
    Flags flags = take_flags(&argc, argv);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::AddCustomContext("cpu_model", cpu_model());
    benchmark::AddCustomContext("threads", std::to_string(omp_get_max_threads()));
    register_cases(flags);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", binary, e.what());
    return 1;
  }
}

}  // namespace unet::bench
