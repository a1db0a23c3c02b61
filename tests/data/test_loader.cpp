// The batch loader: layout of a batch, the same batches for the same seed whatever the consumer's
// speed or the prefetch depth, a new order each epoch, resuming at an epoch, drop_last,
// augmentation per epoch, worker errors surfacing in the caller, and stopping mid-epoch.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
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
