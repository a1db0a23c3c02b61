#include "train/trainer.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "engine/autograd.h"
#include "engine/checkpoint.h"
#include "train/health.h"
#include "engine/ops.h"
#include "engine/profiler.h"
#include "train/io/files.h"
#include "train/loader.h"
#include "train/metrics.h"
#include "train/plot.h"
#include "train/step.h"

namespace unet {
namespace {

using Clock = std::chrono::steady_clock;

std::pair<Tensor, Tensor> to_tensors(const Batch& b, Device device) {
  return {Tensor::from_vector({b.n, b.channels, b.height, b.width}, b.image, device),
          Tensor::from_vector({b.n, 1, b.height, b.width}, b.mask, device)};
}

std::string format_seconds(double s) {
  char buf[32];
  const int total = int(std::lround(s));
  std::snprintf(buf, sizeof buf, "%02d:%02d", total / 60, total % 60);
  return buf;
}

// Validation: the batch losses weighted by batch size, and Dice / IoU per patient from pooled
// confusion counts, averaged over patients (the honest figure: one patient, one vote).
struct Validation {
  double loss = NAN, dice = NAN, iou = NAN;
};

Validation validate(UNet& model, const std::vector<Sample>& samples, const std::vector<int>& val,
                    const TrainOptions& o) {
  if (val.empty()) return {};
  model.eval();
  NoGradGuard no_grad;
  LoaderOptions lo;
  lo.batch_size = o.batch_size;
  lo.shuffle = false;
  Loader loader(samples, val, lo);
  loader.start_epoch(0);
  std::map<std::string, Confusion> patients;
  double loss_sum = 0;
  int count = 0, next = 0;
  const std::vector<int> order = loader.epoch_order(0);
  while (auto batch = loader.next()) {
    const auto [image, mask] = to_tensors(*batch, o.device);
    const Tensor logits = model.forward(image);
    loss_sum += double(segmentation_loss(o.loss, logits, mask).item()) * batch->n;
    count += batch->n;
    const std::vector<float> prob = ops::sigmoid(logits).to_vector();
    const std::size_t plane = std::size_t(batch->height) * batch->width;
    for (int i = 0; i < batch->n; ++i, ++next) {
      const Sample& s = samples[std::size_t(order[std::size_t(next)])];
      patients[s.patient] += confusion(batch->mask.data() + i * plane, prob.data() + i * plane, batch->height,
                                       batch->width, o.threshold);
    }
  }
  Validation v{loss_sum / count, 0, 0};
  for (const auto& [id, c] : patients) {
    const Scores s = scores(c);
    v.dice += s.dice / double(patients.size());
    v.iou += s.iou / double(patients.size());
  }
  model.train();
  return v;
}

class Progress {
 public:
  Progress(bool on, int epoch, int epochs, int batches)
      : on_(on && ::isatty(STDOUT_FILENO)), epoch_(epoch), epochs_(epochs), batches_(batches), start_(Clock::now()) {}
  void update(int done, double running_loss) {
    if (!on_) return;
    const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
    const double eta = done ? elapsed / done * (batches_ - done) : 0;
    const int width = 24, filled = batches_ ? width * done / batches_ : width;
    std::printf("\repoch %d/%d [%s%s] %d/%d  loss %.4f  ETA %s ", epoch_, epochs_, std::string(std::size_t(filled), '=').c_str(),
                std::string(std::size_t(width - filled), ' ').c_str(), done, batches_, running_loss, format_seconds(eta).c_str());
    std::fflush(stdout);
  }
  void clear() {
    if (on_) std::printf("\r%100s\r", "");
  }

 private:
  bool on_;
  int epoch_, epochs_, batches_;
  Clock::time_point start_;
};

std::string csv(const std::vector<EpochRecord>& history) {
  std::ostringstream out;
  out << "epoch,loss,val_loss,val_dice,val_iou,lr,seconds\n";
  out.precision(17);  // round-trips exactly: a resumed run reloads its history from here
  for (const EpochRecord& r : history) {
    out << r.epoch << ',' << r.loss << ',' << r.val_loss << ',' << r.val_dice << ',' << r.val_iou << ',' << r.lr << ','
        << r.seconds << '\n';
  }
  return out.str();
}

std::vector<EpochRecord> parse_csv(const std::string& text) {
  std::vector<EpochRecord> history;
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    EpochRecord r;
    char comma;
    std::istringstream row(line);
    row >> r.epoch >> comma >> r.loss >> comma >> r.val_loss >> comma >> r.val_dice >> comma >> r.val_iou >> comma >> r.lr >>
        comma >> r.seconds;
    history.push_back(r);
  }
  return history;
}

void write_text(const std::string& path, const std::string& text) {
  io::write_file_atomic(path, std::vector<uint8_t>(text.begin(), text.end()));
}

void draw_curves(const std::string& path, const std::vector<EpochRecord>& h) {
  auto series = [&](const char* name, double EpochRecord::*field, uint32_t rgb) {
    Series s{name, {}, {}, rgb};
    for (const EpochRecord& r : h) {
      s.x.push_back(r.epoch);
      s.y.push_back(r.*field);
    }
    return s;
  };
  plot_curves(path,
              {{"loss", {series("train loss", &EpochRecord::loss, 0x1f77b4), series("val loss", &EpochRecord::val_loss, 0xff7f0e)}, false},
               {"val Dice / IoU (per patient)",
                {series("val Dice", &EpochRecord::val_dice, 0x2ca02c), series("val IoU", &EpochRecord::val_iou, 0xd62728)}, false},
               {"learning rate", {series("lr", &EpochRecord::lr, 0x9467bd)}, true},
               {"seconds per epoch", {series("epoch time", &EpochRecord::seconds, 0x8c564b)}, false}},
              "unet training");
}

// Everything a resumed run needs besides the model weights.
struct RunState {
  int epoch = 0;  // epochs completed
  double lr = 0;
  int best_epoch = 0;
  PlateauState plateau, early;
  std::vector<EpochRecord> history;
  std::map<std::string, std::string> settings;  // as last.ckpt recorded them
  int skipped_steps = 0;  // non-finite steps skipped so far (TrainOptions::skip_nonfinite_steps)
};

std::string number(double v) {
  std::ostringstream out;
  out.precision(17);
  out << v;
  return out.str();
}

void save_last(const std::string& path, UNet& model, const Adam& adam, const RunState& s,
               const std::map<std::string, std::string>& settings, int input_size) {
  Checkpoint ck;
  for (const auto& [key, value] : model.config().to_map()) ck.meta["model." + key] = value;
  ck.meta["run.epoch"] = std::to_string(s.epoch);
  ck.meta["run.lr"] = number(s.lr);
  ck.meta["run.best_epoch"] = std::to_string(s.best_epoch);
  ck.meta["run.adam_steps"] = std::to_string(adam.steps());
  ck.meta["run.dropout_seed"] = std::to_string(model.dropout_stream().seed);
  ck.meta["run.dropout_offset"] = std::to_string(model.dropout_stream().offset);
  ck.meta["run.skipped_steps"] = std::to_string(s.skipped_steps);
  for (const auto& [name, st] : {std::pair{"plateau", &s.plateau}, std::pair{"early", &s.early}}) {
    ck.meta[std::string("run.") + name + ".best"] = number(st->best);
    ck.meta[std::string("run.") + name + ".wait"] = std::to_string(st->wait);
    ck.meta[std::string("run.") + name + ".cooldown"] = std::to_string(st->cooldown_left);
  }
  // Without the wall-clock seconds (log.csv keeps them): an interrupted-and-resumed run then
  // writes the same bytes as an uninterrupted one.
  std::vector<EpochRecord> history = s.history;
  for (EpochRecord& r : history) r.seconds = 0;
  ck.meta["run.history"] = csv(history);
  for (const auto& [flag, value] : settings) ck.meta["run.setting." + flag] = value;
  if (input_size > 0) ck.meta["data.size"] = std::to_string(input_size);
  ck.tensors = module_state(model, "model.");
  for (const auto& [name, t] : adam.state()) ck.tensors.emplace_back("adam." + name, t);
  save_checkpoint(path, ck);
}

RunState load_last(const std::string& path, UNet& model, Adam& adam) {
  const Checkpoint ck = load_checkpoint(path);
  auto meta = [&](const std::string& key) {
    auto it = ck.meta.find(key);
    if (it == ck.meta.end()) throw CheckpointError(path, "is not a resumable run state (no '" + key + "')");
    return it->second;
  };
  std::map<std::string, std::string> config;
  for (const auto& [key, value] : model.config().to_map()) config[key] = meta("model." + key);
  if (config != model.config().to_map()) throw CheckpointError(path, "was written by a run with another model config");
  load_module_state(model, ck, "model.", path);
  NamedTensors moments = adam.state();
  for (auto& [name, target] : moments) {
    const std::string stored = "adam." + name;
    const auto it = std::find_if(ck.tensors.begin(), ck.tensors.end(), [&](const auto& t) { return t.first == stored; });
    if (it == ck.tensors.end() || it->second.shape() != target.shape()) throw CheckpointError(path, "Adam moment '" + name + "' is missing or misshapen");
    target.copy_from(it->second);
  }
  RunState s;
  s.epoch = std::stoi(meta("run.epoch"));
  s.lr = std::stod(meta("run.lr"));
  s.best_epoch = std::stoi(meta("run.best_epoch"));
  adam.set_steps(std::stol(meta("run.adam_steps")));
  model.dropout_stream().seed = std::stoull(meta("run.dropout_seed"));
  model.dropout_stream().offset = std::stoull(meta("run.dropout_offset"));
  for (const auto& [name, st] : {std::pair{"plateau", &s.plateau}, std::pair{"early", &s.early}}) {
    st->best = std::stod(meta(std::string("run.") + name + ".best"));
    st->wait = std::stoi(meta(std::string("run.") + name + ".wait"));
    st->cooldown_left = std::stoi(meta(std::string("run.") + name + ".cooldown"));
  }
  s.history = parse_csv(meta("run.history"));
  // Written since skipping non-finite steps exists; older run states skipped none.
  if (const auto it = ck.meta.find("run.skipped_steps"); it != ck.meta.end()) s.skipped_steps = std::stoi(it->second);
  const std::string prefix = "run.setting.";
  for (const auto& [key, value] : ck.meta)
    if (key.starts_with(prefix)) s.settings[key.substr(prefix.size())] = value;
  return s;
}

// JSON has no NaN: a quantity that does not exist (validation Dice without a validation set) is null.
std::string json_number(double v) { return std::isfinite(v) ? number(v) : "null"; }

void write_summary(const TrainOptions& o, const TrainResult& r, const UNet& model, std::size_t train_n, std::size_t val_n) {
  std::ostringstream j;
  const EpochRecord best = r.history.empty() ? EpochRecord{} : r.history[std::size_t(r.best_epoch - 1)];
  j << "{\n  \"epochs_run\": " << r.history.size() << ",\n  \"stopped_early\": " << (r.stopped_early ? "true" : "false")
    << ",\n  \"best_epoch\": " << r.best_epoch << ",\n  \"best\": {\"loss\": " << json_number(best.loss)
    << ", \"val_loss\": " << json_number(best.val_loss) << ", \"val_dice\": " << json_number(best.val_dice)
    << ", \"val_iou\": " << json_number(best.val_iou) << "},\n  \"train_slices\": " << train_n << ",\n  \"val_slices\": " << val_n
    << ",\n  \"loss\": \"" << to_string(o.loss) << "\",\n  \"batch_size\": " << o.batch_size << ",\n  \"lr\": " << json_number(o.adam.lr)
    << ",\n  \"seed\": " << o.seed << ",\n  \"device\": \"" << to_string(o.device) << "\",\n  \"threads\": " << omp_get_max_threads()
    << ",\n  \"monitor\": \"" << (o.monitor_dice ? "val_dice" : "val_loss") << "\",\n  \"lr_schedule\": \""
    << to_string(o.lr_schedule) << "\",\n  \"foreground_fraction\": " << json_number(o.foreground_fraction)
    << ",\n  \"model\": {";
  bool first = true;
  for (const auto& [key, value] : model.config().to_map()) {
    j << (first ? "" : ", ") << '"' << key << "\": \"" << value << '"';
    first = false;
  }
  j << "},\n  \"parameters\": " << model.parameter_count() + model.buffer_count() << "\n}\n";
  write_text(o.run_dir + "/summary.json", j.str());
}

// "--lr 0.001 (run: 0.002), --batch 4 (run: 8)": the settings whose values differ; a setting
// that the run did not record (an older checkpoint) is not compared.
std::string changed_settings(const std::map<std::string, std::string>& run,
                             const std::map<std::string, std::string>& now) {
  std::string text;
  for (const auto& [flag, value] : now) {
    const auto it = run.find(flag);
    if (it == run.end() || it->second == value) continue;
    text += (text.empty() ? "--" : ", --") + flag + " " + value + " (run: " + it->second + ")";
  }
  return text;
}

// Checkpoint and log writes go through ".<name>.tmp-*" files renamed into place; a run killed
// mid-write leaves one behind, which nothing else would ever remove.
void remove_stale_temporaries(const std::string& run_dir) {
  for (const auto& entry : std::filesystem::directory_iterator(run_dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && name.starts_with(".") && name.find(".tmp-") != std::string::npos)
      std::filesystem::remove(entry.path());
  }
}

// The epoch times of a resumed run's earlier epochs, from its log.csv when it is there.
void restore_seconds(const std::string& log_path, std::vector<EpochRecord>& history) {
  std::ifstream in(log_path);
  if (!in) return;
  std::stringstream text;
  text << in.rdbuf();
  for (const EpochRecord& logged : parse_csv(text.str()))
    for (EpochRecord& r : history)
      if (r.epoch == logged.epoch) r.seconds = logged.seconds;
}

}  // namespace

TrainResult train_model(UNet& model, const std::vector<Sample>& samples, const std::vector<int>& train,
                        const std::vector<int>& val, const TrainOptions& o) {
  std::filesystem::create_directories(o.run_dir);
  const std::string last_path = o.run_dir + "/last.ckpt", best_path = o.run_dir + "/best.ckpt";
  Adam adam(model.named_parameters(), o.adam);
  ReduceOnPlateau plateau(o.plateau);
  EarlyStopping early(o.early);
  RunState state;
  state.lr = o.adam.lr;
  remove_stale_temporaries(o.run_dir);
  if (o.resume && !std::filesystem::exists(last_path)) {
    std::printf("resume: %s does not exist yet (the run stopped before its first epoch ended); starting from scratch\n",
                last_path.c_str());
  } else if (o.resume) {
    state = load_last(last_path, model, adam);
    restore_seconds(o.run_dir + "/log.csv", state.history);
    const std::string changed = changed_settings(state.settings, o.settings);
    if (!changed.empty() && !o.apply_changes) {
      throw std::runtime_error("cannot resume " + last_path + ": settings differ from the run's (" + changed +
                               "); give the run's values, or --apply-changes to continue with the new ones");
    }
    if (!changed.empty()) {
      std::printf("resume: applying changed settings: %s\n", changed.c_str());
      if (state.settings.count("lr") && o.settings.count("lr") && state.settings.at("lr") != o.settings.at("lr"))
        state.lr = o.adam.lr;
    }
    plateau.state() = state.plateau;
    early.state() = state.early;
    std::printf("resumed %s after epoch %d\n", last_path.c_str(), state.epoch);
  }
  adam.set_lr(float(state.lr));

  LoaderOptions lo;
  lo.batch_size = o.batch_size;
  lo.seed = o.seed;
  lo.augment = o.augment;
  lo.augmentation = o.augmentation;
  lo.foreground_fraction = o.foreground_fraction;
  Loader loader(samples, train, lo);

  TrainResult result{state.history, state.best_epoch, false};
  int epochs_this_call = 0;
  for (int epoch = state.epoch + 1; epoch <= o.epochs; ++epoch) {
    const auto start = Clock::now();
    // Poly's rate comes from the epoch alone, so a run resumed with --apply-changes to --lr or
    // --epochs follows the formula for the new values.
    if (o.lr_schedule == LrSchedule::Poly) adam.set_lr(float(poly_lr(o.adam.lr, epoch - 1, o.epochs)));
    model.train();
    loader.start_epoch(epoch);
    Progress progress(o.progress, epoch, o.epochs, loader.batches_per_epoch());
    double loss_sum = 0;
    int batches = 0;
    const auto diverged = [&](int step, const std::string& bad, const std::string& advice) {
      const std::string kept = state.epoch > 0 ? "the checkpoints keep epoch " + std::to_string(state.epoch)
                                               : "no checkpoint was written";
      return std::runtime_error("training diverged at epoch " + std::to_string(epoch) + ", step " + std::to_string(step) +
                                ": " + bad + " (the first non-finite value of loss, gradients, parameters, buffers); " +
                                kept + "; " + advice);
    };
    int step = 0;
    while (auto batch = loader.next()) {
      ++step;
      const auto [image, mask] = to_tensors(*batch, o.device);
      double value = 0;
      if (o.skip_nonfinite_steps > 0) {
        // A bad batch's forward pass has already moved the BatchNorm running statistics: keep
        // them, to put back if its step is skipped.
        std::vector<std::vector<float>> buffers;
        for (const auto& [name, b] : model.named_buffers()) buffers.push_back(b.to_vector());
        value = compute_gradients(model, adam, o.loss, image, mask).item();
        if (const auto bad = first_non_finite(model, value)) {
          if (state.skipped_steps >= o.skip_nonfinite_steps)
            throw diverged(step, *bad, "all " + std::to_string(o.skip_nonfinite_steps) +
                                           " steps that --skip-nonfinite-steps allows were skipped already");
          std::size_t i = 0;
          for (const auto& [name, b] : model.named_buffers()) {
            Tensor kept = Tensor::from_vector(b.shape(), buffers[i++], b.device());
            Tensor(b).copy_from(kept);
          }
          ++state.skipped_steps;
          progress.clear();
          std::printf("skipped step %d of epoch %d: %s (%d of %d allowed by --skip-nonfinite-steps)\n", step, epoch,
                      bad->c_str(), state.skipped_steps, o.skip_nonfinite_steps);
          continue;
        }
        ProfileRange range("adam");
        adam.step();
      } else {
        value = train_step(model, adam, o.loss, image, mask).item();
      }
      if (const auto bad = first_non_finite(model, value)) throw diverged(step, *bad, "a lower --lr usually helps");
      loss_sum += value;
      ++batches;
      progress.update(batches, loss_sum / batches);
    }
    progress.clear();
    const Validation v = validate(model, samples, val, o);
    EpochRecord rec{epoch, loss_sum / std::max(batches, 1), v.loss, v.dice, v.iou, adam.lr(),
                    std::chrono::duration<double>(Clock::now() - start).count()};
    result.history.push_back(rec);

    const double monitored = val.empty() ? rec.loss : (o.monitor_dice ? v.dice : v.loss);
    const auto decision = early.step(monitored);
    if (decision.improved) {
      result.best_epoch = epoch;
      std::map<std::string, std::string> meta = {{"run.epoch", std::to_string(epoch)}};
      if (o.input_size > 0) meta["data.size"] = std::to_string(o.input_size);
      save_unet(best_path, model, meta);
    }
    const bool poly = o.lr_schedule == LrSchedule::Poly;
    const double next_lr = poly ? poly_lr(o.adam.lr, epoch, o.epochs) : plateau.step(monitored, adam.lr());
    state = {epoch, next_lr, result.best_epoch, plateau.state(), early.state(), result.history, o.settings,
             state.skipped_steps};
    const bool reduced = !poly && state.lr < adam.lr();
    adam.set_lr(float(state.lr));
    save_last(last_path, model, adam, state, o.settings, o.input_size);
    write_text(o.run_dir + "/log.csv", csv(result.history));
    draw_curves(o.run_dir + "/curves.png", result.history);
    std::printf("epoch %3d/%d  loss %.4f  val_loss %.4f  val_dice %.4f  val_iou %.4f  lr %.2e  %.1f s%s%s\n", epoch, o.epochs,
                rec.loss, rec.val_loss, rec.val_dice, rec.val_iou, rec.lr, rec.seconds, decision.improved ? "  *best" : "",
                reduced ? "  (lr reduced)" : "");
    std::fflush(stdout);
    if (decision.stop) {
      result.stopped_early = true;
      std::printf("early stop: no improvement for %d epochs\n", o.early.patience);
      break;
    }
    ++epochs_this_call;
    if (o.stop_after > 0 && epochs_this_call >= o.stop_after) return result;
  }
  // A run killed between last.ckpt and log.csv of its final epoch resumes with nothing left to
  // train: the log and the curves are written here from the checkpoint's history.
  if (epochs_this_call == 0) {
    write_text(o.run_dir + "/log.csv", csv(result.history));
    draw_curves(o.run_dir + "/curves.png", result.history);
  }
  if (o.restore_best && result.best_epoch > 0) {
    load_module_state(model, load_checkpoint(best_path), "model.", best_path);
    std::printf("restored the weights of epoch %d (best)\n", result.best_epoch);
  }
  write_summary(o, result, model, train.size(), val.size());
  return result;
}

}  // namespace unet
