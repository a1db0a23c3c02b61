// The profiler: it sees every kernel a training step runs, credits each with the same FLOPs as
// the model summary, nests kernels inside their ranges, and gives the real backend back.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <string>

#include "engine/autograd.h"
#include "engine/profiler.h"
#include "engine/trace.h"
#include "train/step.h"

using namespace unet;

namespace {

UNetConfig small_config() {
  UNetConfig c;
  c.base_filters = 4;
  c.depth = 2;
  return c;
}

Tensor ramp(const Shape& shape) {
  Tensor t = Tensor::zeros(shape);
  std::vector<float> v(std::size_t(t.numel()));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = float(i % 7) / 7.0f;
  return Tensor::from_vector(shape, v);
}

}  // namespace

TEST_CASE("the profiler records every kernel of a training step, nested in its ranges", "[profiler]") {
  UNet model(small_config(), 1);
  model.train();
  Adam adam(model.named_parameters(), AdamOptions{});
  const Tensor x = ramp({2, 3, 16, 16}), y = ramp({2, 1, 16, 16});
  Backend& real = backend(Device::CPU);
  std::vector<ProfileEvent> events;
  std::vector<ProfileRow> rows;
  {
    Profiler profiler(Device::CPU);
    CHECK(&backend(Device::CPU) != &real);
    {
      ProfileRange range("train_step");
      train_step(model, adam, LossKind::MSE, x, y).item();
    }
    events = profiler.events();
    rows = profiler.summary();
  }
  CHECK(&backend(Device::CPU) == &real);

  std::map<std::string, long> calls;
  for (const ProfileRow& r : rows) calls[r.kernel] = r.calls;
  // Depth 2: 2 encoder + 2 decoder blocks + the bottleneck, two convolutions each, and the head.
  CHECK(calls["conv2d_forward"] == 11);
  CHECK(calls["conv2d_backward_filter"] == 11);
  CHECK(calls["conv2d_backward_data"] == 10);  // the input needs no gradient
  CHECK(calls["conv_transpose2d_forward"] == 2);
  CHECK(calls["batchnorm_forward_train"] == 10);
  CHECK(calls["batchnorm_backward_train"] == 10);
  CHECK(calls["maxpool2x2_forward"] == 2);
  CHECK(calls["adam_update"] == 1);
  CHECK(calls["loss_forward"] == 1);

  // Every kernel lies inside the step and, but for reading the loss back, inside exactly one of
  // forward / backward / adam.
  const auto step = std::find_if(events.begin(), events.end(), [](const ProfileEvent& e) { return e.name == "train_step"; });
  REQUIRE(step != events.end());
  double kernels_us = 0;
  for (const ProfileEvent& e : events) {
    if (e.is_range) continue;
    kernels_us += e.duration_us;
    CHECK(e.start_us >= step->start_us);
    CHECK(e.start_us + e.duration_us <= step->start_us + step->duration_us);
    int enclosing = 0;
    for (const ProfileEvent& r : events) {
      if (r.is_range && r.name != "train_step" && r.start_us <= e.start_us &&
          e.start_us + e.duration_us <= r.start_us + r.duration_us) {
        ++enclosing;
      }
    }
    CHECK(enclosing == (e.name == "copy_to_host" ? 0 : 1));
  }
  CHECK(kernels_us <= step->duration_us);
}

TEST_CASE("the profiler credits convolutions and pooling with the summary's FLOPs", "[profiler]") {
  UNet model(small_config(), 1);
  model.eval();
  NoGradGuard no_grad;
  const Tensor x = ramp({1, 3, 32, 32});
  double recorded = 0, profiled = 0;
  OpRecording recording;
  {
    Profiler profiler(Device::CPU);
    model.forward(x);
    for (const ProfileEvent& e : profiler.events()) {
      if (e.name == "conv2d_forward" || e.name == "conv_transpose2d_forward" || e.name == "maxpool2x2_forward") {
        profiled += kernels::cost(e.call).flops;
      }
    }
  }
  for (const OpRecord& r : recording.records()) {
    if (r.op == "conv2d" || r.op == "conv_transpose2d" || r.op == "max_pool2x2") recorded += r.flops;
  }
  CHECK(recorded > 0);
  CHECK(profiled == recorded);
}

TEST_CASE("the Chrome trace has one complete event per record, kernels with their shapes", "[profiler]") {
  Profiler profiler(Device::CPU);
  {
    ProfileRange range("work");
    backend(Device::CPU).fill(8, 1.0f, Tensor::zeros({8}).data());
  }
  const std::string trace = profiler.chrome_trace();
  CHECK(trace.rfind("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[", 0) == 0);
  std::size_t complete = 0;
  for (std::size_t at = trace.find("\"ph\":\"X\""); at != std::string::npos; at = trace.find("\"ph\":\"X\"", at + 1)) ++complete;
  CHECK(complete == profiler.events().size());
  CHECK_THAT(trace, Catch::Contains("\"name\":\"work\""));
  CHECK_THAT(trace, Catch::Contains("\"name\":\"fill\"") && Catch::Contains("\"shape\":\"8\""));
  CHECK_THROWS_AS(Profiler(Device::CPU), std::logic_error);  // one at a time
}
