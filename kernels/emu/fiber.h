// The context switch under the scheduler (internal to kernels/emu/): a fiber with its own
// fixed-size, guard-paged stack, resumed by the scheduler and suspending back to it.
//
// Backends: Boost.Context's `fiber` (default; a switch costs tens of nanoseconds) or POSIX
// ucontext with -DUNET_EMU_UCONTEXT (every switch is a sigprocmask syscall: launches take about
// 10x longer; use it under sanitizers). Both carry the AddressSanitizer and ThreadSanitizer fiber
// annotations, so ASan tracks which stack is live (no false stack-overflow or use-after-return
// reports) and TSan treats every switch as a synchronisation.
#pragma once

#include <cstddef>

#if defined(UNET_EMU_UCONTEXT)
#include <ucontext.h>
#else
#include <boost/context/fiber.hpp>
#endif

namespace unet::emu::detail {

class Fiber {
 public:
  using Entry = void (*)(void* arg);

  // Nothing runs until the first resume(), which calls entry(arg) on the fiber's stack.
  Fiber(std::size_t stack_bytes, Entry entry, void* arg);
  // The fiber must have returned from its entry function (or never started).
  ~Fiber();
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;

  // From the scheduler: run the fiber until it calls suspend() or returns from entry.
  void resume();
  // From inside the fiber: switch back to the resume() that started this stretch.
  void suspend();
  bool finished() const { return finished_; }

  // Default stack size: kernels keep little on the stack, but 1024 fibers per block must fit.
  // Sanitizers enlarge frames (redzones), so their builds get more.
  static std::size_t default_stack_bytes();

 private:
  void enter();           // first code on the new stack
  void exit_to_caller();  // last code on the stack: annotate, then leave for good

  void* stack_ = nullptr;  // mapping: guard page + usable stack
  std::size_t mapped_ = 0;
  void* stack_bottom_ = nullptr;  // usable stack [bottom, bottom + size)
  std::size_t stack_size_ = 0;
  Entry entry_;
  void* arg_;
  bool started_ = false;
  bool finished_ = false;

  // Sanitizer state: fake-stack handles and the bounds of the stack that resumed us.
  void* fiber_fake_stack_ = nullptr;
  void* caller_fake_stack_ = nullptr;
  const void* caller_bottom_ = nullptr;
  std::size_t caller_size_ = 0;
  void* tsan_fiber_ = nullptr;
  void* tsan_caller_ = nullptr;

#if defined(UNET_EMU_UCONTEXT)
  static void trampoline(unsigned high, unsigned low);
  ucontext_t context_{};
  ucontext_t caller_{};
#else
  boost::context::fiber fiber_;   // the fiber, while it is suspended
  boost::context::fiber caller_;  // the scheduler, while the fiber runs
#endif
};

}  // namespace unet::emu::detail
