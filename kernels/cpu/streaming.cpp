#include "kernels/cpu/streaming.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace unet::cpu {
namespace {

std::size_t default_threshold() {
  const char* mode = std::getenv("UNET_STREAMING");
  if (mode && std::strcmp(mode, "off") == 0) return std::numeric_limits<std::size_t>::max();
  if (mode && std::strcmp(mode, "on") == 0) return 0;
  return last_level_cache_bytes();
}

std::atomic<std::size_t>& threshold() {
  static std::atomic<std::size_t> bytes{default_threshold()};
  return bytes;
}

}  // namespace

// Linux's description of the level-3 cache that cpu0 shares ("32768K"). sysconf's
// _SC_LEVEL3_CACHE_SIZE is not used: on virtual machines glibc may report the whole socket's L3
// (320 MiB on the development VM, whose cores share one 32 MiB slice).
std::size_t last_level_cache_bytes() {
  static const std::size_t bytes = [] {
    std::size_t size = std::size_t(32) << 20;
    if (std::FILE* f = std::fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r")) {
      unsigned long kib = 0;
      if (std::fscanf(f, "%luK", &kib) == 1 && kib > 0) size = std::size_t(kib) << 10;
      std::fclose(f);
    }
    return size;
  }();
  return bytes;
}

std::size_t streaming_threshold_bytes() { return threshold().load(std::memory_order_relaxed); }
void set_streaming_threshold_bytes(std::size_t bytes) { threshold().store(bytes, std::memory_order_relaxed); }

void copy_floats(const float* src, std::size_t n, float* dst, bool stream) {
  if (!stream) {
    std::copy_n(src, n, dst);
    return;
  }
  std::size_t i = 0;
  for (; i < n && reinterpret_cast<std::uintptr_t>(dst + i) % sizeof(__m256) != 0; ++i) dst[i] = src[i];
  for (; i + 8 <= n; i += 8) _mm256_stream_ps(dst + i, _mm256_loadu_ps(src + i));
  for (; i < n; ++i) dst[i] = src[i];
}

}  // namespace unet::cpu
