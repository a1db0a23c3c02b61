// The emulation scheduler: runs a grid block by block, a block as one fiber per CUDA thread in
// rounds, and implements __syncthreads, the warp operations and the diagnosis of barrier faults.
// The model is described in kernels/emu/emu.h.
//
// Data flow of one block: every thread starts Fresh and ready. A round resumes the ready
// threads in the chosen order; each runs until it waits (AtBarrier / AtWarpOp) or returns
// (Exited). The last arrival at a barrier releases the waiters: they become Runnable (ready for
// the next round) and, for warp operations, get their results computed at that moment. When a
// round finds nobody ready, the block is done if every thread returned and deadlocked otherwise.
// A fault (barrier misuse, exception from kernel code) stops the block: the threads suspended
// mid-kernel are resumed once more to unwind their stacks, then the launch throws.
#include <cxxabi.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <new>
#include <numeric>
#include <optional>
#include <string>
#include <typeinfo>
#include <vector>

#include "kernels/emu/fiber.h"
#include "kernels/emu/launch.h"

namespace unet::emu {
namespace detail {

namespace {

constexpr ThreadCoords kNoThread{{0, 0, 0}};
constexpr BlockCoords kNoBlock{{0, 0, 0}, {1, 1, 1}, {1, 1, 1}};

}  // namespace

constinit thread_local const ThreadCoords* current_thread = &kNoThread;
constinit thread_local const BlockCoords* current_block = &kNoBlock;

namespace {

// ---------------------------------------------------------------------------------------------
// Small helpers: call sites, formatting, random numbers.

struct Site {
  const char* file = "";
  int line = 0;
};

bool same_site(const Site& a, const Site& b) {
  return a.line == b.line && (a.file == b.file || std::strcmp(a.file, b.file) == 0);
}

std::string where(const Site& s) { return std::string(s.file) + ":" + std::to_string(s.line); }

std::string triple(unsigned x, unsigned y, unsigned z) {
  return "(" + std::to_string(x) + "," + std::to_string(y) + "," + std::to_string(z) + ")";
}
std::string triple(const uint3& v) { return triple(v.x, v.y, v.z); }
std::string triple(const dim3& v) { return triple(v.x, v.y, v.z); }

std::string hex(unsigned v) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "0x%08x", v);
  return buffer;
}

const char* op_name(WarpOp op) {
  switch (op) {
    case WarpOp::SyncWarp: return "__syncwarp";
    case WarpOp::ShflIdx: return "__shfl_sync";
    case WarpOp::ShflUp: return "__shfl_up_sync";
    case WarpOp::ShflDown: return "__shfl_down_sync";
    case WarpOp::ShflXor: return "__shfl_xor_sync";
    case WarpOp::Ballot: return "__ballot_sync";
    case WarpOp::Any: return "__any_sync";
    case WarpOp::All: return "__all_sync";
  }
  return "?";
}

bool is_shuffle(WarpOp op) {
  return op == WarpOp::ShflIdx || op == WarpOp::ShflUp || op == WarpOp::ShflDown ||
         op == WarpOp::ShflXor;
}

std::string demangle(const char* name) {
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> out(
      abi::__cxa_demangle(name, nullptr, nullptr, &status), &std::free);
  return status == 0 && out ? std::string(out.get()) : std::string(name);
}

// splitmix64: tiny, good enough to shuffle, and the same sequence on every platform.
std::uint64_t next_random(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Thrown inside a fiber by a barrier or warp operation that finds a fault; caught by the fiber's
// top frame. Not a std::exception, so kernel code cannot mistake it for its own.
struct KernelFault {
  std::string message;
};
// Thrown into a suspended fiber to unwind its stack after another thread faulted.
struct Unwind {};

// ---------------------------------------------------------------------------------------------
// Process-wide state, guarded by launch_mutex(): static __shared__ storage is process-wide, so
// launches from different host threads must not overlap.

std::mutex& launch_mutex() {
  static std::mutex m;
  return m;
}

struct OrderState {
  bool initialised = false;
  ThreadOrder order = ThreadOrder::Forward;
  std::uint64_t rng = 0;
};
OrderState& order_state() {
  static OrderState s;
  return s;
}

// The default order, from UNET_EMU_ORDER / UNET_EMU_SEED, read on first use.
void initialise_order(OrderState& s) {
  if (s.initialised) return;
  if (const char* env = std::getenv("UNET_EMU_ORDER"); env != nullptr && *env != '\0') {
    const std::string v = env;
    if (v == "forward")
      s.order = ThreadOrder::Forward;
    else if (v == "reverse")
      s.order = ThreadOrder::Reverse;
    else if (v == "random")
      s.order = ThreadOrder::Random;
    else  // thrown by every launch until fixed: a typo must not silently test one order only
      throw EmulationError(api::cudaErrorInvalidValue,
                           "UNET_EMU_ORDER=" + v + ": expected forward, reverse or random");
  }
  if (const char* env = std::getenv("UNET_EMU_SEED"); env != nullptr)
    s.rng = std::strtoull(env, nullptr, 0);
  s.initialised = true;
}

std::atomic<std::uint64_t> total_resumes{0};

// ---------------------------------------------------------------------------------------------
// Per-block bookkeeping.

enum class State : std::uint8_t {
  Fresh,      // not started in this block
  Runnable,   // released from a barrier, suspended inside it until resumed
  AtBarrier,  // waiting in __syncthreads
  AtWarpOp,   // waiting in a warp operation
  Exited,     // returned from the kernel (or unwound)
};

struct CudaThread {
  ThreadCoords coords{};  // what threadIdx reads
  unsigned lane = 0;
  unsigned warp = 0;
  State state = State::Fresh;
  Site site;  // where it waits
  // The warp operation it waits in, and its result once released.
  WarpOp op = WarpOp::SyncWarp;
  unsigned mask = 0;
  int arg = 0;
  int width = 32;
  std::uint64_t value = 0;
  std::uint64_t result = 0;
};

struct WarpState {
  unsigned lanes = 0;    // lanes that exist (a partial last warp has fewer than 32)
  unsigned waiting = 0;  // lanes waiting in a warp operation
  unsigned exited = 0;   // lanes that returned
};

class Scheduler;
thread_local Scheduler* active_scheduler = nullptr;  // the one running a kernel on this thread

void worker_main(void* arg);

// Fiber i runs CUDA thread i of every block, in a loop. Workers sit in a deque: stable addresses
// (the fiber's entry holds a pointer) without a pointer chase per resume.
struct Worker {
  Worker(Scheduler* s, unsigned i)
      : scheduler(s), index(i), fiber(Fiber::default_stack_bytes(), &worker_main, this) {}
  Scheduler* scheduler;
  unsigned index;
  bool quit = false;
  Fiber fiber;
};

class Scheduler {
 public:
  Scheduler() = default;
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;
  ~Scheduler() {
    // Workers sit at the bottom of their loop between launches; let each return so its stack
    // can be freed cleanly.
    for (auto& w : workers_) {
      w.quit = true;
      if (!w.fiber.finished()) w.fiber.resume();
    }
  }

  void run(const LaunchRequest& request, OrderState& order);

  // Called on fibers.
  void run_thread(unsigned index);
  void sync_threads(Site site);
  std::uint64_t warp_exchange(WarpOp op, unsigned mask, std::uint64_t value, int arg, int width,
                              Site site);
  void* dynamic_shared() const { return shared_; }

 private:
  void prepare(const LaunchRequest& request);
  void run_block(std::uint64_t block);
  void build_round();
  void resume(unsigned i);
  void wait();  // suspend the running fiber; throws Unwind when resumed for an abort
  void release(unsigned i) {
    threads_[i].state = State::Runnable;
    ready_[i] = 1;
  }
  void complete_warp_op(unsigned warp, unsigned group);
  [[noreturn]] void fail_block(const std::string& detail);
  void abort_block();
  std::string describe_deadlock() const;
  std::string describe_warp_stall() const;
  std::string thread_name(unsigned i) const {
    return "thread " + triple(threads_[i].coords.thread_idx);
  }

  std::deque<Worker> workers_;
  std::vector<CudaThread> threads_;
  std::vector<WarpState> warps_;
  std::vector<unsigned> round_;
  std::vector<std::uint8_t> ready_;

  const LaunchRequest* request_ = nullptr;
  OrderState* order_ = nullptr;
  BlockCoords block_{};
  void* shared_ = nullptr;
  unsigned nthreads_ = 0;
  unsigned current_ = 0;  // the thread whose fiber runs
  unsigned exited_ = 0;
  unsigned at_barrier_ = 0;     // threads waiting in __syncthreads
  unsigned barrier_first_ = 0;  // the first of them (its site is the barrier's site)
  bool aborting_ = false;
  std::optional<std::string> fault_;  // first fault of the block, with its thread
  std::uint64_t resumes_ = 0;
};

void worker_main(void* arg) {
  auto& w = *static_cast<Worker*>(arg);
  // Each resume after the previous thread returned starts the next block's thread `index`.
  while (!w.quit) {
    w.scheduler->run_thread(w.index);
    w.fiber.suspend();
  }
}

Scheduler& this_thread_scheduler() {
  thread_local Scheduler scheduler;
  return scheduler;
}

std::string launch_prefix(const LaunchRequest& r) {
  std::string s = "kernel `" + std::string(r.site.kernel) + "` launched at " +
                  where({r.site.file, r.site.line}) + " (grid " + triple(r.grid) + ", block " +
                  triple(r.block);
  if (r.shared_bytes != 0)
    s += ", " + std::to_string(r.shared_bytes) + " bytes of dynamic shared memory";
  return s + ")";
}

// ---------------------------------------------------------------------------------------------
// The launch.

void Scheduler::prepare(const LaunchRequest& r) {
  nthreads_ = r.block.x * r.block.y * r.block.z;
  while (workers_.size() < nthreads_)
    workers_.emplace_back(this, static_cast<unsigned>(workers_.size()));
  // Sized before any fiber runs: fibers hold references into these vectors.
  threads_.resize(nthreads_);
  ready_.assign(nthreads_, 0);
  round_.reserve(nthreads_);
  warps_.assign((nthreads_ + 31) / 32, WarpState{});
  for (unsigned i = 0; i < nthreads_; ++i) {
    CudaThread& t = threads_[i];
    // CUDA numbers threads x-fastest and cuts warps from that linear order.
    t.coords.thread_idx = {i % r.block.x, i / r.block.x % r.block.y, i / (r.block.x * r.block.y)};
    t.lane = i % 32;
    t.warp = i / 32;
    warps_[t.warp].lanes |= 1u << t.lane;
  }
  block_.block_dim = r.block;
  block_.grid_dim = r.grid;
}

void Scheduler::run(const LaunchRequest& r, OrderState& order) {
  request_ = &r;
  order_ = &order;
  prepare(r);

  // Dynamic shared memory: exactly the requested size, so AddressSanitizer sees overruns.
  struct Free {
    void operator()(void* p) const { ::operator delete (p, std::align_val_t{256}); }
  };
  std::unique_ptr<void, Free> shared(
      r.shared_bytes ? ::operator new (r.shared_bytes, std::align_val_t{256}) : nullptr);
  shared_ = shared.get();

  // Whatever happens, leave this OS thread outside any kernel.
  struct Reset {
    Scheduler* s;
    ~Reset() {
      active_scheduler = nullptr;
      current_thread = &kNoThread;
      current_block = &kNoBlock;
      s->shared_ = nullptr;
      s->request_ = nullptr;
      total_resumes += s->resumes_;
      s->resumes_ = 0;
    }
  } reset{this};
  active_scheduler = this;
  current_block = &block_;

  const std::uint64_t total = std::uint64_t{r.grid.x} * r.grid.y * r.grid.z;
  // Block order: forward, reverse, or a random affine permutation i -> (a*i + c) mod total with
  // gcd(a, total) = 1 (a shuffle without a table as large as the grid).
  std::uint64_t a = 1, c = 0;
  if (order.order == ThreadOrder::Random && total > 1) {
    do a = 1 + next_random(order.rng) % (total - 1);
    while (std::gcd(a, total) != 1);
    c = next_random(order.rng) % total;
  }
  for (std::uint64_t i = 0; i < total; ++i) {
    switch (order.order) {
      case ThreadOrder::Forward: run_block(i); break;
      case ThreadOrder::Reverse: run_block(total - 1 - i); break;
      case ThreadOrder::Random: run_block((a * i + c) % total); break;
    }
  }
}

void Scheduler::run_block(std::uint64_t b) {
  const dim3 g = request_->grid;
  block_.block_idx = {static_cast<unsigned>(b % g.x), static_cast<unsigned>(b / g.x % g.y),
                      static_cast<unsigned>(b / (std::uint64_t{g.x} * g.y))};
  for (unsigned i = 0; i < nthreads_; ++i) {
    threads_[i].state = State::Fresh;
    ready_[i] = 1;
  }
  for (auto& w : warps_) w.waiting = w.exited = 0;
  exited_ = at_barrier_ = 0;
  if (shared_ != nullptr) std::memset(shared_, 0xFF, request_->shared_bytes);

  for (;;) {
    build_round();
    if (round_.empty()) break;
    for (unsigned i : round_) {
      resume(i);
      if (fault_) fail_block(*fault_);
    }
  }
  if (exited_ != nthreads_) fail_block(describe_deadlock());
}

void Scheduler::build_round() {
  round_.clear();
  const bool reverse = order_->order == ThreadOrder::Reverse;
  for (unsigned k = 0; k < nthreads_; ++k) {
    const unsigned i = reverse ? nthreads_ - 1 - k : k;
    if (ready_[i]) {
      ready_[i] = 0;
      round_.push_back(i);
    }
  }
  if (order_->order == ThreadOrder::Random) {
    for (std::size_t k = round_.size(); k > 1; --k)
      std::swap(round_[k - 1], round_[next_random(order_->rng) % k]);
  }
}

void Scheduler::resume(unsigned i) {
  current_ = i;
  current_thread = &threads_[i].coords;
  ++resumes_;
  workers_[i].fiber.resume();
}

void Scheduler::wait() {
  workers_[current_].fiber.suspend();
  // Resumed: either released (current_ is us again) or being unwound after a fault.
  if (aborting_) throw Unwind{};
}

void Scheduler::run_thread(unsigned index) {
  std::optional<std::string> fault;
  try {
    request_->run_thread(request_->closure);
  } catch (const Unwind&) {
  } catch (const KernelFault& f) {
    fault = f.message;
  } catch (const std::exception& e) {
    fault = "kernel code threw " + demangle(typeid(e).name()) + ": " + e.what();
  } catch (...) {
    fault = "kernel code threw an exception that is not a std::exception";
  }
  CudaThread& t = threads_[index];
  t.state = State::Exited;
  ++exited_;
  warps_[t.warp].exited |= 1u << t.lane;
  if (fault && !fault_ && !aborting_) fault_ = thread_name(index) + ": " + *fault;
}

// ---------------------------------------------------------------------------------------------
// Barriers.

void Scheduler::sync_threads(Site site) {
  CudaThread& t = threads_[current_];
  if (at_barrier_ == 0) {
    barrier_first_ = current_;
  } else if (!same_site(site, threads_[barrier_first_].site)) {
    throw KernelFault{"divergent __syncthreads(): this thread reached the one at " + where(site) +
                      " while " + thread_name(barrier_first_) + " waits at the one at " +
                      where(threads_[barrier_first_].site) +
                      " (every thread of a block must reach the same barrier)"};
  }
  t.state = State::AtBarrier;
  t.site = site;
  if (++at_barrier_ == nthreads_) {
    for (unsigned i = 0; i < nthreads_; ++i) release(i);
    at_barrier_ = 0;
  }
  wait();
}

std::uint64_t Scheduler::warp_exchange(WarpOp op, unsigned mask, std::uint64_t value, int arg,
                                       int width, Site site) {
  CudaThread& t = threads_[current_];
  WarpState& w = warps_[t.warp];
  const unsigned bit = 1u << t.lane;
  if ((mask & bit) == 0)
    throw KernelFault{std::string(op_name(op)) + " at " + where(site) + " with mask " + hex(mask) +
                      " is called by lane " + std::to_string(t.lane) +
                      ", which the mask leaves out (the calling lane must be in the mask)"};
  if (is_shuffle(op) && (width < 1 || width > 32 || (width & (width - 1)) != 0))
    throw KernelFault{std::string(op_name(op)) + " at " + where(site) + ": width " +
                      std::to_string(width) + " is not a power of two from 1 to 32"};
  // Lanes past the end of a partial last warp do not exist: they drop out of every mask.
  const unsigned group = mask & w.lanes;
  if (const unsigned gone = group & w.exited; gone != 0) {
    const unsigned lane = static_cast<unsigned>(__builtin_ctz(gone));
    throw KernelFault{std::string(op_name(op)) + " at " + where(site) + " with mask " + hex(mask) +
                      " can never complete: lane " + std::to_string(lane) + " (" +
                      thread_name(t.warp * 32 + lane) + ") has already returned"};
  }
  t.state = State::AtWarpOp;
  t.site = site;
  t.op = op;
  t.mask = mask;
  t.value = value;
  t.arg = arg;
  t.width = width;
  w.waiting |= bit;
  if ((w.waiting & group) == group) complete_warp_op(t.warp, group);
  wait();
  return threads_[current_].result;
}

// The last lane of `group` arrived: check that all agree, compute every lane's result (reading
// the values the lanes published; nobody can publish a new one before being released) and
// release them. Lane arithmetic follows PTX shfl.sync, which the CUDA intrinsics compile to.
void Scheduler::complete_warp_op(unsigned warp, unsigned group) {
  const unsigned base = warp * 32;
  const CudaThread& me = threads_[current_];
  for (unsigned bits = group; bits != 0; bits &= bits - 1) {
    const unsigned lane = static_cast<unsigned>(__builtin_ctz(bits));
    const CudaThread& u = threads_[base + lane];
    const bool agree = u.mask == me.mask && u.op == me.op &&
                       (me.op == WarpOp::SyncWarp || same_site(u.site, me.site));
    if (!agree)
      throw KernelFault{"lanes of warp " + std::to_string(warp) + " disagree: lane " +
                        std::to_string(me.lane) + " is in " + op_name(me.op) + " at " +
                        where(me.site) + " with mask " + hex(me.mask) + ", lane " +
                        std::to_string(lane) + " in " + op_name(u.op) + " at " + where(u.site) +
                        " with mask " + hex(u.mask)};
  }
  if (me.op == WarpOp::Ballot || me.op == WarpOp::Any || me.op == WarpOp::All) {
    unsigned votes = 0;
    for (unsigned bits = group; bits != 0; bits &= bits - 1) {
      const unsigned lane = static_cast<unsigned>(__builtin_ctz(bits));
      if (threads_[base + lane].value != 0) votes |= 1u << lane;
    }
    const std::uint64_t result = me.op == WarpOp::Ballot ? votes
                                 : me.op == WarpOp::Any  ? (votes != 0)
                                                         : (votes == group);
    for (unsigned bits = group; bits != 0; bits &= bits - 1)
      threads_[base + static_cast<unsigned>(__builtin_ctz(bits))].result = result;
  } else if (is_shuffle(me.op)) {
    for (unsigned bits = group; bits != 0; bits &= bits - 1) {
      const int lane = __builtin_ctz(bits);
      CudaThread& u = threads_[base + static_cast<unsigned>(lane)];
      const int b = u.arg & 31;
      const int segmask = (32 - u.width) & 31;
      const int min_lane = lane & segmask;
      const int max_lane = min_lane | (31 & ~segmask);
      int src = lane;
      switch (u.op) {
        case WarpOp::ShflIdx: src = min_lane | (b & ~segmask); break;
        case WarpOp::ShflUp: src = lane - b >= min_lane ? lane - b : lane; break;
        case WarpOp::ShflDown: src = lane + b <= max_lane ? lane + b : lane; break;
        case WarpOp::ShflXor: src = (lane ^ b) <= max_lane ? lane ^ b : lane; break;
        default: break;
      }
      if ((group >> src & 1u) == 0) {
        const bool exists = (warps_[warp].lanes >> src & 1u) != 0;
        throw KernelFault{
            std::string(op_name(u.op)) + " at " + where(u.site) + ": lane " + std::to_string(lane) +
            " (" + thread_name(base + static_cast<unsigned>(lane)) + ") reads lane " +
            std::to_string(src) +
            (exists ? ", which is not in the mask " + hex(u.mask)
                    : ", which does not exist (the block's last warp has " +
                          std::to_string(__builtin_popcount(warps_[warp].lanes)) + " lanes)") +
            ": the value would be undefined on a GPU"};
      }
      u.result = threads_[base + static_cast<unsigned>(src)].value;
    }
  }
  for (unsigned bits = group; bits != 0; bits &= bits - 1)
    release(base + static_cast<unsigned>(__builtin_ctz(bits)));
  warps_[warp].waiting &= ~group;
}

// ---------------------------------------------------------------------------------------------
// Faults.

[[noreturn]] void Scheduler::fail_block(const std::string& detail) {
  const std::string message =
      launch_prefix(*request_) + ": in block " + triple(block_.block_idx) + ", " + detail + ".";
  abort_block();
  throw EmulationError(api::cudaErrorLaunchFailure, message);
}

// Resume every thread suspended mid-kernel once more; wait() throws Unwind in it, its stack
// unwinds (destructors run) and the worker returns to the bottom of its loop, ready for the next
// launch.
void Scheduler::abort_block() {
  aborting_ = true;
  for (unsigned i = 0; i < nthreads_; ++i) {
    const State s = threads_[i].state;
    if (s == State::Runnable || s == State::AtBarrier || s == State::AtWarpOp) resume(i);
  }
  aborting_ = false;
  fault_.reset();
}

std::string Scheduler::describe_warp_stall() const {
  for (unsigned warp = 0; warp < warps_.size(); ++warp) {
    const WarpState& w = warps_[warp];
    if (w.waiting == 0) continue;
    const unsigned base = warp * 32;
    const CudaThread& first = threads_[base + static_cast<unsigned>(__builtin_ctz(w.waiting))];
    const unsigned missing = first.mask & w.lanes & ~w.waiting;
    std::string s = std::string(op_name(first.op)) + " at " + where(first.site) + " with mask " +
                    hex(first.mask) + " never completes in warp " + std::to_string(warp) +
                    ": lanes " + hex(w.waiting) + " wait in warp operations";
    if (missing != 0) {
      const unsigned lane = static_cast<unsigned>(__builtin_ctz(missing));
      const CudaThread& m = threads_[base + lane];
      s += " but lane " + std::to_string(lane) + " (" + thread_name(base + lane) + ")";
      switch (m.state) {
        case State::Exited: s += " has returned"; break;
        case State::AtBarrier: s += " waits in __syncthreads() at " + where(m.site); break;
        default: s += " is elsewhere"; break;
      }
    } else {
      s += " that the lanes do not agree on";
    }
    return s;
  }
  return "";
}

std::string Scheduler::describe_deadlock() const {
  const unsigned waiting_warp_ops = nthreads_ - exited_ - at_barrier_;
  if (at_barrier_ == 0) return "deadlock: " + describe_warp_stall();
  std::string s = "__syncthreads() at " + where(threads_[barrier_first_].site) +
                  " never completes: " + std::to_string(at_barrier_) + " of " +
                  std::to_string(nthreads_) +
                  " threads wait there (first: " + thread_name(barrier_first_) + ")";
  if (exited_ != 0) {
    unsigned first_exited = 0;
    while (threads_[first_exited].state != State::Exited) ++first_exited;
    s += " but " + std::to_string(exited_) + (exited_ == 1 ? " has" : " have") +
         " returned (first: " + thread_name(first_exited) + ")";
  }
  if (waiting_warp_ops != 0)
    s += (exited_ != 0 ? " and " : " but ") + std::to_string(waiting_warp_ops) +
         " wait in warp operations: " + describe_warp_stall();
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Entry points.

void sync_threads(const char* file, int line) {
  if (active_scheduler == nullptr)
    throw std::logic_error("__syncthreads() called outside a kernel");
  active_scheduler->sync_threads(Site{file, line});
}

std::uint64_t warp_exchange(WarpOp op, unsigned mask, std::uint64_t value, int arg, int width,
                            const char* file, int line) {
  if (active_scheduler == nullptr)
    throw std::logic_error(std::string(op_name(op)) + " called outside a kernel");
  return active_scheduler->warp_exchange(op, mask, value, arg, width, Site{file, line});
}

void* dynamic_shared_memory() {
  return active_scheduler != nullptr ? active_scheduler->dynamic_shared() : nullptr;
}

void launch(const LaunchRequest& r) {
  if (active_scheduler != nullptr)
    throw EmulationError(
        api::cudaErrorLaunchFailure,
        launch_prefix(r) +
            ": launched from inside a kernel (dynamic parallelism is not emulated).");
  const dim3 b = r.block, g = r.grid;
  const std::uint64_t threads = std::uint64_t{b.x} * b.y * b.z;
  const std::uint64_t blocks = std::uint64_t{g.x} * g.y * g.z;
  std::string bad;
  if (threads == 0 || blocks == 0)
    bad = "every grid and block dimension must be at least 1";
  else if (b.x > 1024 || b.y > 1024 || b.z > 64 || threads > 1024)
    bad = "a block has at most 1024 threads (x, y <= 1024, z <= 64)";
  else if (g.x > 0x7fffffffu || g.y > 65535 || g.z > 65535)
    bad = "grid dimensions are limited to (2^31-1, 65535, 65535)";
  else if (blocks > (std::uint64_t{1} << 32))
    bad = "more than 2^32 blocks cannot be emulated in reasonable time";
  else if (r.shared_bytes > dynamic_shared_limit(r.kernel_address))
    bad = "more dynamic shared memory than the kernel's limit of " +
          std::to_string(dynamic_shared_limit(r.kernel_address)) +
          " bytes (raise it with cudaFuncSetAttribute(kernel, "
          "cudaFuncAttributeMaxDynamicSharedMemorySize, bytes))";
  if (!bad.empty())
    throw EmulationError(api::cudaErrorInvalidConfiguration,
                         launch_prefix(r) + ": invalid configuration: " + bad + ".");
  if (!is_valid_stream(r.stream))
    throw EmulationError(
        api::cudaErrorInvalidResourceHandle,
        launch_prefix(r) + ": the stream is not null and not a live stream from cudaStreamCreate.");

  std::lock_guard<std::mutex> lock(launch_mutex());
  OrderState& order = order_state();
  initialise_order(order);
  this_thread_scheduler().run(r, order);
}

void throw_host_pointer_argument(const LaunchSite& site, int position, int count,
                                 std::uintptr_t address) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%#llx", static_cast<unsigned long long>(address));
  throw EmulationError(api::cudaErrorInvalidDevicePointer,
                       "kernel `" + std::string(site.kernel) + "` launched at " +
                           where({site.file, site.line}) + ": argument " +
                           std::to_string(position) + " of " + std::to_string(count) + " is " +
                           buffer +
                           ", which is neither null nor inside memory from cudaMalloc: a host "
                           "pointer passed to a kernel (or freed device memory).");
}

}  // namespace detail

void set_thread_order(ThreadOrder order, std::uint64_t seed) {
  if (detail::active_scheduler != nullptr)
    throw std::logic_error("unet::emu::set_thread_order called inside a kernel");
  std::lock_guard<std::mutex> lock(detail::launch_mutex());
  detail::OrderState& s = detail::order_state();
  s.initialised = true;  // an explicit choice overrides UNET_EMU_ORDER
  s.order = order;
  s.rng = seed;
}

ThreadOrder thread_order() {
  // Inside a kernel this thread already holds the launch mutex (and the order is initialised).
  if (detail::active_scheduler != nullptr) return detail::order_state().order;
  std::lock_guard<std::mutex> lock(detail::launch_mutex());
  detail::OrderState& s = detail::order_state();
  detail::initialise_order(s);
  return s.order;
}

std::uint64_t fiber_resume_count() { return detail::total_resumes.load(); }

}  // namespace unet::emu
