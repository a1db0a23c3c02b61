// Device-side names of the emulation layer: thread coordinates, barriers, warp operations,
// atomics and math intrinsics. The barrier and warp functions are implemented by the scheduler
// (kernels/emu/scheduler.cpp); kernels reach them through the macros of kernels/emu/emu.h.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace unet::emu::api {

struct uint3 {
  unsigned x, y, z;
};

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}     // NOLINT(google-explicit-constructor)
  constexpr operator uint3() const { return {x, y, z}; }  // NOLINT(google-explicit-constructor)
};

inline constexpr int warpSize = 32;

}  // namespace unet::emu::api

namespace unet::emu::detail {

using api::dim3;
using api::uint3;

// What threadIdx / blockIdx / blockDim / gridDim read: pointers the scheduler points at the
// running fiber's coordinates before every resume. constinit lets the compiler read them without
// a TLS init guard. Outside a kernel they point at zeros.
struct ThreadCoords {
  uint3 thread_idx;
};
struct BlockCoords {
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
};
extern constinit thread_local const ThreadCoords* current_thread;
extern constinit thread_local const BlockCoords* current_block;

// Barriers: suspend the calling fiber until the barrier completes (see the model in emu.h).
void sync_threads(const char* file, int line);

enum class WarpOp : unsigned char {
  SyncWarp,
  ShflIdx,
  ShflUp,
  ShflDown,
  ShflXor,
  Ballot,
  Any,
  All
};
// One warp operation: publishes `value` (the lane's bits) and `arg` (source lane, delta or lane
// mask), waits until every lane named in `mask` has arrived, returns this lane's result bits.
std::uint64_t warp_exchange(WarpOp op, unsigned mask, std::uint64_t value, int arg, int width,
                            const char* file, int line);

inline void sync_warp(const char* file, int line, unsigned mask = 0xffffffffu) {
  warp_exchange(WarpOp::SyncWarp, mask, 0, 0, api::warpSize, file, line);
}

// Shuffles for the types CUDA has them for; promotion rules as for CUDA's overload set.
template <typename T>
std::uint64_t to_bits(T v) {
  std::uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  return bits;
}
template <typename T>
T from_bits(std::uint64_t bits) {
  T v;
  std::memcpy(&v, &bits, sizeof(T));
  return v;
}

#define UNET_EMU_SHUFFLES(T)                                                                       \
  inline T shfl_idx(const char* f, int l, unsigned mask, T var, int src_lane, int width = 32) {    \
    return from_bits<T>(                                                                           \
        warp_exchange(WarpOp::ShflIdx, mask, to_bits(var), src_lane, width, f, l));                \
  }                                                                                                \
  inline T shfl_up(const char* f, int l, unsigned mask, T var, unsigned delta, int width = 32) {   \
    return from_bits<T>(                                                                           \
        warp_exchange(WarpOp::ShflUp, mask, to_bits(var), static_cast<int>(delta), width, f, l));  \
  }                                                                                                \
  inline T shfl_down(const char* f, int l, unsigned mask, T var, unsigned delta, int width = 32) { \
    return from_bits<T>(warp_exchange(WarpOp::ShflDown, mask, to_bits(var),                        \
                                      static_cast<int>(delta), width, f, l));                      \
  }                                                                                                \
  inline T shfl_xor(const char* f, int l, unsigned mask, T var, int lane_mask, int width = 32) {   \
    return from_bits<T>(                                                                           \
        warp_exchange(WarpOp::ShflXor, mask, to_bits(var), lane_mask, width, f, l));               \
  }
UNET_EMU_SHUFFLES(int)
UNET_EMU_SHUFFLES(unsigned)
UNET_EMU_SHUFFLES(long)
UNET_EMU_SHUFFLES(unsigned long)
UNET_EMU_SHUFFLES(long long)
UNET_EMU_SHUFFLES(unsigned long long)
UNET_EMU_SHUFFLES(float)
UNET_EMU_SHUFFLES(double)
#undef UNET_EMU_SHUFFLES

inline unsigned ballot(const char* f, int l, unsigned mask, int predicate) {
  return static_cast<unsigned>(warp_exchange(WarpOp::Ballot, mask, predicate != 0, 0, 32, f, l));
}
inline int any(const char* f, int l, unsigned mask, int predicate) {
  return static_cast<int>(warp_exchange(WarpOp::Any, mask, predicate != 0, 0, 32, f, l));
}
inline int all(const char* f, int l, unsigned mask, int predicate) {
  return static_cast<int>(warp_exchange(WarpOp::All, mask, predicate != 0, 0, 32, f, l));
}

// UNET_DYNAMIC_SHARED: the running launch's dynamic shared memory.
void* dynamic_shared_memory();

}  // namespace unet::emu::detail

namespace unet::emu::api {

// Atomics. Fibers are cooperative and a launch runs on one OS thread, so a plain
// read-modify-write cannot be interrupted; the CUDA signatures (returning the old value) stay.
// Integer additions wrap like the hardware's instead of overflowing (signed overflow is UB).
inline int atomicAdd(int* address, int value) {
  const int old = *address;
  *address = static_cast<int>(static_cast<unsigned>(old) + static_cast<unsigned>(value));
  return old;
}
inline unsigned atomicAdd(unsigned* address, unsigned value) {
  const unsigned old = *address;
  *address = old + value;
  return old;
}
inline unsigned long long atomicAdd(unsigned long long* address, unsigned long long value) {
  const unsigned long long old = *address;
  *address = old + value;
  return old;
}
inline float atomicAdd(float* address, float value) {
  const float old = *address;
  *address = old + value;
  return old;
}
inline double atomicAdd(double* address, double value) {
  const double old = *address;
  *address = old + value;
  return old;
}
template <typename T>
T atomic_max_impl(T* address, T value) {
  const T old = *address;
  *address = old < value ? value : old;
  return old;
}
template <typename T>
T atomic_min_impl(T* address, T value) {
  const T old = *address;
  *address = value < old ? value : old;
  return old;
}
inline int atomicMax(int* a, int v) { return atomic_max_impl(a, v); }
inline unsigned atomicMax(unsigned* a, unsigned v) { return atomic_max_impl(a, v); }
inline long long atomicMax(long long* a, long long v) { return atomic_max_impl(a, v); }
inline unsigned long long atomicMax(unsigned long long* a, unsigned long long v) {
  return atomic_max_impl(a, v);
}
inline int atomicMin(int* a, int v) { return atomic_min_impl(a, v); }
inline unsigned atomicMin(unsigned* a, unsigned v) { return atomic_min_impl(a, v); }
inline long long atomicMin(long long* a, long long v) { return atomic_min_impl(a, v); }
inline unsigned long long atomicMin(unsigned long long* a, unsigned long long v) {
  return atomic_min_impl(a, v);
}
template <typename T>
T atomic_exch_impl(T* address, T value) {
  const T old = *address;
  *address = value;
  return old;
}
inline int atomicExch(int* a, int v) { return atomic_exch_impl(a, v); }
inline unsigned atomicExch(unsigned* a, unsigned v) { return atomic_exch_impl(a, v); }
inline unsigned long long atomicExch(unsigned long long* a, unsigned long long v) {
  return atomic_exch_impl(a, v);
}
inline float atomicExch(float* a, float v) { return atomic_exch_impl(a, v); }
template <typename T>
T atomic_cas_impl(T* address, T compare, T value) {
  const T old = *address;
  if (old == compare) *address = value;
  return old;
}
inline int atomicCAS(int* a, int c, int v) { return atomic_cas_impl(a, c, v); }
inline unsigned atomicCAS(unsigned* a, unsigned c, unsigned v) { return atomic_cas_impl(a, c, v); }
inline unsigned long long atomicCAS(unsigned long long* a, unsigned long long c,
                                    unsigned long long v) {
  return atomic_cas_impl(a, c, v);
}

// Math intrinsics, computed at full precision (the GPU's fast versions are less accurate, so
// tolerances must come from the GPU side). __expf / __logf are macros in emu.h, see there.
inline float fast_expf(float x) { return std::exp(x); }
inline float fast_logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __saturatef(float x) { return x > 0.0f ? (x < 1.0f ? x : 1.0f) : 0.0f; }  // NaN -> 0
template <typename T>
T __ldg(const T* address) {
  return *address;
}
// Bit counting, handy with __ballot_sync.
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }

// min / max as CUDA device code has them: same-type pairs, and signed/unsigned mixes of one
// width give the unsigned type (what CUDA's overloads return).
#define UNET_EMU_MINMAX(R, A, B)                                                          \
  inline R min(A a, B b) {                                                                \
    return static_cast<R>(a) < static_cast<R>(b) ? static_cast<R>(a) : static_cast<R>(b); \
  }                                                                                       \
  inline R max(A a, B b) {                                                                \
    return static_cast<R>(a) < static_cast<R>(b) ? static_cast<R>(b) : static_cast<R>(a); \
  }
UNET_EMU_MINMAX(int, int, int)
UNET_EMU_MINMAX(unsigned, unsigned, unsigned)
UNET_EMU_MINMAX(unsigned, int, unsigned)
UNET_EMU_MINMAX(unsigned, unsigned, int)
UNET_EMU_MINMAX(long, long, long)
UNET_EMU_MINMAX(unsigned long, unsigned long, unsigned long)
UNET_EMU_MINMAX(unsigned long, long, unsigned long)
UNET_EMU_MINMAX(unsigned long, unsigned long, long)
UNET_EMU_MINMAX(long long, long long, long long)
UNET_EMU_MINMAX(unsigned long long, unsigned long long, unsigned long long)
UNET_EMU_MINMAX(unsigned long long, long long, unsigned long long)
UNET_EMU_MINMAX(unsigned long long, unsigned long long, long long)
#undef UNET_EMU_MINMAX
// Floating point follows fminf / fmaxf (a NaN argument yields the other one), like CUDA.
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }
inline double min(float a, double b) { return std::fmin(static_cast<double>(a), b); }
inline double max(float a, double b) { return std::fmax(static_cast<double>(a), b); }
inline double min(double a, float b) { return std::fmin(a, static_cast<double>(b)); }
inline double max(double a, float b) { return std::fmax(a, static_cast<double>(b)); }

}  // namespace unet::emu::api
