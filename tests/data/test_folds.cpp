// Cross-validation folds: every patient in exactly one fold, sizes within one, each fold gets a
// patient of every tumour-volume stratum, and the same seed gives the same folds.
#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <set>

#include "train/split.h"

using namespace unet;

namespace {

// `patients` (up to 40) patients of 2 slices; patient p has p * 10 tumour pixels in all.
std::vector<Sample> dataset(int patients) {
  std::vector<Sample> samples;
  for (int p = 0; p < patients; ++p)
    for (int slice = 0; slice < 2; ++slice) {
      Sample s;
      s.patient = "patient-" + std::to_string(100 + p);
      s.id = s.patient + "/" + std::to_string(slice);
      s.height = s.width = 20;
      s.mask.assign(400, 0.0f);
      std::fill(s.mask.begin(), s.mask.begin() + p * 5, 1.0f);
      samples.push_back(s);
    }
  return samples;
}

int volume_rank(const std::string& patient) { return std::stoi(patient.substr(8)) - 100; }

}  // namespace

TEST_CASE("cv folds: disjoint, complete, sizes within one", "[data][folds]") {
  for (int patients : {5, 17, 23})
    for (int k : {2, 3, 5}) {
      const auto folds = cv_folds(dataset(patients), k, 7);
      REQUIRE(int(folds.size()) == k);
      std::multiset<std::string> seen;
      std::size_t smallest = 1000, largest = 0;
      for (const auto& fold : folds) {
        seen.insert(fold.begin(), fold.end());
        smallest = std::min(smallest, fold.size());
        largest = std::max(largest, fold.size());
        CHECK(std::is_sorted(fold.begin(), fold.end()));
      }
      CHECK(int(seen.size()) == patients);
      CHECK(std::set<std::string>(seen.begin(), seen.end()).size() == seen.size());  // nobody twice
      CHECK(largest - smallest <= 1);
    }
}

TEST_CASE("cv folds: balanced by tumour volume, seeded", "[data][folds]") {
  const auto folds = cv_folds(dataset(17), 5, 1);
  // Patients ranked by volume, largest first, in groups of 5: each fold holds one of each full group.
  for (const auto& fold : folds) {
    std::set<int> groups;
    for (const std::string& p : fold) groups.insert((16 - volume_rank(p)) / 5);
    CHECK(groups.size() == fold.size());
    CHECK(groups.count(0) == 1);
    CHECK(groups.count(1) == 1);
    CHECK(groups.count(2) == 1);
  }
  CHECK(cv_folds(dataset(17), 5, 1) == folds);
  CHECK(cv_folds(dataset(17), 5, 2) != folds);
}

TEST_CASE("cv folds: fewer patients than folds, or one fold, is refused", "[data][folds]") {
  CHECK_THROWS_AS(cv_folds(dataset(3), 4, 1), std::invalid_argument);
  CHECK_THROWS_AS(cv_folds(dataset(3), 1, 1), std::invalid_argument);
  CHECK_NOTHROW(cv_folds(dataset(3), 3, 1));
}
