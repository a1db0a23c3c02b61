// A caching allocator: freed blocks are kept in per-size free lists and handed out again, so a
// training step that allocates the same activation sizes every iteration stops calling the system
// allocator (malloc here, cudaMalloc for the CUDA backend) after its first step.
//
// Sizes are rounded up to a size class (powers of two split into four steps, i.e. at most 25%
// waste) so that slightly different requests share blocks. The allocator reports the bytes in use
// and their peak, which users ask for when they pick a batch size.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <vector>

namespace unet {

struct MemoryStats {
  std::size_t current_bytes = 0;  // handed out and not yet returned
  std::size_t peak_bytes = 0;     // highest current_bytes so far
  std::size_t cached_bytes = 0;   // held in free lists, ready for reuse
  std::size_t system_allocs = 0;  // calls to the underlying allocator
};

class CachingAllocator {
 public:
  using RawAlloc = std::function<void*(std::size_t)>;
  using RawFree = std::function<void(void*)>;

  CachingAllocator(RawAlloc raw_alloc, RawFree raw_free);
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // Returns a block of at least `bytes` bytes; `*capacity` receives its real size.
  void* allocate(std::size_t bytes, std::size_t* capacity);
  void deallocate(void* ptr, std::size_t capacity);
  // Returns every cached block to the system (e.g. before measuring or when memory is short).
  void release_cached();

  MemoryStats stats() const;
  // Starts a new peak at the bytes in use now, to measure the peak of one phase of work.
  void reset_peak();

  static std::size_t size_class(std::size_t bytes);

 private:
  RawAlloc raw_alloc_;
  RawFree raw_free_;
  mutable std::mutex mutex_;
  std::map<std::size_t, std::vector<void*>> free_lists_;
  MemoryStats stats_;
};

}  // namespace unet
