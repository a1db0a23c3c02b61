// Patient-level splits: no patient on both sides, sizes, determinism, the list file round trip
// and its errors, and SplitMix64 against the reference sequence (the same on every platform).
#include <algorithm>
#include <catch2/catch.hpp>
#include <set>

#include "tests/io/io_test_support.h"
#include "train/split.h"

using namespace unet;
using Catch::Matchers::Contains;
using unet::io::test::TempDir;

namespace {

// Slices of `patients` patients, 3 each (images are irrelevant to splitting).
std::vector<Sample> dataset(int patients) {
  std::vector<Sample> samples;
  for (int p = 0; p < patients; ++p)
    for (int slice = 0; slice < 3; ++slice) {
      Sample s;
      s.patient = "patient-" + std::to_string(p);
      s.id = s.patient + "/" + std::to_string(slice);
      samples.push_back(s);
    }
  return samples;
}

std::string error_of(const std::string& path, const std::vector<Sample>& samples) {
  try {
    read_split(path, samples);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}

}  // namespace

TEST_CASE("split: SplitMix64 follows the reference sequence", "[data][split]") {
  SplitMix64 rng(0);
  CHECK(rng.next() == 0xE220A8397B1DCDAFull);
  CHECK(rng.next() == 0x6E789E6AA1B965F4ull);
  SplitMix64 bounded(7);
  for (int i = 0; i < 1000; ++i) CHECK(bounded.below(3) < 3);
  CHECK(derive_seed({1, 2}) != derive_seed({2, 1}));
}

TEST_CASE("split: by patient, 80/20, deterministic per seed", "[data][split]") {
  const std::vector<Sample> samples = dataset(20);
  const Split split = split_by_patient(samples, 0.2, 5);
  CHECK(split.train.size() == 16);
  CHECK(split.val.size() == 4);
  std::set<std::string> train(split.train.begin(), split.train.end());
  for (const std::string& id : split.val) CHECK(train.count(id) == 0);
  CHECK(std::is_sorted(split.val.begin(), split.val.end()));

  const std::vector<int> val = sample_indices(samples, split.val);
  CHECK(val.size() == 12);  // every slice of a validation patient
  for (int i : val)
    CHECK(std::count(split.val.begin(), split.val.end(), samples[std::size_t(i)].patient) == 1);

  const Split again = split_by_patient(samples, 0.2, 5);
  CHECK(again.train == split.train);
  CHECK(again.val == split.val);
  bool differs = false;
  for (uint64_t seed = 6; seed < 10; ++seed)
    differs |= split_by_patient(samples, 0.2, seed).val != split.val;
  CHECK(differs);
}

TEST_CASE("split: sizes at the edges", "[data][split]") {
  CHECK(split_by_patient(dataset(2), 0.2).val.size() == 1);    // >= 1 validation patient
  CHECK(split_by_patient(dataset(2), 0.9).train.size() == 1);  // never all of them
  CHECK(split_by_patient(dataset(1), 0.2).val.empty());
  CHECK(split_by_patient(dataset(5), 0.0).val.empty());
  CHECK(split_by_patient(dataset(10), 0.3).val.size() == 3);
  CHECK_THROWS_AS(split_by_patient(dataset(5), 1.0), std::invalid_argument);
  CHECK_THROWS_AS(split_by_patient(dataset(5), -0.1), std::invalid_argument);
}

TEST_CASE("split: write_split and read_split round trip, bad files are errors", "[data][split]") {
  TempDir dir;
  const std::vector<Sample> samples = dataset(7);
  const Split split = split_by_patient(samples, 0.2, 3);
  const std::string path = dir.file("split.txt");
  write_split(path, split);
  const Split back = read_split(path, samples);
  CHECK(back.train == split.train);
  CHECK(back.val == split.val);
  const std::vector<uint8_t> bytes = io::test::read_bytes(path);
  CHECK_THAT(std::string(bytes.begin(), bytes.end()), Contains("train:\npatient-"));

  auto write = [&](const std::string& text) {
    io::test::write_bytes(path, std::vector<uint8_t>(text.begin(), text.end()));
  };
  write("# comment\r\ntrain:\r\npatient-1  \n\nval:\npatient-2\n");
  const Split edited = read_split(path, samples);
  CHECK(edited.train == std::vector<std::string>{"patient-1"});
  CHECK(edited.val == std::vector<std::string>{"patient-2"});

  write("train:\npatient-1\nghost-a\nval:\nghost-b\n");
  CHECK_THAT(error_of(path, samples), Contains(path) && Contains("ghost-a, ghost-b"));
  write("train:\npatient-1\nval:\npatient-1\n");
  CHECK_THAT(error_of(path, samples), Contains(path) && Contains("line 4") && Contains("twice"));
  write("patient-1\n");
  CHECK_THAT(error_of(path, samples), Contains("before a 'train:'"));
  CHECK_THAT(error_of(dir.file("absent.txt"), samples), Contains("absent.txt"));
}

TEST_CASE("split: the data's own train/ and validation/ folders give the split when they cover every patient",
          "[data][split]") {
  std::vector<Sample> samples = dataset(3);
  const char* folders[] = {"/d/brats/train/patient-0 z 1", "/d/brats/validation/patient-1 z 0",
                           "/d/brats/train/patient-2 z 4"};
  for (Sample& s : samples) s.source = folders[s.patient.back() - '0'];
  const std::optional<Split> split = folder_split(samples);
  REQUIRE(split);
  CHECK(split->train == std::vector<std::string>{"patient-0", "patient-2"});
  CHECK(split->val == std::vector<std::string>{"patient-1"});

  samples[0].source = "/d/brats/other/patient-0 z 1";  // one slice outside both folders
  CHECK_FALSE(folder_split(samples));
  samples[0].source = "/d/brats/validation/patient-0 z 1";  // a patient on both sides
  CHECK_FALSE(folder_split(samples));
  for (Sample& s : samples) s.source = "/d/brats/train/x";  // no validation side
  CHECK_FALSE(folder_split(samples));
}
