// `unet kernels`: every CPU kernel variant of every primitive, the instruction set it needs,
// whether this CPU runs it, and which one the engine picks.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "kernels/cpu/variants.h"
#include "tools/commands.h"
#include "tools/model_flags.h"

namespace unet::cli {

int run_kernels(int argc, char** argv) {
  Args args("kernels",
            "Lists every CPU kernel variant by primitive, in the order of preference: by default the engine\n"
            "runs, for each call, the first variant this CPU supports that handles the call's shape and is\n"
            "preferred for it (role 'rule'; a fixed rule from measured figures, no timing, so runs are\n"
            "reproducible); the reference handles every shape. --kernels (train, eval, predict, profile) or the\n"
            "environment variable UNET_KERNELS force variants; UNET_ISA=avx2 keeps AVX-512 variants off.");
  add_kernels_flag(args);
  args.flag("all", "also list primitives that have a single variant");
  if (!args.parse(argc, argv)) return 0;
  apply_kernels_flag(args, "kernels");

  std::printf("CPU instruction sets: avx2+fma %s, avx512f/bw/vl %s\n",
              cpu::isa_available(cpu::Isa::Avx2) ? "yes" : "no", cpu::isa_available(cpu::Isa::Avx512) ? "yes" : "no");
  if (const char* env = std::getenv("UNET_KERNELS")) std::printf("UNET_KERNELS=%s\n", env);
  std::printf("\n%-34s %-17s %-14s %-5s %-9s %s\n", "primitive", "variant", "needs", "here", "role", "what it is");
  int single = 0;
  for (int k = 0; k < kernels::kKernelCount; ++k) {
    const auto list = cpu::variants_of(kernels::Kernel(k));
    if (list.size() == 1 && !args.has("all")) {
      ++single;
      continue;
    }
    for (const cpu::Variant* v : list) {
      // reference: checked against double-precision loops; rule: picked where it runs here and
      // is preferred for the shape; forced: only with --kernels / UNET_KERNELS.
      const char* role = v->reference ? "reference" : cpu::ever_preferred(*v) ? "rule" : "forced";
      const bool some = !v->reference && (v->handles || (v->preferred && cpu::ever_preferred(*v)));
      std::printf("%-34s %-17s %-14s %-5s %-9s %s%s\n", kernels::name(v->kernel), v->name, cpu::to_string(v->isa),
                  v->runs_here() ? "yes" : "no", role, v->summary, some ? " (some shapes)" : "");
    }
  }
  if (single) std::printf("\n%d more primitives have one variant each (--all lists them).\n", single);
  std::printf("\nForce: --kernels im2col_gemm | --kernels conv2d_forward=direct_avx2,conv2d_backward_filter=im2col_gemm\n");
  return 0;
}

}  // namespace unet::cli
