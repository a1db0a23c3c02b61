// The `unet` binary as a user runs it: exit codes, what it prints, and the files it writes.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/support/cli_run.h"

namespace fs = std::filesystem;

using unet::test::TempDir;
using Result = unet::test::CliResult;

namespace {
Result run(const std::string& arguments) { return unet::test::run_cli(arguments); }
}  // namespace

TEST_CASE("unet summary describes the reference model", "[cli]") {
  const Result r = run("summary");
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("Total params: 2,164,593"));
  CHECK_THAT(r.output, Catch::Contains("Trainable params: 2,161,649"));
  CHECK_THAT(r.output, Catch::Contains("Non-trainable params: 2,944"));
  CHECK_THAT(r.output, Catch::Contains("conv_transpose2d_4 (conv_transpose2d)"));
  CHECK_THAT(r.output, Catch::Contains("Forward: 5.6"));
}

TEST_CASE("every command has --help, misuse exits 2 with the reason", "[cli]") {
  for (const char* command : {"summary", "synth", "train", "eval", "predict", "profile"}) {
    const Result r = run(std::string(command) + " --help");
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.output, Catch::Contains(std::string("usage: unet ") + command));
  }
  const Result unknown = run("summary --colour blue");
  CHECK(unknown.exit_code == 2);
  CHECK_THAT(unknown.output, Catch::Contains("unknown flag --colour"));
  const Result bad_value = run("summary --depth deep");
  CHECK(bad_value.exit_code == 2);
  CHECK_THAT(bad_value.output, Catch::Contains("--depth") && Catch::Contains("'deep'"));
  CHECK(run("").exit_code == 2);
  CHECK(run("frobnicate").exit_code == 2);
}

TEST_CASE("unet train --device cuda without a usable GPU fails with a one-line reason", "[cli][cuda]") {
  const Result r = run("train --device cuda --data phantom:2 --epochs 1 --batch 2 --size 32 --out /nonexistent/run");
  if (r.exit_code == 0) {
    WARN("skipped: a usable GPU is present, so --device cuda succeeded");
    return;
  }
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::StartsWith("unet train: device cuda: "));
  CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 1);
}

TEST_CASE("train leaves a run folder whose checkpoint summary reads back, broken ones are named", "[cli]") {
  TempDir dir("unet-cli-test");
  const std::string run_dir = dir.file("run"), ckpt = run_dir + "/best.ckpt";
  const Result trained = run("train --device cpu --data phantom:3 --epochs 2 --batch 2 --size 32 --base-filters 4 --depth 2 --out " + run_dir);
  REQUIRE(trained.exit_code == 0);
  CHECK_THAT(trained.output, Catch::Contains("epoch   2/2") && Catch::Contains("val_dice"));
  for (const char* file : {"split.txt", "log.csv", "curves.png", "best.ckpt", "last.ckpt", "summary.json"}) {
    INFO(file);
    CHECK(fs::exists(run_dir + "/" + file));
  }

  const Result summary = run("summary --size 32 --checkpoint " + ckpt);
  CHECK(summary.exit_code == 0);
  CHECK_THAT(summary.output, Catch::Contains("[N, 4, 32, 32]"));

  fs::resize_file(ckpt, fs::file_size(ckpt) / 2);
  const Result broken = run("summary --checkpoint " + ckpt);
  CHECK(broken.exit_code == 1);
  CHECK_THAT(broken.output, Catch::Contains(ckpt) && Catch::Contains("truncated"));

  const Result bad_data = run("train --device cpu --data " + dir.file("no-such-folder") + " --epochs 1 --out " + dir.file("run2"));
  CHECK(bad_data.exit_code == 1);
  CHECK_THAT(bad_data.output, Catch::Contains("no-such-folder"));
}
