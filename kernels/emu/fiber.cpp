// Fibers for the emulation scheduler: see fiber.h.
#include "kernels/emu/fiber.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <new>
#include <utility>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define UNET_EMU_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define UNET_EMU_TSAN 1
#endif

namespace unet::emu::detail {

namespace {

// Tell ASan the next stack (`fake` null: the current stack is finished for good)...
void asan_start_switch([[maybe_unused]] void** fake, [[maybe_unused]] const void* bottom,
                       [[maybe_unused]] std::size_t size) {
#if defined(UNET_EMU_ASAN)
  __sanitizer_start_switch_fiber(fake, bottom, size);
#endif
}
// ...and, once there, that the switch is complete (and which stack we came from).
void asan_finish_switch([[maybe_unused]] void* fake, [[maybe_unused]] const void** from_bottom,
                        [[maybe_unused]] std::size_t* from_size) {
#if defined(UNET_EMU_ASAN)
  __sanitizer_finish_switch_fiber(fake, from_bottom, from_size);
#endif
}
void tsan_switch([[maybe_unused]] void* fiber) {
#if defined(UNET_EMU_TSAN)
  __tsan_switch_to_fiber(fiber, 0);
#endif
}

}  // namespace

std::size_t Fiber::default_stack_bytes() {
#if defined(UNET_EMU_ASAN) || defined(UNET_EMU_TSAN)
  return std::size_t{1} << 20;
#else
  return std::size_t{256} << 10;
#endif
}

Fiber::Fiber(std::size_t stack_bytes, Entry entry, void* arg) : entry_(entry), arg_(arg) {
  // One mapping per fiber: a PROT_NONE guard page below the stack turns an overflow into a
  // segfault instead of silent corruption of the neighbouring fiber. Pages are committed lazily,
  // so 1024 fibers of 256 KiB cost only the few pages each really touches.
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  stack_size_ = (stack_bytes + page - 1) / page * page;
  mapped_ = stack_size_ + page;
  stack_ = mmap(nullptr, mapped_, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (stack_ == MAP_FAILED) throw std::bad_alloc();
  mprotect(stack_, page, PROT_NONE);
  stack_bottom_ = static_cast<char*>(stack_) + page;
  // Stagger the stack tops across cache sets: with every top at the same page offset, the hot
  // frames of hundreds of fibers compete for the same few sets and a round thrashes the caches.
  static std::atomic<unsigned> fibers_created{0};
  stack_size_ -= fibers_created++ % 64 * 128;

#if defined(UNET_EMU_TSAN)
  tsan_fiber_ = __tsan_create_fiber(0);
#endif
#if defined(UNET_EMU_UCONTEXT)
  getcontext(&context_);
  context_.uc_stack.ss_sp = stack_bottom_;
  context_.uc_stack.ss_size = stack_size_;
  context_.uc_link = nullptr;  // the entry never returns: exit_to_caller() switches away
  const auto self = reinterpret_cast<std::uintptr_t>(this);
  // makecontext passes int arguments: the pointer travels in two halves. The cast to void(*)()
  // is the signature makecontext wants.
  makecontext(&context_, reinterpret_cast<void (*)()>(&Fiber::trampoline), 2,
              static_cast<unsigned>(self >> 32), static_cast<unsigned>(self & 0xffffffffu));
  // makecontext has used the stack description; swapcontext never reads it again, but ASan's
  // swapcontext interceptor does: it clears the shadow of the whole target stack on every switch
  // (syscalls for a 1 MiB stack, ~30 us per switch). Our fiber annotations already tell ASan
  // everything it needs.
  context_.uc_stack.ss_size = 0;
#else
  // Boost places its small control record at the top of the stack we hand it; the allocator
  // returns our mapping and leaves freeing it to us.
  struct OurStack {
    void* top;
    std::size_t size;
    boost::context::stack_context allocate() {
      boost::context::stack_context context;
      context.sp = top;
      context.size = size;
      return context;
    }
    void deallocate(boost::context::stack_context&) noexcept {}
  };
  fiber_ = boost::context::fiber(
      std::allocator_arg, OurStack{static_cast<char*>(stack_bottom_) + stack_size_, stack_size_},
      [this](boost::context::fiber&& caller) {
        caller_ = std::move(caller);
        enter();
        exit_to_caller();
        return std::move(caller_);
      });
#endif
}

Fiber::~Fiber() {
#if !defined(UNET_EMU_UCONTEXT)
  // A fiber that never ran is parked by Boost at its entry; releasing it unwinds nothing of ours
  // but must happen while its stack is still mapped. (A fiber suspended mid-kernel must never
  // get here: the scheduler finishes every fiber first.)
  fiber_ = boost::context::fiber();
#endif
#if defined(UNET_EMU_TSAN)
  __tsan_destroy_fiber(tsan_fiber_);
#endif
#if defined(UNET_EMU_ASAN)
  // Frames that lived on this stack leave poisoned shadow behind; the next mapping at these
  // addresses must start clean.
  __asan_unpoison_memory_region(stack_bottom_, stack_size_);
#endif
  munmap(stack_, mapped_);
}

void Fiber::enter() {
  asan_finish_switch(nullptr, &caller_bottom_, &caller_size_);
  started_ = true;
  entry_(arg_);
}

void Fiber::exit_to_caller() {
  finished_ = true;
  asan_start_switch(nullptr, caller_bottom_, caller_size_);
  tsan_switch(tsan_caller_);
#if defined(UNET_EMU_UCONTEXT)
  setcontext(&caller_);  // does not return
#endif
}

#if defined(UNET_EMU_UCONTEXT)
void Fiber::trampoline(unsigned high, unsigned low) {
  auto* self = reinterpret_cast<Fiber*>((static_cast<std::uintptr_t>(high) << 32) | low);
  self->enter();
  self->exit_to_caller();
}
#endif

void Fiber::resume() {
#if defined(UNET_EMU_TSAN)
  tsan_caller_ = __tsan_get_current_fiber();
#endif
  asan_start_switch(&caller_fake_stack_, stack_bottom_, stack_size_);
  tsan_switch(tsan_fiber_);
#if defined(UNET_EMU_UCONTEXT)
  swapcontext(&caller_, &context_);
#else
  fiber_ = std::move(fiber_).resume();
#endif
  asan_finish_switch(caller_fake_stack_, nullptr, nullptr);
}

void Fiber::suspend() {
  asan_start_switch(&fiber_fake_stack_, caller_bottom_, caller_size_);
  tsan_switch(tsan_caller_);
#if defined(UNET_EMU_UCONTEXT)
  swapcontext(&context_, &caller_);
#else
  caller_ = std::move(caller_).resume();
#endif
  asan_finish_switch(fiber_fake_stack_, &caller_bottom_, &caller_size_);
}

}  // namespace unet::emu::detail
