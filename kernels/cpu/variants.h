// The CPU kernel lab: every CPU implementation ("variant") of every primitive of
// kernels/primitives.h, registered by name in one table (variants.cpp), with the instruction set
// it needs and the shapes it handles. The CPU backend runs, for each call, the variant that
// choose() names; the test table (tests/bench/test_variants.cpp) checks every variant against its
// primitive's reference variant, and bench_kernels times every variant side by side. Adding a
// variant is one function with the primitive's signature and one line in the table.
//
// Which variant runs: a forced one (force_variants(), the `--kernels` flag, the UNET_KERNELS
// environment variable) wherever it handles the shape; otherwise the first variant in table order
// that this CPU can run, that handles the shape and that is preferred for it (a reference variant
// handles every shape and is always preferred, so one is always found). The rule depends only on the shape and the
// CPU, never on timing, so runs are reproducible: the same seed and thread count give the same
// bits on the same CPU.
#pragma once

#include <string>
#include <vector>

#include "kernels/cpu/isa.h"
#include "kernels/kernel_call.h"
#include "kernels/primitives.h"

namespace unet::cpu {

using kernels::AdamParams;
using kernels::AdamTensor;
using kernels::BatchNormShape;
using kernels::ConcatShape;
using kernels::Conv2dShape;
using kernels::ConvTranspose2dShape;
using kernels::Kernel;
using kernels::KernelCall;
using kernels::LossKind;
using kernels::Pool2dShape;

// Signature<Kernel::conv2d_forward>::Fn is a pointer to a function with that primitive's
// parameters.
template <Kernel K>
struct Signature;
#define UNET_SIGNATURE(name, params, args, call) \
  template <>                                    \
  struct Signature<Kernel::name> {               \
    using Fn = void(*) params;                   \
  };
UNET_PRIMITIVES(UNET_SIGNATURE)
#undef UNET_SIGNATURE

struct Variant {
  Kernel kernel;
  const char* name;     // e.g. "direct_avx512"; "<primitive>:<name>" names it everywhere
  Isa isa;              // what the CPU must support to run it
  bool reference;       // the implementation the others are checked against
  const char* summary;  // one line for `unet kernels`
  bool (*handles)(const KernelCall&);    // the shapes it computes correctly; null: every shape
  bool (*preferred)(const KernelCall&);  // where the rule picks it, of those; null: all of them
  void (*fn)();         // a Signature<kernel>::Fn, stored type-erased

  template <Kernel K>
  typename Signature<K>::Fn get() const {
    return reinterpret_cast<typename Signature<K>::Fn>(fn);
  }
  bool runs_here() const { return isa_available(isa); }
  bool handles_call(const KernelCall& call) const { return !handles || handles(call); }
};

// False for a variant the rule never picks (it loses everywhere it was measured): it runs only
// when forced, for study and comparison.
bool ever_preferred(const Variant& v);

// The table, grouped by primitive, each group in order of preference.
const std::vector<Variant>& variants();
std::vector<const Variant*> variants_of(Kernel kernel);

// The variant that runs `call` here (see the top of this file).
const Variant& choose(const KernelCall& call);

// Forces variants from a comma-separated list: "primitive=variant" for one primitive, or a bare
// variant name for every primitive that has a variant of that name ("direct_avx2",
// "conv2d_forward=im2col_gemm,conv2d_backward_filter=direct_avx2"); "" or "default" clears. A
// forced variant runs on the shapes it handles; the rule picks elsewhere. Throws
// std::invalid_argument naming what is unknown or what this CPU cannot run. The environment
// variable UNET_KERNELS is applied the same way on first use.
void force_variants(const std::string& spec);
// Forces one variant for its primitive (nullptr: the rule again for `kernel`).
void force_variant(Kernel kernel, const Variant* variant);

}  // namespace unet::cpu
