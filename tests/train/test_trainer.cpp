// The training loop end to end on a tiny model: the run folder's files, and resume == an
// uninterrupted run, bit for bit, on the CPU.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "engine/checkpoint.h"
#include "train/dataset.h"
#include "train/split.h"
#include "train/trainer.h"
#include "tests/support/run_files.h"

using namespace unet;
using test::file_bytes;
using test::log_without_seconds;
namespace fs = std::filesystem;

namespace {

struct Fixture {
  Fixture() : root(fs::temp_directory_path() / ("unet-trainer-test-" + std::to_string(::getpid()))) {
    fs::remove_all(root);
    DatasetOptions d;
    d.size = 32;
    d.phantom_slices = 4;
    samples = load_dataset("phantom:3", d);
    const Split split = split_by_patient(samples, 0.34, 1);
    train = sample_indices(samples, split.train);
    val = sample_indices(samples, split.val);
  }
  ~Fixture() { fs::remove_all(root); }

  TrainOptions options(const std::string& name) const {
    TrainOptions o;
    o.run_dir = (root / name).string();
    o.epochs = 3;
    o.batch_size = 2;
    o.progress = false;
    o.restore_best = false;
    return o;
  }
  static UNetConfig config() {
    UNetConfig c;
    c.base_filters = 4;
    c.depth = 2;
    return c;
  }

  fs::path root;
  std::vector<Sample> samples;
  std::vector<int> train, val;
};

std::vector<std::vector<float>> weights(const UNet& model) {
  std::vector<std::vector<float>> out;
  for (const auto& [name, t] : module_state(model, "")) out.push_back(t.to_vector());
  return out;
}

// Trains `configure`d runs of the fixture whole and interrupted after epoch 1, then resumed, and
// checks that they agree bit for bit.
void check_resume_is_exact(Fixture& f, const std::function<void(TrainOptions&)>& configure) {
  TrainOptions whole_options = f.options("whole");
  configure(whole_options);
  UNet whole(Fixture::config(), 7);
  const TrainResult a = train_model(whole, f.samples, f.train, f.val, whole_options);

  TrainOptions first = f.options("split");
  configure(first);
  first.stop_after = 1;  // "interrupted" after epoch 1
  UNet interrupted(Fixture::config(), 7);
  train_model(interrupted, f.samples, f.train, f.val, first);

  TrainOptions second = f.options("split");
  configure(second);
  second.resume = true;
  UNet resumed(Fixture::config(), 7);
  const TrainResult b = train_model(resumed, f.samples, f.train, f.val, second);

  REQUIRE(b.history.size() == a.history.size());
  for (std::size_t i = 0; i < a.history.size(); ++i) {
    INFO("epoch " << i + 1);
    CHECK(b.history[i].loss == a.history[i].loss);
    CHECK(b.history[i].val_loss == a.history[i].val_loss);
    CHECK(b.history[i].lr == a.history[i].lr);
  }
  CHECK(weights(resumed) == weights(whole));
  // Checkpoints hold no wall-clock data, so the files themselves are identical; so is the log
  // without its seconds column.
  for (const char* name : {"last.ckpt", "best.ckpt"}) {
    INFO(name);
    CHECK(file_bytes(f.root / "split" / name) == file_bytes(f.root / "whole" / name));
  }
  CHECK(log_without_seconds(f.root / "split" / "log.csv") == log_without_seconds(f.root / "whole" / "log.csv"));
}

}  // namespace

TEST_CASE("a training run leaves its log, curves, checkpoints and summary", "[trainer]") {
  Fixture f;
  UNet model(Fixture::config(), 1);
  const TrainResult r = train_model(model, f.samples, f.train, f.val, f.options("run"));
  REQUIRE(r.history.size() == 3);
  for (const char* file : {"log.csv", "curves.png", "best.ckpt", "last.ckpt", "summary.json"}) {
    INFO(file);
    CHECK(fs::exists(f.root / "run" / file));
  }
  std::ifstream log(f.root / "run" / "log.csv");
  std::string header;
  std::getline(log, header);
  CHECK(header == "epoch,loss,val_loss,val_dice,val_iou,lr,seconds");
  CHECK(r.best_epoch >= 1);
  CHECK(load_checkpoint((f.root / "run" / "best.ckpt").string()).meta.at("run.epoch") == std::to_string(r.best_epoch));
}

TEST_CASE("resume after an interruption equals an uninterrupted run, bitwise", "[trainer][resume]") {
  Fixture f;
  check_resume_is_exact(f, [](TrainOptions&) {});
}

TEST_CASE("resume with poly decay and foreground oversampling equals an uninterrupted run", "[trainer][resume]") {
  Fixture f;
  const auto without_tumour = std::count_if(f.train.begin(), f.train.end(), [&](int i) {
    const std::vector<float>& mask = f.samples[std::size_t(i)].mask;
    return std::none_of(mask.begin(), mask.end(), [](float v) { return v > 0.5f; });
  });
  REQUIRE(without_tumour > 0);
  check_resume_is_exact(f, [](TrainOptions& o) {
    o.lr_schedule = LrSchedule::Poly;
    o.foreground_fraction = 1;  // every slice without tumour is replaced: the order really changes
  });
}

TEST_CASE("poly decay sets each epoch's rate by the formula, never by the plateau", "[trainer][schedule]") {
  Fixture f;
  TrainOptions o = f.options("poly");
  o.epochs = 4;
  o.adam.lr = 0.01f;
  o.lr_schedule = LrSchedule::Poly;
  o.plateau.patience = 1;  // would halve the rate after any epoch without improvement
  o.plateau.min_delta = 1e9;  // ... which is every epoch
  UNet model(Fixture::config(), 1);
  const TrainResult r = train_model(model, f.samples, f.train, f.val, o);
  REQUIRE(r.history.size() == 4);
  for (int e = 0; e < 4; ++e) {
    INFO("epoch " << e + 1);
    CHECK(r.history[std::size_t(e)].lr == double(float(0.01f * std::pow(1.0 - e / 4.0, 0.9))));
  }
  CHECK_THAT(file_bytes(f.root / "poly" / "summary.json"), Catch::Contains("\"lr_schedule\": \"poly\""));
}

TEST_CASE("a resumed run removes the temporary files a killed run left behind", "[trainer][resume]") {
  Fixture f;
  TrainOptions first = f.options("killed");
  first.stop_after = 1;
  UNet a(Fixture::config(), 7);
  train_model(a, f.samples, f.train, f.val, first);
  const fs::path stale = f.root / "killed" / ".last.ckpt.tmp-Ab12Cd";
  std::ofstream(stale) << "half a checkpoint";
  TrainOptions second = f.options("killed");
  second.resume = true;
  UNet b(Fixture::config(), 7);
  train_model(b, f.samples, f.train, f.val, second);
  CHECK_FALSE(fs::exists(stale));
}

TEST_CASE("resuming with another model config is refused", "[trainer][resume]") {
  Fixture f;
  TrainOptions o = f.options("run");
  o.epochs = 1;
  UNet model(Fixture::config(), 1);
  train_model(model, f.samples, f.train, f.val, o);
  UNetConfig wider = Fixture::config();
  wider.base_filters = 8;
  UNet other(wider, 1);
  o.resume = true;
  o.epochs = 2;
  CHECK_THROWS_WITH(train_model(other, f.samples, f.train, f.val, o), Catch::Contains("last.ckpt") && Catch::Contains("another model config"));
}

TEST_CASE("a run killed after its last checkpoint but before its log resumes to a complete log", "[trainer][resume]") {
  Fixture f;
  UNet a(Fixture::config(), 7);
  train_model(a, f.samples, f.train, f.val, f.options("late"));
  const fs::path log = f.root / "late" / "log.csv";
  const std::string complete = log_without_seconds(log);
  // The log as it was before the final epoch's write: one row short.
  std::string text = file_bytes(log);
  text.erase(text.rfind('\n', text.size() - 2) + 1);
  std::ofstream(log, std::ios::trunc) << text;
  TrainOptions again = f.options("late");
  again.resume = true;
  UNet b(Fixture::config(), 7);
  train_model(b, f.samples, f.train, f.val, again);
  CHECK(log_without_seconds(log) == complete);
}

TEST_CASE("skipping non-finite steps stops at its budget, restoring BatchNorm statistics", "[trainer][health]") {
  Fixture f;
  // One training slice of NaN: the one step per epoch whose batch holds it has a NaN loss.
  std::vector<float>& image = f.samples[std::size_t(f.train.front())].image;
  std::fill(image.begin(), image.end(), NAN);
  auto error_of = [&](int skips, const std::string& name) -> std::string {
    UNet model(Fixture::config(), 1);
    TrainOptions o = f.options(name);
    o.skip_nonfinite_steps = skips;
    try {
      train_model(model, f.samples, f.train, f.val, o);
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    // The run went through: weights and running statistics stayed finite.
    for (const auto& [tensor_name, t] : module_state(model, ""))
      for (float v : t.to_vector()) REQUIRE(std::isfinite(v));
    return "";
  };
  CHECK_THAT(error_of(0, "none"), Catch::Contains("epoch 1") && Catch::Contains("loss = ") && Catch::Contains("nan") &&
                                      Catch::Contains("no checkpoint was written"));
  CHECK_THAT(error_of(2, "two"), Catch::Contains("epoch 3") && Catch::Contains("all 2 steps") &&
                                     Catch::Contains("the checkpoints keep epoch 2"));
  CHECK(error_of(3, "three").empty());
  CHECK(load_checkpoint((f.root / "three" / "last.ckpt").string()).meta.at("run.skipped_steps") == "3");
}
