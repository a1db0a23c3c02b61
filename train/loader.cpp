// Batch loader (conventions in loader.h): one worker thread per epoch fills a bounded queue; the
// caller takes batches from its front.
#include "train/loader.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <stdexcept>

#include "train/split.h"

namespace unet {
namespace {

// Stream tags: the epoch order and the augmentation of a sample must never share a seed.
constexpr uint64_t kOrderTag = 0x6F72646572ull;  // "order"
constexpr uint64_t kAugmentTag = 0x61756726ull;  // "aug&"
constexpr uint64_t kForegroundTag = 0x666726ull;  // "fg&"

bool same_shape(const Sample& a, const Sample& b) {
  return a.channels == b.channels && a.height == b.height && a.width == b.width &&
         a.has_mask() == b.has_mask();
}

std::string shape_text(const Sample& s) {
  return std::to_string(s.channels) + "x" + std::to_string(s.height) + "x" +
         std::to_string(s.width) + (s.has_mask() ? " with mask" : " without mask");
}

void check_samples(const std::vector<Sample>& samples, const std::vector<int>& indices) {
  for (int index : indices)
    if (index < 0 || std::size_t(index) >= samples.size())
      throw std::invalid_argument("loader: sample index " + std::to_string(index) +
                                  " outside the dataset of " + std::to_string(samples.size()));
  if (indices.empty()) return;
  const Sample& first = samples[std::size_t(indices.front())];
  for (int index : indices) {
    const Sample& s = samples[std::size_t(index)];
    if (!same_shape(first, s))
      throw std::invalid_argument("loader: sample " + s.id + " is " + shape_text(s) + ", but " +
                                  first.id + " is " + shape_text(first));
  }
}

bool has_tumour(const Sample& s) {
  return std::any_of(s.mask.begin(), s.mask.end(), [](float v) { return v > 0.5f; });
}

// ceil(fraction * n), less a hair: 0.07 * 100 is 7.000000000000001 in binary floating point and
// must ask for 7 samples, not 8.
std::size_t required_foreground(double fraction, std::size_t n) {
  return std::size_t(std::ceil(fraction * double(n) - 1e-9));
}

// Which copy of its sample each position of the order is (0 for the first).
std::vector<uint64_t> copy_numbers(const std::vector<int>& order) {
  std::map<int, uint64_t> seen;
  std::vector<uint64_t> copies;
  copies.reserve(order.size());
  for (int index : order) copies.push_back(seen[index]++);
  return copies;
}

}  // namespace

Loader::Loader(const std::vector<Sample>& samples, std::vector<int> indices, LoaderOptions options)
    : samples_(samples), indices_(std::move(indices)), options_(std::move(options)) {
  if (options_.batch_size < 1) throw std::invalid_argument("loader: batch_size must be >= 1");
  if (options_.prefetch < 1) throw std::invalid_argument("loader: prefetch must be >= 1");
  check_samples(samples_, indices_);
  const double fraction = options_.foreground_fraction;
  if (!(fraction >= 0 && fraction <= 1))
    throw std::invalid_argument("loader: foreground_fraction must be in [0, 1]");
  if (fraction == 0) return;
  has_tumour_.assign(samples_.size(), false);
  for (int index : indices_)
    if (has_tumour(samples_[std::size_t(index)])) {
      has_tumour_[std::size_t(index)] = true;
      foreground_.push_back(index);
    }
  if (foreground_.empty()) {
    char text[200];
    std::snprintf(text, sizeof text,
                  "loader: a foreground fraction of %g (--foreground-fraction) needs samples with tumour (a mask "
                  "value > 0.5), but none of the %zu has any",
                  fraction, indices_.size());
    throw std::invalid_argument(text);
  }
}

Loader::~Loader() { stop_worker(); }

int Loader::batches_per_epoch() const {
  const auto count = int(indices_.size()), size = options_.batch_size;
  return options_.drop_last ? count / size : (count + size - 1) / size;
}

std::vector<int> Loader::epoch_order(int epoch) const {
  std::vector<int> order = indices_;
  if (options_.shuffle) {
    SplitMix64 rng(derive_seed({options_.seed, uint64_t(epoch), kOrderTag}));
    shuffle(order, rng);
  }
  if (options_.foreground_fraction > 0) force_foreground(order, epoch);
  return order;
}

void Loader::force_foreground(std::vector<int>& order, int epoch) const {
  SplitMix64 rng(derive_seed({options_.seed, uint64_t(epoch), kForegroundTag}));
  const auto size = std::size_t(options_.batch_size);
  for (std::size_t begin = 0; begin < order.size(); begin += size) {
    const std::size_t end = std::min(order.size(), begin + size);
    const std::size_t required = required_foreground(options_.foreground_fraction, end - begin);
    auto present = std::size_t(std::count_if(order.begin() + std::ptrdiff_t(begin), order.begin() + std::ptrdiff_t(end),
                                             [&](int index) { return has_tumour_[std::size_t(index)]; }));
    for (std::size_t k = end; k-- > begin && present < required;)
      if (!has_tumour_[std::size_t(order[k])]) {
        order[k] = foreground_[std::size_t(rng.below(foreground_.size()))];
        ++present;
      }
  }
}

void Loader::start_epoch(int epoch) {
  stop_worker();
  {
    std::lock_guard lock(mutex_);
    queue_.clear();
    stop_ = finished_ = false;
    started_ = true;
  }
  worker_ = std::thread([this, epoch] { produce(epoch); });
}

std::optional<Batch> Loader::next() {
  std::unique_lock lock(mutex_);
  if (!started_) throw std::logic_error("loader: next() before start_epoch()");
  ready_.wait(lock, [&] { return !queue_.empty() || finished_; });
  if (queue_.empty()) return std::nullopt;
  Item item = std::move(queue_.front());
  queue_.pop_front();
  lock.unlock();
  space_.notify_one();
  if (item.error) std::rethrow_exception(item.error);
  return std::move(item.batch);
}

Batch Loader::make_batch(const std::vector<int>& order, const std::vector<uint64_t>& copies, int batch, int epoch) const {
  const std::size_t begin = std::size_t(batch) * std::size_t(options_.batch_size);
  const std::size_t end = std::min(order.size(), begin + std::size_t(options_.batch_size));
  const Sample& first = samples_[std::size_t(order[begin])];
  Batch out;
  out.n = int(end - begin);
  out.channels = first.channels;
  out.height = first.height;
  out.width = first.width;
  out.image.reserve(std::size_t(out.n) * first.image.size());
  out.mask.reserve(std::size_t(out.n) * first.mask.size());
  for (std::size_t k = begin; k < end; ++k) {
    const int index = order[k];
    const Sample* sample = &samples_[std::size_t(index)];
    Sample augmented;
    if (options_.augment) {
      augmented = *sample;
      const uint64_t seed = copies[k] == 0
                                ? derive_seed({options_.seed, uint64_t(epoch), uint64_t(index), kAugmentTag})
                                : derive_seed({options_.seed, uint64_t(epoch), uint64_t(index), kAugmentTag, copies[k]});
      augment(augmented, options_.augmentation, seed);
      sample = &augmented;
    }
    out.image.insert(out.image.end(), sample->image.begin(), sample->image.end());
    out.mask.insert(out.mask.end(), sample->mask.begin(), sample->mask.end());
    out.ids.push_back(sample->id);
  }
  return out;
}

void Loader::produce(int epoch) {
  try {
    const std::vector<int> order = epoch_order(epoch);
    const std::vector<uint64_t> copies = copy_numbers(order);
    for (int b = 0, count = batches_per_epoch(); b < count; ++b) {
      Item item{make_batch(order, copies, b, epoch), nullptr};
      std::unique_lock lock(mutex_);
      space_.wait(lock, [&] { return stop_ || queue_.size() < std::size_t(options_.prefetch); });
      if (stop_) return;
      queue_.push_back(std::move(item));
      lock.unlock();
      ready_.notify_one();
    }
  } catch (...) {
    std::lock_guard lock(mutex_);
    queue_.push_back({{}, std::current_exception()});
  }
  {
    std::lock_guard lock(mutex_);
    finished_ = true;
  }
  ready_.notify_all();
}

void Loader::stop_worker() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  space_.notify_all();
  if (worker_.joinable()) worker_.join();
}

}  // namespace unet
