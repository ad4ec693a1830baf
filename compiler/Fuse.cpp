//===- Fuse.cpp - merge elementwise producers into their consumers --------===//
//
// Works on the straight-line mmx program: a buffer written by one launch and
// read by exactly one other (and not a program output) is an intermediate the
// fused kernel keeps in registers. The rules are a table of (producer,
// consumer) pairs; each fused kernel exists in every backend.
//
//===----------------------------------------------------------------------===//

#include "mm/Compiler/Passes.h"

#include "mlir/IR/Builders.h"

#define DEBUG_TYPE "mm-fuse"

namespace mm {
#define GEN_PASS_DEF_FUSEPASS
#include "mm/Compiler/Passes.h.inc"
} // namespace mm

using namespace mlir;

namespace {

/// The launch that writes `buffer` and the single launch that reads it, if the
/// buffer is an alloc with exactly those two users.
std::optional<std::pair<mmx::LaunchOp, mmx::LaunchOp>>
producerAndSoleReader(Value buffer) {
  auto alloc = buffer.getDefiningOp<mmx::AllocOp>();
  if (!alloc)
    return std::nullopt;
  mmx::LaunchOp producer, reader;
  for (OpOperand &use : buffer.getUses()) {
    auto launch = dyn_cast<mmx::LaunchOp>(use.getOwner());
    if (!launch)
      return std::nullopt; // e.g. an mmx.output
    bool isOut = llvm::is_contained(launch.getOuts(), buffer);
    bool isIn = llvm::is_contained(launch.getIns(), buffer);
    if (isOut && !isIn && !producer)
      producer = launch;
    else if (isIn && !isOut && !reader)
      reader = launch;
    else
      return std::nullopt;
  }
  if (!producer || !reader || !producer->isBeforeInBlock(reader.getOperation()))
    return std::nullopt;
  return std::make_pair(producer, reader);
}

struct FusePass : mm::impl::FusePassBase<FusePass> {
  using Base::Base;

  void runOnOperation() override {
    for (auto program : getOperation().getOps<mmx::ProgramOp>()) {
      SmallVector<mmx::LaunchOp> launches(
          program.getBody().front().getOps<mmx::LaunchOp>());
      for (mmx::LaunchOp consumer : launches)
        fuseInto(consumer);
    }
  }

  /// Replaces `consumer` (and its producer) by the fused launch, if a rule
  /// applies to one of its inputs.
  void fuseInto(mmx::LaunchOp consumer) {
    StringRef kind = consumer.getKernel();
    for (auto [index, in] : llvm::enumerate(consumer.getIns())) {
      auto pair = producerAndSoleReader(in);
      if (!pair || pair->second != consumer)
        continue;
      mmx::LaunchOp producer = pair->first;
      StringRef pkind = producer.getKernel();
      SmallVector<Value> ins;
      SmallVector<NamedAttribute> params(consumer.getParams().getValue());
      StringRef fused;
      OpBuilder b(consumer);
      if (pkind == "scaled_add" && kind == "rms_norm" && index == 0) {
        fused = "add_rms_norm";
        ins = {producer.getIns()[0], producer.getIns()[1],
               consumer.getIns()[1]};
        llvm::append_range(params, producer.getParams().getValue());
      } else if (pkind == "sigmoid" && kind == "mul") {
        fused = "sigmoid_mul";
        ins = {producer.getIns()[0], consumer.getIns()[1 - index]};
      } else if (pkind == "silu" && kind == "lightning_attention") {
        fused = "lightning_attention";
        ins = {producer.getIns()[0]};
        params.push_back(b.getNamedAttr("silu_input", b.getI64IntegerAttr(1)));
      } else {
        continue;
      }
      auto launch = mmx::LaunchOp::create(
          b, consumer.getLoc(), b.getStringAttr(fused), ins, consumer.getOuts(),
          b.getDictionaryAttr(params));
      launch->setDiscardableAttrs(consumer->getDiscardableAttrDictionary());
      Operation *dead = in.getDefiningOp();
      consumer.erase();
      producer.erase();
      dead->erase();
      return;
    }
  }
};

} // namespace
