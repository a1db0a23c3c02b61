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

KernelCall call_of(Kernel kernel) {
  KernelCall c;
  c.kernel = kernel;
  return c;
}
KernelCall call_of(Kernel kernel, std::size_t count) {
  KernelCall c = call_of(kernel);
  c.count = count;
  return c;
}
KernelCall call_of(Kernel kernel, const Conv2dShape& s, bool bias) {
  KernelCall c = call_of(kernel);
  c.conv = s;
  c.has_bias = bias;
  return c;
}
KernelCall call_of(Kernel kernel, const ConvTranspose2dShape& s, bool bias) {
  KernelCall c = call_of(kernel);
  c.conv_t = s;
  c.has_bias = bias;
  return c;
}
KernelCall call_of(Kernel kernel, const BatchNormShape& s, bool relu) {
  KernelCall c = call_of(kernel);
  c.bn = s;
  c.relu = relu;
  return c;
}
KernelCall call_of(Kernel kernel, const Pool2dShape& s) {
  KernelCall c = call_of(kernel);
  c.pool = s;
  return c;
}
KernelCall call_of(Kernel kernel, const ConcatShape& s) {
  KernelCall c = call_of(kernel);
  c.concat = s;
  return c;
}
KernelCall call_of(Kernel kernel, LossKind loss, std::size_t count) {
  KernelCall c = call_of(kernel, count);
  c.loss = loss;
  return c;
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

  void copy_from_host(void* dst, const void* src, std::size_t bytes) override {
    timed(call_of(Kernel::CopyToDevice, bytes), [&] { inner_.copy_from_host(dst, src, bytes); });
  }
  void copy_to_host(void* dst, const void* src, std::size_t bytes) override {
    timed(call_of(Kernel::CopyToHost, bytes), [&] { inner_.copy_to_host(dst, src, bytes); });
  }
  void copy(void* dst, const void* src, std::size_t bytes) override {
    timed(call_of(Kernel::CopyOnDevice, bytes), [&] { inner_.copy(dst, src, bytes); });
  }
  void fill(std::size_t count, float value, float* y) override {
    timed(call_of(Kernel::Fill, count), [&] { inner_.fill(count, value, y); });
  }

  void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* bias,
                      float* y) override {
    timed(call_of(Kernel::Conv2dForward, s, bias != nullptr), [&] { inner_.conv2d_forward(s, x, w, bias, y); });
  }
  void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* w, float* dx) override {
    timed(call_of(Kernel::Conv2dBackwardData, s, false), [&] { inner_.conv2d_backward_data(s, dy, w, dx); });
  }
  void conv2d_backward_filter(const Conv2dShape& s, const float* x, const float* dy, float* dw,
                              float* dbias) override {
    timed(call_of(Kernel::Conv2dBackwardFilter, s, dbias != nullptr),
          [&] { inner_.conv2d_backward_filter(s, x, dy, dw, dbias); });
  }
  void conv_transpose2d_forward(const ConvTranspose2dShape& s, const float* x, const float* w,
                                const float* bias, float* y) override {
    timed(call_of(Kernel::ConvTranspose2dForward, s, bias != nullptr),
          [&] { inner_.conv_transpose2d_forward(s, x, w, bias, y); });
  }
  void conv_transpose2d_backward_data(const ConvTranspose2dShape& s, const float* dy, const float* w,
                                      float* dx) override {
    timed(call_of(Kernel::ConvTranspose2dBackwardData, s, false),
          [&] { inner_.conv_transpose2d_backward_data(s, dy, w, dx); });
  }
  void conv_transpose2d_backward_filter(const ConvTranspose2dShape& s, const float* x, const float* dy,
                                        float* dw, float* dbias) override {
    timed(call_of(Kernel::ConvTranspose2dBackwardFilter, s, dbias != nullptr),
          [&] { inner_.conv_transpose2d_backward_filter(s, x, dy, dw, dbias); });
  }

  void batchnorm_forward_train(const BatchNormShape& s, const float* x, const float* gamma,
                               const float* beta, float eps, float momentum, float* running_mean,
                               float* running_var, float* y, float* save_mean, float* save_invstd,
                               bool relu) override {
    timed(call_of(Kernel::BatchNormForwardTrain, s, relu), [&] {
      inner_.batchnorm_forward_train(s, x, gamma, beta, eps, momentum, running_mean, running_var, y, save_mean,
                                     save_invstd, relu);
    });
  }
  void batchnorm_forward_infer(const BatchNormShape& s, const float* x, const float* gamma,
                               const float* beta, const float* running_mean, const float* running_var,
                               float eps, float* y, bool relu) override {
    timed(call_of(Kernel::BatchNormForwardInfer, s, relu),
          [&] { inner_.batchnorm_forward_infer(s, x, gamma, beta, running_mean, running_var, eps, y, relu); });
  }
  void batchnorm_backward_train(const BatchNormShape& s, const float* dy, const float* x, const float* y,
                                const float* gamma, const float* save_mean, const float* save_invstd,
                                float* dx, float* dgamma, float* dbeta, bool relu) override {
    timed(call_of(Kernel::BatchNormBackwardTrain, s, relu), [&] {
      inner_.batchnorm_backward_train(s, dy, x, y, gamma, save_mean, save_invstd, dx, dgamma, dbeta, relu);
    });
  }
  void batchnorm_backward_infer(const BatchNormShape& s, const float* dy, const float* x, const float* y,
                                const float* gamma, const float* running_mean, const float* running_var,
                                float eps, float* dx, float* dgamma, float* dbeta, bool relu) override {
    timed(call_of(Kernel::BatchNormBackwardInfer, s, relu), [&] {
      inner_.batchnorm_backward_infer(s, dy, x, y, gamma, running_mean, running_var, eps, dx, dgamma, dbeta,
                                      relu);
    });
  }

  void maxpool2x2_forward(const Pool2dShape& s, const float* x, float* y, uint8_t* argmax) override {
    timed(call_of(Kernel::MaxPoolForward, s), [&] { inner_.maxpool2x2_forward(s, x, y, argmax); });
  }
  void maxpool2x2_backward(const Pool2dShape& s, const float* dy, const uint8_t* argmax, float* dx) override {
    timed(call_of(Kernel::MaxPoolBackward, s), [&] { inner_.maxpool2x2_backward(s, dy, argmax, dx); });
  }

  void dropout_forward(std::size_t count, float p, uint64_t seed, uint64_t offset, const float* x,
                       float* y, uint8_t* mask) override {
    timed(call_of(Kernel::DropoutForward, count), [&] { inner_.dropout_forward(count, p, seed, offset, x, y, mask); });
  }
  void dropout_backward(std::size_t count, float p, const float* dy, const uint8_t* mask, float* dx) override {
    timed(call_of(Kernel::DropoutBackward, count), [&] { inner_.dropout_backward(count, p, dy, mask, dx); });
  }

  void concat_channels(const ConcatShape& s, const float* a, const float* b, float* out) override {
    timed(call_of(Kernel::ConcatChannels, s), [&] { inner_.concat_channels(s, a, b, out); });
  }
  void split_channels(const ConcatShape& s, const float* in, float* a, float* b) override {
    timed(call_of(Kernel::SplitChannels, s), [&] { inner_.split_channels(s, in, a, b); });
  }

  void add(std::size_t count, const float* a, const float* b, float* y) override {
    timed(call_of(Kernel::Add, count), [&] { inner_.add(count, a, b, y); });
  }
  void mul(std::size_t count, const float* a, const float* b, float* y) override {
    timed(call_of(Kernel::Mul, count), [&] { inner_.mul(count, a, b, y); });
  }
  void scale(std::size_t count, const float* a, float s, float* y) override {
    timed(call_of(Kernel::Scale, count), [&] { inner_.scale(count, a, s, y); });
  }
  void scale_by(std::size_t count, const float* a, const float* s, float* y) override {
    timed(call_of(Kernel::ScaleBy, count), [&] { inner_.scale_by(count, a, s, y); });
  }
  void accumulate(std::size_t count, const float* a, float* y) override {
    timed(call_of(Kernel::Accumulate, count), [&] { inner_.accumulate(count, a, y); });
  }
  void relu_forward(std::size_t count, const float* x, float* y) override {
    timed(call_of(Kernel::ReluForward, count), [&] { inner_.relu_forward(count, x, y); });
  }
  void relu_backward(std::size_t count, const float* dy, const float* y, float* dx) override {
    timed(call_of(Kernel::ReluBackward, count), [&] { inner_.relu_backward(count, dy, y, dx); });
  }
  void sigmoid_forward(std::size_t count, const float* x, float* y) override {
    timed(call_of(Kernel::SigmoidForward, count), [&] { inner_.sigmoid_forward(count, x, y); });
  }
  void sigmoid_backward(std::size_t count, const float* dy, const float* y, float* dx) override {
    timed(call_of(Kernel::SigmoidBackward, count), [&] { inner_.sigmoid_backward(count, dy, y, dx); });
  }

  void sum(std::size_t count, const float* x, float* out) override {
    timed(call_of(Kernel::Sum, count), [&] { inner_.sum(count, x, out); });
  }
  void loss_forward(LossKind kind, std::size_t count, const float* input, const float* target, float smooth,
                    float* out) override {
    timed(call_of(Kernel::LossForward, kind, count),
          [&] { inner_.loss_forward(kind, count, input, target, smooth, out); });
  }
  void loss_backward(LossKind kind, std::size_t count, const float* input, const float* target, float smooth,
                     const float* dloss, float* dinput) override {
    timed(call_of(Kernel::LossBackward, kind, count),
          [&] { inner_.loss_backward(kind, count, input, target, smooth, dloss, dinput); });
  }

  void adam_update(const AdamParams& a, const std::vector<AdamTensor>& tensors) override {
    KernelCall c = call_of(Kernel::AdamUpdate);
    for (const AdamTensor& t : tensors) c.tensors.push_back(t.count);
    timed(std::move(c), [&] { inner_.adam_update(a, tensors); });
  }

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
