#include "engine/profiler.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <stdexcept>

#if defined(UNET_HAVE_CUDA)
#include <nvtx3/nvToolsExt.h>
#endif

namespace unet {
namespace {

using kernels::Kernel;
using kernels::KernelCall;

Profiler* g_active = nullptr;

void nvtx_push([[maybe_unused]] const char* name) {
#if defined(UNET_HAVE_CUDA)
  nvtxRangePushA(name);
#endif
}

void nvtx_pop() {
#if defined(UNET_HAVE_CUDA)
  nvtxRangePop();
#endif
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out;
}

}  // namespace

// Forwards every primitive to the real backend, timing it in between two synchronisations.
class ProfilingBackend final : public Backend {
 public:
  ProfilingBackend(Backend& inner, Profiler& profiler) : inner_(inner), profiler_(profiler) {}

  Device device() const override { return inner_.device(); }
  CachingAllocator& allocator() override { return inner_.allocator(); }
  void synchronize() override { inner_.synchronize(); }

#define UNET_PROFILED(name, params, args, call)                                          \
  void name params override {                                                           \
    timed(kernels::make_call(Kernel::name, UNET_UNPAREN call), [&] { inner_.name args; }); \
  }
  UNET_PRIMITIVES(UNET_PROFILED)
#undef UNET_PROFILED

 private:
  template <typename Run>
  void timed(KernelCall call, Run run) {
    const char* kernel = kernels::name(call.kernel);
    inner_.synchronize();
    nvtx_push(kernel);
    const double start = profiler_.now_us();
    run();
    inner_.synchronize();
    const double end = profiler_.now_us();
    nvtx_pop();
    profiler_.add({kernel, false, std::move(call), start, end - start});
  }

  Backend& inner_;
  Profiler& profiler_;
};

Profiler::Profiler(Device device) : device_(device) {
  if (g_active) throw std::logic_error("Profiler: another profiler is already running");
  wrapper_ = std::make_unique<ProfilingBackend>(backend(device), *this);
  origin_us_ = now_us();
  set_backend_wrapper(device, wrapper_.get());
  g_active = this;
}

Profiler::~Profiler() {
  set_backend_wrapper(device_, nullptr);
  g_active = nullptr;
}

double Profiler::now_us() const {
  const auto t = std::chrono::steady_clock::now().time_since_epoch();
  return std::chrono::duration<double, std::micro>(t).count() - origin_us_;
}

std::vector<ProfileRow> Profiler::summary() const {
  std::map<std::string, ProfileRow> rows;
  for (const ProfileEvent& e : events_) {
    if (e.is_range) continue;
    ProfileRow& row = rows[e.name];
    const kernels::Cost c = kernels::cost(e.call);
    row.kernel = e.name;
    row.calls += 1;
    row.total_ms += e.duration_us / 1000;
    row.flops += c.flops;
    row.bytes += c.bytes;
  }
  std::vector<ProfileRow> out;
  for (auto& [name, row] : rows) out.push_back(row);
  std::stable_sort(out.begin(), out.end(), [](const ProfileRow& a, const ProfileRow& b) { return a.total_ms > b.total_ms; });
  return out;
}

std::string Profiler::chrome_trace() const {
  // Complete events ("ph":"X") on one track: ranges enclose the kernels they ran, so the viewer
  // nests them. Times are in microseconds, as the format requires.
  std::string out = "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n";
  char buf[160];
  bool first = true;
  for (const ProfileEvent& e : events_) {
    if (!first) out += ",\n";
    first = false;
    std::snprintf(buf, sizeof buf, "{\"ph\":\"X\",\"pid\":1,\"tid\":1,\"ts\":%.3f,\"dur\":%.3f,", e.start_us, e.duration_us);
    out += buf;
    out += "\"cat\":\"" + std::string(e.is_range ? "range" : "kernel") + "\",\"name\":\"" + json_escape(e.name) + "\"";
    if (!e.is_range) {
      const kernels::Cost c = kernels::cost(e.call);
      const double seconds = std::max(e.duration_us, 1e-3) * 1e-6;
      std::snprintf(buf, sizeof buf, ",\"GFLOP\":%.6g,\"MB\":%.6g,\"GFLOP/s\":%.4g,\"GB/s\":%.4g}", c.flops * 1e-9,
                    c.bytes * 1e-6, c.flops * 1e-9 / seconds, c.bytes * 1e-9 / seconds);
      out += ",\"args\":{\"shape\":\"" + json_escape(kernels::describe(e.call)) + "\"" + buf;
    }
    out += "}";
  }
  out += "\n],\"otherData\":{\"device\":\"" + to_string(device_) + "\"}}\n";
  return out;
}

ProfileRange::ProfileRange(const char* name) : name_(name) {
  nvtx_push(name);
  if (g_active) start_us_ = g_active->now_us();
}

ProfileRange::~ProfileRange() {
  nvtx_pop();
  if (g_active) {
    const double end = g_active->now_us();
    g_active->add({name_, true, {}, start_us_, end - start_us_});
  }
}

}  // namespace unet
