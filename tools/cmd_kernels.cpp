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
            "runs, for each call, the first variant this CPU supports that handles the call's shape (a fixed\n"
            "rule, no timing, so runs are reproducible). --kernels (train, eval, predict, profile) or the\n"
            "environment variable UNET_KERNELS force variants; UNET_ISA=avx2 keeps AVX-512 variants off.");
  add_kernels_flag(args);
  args.flag("all", "also list primitives that have a single variant");
  if (!args.parse(argc, argv)) return 0;
  apply_kernels_flag(args, "kernels");

  std::printf("CPU instruction sets: avx2+fma %s, avx512f/bw/vl %s\n",
              cpu::isa_available(cpu::Isa::Avx2) ? "yes" : "no", cpu::isa_available(cpu::Isa::Avx512) ? "yes" : "no");
  if (const char* env = std::getenv("UNET_KERNELS")) std::printf("UNET_KERNELS=%s\n", env);
  std::printf("\n%-34s %-15s %-14s %-5s %-9s %s\n", "primitive", "variant", "needs", "here", "role", "what it is");
  int single = 0;
  for (int k = 0; k < kernels::kKernelCount; ++k) {
    const auto list = cpu::variants_of(kernels::Kernel(k));
    if (list.size() == 1 && !args.has("all")) {
      ++single;
      continue;
    }
    bool picked = false;
    for (const cpu::Variant* v : list) {
      // The first runnable variant is the default for every shape it handles; later ones run
      // where the earlier ones do not handle the shape, or when forced.
      std::string role = v->reference ? "reference" : "";
      if (!picked && v->runs_here()) {
        role = role.empty() ? "default" : role + "*";
        picked = true;
      }
      std::printf("%-34s %-15s %-14s %-5s %-9s %s%s\n", kernels::name(v->kernel), v->name, cpu::to_string(v->isa),
                  v->runs_here() ? "yes" : "no", role.c_str(), v->summary, v->handles || v->preferred ? " (not every shape)" : "");
    }
  }
  if (single) std::printf("\n%d more primitives have one variant each (--all lists them).\n", single);
  std::printf("\nForce: --kernels im2col_gemm | --kernels conv2d_forward=direct_avx2,conv2d_backward_filter=im2col_gemm\n");
  return 0;
}

}  // namespace unet::cli
