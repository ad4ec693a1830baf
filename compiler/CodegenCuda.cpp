//===- CodegenCuda.cpp - one CUDA translation unit per program ------------===//
//
// Each templated launch maps to an instantiation of a kernels/*.cuh template
// (element type, head dim and tile sizes as template arguments) wrapped in an
// `extern "C" __global__` entry that takes the kernel's argument struct of
// kernels/args.h by value. Identical instantiations are emitted once. The
// runtime finds entries by the `function` name recorded on each step and sizes
// grids from the same tile params.
//
//===----------------------------------------------------------------------===//

#include "mm/Compiler/Passes.h"
#include "kernels/args.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/raw_ostream.h"

#define DEBUG_TYPE "mm-codegen-cuda"

namespace mm {
#define GEN_PASS_DEF_CODEGENCUDAPASS
#include "mm/Compiler/Passes.h.inc"
} // namespace mm

using namespace mlir;

namespace {

Type bufferDtype(Value v) {
  Operation *def = v.getDefiningOp();
  if (auto a = dyn_cast_or_null<mmx::AllocOp>(def))
    return a.getDtype();
  if (auto w = dyn_cast_or_null<mmx::WeightOp>(def))
    return w.getDtype();
  if (auto i = dyn_cast_or_null<mmx::InputOp>(def))
    return i.getDtype();
  if (auto st = dyn_cast_or_null<mmx::StateOp>(def))
    return st.getDtype();
  return Type();
}

/// A training kernel family of kernels/launch.h: the .cuh that defines it,
/// its ENTRIES macro, the entry-name stem, whether the head dim is a template
/// argument, and the input whose element type is the kernel's T.
struct TrainFamily {
  const char *kernel, *file, *macro, *prefix;
  bool headDim;
  unsigned typedInput;
};

const TrainFamily *trainFamily(StringRef kind) {
  static const TrainFamily families[] = {
      {"embedding_grad", "train_small", "MM_EMBEDDING_GRAD_ENTRIES",
       "embedding_grad", false, 1},
      {"rms_norm_grad", "train_small", "MM_RMS_NORM_GRAD_ENTRIES",
       "rms_norm_grad", false, 0},
      {"silu_grad", "train_small", "MM_SILU_GRAD_ENTRIES", "silu_grad", false,
       0},
      {"sigmoid_grad", "train_small", "MM_SIGMOID_GRAD_ENTRIES", "sigmoid_grad",
       false, 0},
      {"rope_grad", "train_small", "MM_ROPE_GRAD_ENTRIES", "rope_grad", false,
       0},
      {"grad_norm", "train_small", "MM_GRAD_NORM_ENTRIES", "grad_norm", false,
       0},
      {"adamw", "train_small", "MM_ADAMW_ENTRIES", "adamw", false, 0},
      {"came", "train_small", "MM_CAME_ENTRIES", "came", false, 0},
      {"came_vector", "train_small", "MM_CAME_VECTOR_ENTRIES", "came_vector",
       false, 0},
      {"store_param", "train_small", "MM_STORE_PARAM_ENTRIES", "store_param",
       false, 1},
      {"lm_head_loss", "train_small", "MM_LM_HEAD_ENTRIES", "lm_head", false,
       0},
      {"lm_head_loss_grad", "train_small", "MM_LM_HEAD_ENTRIES", "lm_head",
       false, 0},
      {"lightning_attention_grad", "lightning_attention_grad",
       "MM_LIGHTNING_ATTENTION_GRAD_ENTRIES", "lightning_attention_grad", true,
       0},
      {"softmax_attention_grad", "softmax_attention_grad",
       "MM_SOFTMAX_ATTENTION_GRAD_ENTRIES", "softmax_attention_grad", true, 0},
      {"moe_grad", "moe_grad", "MM_MOE_GRAD_ENTRIES", "moe_grad", false, 0},
  };
  for (const TrainFamily &f : families)
    if (kind == f.kernel)
      return &f;
  return nullptr;
}

class SourceBuilder {
public:
  /// Emits the entries of launch `l`; returns its function name, "" for
  /// cuBLASLt launches, or failure.
  FailureOr<std::string> add(mmx::LaunchOp l) {
    StringRef kind = l.getKernel();
    if (kind == "linear" || kind == "logits" || kind == "linear_grad")
      return std::string();
    const TrainFamily *train = trainFamily(kind);
    Value typed = kind == "cross_entropy" ? l.getIns()[0] : l.getOuts()[0];
    if (train)
      typed = l.getIns()[train->typedInput];
    Type dtype = bufferDtype(typed);
    std::string t, tn;
    if (dtype && dtype.isF32()) {
      t = "float";
      tn = "f32";
    } else if (dtype && dtype.isBF16()) {
      t = "mm::k::bf16";
      tn = "bf16";
    } else {
      return l.emitOpError() << "expects f32 or bf16 operands for CUDA code "
                                "generation but got "
                             << dtype;
    }
    auto p = [&](StringRef name) -> int64_t {
      if (auto a = l.getParams().getAs<IntegerAttr>(name))
        return a.getInt();
      return 0;
    };
    if (train) {
      // Multi-phase training kernels (kernels/launch.h): the family's macro
      // defines every phase's entry; the runtime's plan picks grids.
      std::string name = "mm_" + std::string(train->prefix) + "_" + tn;
      if (train->headDim)
        name += "_d" + std::to_string(p("head_dim"));
      entries(train->macro, name, t, train->headDim ? p("head_dim") : 0);
      includes.insert(train->file);
      // NaN/Inf checks of the outputs of training steps, in both types.
      entries("MM_FINITE_CHECK_ENTRIES", "mm_finite_check_f32", "float", 0);
      entries("MM_FINITE_CHECK_ENTRIES", "mm_finite_check_bf16", "mm::k::bf16",
              0);
      includes.insert("train_small");
      return name;
    }
    const int64_t threads = p("tile_threads");
    if (threads <= 0)
      return l.emitOpError() << "has no tile_threads param: run mm-tile "
                                "before mm-codegen-cuda";
    const std::string th = std::to_string(threads);
    std::string name;
    if (kind == "embedding") {
      name = "mm_embedding_" + tn + "_t" + th;
      entry(name, threads, "EmbeddingArgs",
            "mm::k::embedding<" + t + ", " + th + ">(a);");
    } else if (kind == "rms_norm" || kind == "add_rms_norm") {
      bool add = kind == "add_rms_norm";
      name = "mm_" + kind.str() + "_" + tn + "_t" + th;
      entry(name, threads, "RmsNormArgs",
            "mm::k::rmsNorm<" + t + ", " + th + ", " +
                (add ? "true" : "false") + ">(a);");
    } else if (kind == "silu" || kind == "sigmoid" || kind == "mul" ||
               kind == "scaled_add" || kind == "sigmoid_mul") {
      static const std::pair<const char *, const char *> ops[] = {
          {"silu", "kSilu"},
          {"sigmoid", "kSigmoid"},
          {"mul", "kMul"},
          {"scaled_add", "kScaledAdd"},
          {"sigmoid_mul", "kSigmoidMul"}};
      std::string op;
      for (auto [k, v] : ops)
        if (kind == k)
          op = v;
      name = "mm_" + kind.str() + "_" + tn + "_t" + th;
      entry(name, threads, "ElementwiseArgs",
            "mm::k::elementwise<" + t + ", mm::k::" + op + ">(a);");
    } else if (kind == "rope") {
      name = "mm_rope_" + tn + "_t" + th;
      entry(name, threads, "RopeArgs", "mm::k::rope<" + t + ">(a);");
    } else if (kind == "lightning_attention" && p("tile_chunk") == 1) {
      const bool silu = p("silu_input") != 0;
      if (tn != "bf16" || (p("head_dim") != 64 && p("head_dim") != 128))
        return l.emitOpError() << "expects bf16 and head_dim 64 or 128 for "
                                  "tile_chunk = 1";
      const std::string sl = silu ? "true" : "false",
                        d = std::to_string(p("head_dim"));
      // D = 64 fits two output blocks (four state blocks) per multiprocessor.
      const int perSm = p("head_dim") == 64 ? 2 : 1;
      name = "mm_lightning_chunk_" + tn + "_d" + d + "_t" + th +
             (silu ? "_silu" : "");
      entry(name + "_states", threads, "LightningChunkArgs",
            "extern __shared__ __align__(16) unsigned char smemb[];\n  "
            "mm::k::lightningChunkStates<" +
                d + ", 3, " + sl + ">(a, smemb);",
            /*minBlocks=*/2 * perSm);
      entry(name + "_scan", threads, "LightningChunkArgs",
            "mm::k::lightningChunkScan<" + d + ">(a);");
      entry(name + "_out", threads, "LightningChunkArgs",
            "extern __shared__ __align__(16) unsigned char smemb[];\n  "
            "mm::k::lightningChunkOut<" +
                d + ", 3, " + sl + ">(a, smemb);",
            /*minBlocks=*/perSm);
      // D = 128: the fused single launch (sm_90a; its body traps elsewhere and
      // the runtime launches it only from sm_90a artifacts).
      if (p("head_dim") == 128)
        entry(name + "_fused", threads, "LightningChunkArgs",
              "extern __shared__ __align__(16) unsigned char smemb[];\n  "
              "mm::k::lightningChunkFused<3, " +
                  sl + ">(a, smemb);",
              /*minBlocks=*/1);
    } else if (kind == "lightning_attention") {
      const bool silu = p("silu_input") != 0;
      const std::string d = std::to_string(p("head_dim")),
                        blk = std::to_string(p("tile_block")),
                        dv = std::to_string(p("tile_dv"));
      if (p("tile_block") <= 0 || p("tile_dv") <= 0)
        return l.emitOpError() << "has no tile_block/tile_dv: run mm-tile "
                                  "before mm-codegen-cuda";
      name = "mm_lightning_attention_" + tn + "_d" + d + "_b" + blk + "_dv" +
             dv + "_t" + th + (silu ? "_silu" : "");
      entry(name, threads, "LightningArgs",
            "extern __shared__ float smem[];\n  "
            "mm::k::lightningAttention<" +
                t + ", " + d + ", " + blk + ", " + dv + ", " + th + ", " +
                (silu ? "true" : "false") + ">(a, smem);");
    } else if (kind == "softmax_attention") {
      const std::string d = std::to_string(p("head_dim")),
                        bq = std::to_string(p("tile_q")),
                        bk = std::to_string(p("tile_k"));
      if (p("tile_q") <= 0 || p("tile_k") <= 0)
        return l.emitOpError() << "has no tile_q/tile_k: run mm-tile before "
                                  "mm-codegen-cuda";
      name = "mm_softmax_attention_" + tn + "_d" + d + "_q" + bq + "_k" + bk +
             "_t" + th;
      entry(name, threads, "SoftmaxAttentionArgs",
            "extern __shared__ float smem[];\n  "
            "mm::k::softmaxAttention<" +
                t + ", " + d + ", " + bq + ", " + bk + ", " + th +
                ">(a, smem);",
            /*minBlocks=*/0, /*gridConstant=*/true);
    } else if (kind == "moe") {
      const std::string bm = std::to_string(p("tile_m")),
                        bn = std::to_string(p("tile_n")),
                        bk = std::to_string(p("tile_k"));
      if (p("tile_m") <= 0 || p("tile_n") <= 0 || p("tile_k") <= 0)
        return l.emitOpError() << "has no tile_m/tile_n/tile_k: run mm-tile "
                                  "before mm-codegen-cuda";
      name = "mm_moe_" + tn + "_m" + bm + "_n" + bn + "_k" + bk + "_t" + th;
      const std::string gemm =
          t + ", " + bm + ", " + bn + ", " + bk + ", " + th;
      entry(name + "_route", threads, "MoeArgs",
            "mm::k::moeRoute<" + t + ", " + th + ">(a);");
      entry(name + "_dispatch", 1024, "MoeArgs",
            "mm::k::moeDispatch<" + bm + ", 1024>(a);");
      // The sm_90a wgmma GEMMs run moeWgmmaThreads() (a producer and two
      // consumer warpgroups), one CTA per multiprocessor.
      const bool wgmma =
          mm::k::moeWgmmaTiles(p("tile_m"), p("tile_n"), p("tile_k"));
      const int64_t gemmThreads = wgmma ? mm::k::moeWgmmaThreads() : threads;
      entry(name + "_gate_up", gemmThreads, "MoeArgs",
            "mm::k::moeGemm<" + gemm + ", true>(a);", wgmma ? 1 : 0);
      entry(name + "_down", gemmThreads, "MoeArgs",
            "mm::k::moeGemm<" + gemm + ", false>(a);", wgmma ? 1 : 0);
      entry(name + "_combine", threads, "MoeArgs",
            "mm::k::moeCombine<" + t + ", " + th + ">(a);");
    } else if (kind == "cross_entropy") {
      name = "mm_cross_entropy_" + tn + "_t" + th;
      entry(name + "_rows", threads, "CrossEntropyArgs",
            "mm::k::crossEntropyRows<" + t + ", " + th + ">(a);");
      entry(name + "_reduce", threads, "CrossEntropyArgs",
            "mm::k::crossEntropyReduce<" + th + ">(a);");
    } else {
      return l.emitOpError()
             << "has no CUDA kernel template for '" << kind << "'";
    }
    includes.insert(kind == "add_rms_norm" ? "rms_norm"
                    : kind == "silu" || kind == "sigmoid" || kind == "mul" ||
                            kind == "scaled_add" || kind == "sigmoid_mul"
                        ? "elementwise"
                        : kind.str());
    return name;
  }

  std::string source(StringRef target) const {
    std::string s;
    llvm::raw_string_ostream os(s);
    os << "// Generated by mm-codegen-cuda for " << target
       << ": one entry per kernel instantiation of this program.\n";
    std::vector<std::string> inc;
    for (const auto &i : includes)
      inc.push_back(i.getKey().str());
    llvm::sort(inc);
    for (const std::string &i : inc)
      os << "#include \"kernels/" << i << ".cuh\"\n";
    os << body;
    return s;
  }

private:
  /// The phases of a multi-phase kernel, through its ENTRIES macro.
  void entries(StringRef macro, const std::string &name, StringRef t,
               int64_t d) {
    if (!emitted.insert(name).second)
      return;
    body += "\n" + macro.str() + "(" + name + ", " + t.str() + ", " +
            std::to_string(d) + ")\n";
  }

  /// gridConstant: the block is a `const __grid_constant__` parameter, so the
  /// kernel may take the address of its fields (softmax attention's TMA
  /// tensor maps) without a local copy.
  void entry(const std::string &name, int64_t threads, StringRef args,
             const std::string &call, int minBlocks = 0,
             bool gridConstant = false) {
    if (!emitted.insert(name).second)
      return;
    body += "\nextern \"C\" __global__ void __launch_bounds__(" +
            std::to_string(threads) +
            (minBlocks > 0 ? ", " + std::to_string(minBlocks) : "") + ") " +
            name + "(const " + (gridConstant ? "__grid_constant__ " : "") +
            "mm::k::" + args.str() + " a) {\n  " + call + "\n}\n";
  }

  llvm::StringSet<> includes, emitted;
  std::string body;
};

struct CodegenCudaPass : mm::impl::CodegenCudaPassBase<CodegenCudaPass> {
  using Base::Base;

  void runOnOperation() override {
    for (auto program : getOperation().getOps<mmx::ProgramOp>()) {
      if (program.getTarget() == "cpu")
        continue;
      SourceBuilder src;
      OpBuilder b(program);
      for (auto l : program.getBody().front().getOps<mmx::LaunchOp>()) {
        FailureOr<std::string> fn = src.add(l);
        if (failed(fn))
          return signalPassFailure();
        if (!fn->empty())
          l->setAttr("function", b.getStringAttr(*fn));
      }
      std::string text = src.source(program.getTarget());
      if (dump)
        llvm::outs() << text;
      program->setAttr("cuda_source", b.getStringAttr(text));
    }
  }
};

} // namespace
