// Where the time goes: while a Profiler is alive, backend(device) returns a wrapper that times
// every primitive the engine runs (the real backend does the work), so the profile covers every
// op, its backward, the optimiser and the copies without any op knowing. Each call is recorded
// with its shape (kernels/kernel_call.h), hence FLOPs and bytes per kernel.
//
// On the CUDA backend each call is bracketed by stream synchronisations: the time is the kernel's
// own plus its launch latency, and host and device no longer overlap. That is the price of
// attributing every microsecond of a step to one kernel; Nsight Systems sees the overlapped truth.
//
// ProfileRange names a span of work (forward, backward, ...): a slice in the profiler's trace, and
// in the CUDA build an NVTX range, whether a Profiler is alive or not, so `nsys profile unet train`
// shows the same names. Kernel calls under a Profiler are NVTX ranges too.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "kernels/kernel_call.h"

namespace unet {

struct ProfileEvent {
  std::string name;           // the kernel's name, or the range's
  bool is_range = false;
  kernels::KernelCall call;   // kernels only
  double start_us = 0;        // since the profiler started
  double duration_us = 0;
};

// One row of Profiler::summary(): every call of one kernel.
struct ProfileRow {
  std::string kernel;
  long calls = 0;
  double total_ms = 0;
  double flops = 0;
  double bytes = 0;
};

class Profiler {
 public:
  // Wraps backend(device) until destroyed. One Profiler at a time.
  explicit Profiler(Device device);
  ~Profiler();
  Profiler(const Profiler&) = delete;
  Profiler& operator=(const Profiler&) = delete;

  const std::vector<ProfileEvent>& events() const { return events_; }
  void clear() { events_.clear(); }

  // Kernel calls grouped by kernel, the most time first.
  std::vector<ProfileRow> summary() const;
  // The events in Chrome's trace-event JSON (loads in Perfetto and chrome://tracing).
  std::string chrome_trace() const;

 private:
  friend class ProfileRange;
  friend class ProfilingBackend;
  double now_us() const;
  void add(ProfileEvent event) { events_.push_back(std::move(event)); }

  Device device_;
  std::unique_ptr<Backend> wrapper_;
  double origin_us_ = 0;
  std::vector<ProfileEvent> events_;
};

class ProfileRange {
 public:
  explicit ProfileRange(const char* name);
  ~ProfileRange();
  ProfileRange(const ProfileRange&) = delete;
  ProfileRange& operator=(const ProfileRange&) = delete;

 private:
  const char* name_;
  double start_us_ = 0;
};

}  // namespace unet
