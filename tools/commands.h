// The `unet` subcommands. Each takes the arguments after its name and returns the exit code.
#pragma once

namespace unet::cli {

int run_summary(int argc, char** argv);
int run_synth(int argc, char** argv);
int run_train(int argc, char** argv);
int run_eval(int argc, char** argv);
int run_cv(int argc, char** argv);
int run_predict(int argc, char** argv);
int run_profile(int argc, char** argv);
int run_kernels(int argc, char** argv);

}  // namespace unet::cli
