// The batch loader: layout of a batch, the same batches for the same seed whatever the consumer's
// speed or the prefetch depth, a new order each epoch, resuming at an epoch, drop_last,
// augmentation per epoch, worker errors surfacing in the caller, stopping mid-epoch, and
// foreground oversampling.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <numeric>
#include <set>
#include <thread>

#include "train/loader.h"

using namespace unet;

namespace {

constexpr int kSide = 6;

// Sample i: channel c holds i + c / 10 inside a centred square (zero border), mask = the square.
std::vector<Sample> dataset(int count) {
  std::vector<Sample> samples;
  for (int i = 0; i < count; ++i) {
    Sample s;
    s.channels = 2;
    s.height = s.width = kSide;
    s.image.assign(2 * kSide * kSide, 0.0f);
    s.mask.assign(kSide * kSide, 0.0f);
    for (int y = 1; y < kSide - 1; ++y)
      for (int x = 1; x < kSide - 1; ++x) {
        s.image[std::size_t(y * kSide + x)] = float(i) + 1.0f;
        s.image[std::size_t(kSide * kSide + y * kSide + x)] = float(i) + 1.1f;
        s.mask[std::size_t(y * kSide + x)] = 1.0f;
      }
    s.patient = "p" + std::to_string(i / 2);
    s.id = "s" + std::to_string(i);
    samples.push_back(s);
  }
  return samples;
}

std::vector<int> all_indices(int count) {
  std::vector<int> indices(static_cast<std::size_t>(count));
  std::iota(indices.begin(), indices.end(), 0);
  return indices;
}

// Every batch of one epoch; `pause` makes the consumer slow.
std::vector<Batch> epoch(Loader& loader, int number,
                         std::chrono::milliseconds pause = std::chrono::milliseconds(0)) {
  loader.start_epoch(number);
  std::vector<Batch> batches;
  while (std::optional<Batch> batch = loader.next()) {
    batches.push_back(std::move(*batch));
    std::this_thread::sleep_for(pause);
  }
  return batches;
}

std::vector<std::string> ids(const std::vector<Batch>& batches) {
  std::vector<std::string> out;
  for (const Batch& b : batches) out.insert(out.end(), b.ids.begin(), b.ids.end());
  return out;
}

bool same(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].ids != b[i].ids || a[i].image != b[i].image || a[i].mask != b[i].mask) return false;
  return true;
}

// dataset(count) with tumour in every `every`-th sample only (the others' masks are empty).
std::vector<Sample> tumour_every(int count, int every) {
  std::vector<Sample> samples = dataset(count);
  for (int i = 0; i < count; ++i)
    if (i % every != 0) std::fill(samples[std::size_t(i)].mask.begin(), samples[std::size_t(i)].mask.end(), 0.0f);
  return samples;
}

std::vector<std::string> names(const std::vector<int>& order) {
  std::vector<std::string> out;
  for (int index : order) out.push_back("s" + std::to_string(index));
  return out;
}

bool has_tumour(const Sample& s) {
  return std::any_of(s.mask.begin(), s.mask.end(), [](float v) { return v > 0.5f; });
}

}  // namespace

TEST_CASE("loader: batch layout NCHW and N1HW, last batch smaller or dropped", "[data][loader]") {
  const std::vector<Sample> samples = dataset(10);
  LoaderOptions options;
  options.batch_size = 4;
  options.shuffle = false;
  Loader loader(samples, all_indices(10), options);
  CHECK(loader.batches_per_epoch() == 3);
  std::vector<Batch> batches = epoch(loader, 0);
  REQUIRE(batches.size() == 3);
  const Batch& b = batches[1];
  CHECK(b.n == 4);
  CHECK(b.channels == 2);
  CHECK(b.height == kSide);
  CHECK(b.width == kSide);
  REQUIRE(b.image.size() == std::size_t(4 * 2 * kSide * kSide));
  REQUIRE(b.mask.size() == std::size_t(4 * kSide * kSide));
  CHECK(b.ids == std::vector<std::string>{"s4", "s5", "s6", "s7"});
  // Item 1 (sample 5), channel 1, pixel (2, 3).
  CHECK(b.image[std::size_t((1 * 2 + 1) * kSide * kSide + 2 * kSide + 3)] == Approx(6.1f));
  CHECK(b.mask[std::size_t(1 * kSide * kSide + 2 * kSide + 3)] == 1.0f);
  CHECK(batches[2].n == 2);

  options.drop_last = true;
  Loader dropping(samples, all_indices(10), options);
  CHECK(dropping.batches_per_epoch() == 2);
  CHECK(epoch(dropping, 0).size() == 2);
}

TEST_CASE("loader: same seed, same batches, each epoch a new order, resumable", "[data][loader]") {
  const std::vector<Sample> samples = dataset(13);
  LoaderOptions options;
  options.batch_size = 3;
  options.seed = 7;
  Loader a(samples, all_indices(13), options), b(samples, all_indices(13), options);
  const std::vector<Batch> a0 = epoch(a, 0), a1 = epoch(a, 1), a2 = epoch(a, 2);
  CHECK(same(a0, epoch(b, 0)));
  CHECK(ids(a0) != ids(a1));
  // Every epoch visits every sample once.
  for (const auto* e : {&a0, &a1, &a2}) {
    std::vector<std::string> visited = ids(*e);
    CHECK(std::set<std::string>(visited.begin(), visited.end()).size() == 13);
    CHECK(visited.size() == 13);
  }
  // A fresh loader started at epoch 2 continues exactly like the one that ran 0 and 1.
  Loader resumed(samples, all_indices(13), options);
  CHECK(same(epoch(resumed, 2), a2));
  options.seed = 8;
  Loader other(samples, all_indices(13), options);
  CHECK(ids(epoch(other, 0)) != ids(a0));
}

TEST_CASE("loader: a slow consumer and any prefetch depth see the same batches", "[data][loader]") {
  const std::vector<Sample> samples = dataset(12);
  LoaderOptions options;
  options.batch_size = 2;
  options.augment = true;  // so that batch contents, not only the order, are compared
  options.prefetch = 1;
  Loader fast(samples, all_indices(12), options);
  const std::vector<Batch> reference = epoch(fast, 4);
  options.prefetch = 3;
  Loader slow(samples, all_indices(12), options);
  CHECK(same(epoch(slow, 4, std::chrono::milliseconds(15)), reference));
}

TEST_CASE("loader: augmentation differs between epochs, not between runs", "[data][loader]") {
  const std::vector<Sample> samples = dataset(4);
  LoaderOptions options;
  options.batch_size = 4;
  options.shuffle = false;
  options.augment = true;
  options.augmentation = AugmentOptions::none();
  options.augmentation.brightness = {1.0, 0.5, 1.0};
  Loader a(samples, all_indices(4), options), b(samples, all_indices(4), options);
  const std::vector<Batch> e0 = epoch(a, 0), e1 = epoch(a, 1);
  CHECK(same(e0, epoch(b, 0)));
  CHECK(e0[0].image != e1[0].image);
  CHECK(e0[0].mask == e1[0].mask);
  CHECK(e0[0].image[std::size_t(kSide + 1)] > samples[0].image[std::size_t(kSide + 1)]);
}

TEST_CASE("loader: errors in the worker surface in the caller", "[data][loader]") {
  const std::vector<Sample> samples = dataset(6);
  LoaderOptions options;
  options.batch_size = 2;
  options.augment = true;
  options.augmentation.rotation.probability = 2.0;  // invalid: augment() throws in the worker
  Loader loader(samples, all_indices(6), options);
  loader.start_epoch(0);
  CHECK_THROWS_AS(loader.next(), std::invalid_argument);
  CHECK_FALSE(loader.next().has_value());  // that epoch is over
}

TEST_CASE("loader: invalid construction, next before start, stopping mid-epoch", "[data][loader]") {
  std::vector<Sample> samples = dataset(8);
  LoaderOptions options;
  options.batch_size = 0;
  CHECK_THROWS_AS(Loader(samples, all_indices(8), options), std::invalid_argument);
  options.batch_size = 2;
  CHECK_THROWS_AS(Loader(samples, {0, 8}, options), std::invalid_argument);
  std::vector<Sample> mixed = dataset(3);
  mixed[2].mask.clear();
  CHECK_THROWS_WITH(Loader(mixed, all_indices(3), options),
                    Catch::Matchers::Contains("s2") && Catch::Matchers::Contains("without mask"));

  Loader loader(samples, all_indices(8), options);
  CHECK_THROWS_AS(loader.next(), std::logic_error);
  // Start an epoch, take one batch while the worker waits on a full queue, restart, and let the
  // destructor stop a waiting worker.
  loader.start_epoch(0);
  REQUIRE(loader.next().has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const std::vector<Batch> full = epoch(loader, 1);
  CHECK(full.size() == 4);
  loader.start_epoch(2);
}

TEST_CASE("loader: foreground fraction 0 leaves every epoch as it was", "[data][loader][foreground]") {
  const std::vector<Sample> samples = tumour_every(13, 4);
  LoaderOptions options;
  options.batch_size = 3;
  options.seed = 7;
  options.augment = true;
  Loader plain(samples, all_indices(13), options);
  options.foreground_fraction = 0;
  Loader off(samples, all_indices(13), options);
  for (int e = 0; e < 3; ++e) {
    INFO("epoch " << e);
    CHECK(off.epoch_order(e) == plain.epoch_order(e));
    CHECK(same(epoch(off, e), epoch(plain, e)));
  }
}

TEST_CASE("loader: foreground oversampling puts ceil(F * n) tumour samples in every batch of n", "[data][loader][foreground]") {
  const std::vector<Sample> samples = tumour_every(22, 5);  // 5 of 22 have tumour
  struct Fraction {
    int numerator, denominator;
  };
  for (const Fraction fraction : {Fraction{3, 10}, Fraction{1, 2}, Fraction{1, 1}})
    for (const int batch_size : {4, 10}) {
      LoaderOptions options;
      options.batch_size = batch_size;
      options.seed = 3;
      Loader plain(samples, all_indices(22), options);
      options.foreground_fraction = double(fraction.numerator) / fraction.denominator;
      Loader loader(samples, all_indices(22), options);
      for (int e = 0; e < 4; ++e) {
        INFO("fraction " << options.foreground_fraction << ", batch " << batch_size << ", epoch " << e);
        const std::vector<int> order = loader.epoch_order(e), shuffled = plain.epoch_order(e);
        REQUIRE(order.size() == shuffled.size());
        CHECK(ids(epoch(loader, e)) == names(order));  // the batches are the order's
        for (std::size_t begin = 0; begin < order.size(); begin += std::size_t(batch_size)) {
          const std::size_t end = std::min(order.size(), begin + std::size_t(batch_size));
          const int n = int(end - begin), required = (fraction.numerator * n + fraction.denominator - 1) / fraction.denominator;
          int present = 0, replaced = 0;
          bool kept_background_after_replacement = false;
          for (std::size_t k = begin; k < end; ++k) {
            const bool tumour = has_tumour(samples[std::size_t(order[k])]);
            present += tumour;
            if (order[k] == shuffled[k]) {
              kept_background_after_replacement |= replaced > 0 && !tumour;
              continue;
            }
            // Only samples without tumour are replaced, only by samples with tumour.
            CHECK_FALSE(has_tumour(samples[std::size_t(shuffled[k])]));
            CHECK(tumour);
            ++replaced;
          }
          CHECK(present >= required);
          if (replaced > 0) CHECK(present == required);  // no more than needed
          CHECK_FALSE(kept_background_after_replacement);  // the batch's last background samples go first
        }
      }
    }
}

TEST_CASE("loader: oversampled epochs depend on seed and epoch only", "[data][loader][foreground]") {
  const std::vector<Sample> samples = tumour_every(16, 6);
  LoaderOptions options;
  options.batch_size = 4;
  options.seed = 11;
  options.foreground_fraction = 0.5;
  Loader a(samples, all_indices(16), options), b(samples, all_indices(16), options);
  const std::vector<Batch> a2 = epoch(a, 2);
  CHECK(same(epoch(b, 2), a2));
  CHECK(a.epoch_order(2) == b.epoch_order(2));
  CHECK(a.epoch_order(2) != a.epoch_order(3));
  CHECK(ids(a2) != ids(epoch(a, 3)));
  // Resuming at epoch 2 gives the same batches as a loader that ran epochs 0 and 1 first.
  Loader c(samples, all_indices(16), options);
  epoch(c, 0);
  epoch(c, 1);
  CHECK(same(epoch(c, 2), a2));
  options.seed = 12;
  Loader other(samples, all_indices(16), options);
  CHECK(other.epoch_order(2) != a.epoch_order(2));
}

TEST_CASE("loader: copies of a sample that oversampling repeats are augmented differently", "[data][loader][foreground]") {
  const std::vector<Sample> samples = tumour_every(4, 4);  // only s0 has tumour
  LoaderOptions options;
  options.batch_size = 4;
  options.shuffle = false;
  options.foreground_fraction = 1;
  options.augment = true;
  options.augmentation = AugmentOptions::none();
  options.augmentation.brightness = {1.0, 0.5, 1.0};
  Loader loader(samples, all_indices(4), options);
  const std::vector<Batch> batches = epoch(loader, 0);
  REQUIRE(batches.size() == 1);
  CHECK(batches[0].ids == std::vector<std::string>{"s0", "s0", "s0", "s0"});
  const std::size_t image = std::size_t(2 * kSide * kSide);
  std::set<std::vector<float>> distinct;
  for (std::size_t k = 0; k < 4; ++k)
    distinct.emplace(batches[0].image.begin() + std::ptrdiff_t(k * image), batches[0].image.begin() + std::ptrdiff_t((k + 1) * image));
  CHECK(distinct.size() == 4);
}

TEST_CASE("loader: foreground oversampling without tumour samples, or a fraction outside [0, 1], is refused", "[data][loader][foreground]") {
  std::vector<Sample> samples = tumour_every(8, 100);
  samples[0].mask.assign(samples[0].mask.size(), 0.5f);  // 0.5 is not tumour: only values above it are
  LoaderOptions options;
  options.batch_size = 2;
  options.foreground_fraction = 0.3;
  CHECK_THROWS_WITH(Loader(samples, all_indices(8), options),
                    Catch::Matchers::Contains("tumour") && Catch::Matchers::Contains("none of the 8"));
  for (Sample& s : samples) s.mask.clear();
  CHECK_THROWS_WITH(Loader(samples, all_indices(8), options), Catch::Matchers::Contains("tumour"));
  options.foreground_fraction = 0;
  CHECK_NOTHROW(Loader(samples, all_indices(8), options));
  const std::vector<Sample> some_tumour = tumour_every(8, 2);
  for (const double bad : {-0.1, 1.5, double(NAN)}) {
    options.foreground_fraction = bad;
    CHECK_THROWS_WITH(Loader(some_tumour, all_indices(8), options), Catch::Matchers::Contains("[0, 1]"));
  }
}
