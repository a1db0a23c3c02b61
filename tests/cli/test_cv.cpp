// `unet cv` end to end on phantom data: folds that partition the patients, one run folder per
// fold, every patient scored once by the fold that held it out, the choices recorded and used by
// predict with the folder as an ensemble, and a second invocation that continues instead of
// retraining.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "tests/support/cli_run.h"
#include "train/io/npy.h"

namespace fs = std::filesystem;

namespace {

using unet::test::TempDir;
using Result = unet::test::CliResult;

Result run(const std::string& arguments) { return unet::test::run_cli(arguments + " --threads 1"); }

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace

TEST_CASE("unet cv trains every fold, scores each patient once and records its choices", "[cli][cv]") {
  TempDir dir("unet-cv-test");
  const std::string out = dir.file("cv");
  const std::string command = "cv --device cpu --data phantom:6 --folds 3 --epochs 1 --batch 2 --size 32 --base-filters 4 "
                              "--depth 2 --out " + out;
  const Result r = run(command);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);

  // folds.txt: 3 folds of 2 patients, together the 6 patients, nobody twice.
  std::map<std::string, int> fold_of;
  int fold = 0;
  for (const std::string& line : lines_of(out + "/folds.txt")) {
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind("fold ", 0) == 0) {
      ++fold;
      continue;
    }
    CHECK(fold_of.emplace(line, fold).second);
  }
  CHECK(fold == 3);
  CHECK(fold_of.size() == 6);
  for (int f = 1; f <= 3; ++f) {
    const std::string run_dir = out + "/fold-" + std::to_string(f);
    CHECK(fs::is_regular_file(run_dir + "/best.ckpt"));
    // The fold's run never saw its held-out patients, in training or validation.
    for (const std::string& line : lines_of(run_dir + "/split.txt"))
      if (fold_of.count(line)) CHECK(fold_of[line] != f);
  }

  // Every patient scored exactly once, by the fold that held it out.
  const std::vector<std::string> rows = lines_of(out + "/cv_per_patient.csv");
  REQUIRE(rows.size() == 1 + 6);
  CHECK(rows[0] == "patient,fold,slices,tumour_pixels,predicted_pixels,dice,iou,precision,recall,hd95");
  std::set<std::string> scored;
  for (std::size_t i = 1; i < rows.size(); ++i) {
    const std::string patient = rows[i].substr(0, rows[i].find(','));
    CHECK(scored.insert(patient).second);
    CHECK(rows[i].substr(patient.size() + 1, 2) == std::to_string(fold_of[patient]) + ",");
  }
  std::ifstream summary_in(out + "/cv_summary.json");
  const std::string summary((std::istreambuf_iterator<char>(summary_in)), {});
  CHECK_THAT(summary, Catch::Contains("\"folds\": 3") && Catch::Contains("\"tried\": [") &&
                          Catch::Contains("\"postprocess\": \"largest\"") && Catch::Contains("\"per_fold_dice_mean\": ["));
  CHECK(fs::file_size(out + "/cv_dice.png") > 1000);
  const std::vector<std::string> choices = lines_of(out + "/inference.txt");
  REQUIRE(choices.size() == 3);
  CHECK_THAT(choices[0], Catch::StartsWith("tta="));
  CHECK_THAT(choices[1], Catch::StartsWith("postprocess="));
  CHECK_THAT(choices[2], Catch::StartsWith("threshold="));
  // Every threshold candidate was scored (with the chosen flips, before the post-processing).
  for (const char* t : {"0.5", "0.3", "0.4", "0.6"})
    CHECK_THAT(summary, Catch::Contains(std::string("\"threshold\": ") + t + ", \"postprocess\": \"none\""));

  // The folder is an ensemble of the three fold models for predict, with the recorded choices.
  fs::create_directories(dir.file("in"));
  std::vector<float> image(32 * 32 * 3, 1.0f);
  for (std::size_t i = 0; i < image.size(); i += 7) image[i] = 3.0f;
  unet::io::write_npy(dir.file("in/a.npy"), {32, 32, 3}, image.data());
  const Result p = run("predict --device cpu --checkpoint " + out + " --input " + dir.file("in") + " --out " + dir.file("pred"));
  INFO(p.output);
  CHECK(p.exit_code == 0);
  CHECK_THAT(p.output, Catch::Contains("3 models"));

  // eval with the folder takes the recorded threshold (here one that no probability reaches, so
  // nothing is predicted and every patient's HD95 is undefined); a malformed one is refused.
  {
    std::ofstream(out + "/inference.txt") << "tta=none\npostprocess=none\nthreshold=0.9999999\n";
    const Result e = run("eval --device cpu --overlays 0 --checkpoint " + out + " --data phantom:6 --out " + dir.file("e"));
    INFO(e.output);
    CHECK(e.exit_code == 0);
    CHECK_THAT(e.output, Catch::Contains("threshold 0.9999999, as chosen by unet cv"));
    std::ifstream eval_in(dir.file("e/summary.json"));
    const std::string eval_summary((std::istreambuf_iterator<char>(eval_in)), {});
    CHECK_THAT(eval_summary, Catch::Contains("\"threshold\": 0.9999999") && Catch::Contains("\"patients_hd95_undefined\": 6"));
    const Result explicit_threshold =
        run("eval --device cpu --overlays 0 --threshold 0.5 --checkpoint " + out + " --data phantom:6");
    CHECK(explicit_threshold.exit_code == 0);
    CHECK_THAT(explicit_threshold.output, !Catch::Contains("as chosen by unet cv"));
    std::ofstream(out + "/inference.txt") << "tta=none\npostprocess=none\nthreshold=2\n";
    const Result bad = run("eval --device cpu --overlays 0 --checkpoint " + out + " --data phantom:6");
    CHECK(bad.exit_code != 0);
    CHECK_THAT(bad.output, Catch::Contains("inference.txt: threshold=2: must lie strictly between 0 and 1"));
  }

  // Again: the trained folds are kept, not retrained.
  const auto before = fs::last_write_time(out + "/fold-2/best.ckpt");
  const Result again = run(command);
  INFO(again.output);
  CHECK(again.exit_code == 0);
  CHECK_THAT(again.output, Catch::Contains("fold 3/3: trained already"));
  CHECK(fs::last_write_time(out + "/fold-2/best.ckpt") == before);

  // Other folds in the same folder are refused.
  const Result other = run("cv --device cpu --data phantom:6 --folds 2 --epochs 1 --batch 2 --size 32 --base-filters 4 "
                           "--depth 2 --out " + out);
  CHECK(other.exit_code != 0);
  CHECK_THAT(other.output, Catch::Contains("folds.txt") && Catch::Contains("differ"));
}
