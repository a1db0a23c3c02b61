// Mini-batches for training and evaluation, assembled by a background thread while the caller
// trains on the previous batch.
//
// Conventions:
//   - A Loader walks a fixed list of sample indices (e.g. the training patients' slices from
//     split.h) once per epoch, in batches of batch_size; the last batch is smaller unless
//     drop_last drops it.
//   - Order: with shuffle, the indices are permuted by SplitMix64 seeded from (seed, epoch), so
//     epoch e has the same order in every run and a run resumed at epoch e (start_epoch(e))
//     continues exactly as if it had never stopped. Without shuffle, the list order.
//   - Foreground oversampling (foreground_fraction F > 0, nnU-Net's: a third of each batch holds
//     tumour): each batch of n keeps at least ceil(F * n) samples whose mask has tumour (a value
//     > 0.5, decided once per sample at construction). A batch short of them has its last
//     samples without tumour replaced by ones drawn with replacement from those with tumour
//     (SplitMix64 seeded from (seed, epoch)); the epoch keeps its length and is still a function
//     of the epoch alone. F = 0 leaves the order untouched.
//   - Augmentation (when enabled) of dataset sample i in epoch e uses the seed derived from
//     (seed, epoch, i): the same slice differs between epochs but not between runs. A sample
//     listed more than once in an epoch (oversampling repeats samples) gets a seed per copy (the
//     first keeps the one above), so the copies are not the same image.
//   - Batches are a function of (samples, indices, options, epoch) only, never of timing: the
//     worker builds them in order into a bounded queue (`prefetch` batches), so a slow or fast
//     consumer sees the same data.
//   - Batch layout: image N x C x H x W, mask N x 1 x H x W (empty when the samples have no
//     masks), ids[k] the Sample::id of item k. All samples must share channels, size and whether
//     they have a mask (checked at construction).
//   - Errors in the worker (e.g. invalid augmentation options) are rethrown by next() in the
//     caller's thread; that epoch then ends. start_epoch() and the destructor stop a running
//     worker and join it (no thread outlives the Loader).
// The Loader keeps a reference to the samples: they must outlive it and not change meanwhile.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "train/augment.h"
#include "train/sample.h"

namespace unet {

struct Batch {
  int n = 0, channels = 0, height = 0, width = 0;
  std::vector<float> image;  // N x C x H x W
  std::vector<float> mask;   // N x 1 x H x W, or empty
  std::vector<std::string> ids;
};

struct LoaderOptions {
  int batch_size = 8;
  bool shuffle = true;
  bool drop_last = false;
  uint64_t seed = 1;
  bool augment = false;  // apply `augmentation` to every sample of every batch
  AugmentOptions augmentation;
  int prefetch = 2;  // batches the worker may build ahead of the caller
  double foreground_fraction = 0;  // in [0, 1]: foreground oversampling (conventions above); 0: off
};

class Loader {
 public:
  // Throws std::invalid_argument for batch_size or prefetch < 1, an index outside `samples`,
  // samples that differ in shape or in having a mask (naming the first that differs), or a
  // foreground_fraction outside [0, 1] or above 0 when no sample has tumour.
  Loader(const std::vector<Sample>& samples, std::vector<int> indices, LoaderOptions options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  int batches_per_epoch() const;

  // The sample indices of epoch `epoch` in the order they are batched.
  std::vector<int> epoch_order(int epoch) const;

  // Starts building the batches of `epoch` in the background (stopping any epoch in progress).
  void start_epoch(int epoch);

  // The next batch of the current epoch, waiting for it if needed; nullopt after the last one.
  // Rethrows an exception of the worker. Throws std::logic_error before the first start_epoch.
  std::optional<Batch> next();

 private:
  struct Item {
    Batch batch;
    std::exception_ptr error;
  };

  void force_foreground(std::vector<int>& order, int epoch) const;
  Batch make_batch(const std::vector<int>& order, const std::vector<uint64_t>& copies, int batch, int epoch) const;
  void produce(int epoch);
  void push(Item item);
  void stop_worker();

  const std::vector<Sample>& samples_;
  std::vector<int> indices_;
  LoaderOptions options_;
  // With foreground oversampling: per dataset sample, whether its mask has tumour; and the
  // indices (of indices_) that do, the pool replacements are drawn from.
  std::vector<bool> has_tumour_;
  std::vector<int> foreground_;

  std::mutex mutex_;
  std::condition_variable ready_;  // an item was queued or the worker finished
  std::condition_variable space_;  // an item was taken or the worker must stop
  std::deque<Item> queue_;
  bool stop_ = false, finished_ = false, started_ = false;
  std::thread worker_;
};

}  // namespace unet
