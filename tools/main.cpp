// `unet`: one binary, one subcommand per job. Errors end in one line on stderr and exit code 1
// (2 for a misused command line).
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>

#include "tools/args.h"
#include "tools/commands.h"

namespace {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(int, char**);
};

constexpr Command kCommands[] = {
    {"summary", "print the model's layers, parameter counts and FLOPs", unet::cli::run_summary},
    {"synth", "write synthetic phantom MRI slices with tumour masks as .npy pairs", unet::cli::run_synth},
    {"train", "train a U-Net (Adam, LR decay on plateau, early stopping, checkpoints)", unet::cli::run_train},
    {"eval", "score a checkpoint on a labelled dataset (per image, patient, overall)", unet::cli::run_eval},
    {"cv", "k-fold cross-validation by patient: train, predict held-out folds, choose TTA and post-processing",
     unet::cli::run_cv},
    {"predict", "predict tumour masks for slices, images or NIfTI volumes", unet::cli::run_predict},
    {"profile", "time training steps kernel by kernel; write a Chrome trace", unet::cli::run_profile},
    {"kernels", "list the CPU kernel variants, what each needs, and which one runs", unet::cli::run_kernels},
};

void print_usage(std::FILE* out) {
  std::fprintf(out, "usage: unet <command> [flags]   (unet <command> --help for its flags)\n\ncommands:\n");
  for (const Command& c : kCommands) std::fprintf(out, "  %-10s %s\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    print_usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  for (const Command& c : kCommands) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    try {
      return c.run(argc - 2, argv + 2);
    } catch (const unet::cli::UsageError& e) {
      std::fprintf(stderr, "%s\n", e.what());
      return 2;
    } catch (const std::bad_alloc&) {
      // Readers refuse oversized files before allocating; what is left is a model, batch or
      // --size too large for this machine's memory.
      std::fprintf(stderr, "unet %s: out of memory (try a smaller --batch or --size)\n", c.name);
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "unet %s: %s\n", c.name, e.what());
      return 1;
    }
  }
  std::fprintf(stderr, "unet: unknown command '%s'\n", argv[1]);
  print_usage(stderr);
  return 2;
}
