//===- Tile.cpp - per-target tile sizes of the kernel templates -----------===//
//
// The tile of a launch is fixed at compile time (it becomes template arguments
// in mm-codegen-cuda), so it is chosen here from the target's shared-memory
// budget and the launch's static params. The runtime reads the same params to
// size its grid, so the two can never disagree.
//
//===----------------------------------------------------------------------===//

#include "mm/Compiler/Passes.h"

#include "kernels/args.h"
#include "mlir/IR/Builders.h"

#define DEBUG_TYPE "mm-tile"

namespace mm {
#define GEN_PASS_DEF_TILEPASS
#include "mm/Compiler/Passes.h.inc"
} // namespace mm

using namespace mlir;

namespace {

/// Opt-in shared memory per block of each target, in bytes.
int64_t sharedMemoryBudget(StringRef target) {
  if (target == "sm_90a")
    return 227 * 1024;
  if (target == "sm_80")
    return 163 * 1024;
  return 99 * 1024; // sm_89
}

bool isBf16(Value buffer) {
  auto alloc = buffer.getDefiningOp<mmx::AllocOp>();
  return alloc && alloc.getDtype().isBF16();
}

int64_t intParam(mmx::LaunchOp l, StringRef name) {
  if (auto a = l.getParams().getAs<IntegerAttr>(name))
    return a.getInt();
  return 0;
}

/// H and I of a moe launch (w1 is [E, I, H]) are multiples of 8.
bool moeWgmmaShapes(mmx::LaunchOp l) {
  auto w1 = l.getIns()[2].getDefiningOp<mmx::WeightOp>();
  if (!w1 || w1.getShape().size() != 3)
    return false;
  for (int d : {1, 2}) {
    auto v = dyn_cast<IntegerAttr>(w1.getShape()[d]);
    if (!v || v.getInt() % 8 != 0)
      return false;
  }
  return true;
}

struct TilePass : mm::impl::TilePassBase<TilePass> {
  using Base::Base;

  void runOnOperation() override {
    for (auto program : getOperation().getOps<mmx::ProgramOp>()) {
      if (program.getTarget() == "cpu")
        continue;
      const int64_t budget = sharedMemoryBudget(program.getTarget());
      for (auto launch : program.getBody().front().getOps<mmx::LaunchOp>())
        if (failed(tile(launch, budget, program.getTarget())))
          return signalPassFailure();
    }
  }

  LogicalResult tile(mmx::LaunchOp l, int64_t budget, StringRef target) {
    StringRef kind = l.getKernel();
    if (kind == "linear" || kind == "logits")
      return success(); // cuBLASLt
    SmallVector<std::pair<StringRef, int64_t>> tiles = {{"tile_threads", 256}};
    const int64_t d = intParam(l, "head_dim");
    if (kind == "lightning_attention" && isBf16(l.getOuts()[0]) &&
        mm::k::lightningChunkHeadDim(d) &&
        mm::k::lightningChunkOutSmem(static_cast<int>(d), 3) <= budget) {
      // The chunk-parallel tensor-core form (kernels/lightning_attention.cuh:
      // states, scan, out launches): bf16, D = 64 or 128; its output launch
      // needs ~213 KB (D = 128: sm_90a only) or ~108 KB (D = 64: sm_90a and
      // sm_80) of shared memory; 14-17x the sequential kernel at D = 128
      // (bench/results/lightning.md).
      tiles.push_back({"tile_chunk", 1});
    } else if (kind == "lightning_attention") {
      int64_t dv = 32;
      while (d % dv)
        dv /= 2;
      int64_t block = 64;
      while (block > 16 &&
             4 * mm::k::lightningSmemFloats(d, block, dv) > budget)
        block /= 2;
      if (4 * mm::k::lightningSmemFloats(d, block, dv) > budget)
        return l.emitOpError()
               << "expects a head_dim whose lightning tile fits " << budget
               << " bytes of shared memory but got " << d;
      tiles.append({{"tile_block", block}, {"tile_dv", dv}});
    } else if (kind == "softmax_attention" && isBf16(l.getOuts()[0]) &&
               d % 16 == 0) {
      // The tensor-core forms (kernels/softmax_attention.cuh), 128 query rows:
      // on sm_90a with D = 128 the FA3 form, 128×128 tiles on 384 threads (a
      // producer and two consumer warpgroups; bench/results/fa3.md);
      // elsewhere mma.sync, 256 threads, with 64 keys per tile.
      if (d > 128)
        return l.emitOpError() << "expects a bf16 head_dim of at most 128 but "
                                  "got "
                               << d;
      const bool fa3 = target == "sm_90a" && d == 128;
      tiles = {{"tile_threads", fa3 ? 384 : 256},
               {"tile_q", 128},
               {"tile_k", fa3 ? 128 : 64}};
    } else if (kind == "softmax_attention") {
      int64_t t = 64;
      while (t > 16 && 4 * mm::k::attentionSmemFloats(d, t, t) > budget)
        t /= 2;
      if (4 * mm::k::attentionSmemFloats(d, t, t) > budget)
        return l.emitOpError()
               << "expects a head_dim whose attention tile fits " << budget
               << " bytes of shared memory but got " << d;
      tiles.append({{"tile_q", t}, {"tile_k", t}});
    } else if (kind == "moe" && target == "sm_90a" && isBf16(l.getOuts()[0]) &&
               moeWgmmaShapes(l)) {
      // The wgmma form (kernels/moe.cuh, moeGemmWgmma): persistent 128-row
      // tiles staged with 16-byte cp.async, so H and I must be multiples of 8.
      tiles.append({{"tile_m", 128}, {"tile_n", 128}, {"tile_k", 64}});
    } else if (kind == "moe") {
      tiles.append({{"tile_m", 64}, {"tile_n", 64}, {"tile_k", 32}});
    }
    OpBuilder b(l);
    NamedAttrList params(l.getParams());
    for (auto [name, value] : tiles)
      params.set(name, b.getI64IntegerAttr(value));
    l.setParamsAttr(params.getDictionary(b.getContext()));
    return success();
  }
};

} // namespace
