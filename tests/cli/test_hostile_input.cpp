// Regression tests of the reliability review: inputs that once crashed `unet` or made it allocate
// gigabytes, flags that once trained uphill, and a divergence that once reached the checkpoints.
// Every bad input is built here in code; each must end with exit code 1 or 2, a message naming
// the file or flag, and no output folder.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/support/cli_run.h"
#include "train/io/image.h"
#include "train/io/nifti.h"
#include "train/io/npy.h"

namespace fs = std::filesystem;
using namespace unet;

namespace {

using test::TempDir;
using Result = test::CliResult;

Result run(const std::string& arguments) { return test::run_cli(arguments + " --threads 1 --device cpu"); }

std::string train_tiny_model(const TempDir& dir) {
  const Result r = run("train --data phantom:2 --epochs 1 --batch 2 --size 32 --base-filters 4 --depth 2 --out " +
                       dir.file("run"));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  return dir.file("run/best.ckpt");
}

void fails_naming(const Result& r, int code, const std::string& culprit, const std::string& problem) {
  INFO(r.output);
  CHECK(r.exit_code == code);
  CHECK_THAT(r.output, Catch::Contains(culprit) && Catch::Contains(problem));
}

}  // namespace

TEST_CASE("a .npy image with a zero-length axis is refused, not a crash", "[cli][reliability]") {
  TempDir dir("unet-hostile-npy");
  const std::string ckpt = train_tiny_model(dir);
  for (const std::vector<int64_t>& shape : {std::vector<int64_t>{0, 64, 3}, {64, 0, 3}, {3, 0, 64}, {0, 0}}) {
    const std::string path = dir.file("empty.npy");
    io::write_npy(path, shape, static_cast<const float*>(nullptr));
    const Result r = run("predict --size 32 --checkpoint " + ckpt + " --input " + path + " --out " + dir.file("out"));
    fails_naming(r, 1, path, "is empty");
    CHECK_FALSE(fs::exists(dir.file("out")));
  }
}

TEST_CASE("an image whose header claims more than --max-input-mb is refused before decoding", "[cli][reliability]") {
  TempDir dir("unet-hostile-png");
  const std::string ckpt = train_tiny_model(dir);
  // 512 x 512 RGB decodes to 3 MiB of floats: over a 1 MiB limit, under the default.
  std::vector<uint8_t> pixels(512 * 512 * 3);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = uint8_t(i * 7 % 251);
  io::write_png(dir.file("big.png"), 512, 512, 3, pixels.data());
  const std::string common = " --size 32 --checkpoint " + ckpt + " --input " + dir.file("big.png");
  const Result refused = run("predict --max-input-mb 1" + common + " --out " + dir.file("out"));
  fails_naming(refused, 1, dir.file("big.png"), "too large");
  CHECK_FALSE(fs::exists(dir.file("out")));
  CHECK(run("predict --max-input-mb 0" + common + " --out " + dir.file("out")).exit_code == 2);
  const Result accepted = run("predict" + common + " --out " + dir.file("out"));
  INFO(accepted.output);
  CHECK(accepted.exit_code == 0);
}

TEST_CASE("training flags that cannot work are refused and name the flag", "[cli][reliability]") {
  TempDir dir("unet-hostile-flags");
  const std::string base = "train --data phantom:2 --epochs 1 --batch 2 --size 32 --out " + dir.file("run") + " ";
  for (const char* flag : {"--lr -1", "--lr 0", "--lr nan", "--min-delta nan", "--min-delta -1", "--lr-factor 0",
                           "--lr-factor 1", "--weight-decay -0.1", "--val-fraction 1", "--lr-patience 0",
                           "--size 100000", "--size 40", "--foreground-fraction 1.5", "--foreground-fraction -0.1",
                           "--foreground-fraction nan", "--lr-schedule cosine"}) {
    const Result r = run(base + flag);
    const std::string name = std::string(flag).substr(0, std::string(flag).find(' '));
    fails_naming(r, 2, name, "must");
    CHECK_FALSE(fs::exists(dir.file("run")));
  }
}

TEST_CASE("a diverging run stops at the first non-finite value and writes no checkpoint", "[cli][reliability]") {
  TempDir dir("unet-hostile-lr");
  const std::string out = dir.file("run");
  const Result r = run("train --data phantom:2 --epochs 2 --batch 2 --size 32 --lr 1e6 --out " + out);
  fails_naming(r, 1, "training diverged at epoch 1, step", "no checkpoint was written");
  CHECK_THAT(r.output, Catch::Contains("running_var") || Catch::Contains("gradient") || Catch::Contains("parameter") ||
                           Catch::Contains("loss"));
  // The folder was made by this run, which saved nothing: it is gone.
  CHECK_FALSE(fs::exists(out));
}

TEST_CASE("resume before any checkpoint starts from scratch and says so", "[cli][reliability]") {
  TempDir dir("unet-hostile-resume");
  const Result r = run("train --data phantom:2 --epochs 1 --batch 2 --size 32 --base-filters 4 --depth 2 --resume --out " +
                       dir.file("run"));
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("does not exist yet") && Catch::Contains("starting from scratch"));
  CHECK(fs::exists(dir.file("run/last.ckpt")));
}

TEST_CASE("errors about a lone NIfTI volume name the user's file, not a temporary link", "[cli][reliability]") {
  TempDir dir("unet-hostile-nifti");
  const Result trained = run("train --data phantom:2 --epochs 1 --batch 2 --size 32 --base-filters 4 --depth 2 "
                             "--in-channels 1 --out " + dir.file("run"));
  INFO(trained.output);
  REQUIRE(trained.exit_code == 0);
  io::Volume like;
  like.nx = like.ny = 32, like.nz = 3;
  const std::string volume = dir.file("blank.nii.gz");
  io::write_nifti(volume, like, std::vector<float>(32 * 32 * 3, 0.0f), false);  // no tissue on any slice
  const Result r = run("predict --size 32 --checkpoint " + dir.file("run/best.ckpt") + " --input " + volume +
                       " --out " + dir.file("out"));
  fails_naming(r, 1, volume, "no slices");
  CHECK_THAT(r.output, !Catch::Contains("unet-predict-"));
  CHECK_FALSE(fs::exists(dir.file("out")));
}

TEST_CASE("a checkpoint path that is a folder is named as such", "[cli][reliability]") {
  TempDir dir("unet-hostile-ckpt-dir");
  const Result r = run("eval --size 32 --data phantom:1 --checkpoint " + dir.path.string() + " --out " + dir.file("out"));
  fails_naming(r, 1, dir.path.string(), "is a folder");
}

TEST_CASE("resume refuses changed settings, listing them, unless --apply-changes", "[cli][reliability][resume]") {
  TempDir dir("unet-hostile-resume-changes");
  const std::string base = "train --data phantom:2 --batch 2 --size 32 --base-filters 4 --depth 2 --out " + dir.file("run");
  REQUIRE(run(base + " --epochs 1").exit_code == 0);
  const auto split_text = [&] {
    std::ifstream in(dir.file("run/split.txt"));
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const std::string split = split_text();

  const Result refused = run(base + " --epochs 2 --resume --lr 0.001 --seed 9");
  fails_naming(refused, 1, "--lr 0.001 (run: 0.002)", "--seed 9 (run: 1)");
  CHECK_THAT(refused.output, Catch::Contains("--apply-changes"));
  CHECK(split_text() == split);  // the run's split is kept, not redrawn with the new seed

  const Result applied = run(base + " --epochs 2 --resume --lr 0.001 --apply-changes");
  INFO(applied.output);
  CHECK(applied.exit_code == 0);
  CHECK_THAT(applied.output, Catch::Contains("applying changed settings: --lr 0.001 (run: 0.002)"));
  CHECK_THAT(applied.output, Catch::Contains("lr 1.00e-03"));
}

TEST_CASE("train takes the data's channels when --in-channels is not given", "[cli][train]") {
  TempDir dir("unet-channels");
  fs::create_directories(dir.file("data"));
  std::vector<float> image(32 * 32 * 2), mask(32 * 32, 0.0f);
  for (std::size_t i = 0; i < image.size(); ++i) image[i] = float(i % 97) * 0.1f + 1.0f;
  for (std::size_t i = 300; i < 400; ++i) mask[i] = 1.0f;
  for (int patient = 0; patient < 4; ++patient)
    for (int slice = 0; slice < 2; ++slice) {
      const std::string stem = dir.file("data/p" + std::to_string(patient) + "_" + std::to_string(slice));
      io::write_npy(stem + ".npy", {32, 32, 2}, image.data());
      io::write_npy(stem + "_mask.npy", {32, 32}, mask.data());
    }
  const Result r = run("train --data " + dir.file("data") + " --epochs 1 --batch 2 --size 32 --base-filters 4 --depth 2 --out " +
                       dir.file("run"));
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("2 input channels, as the data has"));
  const Result three = run("train --data " + dir.file("data") + " --in-channels 3 --epochs 1 --batch 2 --size 32 --out " +
                           dir.file("run3"));
  fails_naming(three, 1, "3 were requested", "--in-channels");
}
