#include <catch2/catch.hpp>

#include <cstdlib>

#include "engine/allocator.h"
#include "engine/tensor.h"

using namespace unet;

TEST_CASE("size classes round up by at most a quarter", "[allocator]") {
  CHECK(CachingAllocator::size_class(1) == 256);
  CHECK(CachingAllocator::size_class(256) == 256);
  CHECK(CachingAllocator::size_class(1024) == 1024);
  CHECK(CachingAllocator::size_class(1025) == 1280);
  for (std::size_t bytes : {300ul, 4097ul, 123457ul, 9999999ul}) {
    const std::size_t c = CachingAllocator::size_class(bytes);
    CHECK(c >= bytes);
    CHECK(double(c) <= 1.25 * double(bytes) + 1);
  }
}

TEST_CASE("freed blocks are reused and the figures track use", "[allocator]") {
  int raw_calls = 0;
  CachingAllocator a([&](std::size_t n) { ++raw_calls; return std::malloc(n); }, [](void* p) { std::free(p); });
  std::size_t cap1, cap2, cap3;
  void* p1 = a.allocate(1000, &cap1);
  void* p2 = a.allocate(5000, &cap2);
  CHECK(a.stats().current_bytes == cap1 + cap2);
  a.deallocate(p1, cap1);
  CHECK(a.stats().current_bytes == cap2);
  CHECK(a.stats().peak_bytes == cap1 + cap2);
  CHECK(a.stats().cached_bytes == cap1);
  void* p3 = a.allocate(990, &cap3);  // same size class: the cached block comes back
  CHECK(p3 == p1);
  CHECK(raw_calls == 2);
  a.deallocate(p2, cap2);
  a.deallocate(p3, cap3);
  a.release_cached();
  CHECK(a.stats().cached_bytes == 0);
  CHECK(a.stats().current_bytes == 0);
}

TEST_CASE("tensors return their storage to the backend allocator", "[allocator]") {
  auto& alloc = backend(Device::CPU).allocator();
  const std::size_t before = alloc.stats().current_bytes;
  {
    const Tensor t = Tensor::zeros({1000});
    CHECK(alloc.stats().current_bytes >= before + 4000);
  }
  CHECK(alloc.stats().current_bytes == before);
}
