// Train/validation split by patient, its list files, and the data pipeline's random numbers.
//
// Slices of one patient are strongly correlated (neighbouring slices of one scan), so the split
// unit is the patient: a patient is entirely in training or entirely in validation, otherwise
// validation scores measure memory, not generalisation.
//
// Split: the distinct patient ids are sorted, shuffled with SplitMix64(seed) (Fisher-Yates) and
// the first round(val_fraction * patients) become the validation set, at least one when
// val_fraction > 0 and there are >= 2 patients, and never all of them. Both lists are then sorted.
// Same patients and seed -> same split, on every platform: the generator is our own SplitMix64,
// never <random>'s distributions, whose algorithms differ between standard libraries.
//
// Split file (plain text, so it can be read, diffed and edited; write_split writes exactly this):
//   # unet split: patient ids, one per line
//   train:
//   TCGA_CS_4941_19960909
//   ...
//   val:
//   TCGA_HT_8563_19981209
// Lines starting with '#' and blank lines are ignored; trailing spaces and CR are trimmed. A run
// that reads the file back trains and validates on exactly the same patients. Patients of the
// dataset named in neither section are left out (e.g. a held-out test set).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "train/sample.h"

namespace unet {

// SplitMix64 (Steele, Lea, Flood 2014): a 64-bit counter passed through a bijective mix. Tiny,
// fast, statistically good for shuffling and augmentation parameters, and identical everywhere.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}

  uint64_t next();
  double uniform();                      // [0, 1), 53 bits
  double uniform(double lo, double hi);  // [lo, hi)
  uint64_t below(uint64_t n);            // [0, n) without modulo bias; n > 0

 private:
  uint64_t state_;
};

// A seed derived from several keys (e.g. {seed, epoch, sample index}): distinct key lists give
// unrelated streams, so per-epoch and per-sample randomness never overlap.
uint64_t derive_seed(std::initializer_list<uint64_t> keys);

// Fisher-Yates with `rng`: the permutation depends only on the generator's state.
template <typename T>
void shuffle(std::vector<T>& items, SplitMix64& rng) {
  for (std::size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[rng.below(i)]);
}

struct Split {
  std::vector<std::string> train, val;  // patient ids, sorted
};

// Throws std::invalid_argument unless 0 <= val_fraction < 1.
Split split_by_patient(const std::vector<Sample>& samples, double val_fraction = 0.2,
                       uint64_t seed = 1);

// split_by_patient for a list of distinct patient ids, in any order (sorted first).
Split split_patients(std::vector<std::string> patients, double val_fraction, uint64_t seed);

// Cross-validation folds of whole patients: each patient is in exactly one of the k folds, fold
// sizes differ by at most one, and the folds are balanced by tumour volume: the patients, sorted
// by their tumour pixel count (largest first, ties by id), are dealt out k at a time, each group
// of k to the folds in an order drawn from `seed`, so that every fold gets one patient of every
// volume stratum. Each fold's ids are sorted. Throws std::invalid_argument when k < 2 or there
// are fewer patients than folds.
std::vector<std::vector<std::string>> cv_folds(const std::vector<Sample>& samples, int k, uint64_t seed);

// The split a dataset's own folders give (BraTS ships train/ and validation/): every patient's
// files sit below a folder named train or training, or val or validation (the innermost such
// folder counts), and both sides have patients. Nothing when any patient is outside them.
std::optional<Split> folder_split(const std::vector<Sample>& samples);

// Writes the file format above (atomically). Throws io::FileError.
void write_split(const std::string& path, const Split& split);

// Reads a split file and checks it against the dataset: io::FileError naming the file for a
// malformed file, ids outside the sections, a patient listed twice or in both sections, and for
// patient ids that the dataset does not have (all of them named).
Split read_split(const std::string& path, const std::vector<Sample>& samples);

// Indices of the samples of these patients, in dataset order.
std::vector<int> sample_indices(const std::vector<Sample>& samples,
                                const std::vector<std::string>& patients);

}  // namespace unet
