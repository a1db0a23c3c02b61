// Patient-level split, its text file, and SplitMix64 (conventions in split.h).
#include "train/split.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <unordered_set>

#include "train/io/files.h"

namespace unet {
namespace {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;

uint64_t mix64(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

std::vector<std::string> sorted_patients(const std::vector<Sample>& samples) {
  std::set<std::string> unique;
  for (const Sample& s : samples) unique.insert(s.patient);
  return {unique.begin(), unique.end()};
}

// Validation size: the rounded fraction, at least one when asked for any and there are >= 2
// patients (a run without validation would be a surprise), and never every patient.
std::size_t validation_count(std::size_t patients, double val_fraction) {
  if (val_fraction == 0.0 || patients < 2) return 0;
  auto count = static_cast<std::size_t>(std::llround(val_fraction * double(patients)));
  return std::clamp<std::size_t>(count, 1, patients - 1);
}

std::string trimmed(std::string line) {
  while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r'))
    line.pop_back();
  return line;
}

std::string joined(const std::vector<std::string>& ids) {
  std::string text;
  for (const std::string& id : ids) text += (text.empty() ? "" : ", ") + id;
  return text;
}

Split parse_split(const std::string& path) {
  std::vector<uint8_t> bytes = io::read_file(path);
  std::istringstream in(std::string(bytes.begin(), bytes.end()));
  Split split;
  std::vector<std::string>* section = nullptr;
  std::set<std::string> seen;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    line = trimmed(line);
    if (line.empty() || line[0] == '#') continue;
    const std::string where = "line " + std::to_string(number) + ": ";
    if (line == "train:" || line == "val:") {
      section = line == "train:" ? &split.train : &split.val;
      continue;
    }
    if (!section) throw io::FileError(path, where + "patient id before a 'train:' or 'val:' line");
    if (!seen.insert(line).second)
      throw io::FileError(path, where + "patient '" + line + "' is listed twice");
    section->push_back(line);
  }
  std::sort(split.train.begin(), split.train.end());
  std::sort(split.val.begin(), split.val.end());
  return split;
}

}  // namespace

uint64_t SplitMix64::next() {
  state_ += kGolden;
  return mix64(state_);
}

double SplitMix64::uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }

double SplitMix64::uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

uint64_t SplitMix64::below(uint64_t n) {
  // Rejection of the top partial block: every residue equally likely.
  const uint64_t limit = ~uint64_t(0) - (~uint64_t(0) % n);
  uint64_t x = next();
  while (x >= limit) x = next();
  return x % n;
}

uint64_t derive_seed(std::initializer_list<uint64_t> keys) {
  uint64_t h = mix64(0x756E657464617461ull);  // "unetdata": apart from other seed users
  for (uint64_t key : keys) h = mix64(h + kGolden + key);
  return h;
}

std::optional<Split> folder_split(const std::vector<Sample>& samples) {
  std::map<std::string, int> side;  // patient -> 0 train, 1 validation
  for (const Sample& s : samples) {
    int found = -1;
    for (const auto& part : std::filesystem::path(s.source)) {
      const std::string name = part.string();
      if (name == "train" || name == "training") found = 0;
      if (name == "val" || name == "validation") found = 1;
    }
    if (found < 0) return std::nullopt;
    const auto [it, added] = side.emplace(s.patient, found);
    if (!added && it->second != found) return std::nullopt;
  }
  Split split;
  for (const auto& [patient, s] : side) (s == 0 ? split.train : split.val).push_back(patient);
  if (split.train.empty() || split.val.empty()) return std::nullopt;
  return split;
}

Split split_by_patient(const std::vector<Sample>& samples, double val_fraction, uint64_t seed) {
  return split_patients(sorted_patients(samples), val_fraction, seed);
}

Split split_patients(std::vector<std::string> patients, double val_fraction, uint64_t seed) {
  if (!(val_fraction >= 0.0 && val_fraction < 1.0))
    throw std::invalid_argument("split: the validation fraction must lie in [0, 1), got " +
                                std::to_string(val_fraction));
  std::sort(patients.begin(), patients.end());
  SplitMix64 rng(derive_seed({seed, 0x73706C6974ull}));  // "split"
  shuffle(patients, rng);
  const auto val_count = std::ptrdiff_t(validation_count(patients.size(), val_fraction));
  Split split;
  split.val.assign(patients.begin(), patients.begin() + val_count);
  split.train.assign(patients.begin() + val_count, patients.end());
  std::sort(split.train.begin(), split.train.end());
  std::sort(split.val.begin(), split.val.end());
  return split;
}

std::vector<std::vector<std::string>> cv_folds(const std::vector<Sample>& samples, int k, uint64_t seed) {
  std::map<std::string, long long> tumour;
  for (const Sample& s : samples) {
    long long& count = tumour[s.patient];
    for (float v : s.mask) count += v != 0.0f;
  }
  if (k < 2 || std::size_t(k) > tumour.size())
    throw std::invalid_argument("cross-validation needs 2 to " + std::to_string(tumour.size()) +
                                " folds (one patient each at least), got " + std::to_string(k));
  std::vector<std::pair<long long, std::string>> by_volume;
  for (const auto& [patient, count] : tumour) by_volume.emplace_back(-count, patient);
  std::sort(by_volume.begin(), by_volume.end());  // largest first, ties by id
  SplitMix64 rng(derive_seed({seed, 0x666F6C6473ull}));  // "folds"
  std::vector<std::vector<std::string>> folds(static_cast<std::size_t>(k));
  std::vector<int> order(static_cast<std::size_t>(k));
  for (std::size_t start = 0; start < by_volume.size(); start += std::size_t(k)) {
    for (int f = 0; f < k; ++f) order[std::size_t(f)] = f;
    shuffle(order, rng);
    // Every full group adds one patient to each fold, so a last, partial group keeps the sizes
    // within one wherever it goes.
    const std::size_t count = std::min(std::size_t(k), by_volume.size() - start);
    for (std::size_t i = 0; i < count; ++i) folds[std::size_t(order[i])].push_back(by_volume[start + i].second);
  }
  for (auto& fold : folds) std::sort(fold.begin(), fold.end());
  return folds;
}

void write_split(const std::string& path, const Split& split) {
  std::string text = "# unet split: patient ids, one per line\ntrain:\n";
  for (const std::string& id : split.train) text += id + "\n";
  text += "val:\n";
  for (const std::string& id : split.val) text += id + "\n";
  io::write_file_atomic(path, std::vector<uint8_t>(text.begin(), text.end()));
}

Split read_split(const std::string& path, const std::vector<Sample>& samples) {
  Split split = parse_split(path);
  std::unordered_set<std::string> known;
  for (const Sample& s : samples) known.insert(s.patient);
  std::vector<std::string> unknown;
  for (const auto* list : {&split.train, &split.val})
    for (const std::string& id : *list)
      if (!known.count(id)) unknown.push_back(id);
  if (!unknown.empty())
    throw io::FileError(path, std::to_string(unknown.size()) +
                                  " patient(s) not in the dataset: " + joined(unknown));
  return split;
}

std::vector<int> sample_indices(const std::vector<Sample>& samples,
                                const std::vector<std::string>& patients) {
  std::unordered_set<std::string> wanted(patients.begin(), patients.end());
  std::vector<int> indices;
  for (std::size_t i = 0; i < samples.size(); ++i)
    if (wanted.count(samples[i].patient)) indices.push_back(int(i));
  return indices;
}

}  // namespace unet
