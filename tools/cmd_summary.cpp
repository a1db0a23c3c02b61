// `unet summary`: a Keras-like table of the model, built from one recorded forward pass.
#include <cstdio>
#include <map>
#include <string>

#include "engine/autograd.h"
#include "engine/trace.h"
#include "tools/commands.h"
#include "tools/model_flags.h"

namespace unet::cli {
namespace {

std::string with_commas(int64_t v) {
  std::string digits = std::to_string(v);
  for (int i = int(digits.size()) - 3; i > 0; i -= 3) digits.insert(std::size_t(i), ",");
  return digits;
}

std::string shape_string(const Shape& s) {
  std::string out = "[N";
  for (std::size_t i = 1; i < s.size(); ++i) out += ", " + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

int run_summary(int argc, char** argv) {
  Args args("summary", "Prints the model's layers (as run, one row per op), output shapes, parameter\n"
                       "counts and forward FLOPs per image. Defaults describe the reference model.");
  add_model_flags(args);
  args.option("size", "pixels", "240", "input height and width")
      .option("checkpoint", "file", "", "describe the model stored in this checkpoint instead");
  if (!args.parse(argc, argv)) return 0;

  std::unique_ptr<UNet> model = args.get("checkpoint").empty()
                                    ? std::make_unique<UNet>(model_config_from(args), 0)
                                    : load_unet(args.get("checkpoint"));
  const int size = args.get_int("size");
  if (size <= 0) throw UsageError("unet summary: --size must be positive");
  model->eval();
  NoGradGuard no_grad;
  OpRecording recording;
  const Tensor input = Tensor::zeros({1, model->config().in_channels, size, size});
  model->probabilities(input);

  std::printf("%-40s %-22s %10s %10s\n", "Layer (op)", "Output shape", "Params", "MFLOP");
  std::printf("%s\n", std::string(85, '=').c_str());
  std::printf("%-40s %-22s %10s %10s\n", "input", shape_string(input.shape()).c_str(), "0", "");
  std::map<std::string, int> seen;
  int64_t trainable = 0, non_trainable = 0;
  double flops = 0;
  for (const OpRecord& r : recording.records()) {
    const std::string row = r.op + "_" + std::to_string(++seen[r.op]) + " (" + r.op + ")";
    std::printf("%-40s %-22s %10s %10.1f\n", row.c_str(), shape_string(r.output).c_str(),
                with_commas(r.trainable + r.non_trainable).c_str(), r.flops / 1e6);
    trainable += r.trainable;
    non_trainable += r.non_trainable;
    flops += r.flops;
  }
  std::printf("%s\n", std::string(85, '=').c_str());
  std::printf("Total params: %s\n", with_commas(trainable + non_trainable).c_str());
  std::printf("Trainable params: %s\n", with_commas(trainable).c_str());
  std::printf("Non-trainable params: %s (batch-norm running statistics)\n", with_commas(non_trainable).c_str());
  std::printf("Forward: %.3f GFLOP per %dx%d image (a multiply-add counts as 2)\n", flops / 1e9, size, size);
  return 0;
}

}  // namespace unet::cli
