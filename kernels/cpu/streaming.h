// Non-temporal ("streaming") stores for outputs too large for the last-level cache.
//
// Why: an ordinary store first reads the line it writes into the cache (read-for-ownership), so a
// pass that reads x and writes y moves three bytes over the memory bus for every two it needs. When
// the output is larger than the level-3 cache its consumer will not find it there anyway, and a
// store that bypasses the caches saves that read. Below that size the consumer may hit the cache,
// so ordinary stores stay. The decision depends on the output's size and the machine's cache,
// never on timing, and the values stored are the same either way: results do not change.
//
// UNET_STREAMING=off (or on) in the environment turns streaming off (or on for every size), to
// measure what it brings side by side in one binary; the default is by size as above.
#pragma once

#include <cstddef>

namespace unet::cpu {

// The level-3 cache of this machine in bytes (32 MiB when the OS does not say).
std::size_t last_level_cache_bytes();

// Outputs of more than this many bytes are streamed. Tests set it to run both paths on small shapes.
std::size_t streaming_threshold_bytes();
void set_streaming_threshold_bytes(std::size_t bytes);

inline bool streaming_pays(std::size_t bytes_written) { return bytes_written > streaming_threshold_bytes(); }

// dst[0, n) = src[0, n), streamed when `stream` (then the caller calls _mm_sfence() before
// another thread reads dst).
void copy_floats(const float* src, std::size_t n, float* dst, bool stream);

}  // namespace unet::cpu
