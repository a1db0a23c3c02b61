// `unet train`: trains a U-Net on synthetic phantom slices with Adam and prints the loss as it
// falls. (Real datasets, validation, schedules and logs come with the training pipeline.)
#include <chrono>
#include <cstdio>
#include <filesystem>

#include <omp.h>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/options.h"
#include "train/adam.h"
#include "train/phantom.h"
#include "tools/commands.h"
#include "tools/model_flags.h"

namespace unet::cli {
namespace {

LossKind parse_loss(const std::string& name) {
  for (LossKind k : {LossKind::MSE, LossKind::BCE, LossKind::Dice, LossKind::BCEDice, LossKind::NegLogIoU}) {
    if (to_string(k) == name) return k;
  }
  throw UsageError("unet train: --loss must be one of mse, bce, dice, bce_dice, neg_log_iou; got '" + name + "'");
}

// BCE-style losses take logits; the others take the sigmoid probabilities, as in the reference.
bool takes_logits(LossKind k) { return k == LossKind::BCE || k == LossKind::BCEDice; }

struct Batch {
  Tensor image, mask;
};

std::vector<Batch> make_batches(const PhantomOptions& options, int slices, int batch, uint64_t seed,
                                Device device) {
  std::vector<Batch> batches;
  for (int start = 0; start + batch <= slices; start += batch) {
    std::vector<float> image, mask;
    for (int i = start; i < start + batch; ++i) {
      // Eight slices per patient, spread over the volume so that most of them cross the tumour.
      const PhantomSlice s = make_phantom_slice(options, seed, uint64_t(i / 8), 4 * (i % 8) + 2);
      image.insert(image.end(), s.image.begin(), s.image.end());
      mask.insert(mask.end(), s.mask.begin(), s.mask.end());
    }
    batches.push_back({Tensor::from_vector({batch, options.channels, options.size, options.size}, image, device),
                       Tensor::from_vector({batch, 1, options.size, options.size}, mask, device)});
  }
  return batches;
}

}  // namespace

int run_train(int argc, char** argv) {
  Args args("train", "Trains a U-Net on generated phantom MRI slices and prints the loss per epoch.");
  add_model_flags(args);
  args.option("size", "pixels", "128", "image height and width")
      .option("slices", "n", "48", "number of generated training slices")
      .option("batch", "n", "6", "batch size")
      .option("epochs", "n", "8", "passes over the slices")
      .option("lr", "rate", "0.002", "Adam learning rate")
      .option("loss", "name", "bce_dice", "mse, bce, dice, bce_dice or neg_log_iou")
      .option("seed", "n", "1", "seed for data, weights and dropout")
      .option("threads", "n", "0", "CPU threads (0: all cores)")
      .option("device", "name", "auto", "auto (CUDA when a GPU is usable, else CPU), cpu or cuda")
      .option("conv", "impl", "cudnn", "CUDA convolutions: cudnn or handwritten")
      .option("out", "file", "", "write the trained model to this checkpoint");
  if (!args.parse(argc, argv)) return 0;

  const UNetConfig config = model_config_from(args);
  const LossKind loss_kind = parse_loss(args.get("loss"));
  const int batch = args.get_int("batch"), epochs = args.get_int("epochs"), slices = args.get_int("slices");
  if (batch < 1 || epochs < 1 || slices < batch) throw UsageError("unet train: need --batch >= 1, --epochs >= 1, --slices >= --batch");
  if (args.get_int("threads") > 0) omp_set_num_threads(args.get_int("threads"));
  const auto seed = uint64_t(args.get_int64("seed"));
  if (args.get("conv") != "cudnn" && args.get("conv") != "handwritten") {
    throw UsageError("unet train: --conv must be cudnn or handwritten, got '" + args.get("conv") + "'");
  }
  engine_options().cudnn = args.get("conv") == "cudnn";
  const Device device = resolve_device(args.get("device"));

  PhantomOptions data;
  data.size = args.get_int("size");
  data.channels = config.in_channels;
  const std::vector<Batch> batches = make_batches(data, slices, batch, seed, device);
  UNet model(config, seed);
  model.to(device);
  Adam adam(model.named_parameters(), {.lr = args.get_float("lr")});
  std::printf("training %lld-parameter U-Net on %zu batches of %d generated %dx%d slices, loss %s, on %s (%d CPU threads)\n",
              static_cast<long long>(model.parameter_count() + model.buffer_count()), batches.size(), batch,
              data.size, data.size, to_string(loss_kind).c_str(), to_string(device).c_str(), omp_get_max_threads());

  const auto start = std::chrono::steady_clock::now();
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    double total = 0;
    for (std::size_t b = 0; b < batches.size(); ++b) {
      const Tensor logits = model.forward(batches[b].image);
      const Tensor input = takes_logits(loss_kind) ? logits : ops::sigmoid(logits);
      const Tensor loss = ops::loss(loss_kind, input, batches[b].mask);
      adam.zero_grad();
      loss.backward();
      adam.step();
      total += loss.item();
      std::printf("\repoch %d/%d  batch %zu/%zu  loss %.4f", epoch, epochs, b + 1, batches.size(), total / double(b + 1));
      std::fflush(stdout);
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("\repoch %d/%d  loss %.4f  elapsed %.1f s%20s\n", epoch, epochs, total / double(batches.size()), seconds, "");
  }
  if (!args.get("out").empty()) {
    save_unet(args.get("out"), model, {{"run.loss", to_string(loss_kind)}});
    std::printf("model written to %s\n", args.get("out").c_str());
  }
  return 0;
}

}  // namespace unet::cli
