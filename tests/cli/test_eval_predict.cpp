// `unet eval` and `unet predict` as a user runs them, on a tiny model trained first: the files
// they write, their sizes and columns, and clean failures that leave no output behind.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "train/io/image.h"
#include "train/io/nifti.h"
#include "train/io/npy.h"
#include "tests/support/cli_run.h"

namespace fs = std::filesystem;
using namespace unet;

namespace {

using test::TempDir;
using Result = test::CliResult;

// One thread: the models are tiny, and OpenMP threads that wait on each other slow to a crawl
// when the machine's cores are busy with other work (parallel builds and tests).
test::CliResult run(const std::string& arguments) { return test::run_cli(arguments + " --threads 1"); }

// A 3-channel model small enough to train in a second; its checkpoint path.
std::string train_tiny_model(const TempDir& dir) {
  const Result r = run("train --device cpu --data phantom:2 --epochs 1 --batch 2 --size 32 --base-filters 4 --depth 2 --out " +
                       dir.file("run"));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  REQUIRE(fs::is_regular_file(dir.file("run/best.ckpt")));
  return dir.file("run/best.ckpt");
}

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string text_of(const std::string& path) {
  std::ostringstream out;
  out << std::ifstream(path).rdbuf();
  return out.str();
}

// A smooth image with a bright blob, so that normalisation sees tissue-like values.
std::vector<float> blob(int height, int width, int channels, bool channels_last) {
  std::vector<float> v(std::size_t(height * width * channels));
  for (int c = 0; c < channels; ++c)
    for (int y = 0; y < height; ++y)
      for (int x = 0; x < width; ++x) {
        const float value = 1.0f + float(c) + float((x - width / 2) * (x - width / 2) + (y - height / 2) * (y - height / 2) < 40) * 5.0f +
                            0.01f * float(x + y);
        v[std::size_t(channels_last ? (y * width + x) * channels + c : (c * height + y) * width + x)] = value;
      }
  return v;
}

bool empty_or_missing(const std::string& dir) { return !fs::exists(dir) || fs::is_empty(dir); }

}  // namespace

TEST_CASE("unet eval writes per-image, per-patient and summary files for a labelled set", "[cli][eval]") {
  TempDir dir("unet-eval-predict-test");
  const std::string ckpt = train_tiny_model(dir);
  const std::string out = dir.file("eval");
  const Result r = run("eval --device cpu --size 32 --overlays 2 --checkpoint " + ckpt + " --data phantom:2 --out " + out);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("phantom-001") && Catch::Contains("per patient: Dice mean"));

  const std::vector<std::string> images = lines_of(out + "/per_image.csv");
  REQUIRE(images.size() == 1 + 16);  // header + 2 phantom patients x 8 slices
  CHECK(images[0] == "id,patient,tumour_pixels,predicted_pixels,tp,fp,fn,tn,dice,iou,precision,recall,specificity,f1,accuracy,hd95");
  CHECK_THAT(images[1], Catch::StartsWith("phantom-000/0,phantom-000,"));
  const std::vector<std::string> patients = lines_of(out + "/per_patient.csv");
  REQUIRE(patients.size() == 1 + 2);
  CHECK(patients[0] == "patient,slices,tumour_pixels,predicted_pixels,tp,fp,fn,tn,dice,iou,precision,recall,specificity,f1,"
                       "accuracy,hd95,hd95_slices");
  CHECK_THAT(patients[2], Catch::StartsWith("phantom-001,8,"));

  const std::string summary = text_of(out + "/summary.json");
  CHECK_THAT(summary, Catch::Contains("\"images\": 16") && Catch::Contains("\"patients\": 2") &&
                          Catch::Contains("\"images_hd95_undefined\": ") && Catch::Contains("\"threshold\": 0.5") &&
                          Catch::Contains("\"dice_median\": ") && Catch::Contains("\"empty_masks\": ") &&
                          Catch::Contains(ckpt));
  CHECK(std::distance(fs::directory_iterator(out + "/overlays"), fs::directory_iterator()) == 2);
}

TEST_CASE("eval and predict default --size to the checkpoint's training size and say when it differs", "[cli][eval]") {
  TempDir dir("unet-eval-size-test");
  const std::string ckpt = train_tiny_model(dir);  // trained at 32 px
  const Result same = run("eval --device cpu --overlays 0 --checkpoint " + ckpt + " --data phantom:1 --out " + dir.file("a"));
  INFO(same.output);
  REQUIRE(same.exit_code == 0);
  CHECK_THAT(text_of(dir.file("a/summary.json")), Catch::Contains("\"size\": 32"));
  CHECK_THAT(same.output, !Catch::Contains("was trained at"));
  const Result other = run("eval --device cpu --size 64 --overlays 0 --checkpoint " + ckpt + " --data phantom:1 --out " +
                           dir.file("b"));
  INFO(other.output);
  REQUIRE(other.exit_code == 0);
  CHECK_THAT(other.output, Catch::Contains("--size 64, but " + ckpt + " was trained at 32 px"));
  CHECK_THAT(text_of(dir.file("b/summary.json")), Catch::Contains("\"size\": 64"));
}

TEST_CASE("unet predict writes mask, probabilities and overlay at an npy slice's own size", "[cli][predict]") {
  TempDir dir("unet-eval-predict-test");
  const std::string ckpt = train_tiny_model(dir);
  fs::create_directories(dir.file("in"));
  const std::vector<float> image = blob(40, 36, 3, true);  // HxWxC, not the model's size
  unet::io::write_npy(dir.file("in/slice_7.npy"), {40, 36, 3}, image.data());
  std::vector<uint8_t> truth(40 * 36, 0);
  truth[20 * 36 + 18] = 1;
  unet::io::write_npy(dir.file("in/slice_7_mask.npy"), {40, 36}, truth.data());

  const std::string out = dir.file("pred");
  const Result r = run("predict --device cpu --size 32 --checkpoint " + ckpt + " --input " + dir.file("in") + " --out " + out);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("slice_7") && Catch::Contains("40x36") && Catch::Contains("Dice"));

  const unet::io::NpyArray mask = unet::io::read_npy(out + "/slice_7_mask.npy");
  CHECK(mask.shape == std::vector<int64_t>{40, 36});
  CHECK(mask.dtype == "uint8");
  for (float v : mask.data) REQUIRE((v == 0.0f || v == 1.0f));
  const unet::io::NpyArray prob = unet::io::read_npy(out + "/slice_7_prob.npy");
  CHECK(prob.shape == std::vector<int64_t>{40, 36});
  CHECK(prob.dtype == "float32");
  const unet::io::Image png = unet::io::read_image(out + "/slice_7_mask.png");
  CHECK((png.height == 40 && png.width == 36 && png.channels == 1));
  CHECK(fs::is_regular_file(out + "/slice_7_overlay.png"));
  CHECK(!fs::exists(out + "/slice_7_mask_mask.npy"));  // the truth beside the slice is not an input
}

TEST_CASE("unet predict on a NIfTI patient folder writes a mask volume with the scan's geometry", "[cli][predict]") {
  TempDir dir("unet-eval-predict-test");
  const std::string ckpt = train_tiny_model(dir);
  const std::string patient = dir.file("patient_01");
  fs::create_directories(patient);
  unet::io::Volume like;
  like.nx = 36, like.ny = 40, like.nz = 4;
  like.dx = like.dy = 1.5f, like.dz = 2.0f;
  for (const char* name : {"a_flair.nii.gz", "b_t1.nii.gz", "c_t2.nii.gz"})
    unet::io::write_nifti(patient + "/" + name, like, blob(4 * 40, 36, 1, true), false);
  std::vector<float> label(36 * 40 * 4, 0.0f);
  label[2 * 36 * 40 + 20 * 36 + 18] = 2.0f;
  unet::io::write_nifti(patient + "/seg.nii.gz", like, label, true);

  const std::string out = dir.file("pred");
  const Result r = run("predict --device cpu --size 32 --checkpoint " + ckpt + " --input " + patient + " --out " + out);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("patient_01_mask.nii.gz") && Catch::Contains("36x40x4"));
  const unet::io::Volume mask = unet::io::read_nifti(out + "/patient_01_mask.nii.gz");
  CHECK((mask.nx == 36 && mask.ny == 40 && mask.nz == 4));
  CHECK((mask.dx == 1.5f && mask.dz == 2.0f));
  for (float v : mask.data) REQUIRE((v == 0.0f || v == 1.0f));
  int overlays = 0;
  for (const auto& entry : fs::directory_iterator(out)) overlays += entry.path().string().ends_with("_overlay.png");
  CHECK(overlays == 3);
}

TEST_CASE("eval and predict fail on bad input with the file named and no output left", "[cli][eval][predict]") {
  TempDir dir("unet-eval-predict-test");
  const std::string ckpt = train_tiny_model(dir);
  const std::string out = dir.file("out");
  const std::vector<float> image = blob(32, 32, 3, true);
  unet::io::write_npy(dir.file("good.npy"), {32, 32, 3}, image.data());

  auto fails_naming = [&](const std::string& arguments, const std::string& culprit) {
    const Result r = run(arguments + " --device cpu --out " + out);
    INFO(arguments << "\n" << r.output);
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.output, Catch::Contains(culprit));
    CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 1);
    CHECK(empty_or_missing(out));
  };
  const std::string missing = dir.file("missing.ckpt");
  fails_naming("predict --checkpoint " + missing + " --input " + dir.file("good.npy"), missing);
  fails_naming("eval --size 32 --checkpoint " + missing + " --data phantom:1", missing);

  fs::copy_file(dir.file("good.npy"), dir.file("cut.npy"));
  fs::resize_file(dir.file("cut.npy"), 200);
  fails_naming("predict --size 32 --checkpoint " + ckpt + " --input " + dir.file("cut.npy"), dir.file("cut.npy"));

  const std::vector<float> two = blob(32, 32, 2, true);
  unet::io::write_npy(dir.file("two.npy"), {32, 32, 2}, two.data());
  fails_naming("predict --size 32 --checkpoint " + ckpt + " --input " + dir.file("two.npy"), dir.file("two.npy"));

  // A lone volume is one channel; the model takes three.
  unet::io::Volume like;
  like.nx = like.ny = 32, like.nz = 2;
  unet::io::write_nifti(dir.file("lone.nii.gz"), like, blob(64, 32, 1, true), false);
  fails_naming("predict --size 32 --checkpoint " + ckpt + " --input " + dir.file("lone.nii.gz"), dir.file("lone.nii.gz"));

  // eval needs ground truth: a folder of slices without masks.
  fs::create_directories(dir.file("unlabelled"));
  fs::copy_file(dir.file("good.npy"), dir.file("unlabelled/a_1.npy"));
  fails_naming("eval --size 32 --checkpoint " + ckpt + " --data " + dir.file("unlabelled"), dir.file("unlabelled/a_1.npy"));
}

TEST_CASE("unet predict reads a real LGG slice with its mask beside it", "[cli][predict][data]") {
  const fs::path case_dir = fs::path(UNET_SHARED_DATA) / "lgg-kaggle-3m/kaggle_3m/TCGA_CS_4941_19960909";
  const fs::path slice = case_dir / "TCGA_CS_4941_19960909_12.tif";
  if (!fs::exists(slice)) {
    WARN("skipped: " << slice << " is absent (shared data not installed)");
    return;
  }
  TempDir dir("unet-eval-predict-test");
  const std::string ckpt = train_tiny_model(dir);
  const Result r = run("predict --device cpu --size 32 --checkpoint " + ckpt + " --input " + slice.string() + " --out " + dir.file("pred"));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("256x256") && Catch::Contains("Dice"));
  const unet::io::NpyArray mask = unet::io::read_npy(dir.file("pred/TCGA_CS_4941_19960909_12_mask.npy"));
  CHECK(mask.shape == std::vector<int64_t>{256, 256});
}

TEST_CASE("a patient with nothing predicted has an undefined HD95, not a perfect 0", "[cli][eval]") {
  TempDir dir("unet-eval-hd95-test");
  const std::string ckpt = train_tiny_model(dir);
  // No probability of a one-epoch model reaches this threshold: nothing is predicted anywhere.
  const Result r = run("eval --device cpu --overlays 0 --threshold 0.9999999 --checkpoint " + ckpt +
                       " --data phantom:2 --out " + dir.file("e"));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const std::string summary = text_of(dir.file("e/summary.json"));
  CHECK_THAT(summary, Catch::Contains("\"patients_hd95_undefined\": 2"));
}
