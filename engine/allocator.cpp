#include "engine/allocator.h"

#include <bit>
#include <new>

namespace unet {

CachingAllocator::CachingAllocator(RawAlloc raw_alloc, RawFree raw_free)
    : raw_alloc_(std::move(raw_alloc)), raw_free_(std::move(raw_free)) {}

CachingAllocator::~CachingAllocator() { release_cached(); }

std::size_t CachingAllocator::size_class(std::size_t bytes) {
  constexpr std::size_t kMin = 256;  // keeps every block aligned for AVX-512 and cache lines
  if (bytes <= kMin) return kMin;
  const std::size_t top = std::bit_floor(bytes);
  const std::size_t quarter = top / 4;
  return (bytes + quarter - 1) / quarter * quarter;
}

void* CachingAllocator::allocate(std::size_t bytes, std::size_t* capacity) {
  const std::size_t size = size_class(bytes);
  *capacity = size;
  {
    std::lock_guard lock(mutex_);
    auto it = free_lists_.find(size);
    if (it != free_lists_.end() && !it->second.empty()) {
      void* ptr = it->second.back();
      it->second.pop_back();
      stats_.cached_bytes -= size;
      stats_.current_bytes += size;
      stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.current_bytes);
      return ptr;
    }
  }
  void* ptr = raw_alloc_(size);
  if (!ptr) {
    // Memory may be sitting in free lists of other sizes: give it back and try once more.
    release_cached();
    ptr = raw_alloc_(size);
    if (!ptr) throw std::bad_alloc();
  }
  std::lock_guard lock(mutex_);
  ++stats_.system_allocs;
  stats_.current_bytes += size;
  stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.current_bytes);
  return ptr;
}

void CachingAllocator::deallocate(void* ptr, std::size_t capacity) {
  std::lock_guard lock(mutex_);
  free_lists_[capacity].push_back(ptr);
  stats_.current_bytes -= capacity;
  stats_.cached_bytes += capacity;
}

void CachingAllocator::release_cached() {
  std::lock_guard lock(mutex_);
  for (auto& [size, blocks] : free_lists_) {
    for (void* ptr : blocks) raw_free_(ptr);
    stats_.cached_bytes -= size * blocks.size();
  }
  free_lists_.clear();
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.peak_bytes = stats_.current_bytes;
}

MemoryStats CachingAllocator::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

}  // namespace unet
