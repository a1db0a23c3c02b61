// The training-recipe flags as a user runs them: --lr-schedule poly and --foreground-fraction in
// the log and the summary, resume refusing changed values, and data without tumour named.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/cli_run.h"
#include "train/io/npy.h"

namespace fs = std::filesystem;
using namespace unet;

namespace {

using test::TempDir;
using Result = test::CliResult;

Result run(const std::string& arguments) { return test::run_cli(arguments + " --threads 1 --device cpu"); }

std::string text_of(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The lr column of a run's log.csv.
std::vector<double> logged_rates(const std::string& log_path) {
  std::istringstream log(text_of(log_path));
  std::string line;
  std::getline(log, line);  // header: epoch,loss,val_loss,val_dice,val_iou,lr,seconds
  std::vector<double> rates;
  while (std::getline(log, line)) {
    std::istringstream row(line);
    std::string field;
    for (int column = 0; column <= 5; ++column) std::getline(row, field, ',');
    rates.push_back(std::stod(field));
  }
  return rates;
}

}  // namespace

TEST_CASE("train and cv take --lr-schedule and --foreground-fraction", "[cli][train][recipe]") {
  for (const char* command : {"train", "cv"}) {
    const Result help = run(std::string(command) + " --help");
    CHECK_THAT(help.output, Catch::Contains("--lr-schedule") && Catch::Contains("--foreground-fraction"));
  }
}

TEST_CASE("a poly run logs the formula's rates, records its recipe and refuses other values on resume",
          "[cli][train][recipe][resume]") {
  TempDir dir("unet-recipe-poly");
  const std::string base = "train --data phantom:3 --batch 2 --size 32 --base-filters 4 --depth 2 --lr 0.002 --out " +
                           dir.file("run");
  const Result trained = run(base + " --epochs 3 --lr-schedule poly --foreground-fraction 0.5");
  INFO(trained.output);
  REQUIRE(trained.exit_code == 0);
  CHECK_THAT(trained.output, !Catch::Contains("lr reduced"));
  const std::vector<double> rates = logged_rates(dir.file("run/log.csv"));
  REQUIRE(rates.size() == 3);
  for (int e = 0; e < 3; ++e) {
    INFO("epoch " << e + 1);
    CHECK(rates[std::size_t(e)] == double(float(0.002f * std::pow(1.0 - e / 3.0, 0.9))));
  }
  const std::string summary = text_of(dir.file("run/summary.json"));
  CHECK_THAT(summary, Catch::Contains("\"lr_schedule\": \"poly\"") && Catch::Contains("\"foreground_fraction\": 0.5"));

  const Result refused = run(base + " --epochs 4 --resume --lr-schedule plateau --foreground-fraction 0.25");
  INFO(refused.output);
  CHECK(refused.exit_code == 1);
  CHECK_THAT(refused.output, Catch::Contains("--lr-schedule plateau (run: poly)") &&
                                 Catch::Contains("--foreground-fraction 0.25 (run: 0.5)"));
  // Every poly rate depends on --epochs: a longer run would not follow one schedule.
  const Result longer = run(base + " --epochs 4 --resume --lr-schedule poly --foreground-fraction 0.5");
  INFO(longer.output);
  CHECK(longer.exit_code == 1);
  CHECK_THAT(longer.output, Catch::Contains("--epochs 4 (run: 3)"));
}

TEST_CASE("foreground oversampling of data without tumour is refused, naming the flag", "[cli][train][recipe]") {
  TempDir dir("unet-recipe-no-tumour");
  fs::create_directories(dir.file("data"));
  std::vector<float> image(32 * 32), mask(32 * 32, 0.0f);
  for (std::size_t i = 0; i < image.size(); ++i) image[i] = float(i % 89) * 0.1f + 1.0f;
  for (int patient = 0; patient < 3; ++patient)
    for (int slice = 0; slice < 2; ++slice) {
      const std::string stem = dir.file("data/p" + std::to_string(patient) + "_" + std::to_string(slice));
      io::write_npy(stem + ".npy", {32, 32}, image.data());
      io::write_npy(stem + "_mask.npy", {32, 32}, mask.data());
    }
  const std::string out = dir.file("run");
  const Result r = run("train --data " + dir.file("data") + " --epochs 1 --batch 2 --size 32 --base-filters 4 --depth 2 "
                       "--foreground-fraction 0.3 --out " + out);
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.output, Catch::Contains("--foreground-fraction") && Catch::Contains("tumour"));
  CHECK_FALSE(fs::exists(out));
}

TEST_CASE("a recipe (--recipe) sets its defaults, says them, lets explicit flags win and refuses unknown names",
          "[cli][train][recipe]") {
  TempDir dir("unet-recipe-preset");
  // lgg: 128 px, 40 epochs, batch 8, half of each batch with tumour, poly LR; --epochs given
  // explicitly wins.
  const Result trained = run("train --recipe lgg --data phantom:3 --epochs 1 --base-filters 4 --depth 2 --out " +
                             dir.file("run"));
  INFO(trained.output);
  REQUIRE(trained.exit_code == 0);
  CHECK_THAT(trained.output,
             Catch::Contains("recipe lgg: --size 128, --epochs 1, --batch 8, --foreground-fraction 0.5, --lr-schedule poly"));
  CHECK_THAT(text_of(dir.file("run/summary.json")),
             Catch::Contains("\"foreground_fraction\": 0.5") && Catch::Contains("\"lr_schedule\": \"poly\""));
  CHECK_THAT(trained.output, Catch::Contains("128x128"));
  CHECK(text_of(dir.file("run/log.csv")).find("\n2,") == std::string::npos);

  const Result unknown = run("cv --recipe brats --data phantom:3 --out " + dir.file("cv"));
  CHECK(unknown.exit_code == 2);
  CHECK_THAT(unknown.output, Catch::Contains("--recipe must be one of none, lgg; got 'brats'"));
  CHECK_FALSE(fs::exists(dir.file("cv")));
}
