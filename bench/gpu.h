// The CUDA side of the benchmarks (compiled only when nvcc is available): whether a GPU is there,
// its peak FP32 FLOP/s and bandwidth as probed by our own kernels, event timing, and an L2 flush.
//
// Timing brackets the backend's work with events on the legacy default stream: the backend's
// stream is a blocking stream (cudaStreamCreate), which the legacy default stream waits for and
// holds back, so the events see exactly the queued kernels.
#pragma once

#include <string>

#include "bench/machine.h"

namespace unet::bench::gpu {

// True when a CUDA device can run our kernels; otherwise `why` says why not.
bool available(std::string* why);
std::string device_name();

// FP32 FLOP/s from FMA chains in every thread of a full grid; bandwidth from a float4 copy of
// 512 MiB (read + write counted).
Peak probe_peak();

// Overwrites a buffer twice the size of L2, so that the next kernel starts with a cold cache.
void flush_l2();

class EventTimer {
 public:
  EventTimer();
  ~EventTimer();
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;
  void start();
  double stop_seconds();  // waits for the stop event

 private:
  void* start_;
  void* stop_;
};

}  // namespace unet::bench::gpu
