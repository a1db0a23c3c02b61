// Ensembles, test-time flips, post-processing and native-size scoring in `unet predict` /
// `unet eval`: a mirrored input gives the mirrored probabilities, an ensemble gives its models'
// mean, bad flags or mismatched models fail with nothing written, and eval counts pixels of the
// truth as stored.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "train/io/npy.h"
#include "tests/support/cli_run.h"

namespace fs = std::filesystem;
using namespace unet;

namespace {

using test::TempDir;
using Result = test::CliResult;

test::CliResult run(const std::string& arguments) { return test::run_cli(arguments + " --threads 1"); }

// A tiny 3-channel model trained for one epoch under `name` with `seed` and `depth`.
std::string train(const TempDir& dir, const std::string& name, int seed, int depth = 2) {
  const Result r = run("train --device cpu --data phantom:2 --epochs 1 --batch 2 --size 32 --base-filters 4 --depth " +
                       std::to_string(depth) + " --seed " + std::to_string(seed) + " --out " + dir.file(name));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  return dir.file(name + "/best.ckpt");
}

// A 32 x 32 x 3 image, deliberately asymmetric (an off-centre blob and a ramp).
std::vector<float> image() {
  std::vector<float> v(32 * 32 * 3);
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 32; ++x)
      for (int c = 0; c < 3; ++c) {
        const bool blob = (x - 10) * (x - 10) + (y - 20) * (y - 20) < 30;
        v[std::size_t((y * 32 + x) * 3 + c)] = 1.0f + float(c) + (blob ? 4.0f : 0.0f) + 0.05f * float(x) + 0.02f * float(y * y % 7);
      }
  return v;
}

std::vector<float> flipped(const std::vector<float>& hwc, bool horizontal, bool vertical) {
  std::vector<float> out(hwc.size());
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 32; ++x)
      for (int c = 0; c < 3; ++c)
        out[std::size_t((y * 32 + x) * 3 + c)] =
            hwc[std::size_t(((vertical ? 31 - y : y) * 32 + (horizontal ? 31 - x : x)) * 3 + c)];
  return out;
}

std::vector<float> probabilities(const std::string& file) {
  const io::NpyArray a = io::read_npy(file);
  REQUIRE(a.shape == std::vector<int64_t>{32, 32});
  return a.data;
}

double max_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(double(a[i]) - double(b[i])));
  return d;
}

}  // namespace

TEST_CASE("with --tta flips a mirrored slice gets the mirrored probabilities", "[cli][predict][tta]") {
  TempDir dir("unet-tta-test");
  const std::string ckpt = train(dir, "run", 1);
  fs::create_directories(dir.file("in"));
  const std::vector<float> a = image();
  io::write_npy(dir.file("in/a.npy"), {32, 32, 3}, a.data());
  io::write_npy(dir.file("in/h.npy"), {32, 32, 3}, flipped(a, true, false).data());
  io::write_npy(dir.file("in/v.npy"), {32, 32, 3}, flipped(a, false, true).data());
  const Result r = run("predict --device cpu --tta flips --checkpoint " + ckpt + " --input " + dir.file("in") +
                       " --out " + dir.file("tta"));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("1 model x 4 flips"));
  const Result plain = run("predict --device cpu --checkpoint " + ckpt + " --input " + dir.file("in") + " --out " + dir.file("plain"));
  REQUIRE(plain.exit_code == 0);

  // Probability maps are 32 x 32 x 1: flipping them is flipping a one-channel image.
  auto flip_map = [](const std::vector<float>& p, bool horizontal, bool vertical) {
    std::vector<float> out(p.size());
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x)
        out[std::size_t(y * 32 + x)] = p[std::size_t((vertical ? 31 - y : y) * 32 + (horizontal ? 31 - x : x))];
    return out;
  };
  const std::vector<float> pa = probabilities(dir.file("tta/a_prob.npy"));
  // The loader normalises each slice with sums whose order a flip changes, so the mirrored input
  // reaches the network equal only to rounding: hence a tolerance, far below any real change.
  CHECK(max_difference(probabilities(dir.file("tta/h_prob.npy")), flip_map(pa, true, false)) < 1e-5);
  CHECK(max_difference(probabilities(dir.file("tta/v_prob.npy")), flip_map(pa, false, true)) < 1e-5);
  // And the flips were really averaged: the plain prediction differs.
  CHECK(max_difference(probabilities(dir.file("plain/a_prob.npy")), pa) > 1e-4);
}

TEST_CASE("an ensemble predicts the mean of its models' probabilities", "[cli][predict][ensemble]") {
  TempDir dir("unet-ensemble-test");
  const std::string one = train(dir, "runs/fold-1", 1), two = train(dir, "runs/fold-2", 2);
  fs::create_directories(dir.file("in"));
  io::write_npy(dir.file("in/a.npy"), {32, 32, 3}, image().data());
  auto predict = [&](const std::string& checkpoint, const std::string& out) {
    const Result r = run("predict --device cpu --checkpoint " + checkpoint + " --input " + dir.file("in") + " --out " + dir.file(out));
    INFO(r.output);
    REQUIRE(r.exit_code == 0);
    return probabilities(dir.file(out + "/a_prob.npy"));
  };
  const std::vector<float> p1 = predict(one, "p1"), p2 = predict(two, "p2");
  std::vector<float> mean(p1.size());
  for (std::size_t i = 0; i < mean.size(); ++i) mean[i] = (p1[i] + p2[i]) * 0.5f;
  CHECK(max_difference(predict(one + "," + two, "list"), mean) == 0.0);
  // A folder of runs is the same ensemble, its runs in name order.
  CHECK(max_difference(predict(dir.file("runs"), "folder"), mean) == 0.0);
  // A run folder is its best.ckpt.
  CHECK(max_difference(predict(dir.file("runs/fold-1"), "run"), p1) == 0.0);
  CHECK(max_difference(p1, p2) > 1e-4);  // two different models, or the test proves nothing
}

TEST_CASE("mismatched ensembles and bad --tta / --postprocess fail and write nothing", "[cli][predict][eval][ensemble]") {
  TempDir dir("unet-ensemble-bad-test");
  const std::string two = train(dir, "d2", 1), three = train(dir, "d3", 1, 3);
  fs::create_directories(dir.file("in"));
  io::write_npy(dir.file("in/a.npy"), {32, 32, 3}, image().data());
  const std::string input = " --input " + dir.file("in") + " --out " + dir.file("out");

  Result r = run("predict --device cpu --checkpoint " + two + "," + three + input);
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.output, Catch::Contains(three) && Catch::Contains("depth"));
  r = run("predict --device cpu --checkpoint " + two + ",," + three + input);
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.output, Catch::Contains("empty name"));
  r = run("predict --device cpu --checkpoint " + dir.file("in") + input);
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.output, Catch::Contains(dir.file("in")) && Catch::Contains("best.ckpt"));
  r = run("predict --device cpu --tta mirror --checkpoint " + two + input);
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.output, Catch::Contains("--tta"));
  r = run("eval --device cpu --postprocess min:0 --checkpoint " + two + " --data phantom:2 --out " + dir.file("out"));
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.output, Catch::Contains("--postprocess"));
  CHECK(!fs::exists(dir.file("out")));

  // A valid rule runs: eval keeps only each patient's largest component.
  r = run("eval --device cpu --postprocess largest --tta flips --checkpoint " + two + " --data phantom:2");
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("1 model x 4 flips, post-processing largest"));
}

TEST_CASE("eval scores against the truth at its stored size, the probabilities resampled back", "[cli][eval][native]") {
  TempDir dir("unet-native-test");
  const std::string ckpt = train(dir, "run", 1);  // trained at 32 px
  // A 64 x 64 slice whose truth has 1-pixel detail that a resize to 32 px cannot keep.
  fs::create_directories(dir.file("data"));
  std::vector<float> hwc(64 * 64 * 3);
  std::vector<uint8_t> truth(64 * 64, 0);
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x) {
      const bool blob = (x - 24) * (x - 24) + (y - 36) * (y - 36) < 150;
      for (int c = 0; c < 3; ++c) hwc[std::size_t((y * 64 + x) * 3 + c)] = 1.0f + float(c) + (blob ? 4.0f : 0.0f) + 0.03f * float(x);
      truth[std::size_t(y * 64 + x)] = uint8_t(blob && (x + y) % 3 != 0);
    }
  io::write_npy(dir.file("data/s_1.npy"), {64, 64, 3}, hwc.data());
  io::write_npy(dir.file("data/s_1_mask.npy"), {64, 64}, truth.data());

  // predict writes the probabilities at the slice's own size; threshold at their median, so that
  // about half the pixels are predicted whatever the tiny model learnt.
  Result r = run("predict --device cpu --checkpoint " + ckpt + " --input " + dir.file("data/s_1.npy") + " --out " + dir.file("pred"));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const io::NpyArray prob = io::read_npy(dir.file("pred/s_1_prob.npy"));
  REQUIRE(prob.shape == std::vector<int64_t>{64, 64});
  std::vector<float> sorted = prob.data;
  std::nth_element(sorted.begin(), sorted.begin() + 2048, sorted.end());
  const float threshold = sorted[2048];
  REQUIRE((threshold > 0.0f && threshold < 1.0f));
  long long tp = 0, fp = 0, fn = 0, tn = 0;
  for (std::size_t i = 0; i < truth.size(); ++i) {
    const bool p = prob.data[i] >= threshold, t = truth[i] != 0;
    tp += p && t, fp += p && !t, fn += !p && t, tn += !p && !t;
  }
  const std::string counts = std::to_string(tp) + "," + std::to_string(fp) + "," + std::to_string(fn) + "," + std::to_string(tn) + ",";

  char flag[64];
  std::snprintf(flag, sizeof flag, " --threshold %.9g", double(threshold));
  r = run("eval --device cpu --checkpoint " + ckpt + " --data " + dir.file("data") + flag + " --out " + dir.file("native"));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  std::ifstream native(dir.file("native/per_image.csv"));
  std::string header, row;
  std::getline(native, header);
  std::getline(native, row);
  // id, patient, tumour_pixels, predicted_pixels, then tp, fp, fn, tn: the 64 x 64 counts.
  CHECK_THAT(row, Catch::Contains("," + std::to_string(tp + fn) + "," + std::to_string(tp + fp) + "," + counts));
  CHECK(tp + fp + fn + tn == 64 * 64);

  r = run("eval --device cpu --score-at input --checkpoint " + ckpt + " --data " + dir.file("data") + flag + " --out " + dir.file("input"));
  REQUIRE(r.exit_code == 0);
  std::ifstream input(dir.file("input/per_image.csv"));
  std::getline(input, header);
  std::getline(input, row);
  CHECK_THAT(row, !Catch::Contains(counts));  // 32 x 32 counts: another answer
}
