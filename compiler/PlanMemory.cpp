//===- PlanMemory.cpp - liveness-based static arena -----------------------===//
//
// Programs are straight-line, so a buffer's lifetime is the interval between
// its alloc and its last user. Placing the largest buffers first at the lowest
// free offset (greedy by size, as in TFLite's arena planner) keeps the peak
// close to the largest set of simultaneously live buffers.
//
// On GPU targets a scaled_add right after the linear / linear_grad / moe whose
// product it reads is folded into that step (cuBLASLt's epilogue, the MoE
// combine; runtime/TrainSchedule.h, fusedAdd), which writes the sum while the
// product's operands are still being read. The operands of such a product stay live
// through the scaled_add, so the sum never takes their memory.
//
//===----------------------------------------------------------------------===//

#include "mm/Compiler/Passes.h"

#include "mlir/IR/Builders.h"
#include "llvm/Support/raw_ostream.h"

#include <limits>

#define DEBUG_TYPE "mm-plan-memory"

namespace mm {
#define GEN_PASS_DEF_PLANMEMORYPASS
#include "mm/Compiler/Passes.h.inc"
} // namespace mm

using namespace mlir;

namespace {

constexpr int64_t kAlignment = 256;

struct Interval {
  mmx::AllocOp alloc;
  int64_t start, end; // op indices, inclusive
  int64_t bytes;      // aligned size at the maxima
  int64_t offset = -1;

  bool overlapsInTime(const Interval &o) const {
    return start <= o.end && o.start <= end;
  }
};

struct PlanMemoryPass : mm::impl::PlanMemoryPassBase<PlanMemoryPass> {
  using Base::Base;

  void runOnOperation() override {
    for (auto program : getOperation().getOps<mmx::ProgramOp>())
      if (failed(plan(program)))
        return signalPassFailure();
  }

  LogicalResult plan(mmx::ProgramOp program) {
    llvm::DenseMap<Operation *, int64_t> position;
    Block &body = program.getBody().front();
    for (auto [i, op] : llvm::enumerate(body))
      position[&op] = i;

    // Lifetimes extended to a folded scaled_add (see the file comment).
    llvm::DenseMap<Value, int64_t> extended;
    if (program.getTarget() != "cpu") {
      mmx::LaunchOp prev;
      for (Operation &op : body) {
        auto launch = dyn_cast<mmx::LaunchOp>(op);
        if (!launch)
          continue;
        if (prev && launch.getKernel() == "scaled_add" &&
            (prev.getKernel() == "linear" ||
             prev.getKernel() == "linear_grad" || prev.getKernel() == "moe") &&
            !prev.getOuts().empty() &&
            llvm::is_contained(launch.getIns(), prev.getOuts()[0]))
          for (Value v : llvm::concat<Value>(prev.getIns(), prev.getOuts()))
            extended[v] = position[launch];
        prev = launch;
      }
    }

    std::vector<Interval> intervals;
    int64_t unplanned = 0;
    for (auto alloc : body.getOps<mmx::AllocOp>()) {
      auto dims = mmx::parseShape(alloc.getShape(),
                                  [&] { return alloc.emitOpError(); });
      if (failed(dims))
        return failure();
      int64_t bytes = mmx::maxBytes(alloc.getDtype(), *dims,
                                    program.getMaxBatch(), program.getMaxSeq());
      bytes = (bytes + kAlignment - 1) / kAlignment * kAlignment;
      int64_t start = position[alloc], end = start;
      for (Operation *user : alloc.getResult().getUsers())
        end = isa<mmx::OutputOp>(user) ? std::numeric_limits<int64_t>::max()
                                       : std::max(end, position[user]);
      if (auto it = extended.find(alloc.getResult()); it != extended.end())
        end = std::max(end, it->second);
      intervals.push_back({alloc, start, end, bytes});
      unplanned += bytes;
    }

    std::vector<Interval *> bySize;
    for (Interval &iv : intervals)
      bySize.push_back(&iv);
    llvm::stable_sort(bySize, [](const Interval *a, const Interval *b) {
      return a->bytes > b->bytes;
    });

    int64_t peak = 0;
    std::vector<Interval *> placed;
    for (Interval *iv : bySize) {
      std::vector<Interval *> conflicts;
      for (Interval *p : placed)
        if (p->overlapsInTime(*iv))
          conflicts.push_back(p);
      llvm::sort(conflicts, [](const Interval *a, const Interval *b) {
        return a->offset < b->offset;
      });
      int64_t offset = 0;
      for (Interval *c : conflicts) {
        if (offset + iv->bytes <= c->offset)
          break;
        offset = std::max(offset, c->offset + c->bytes);
      }
      iv->offset = offset;
      peak = std::max(peak, offset + iv->bytes);
      placed.push_back(iv);
    }

    OpBuilder b(program);
    for (Interval &iv : intervals)
      iv.alloc.setOffsetAttr(b.getI64IntegerAttr(iv.offset));
    program.setArenaBytesAttr(b.getI64IntegerAttr(peak));
    if (report)
      llvm::errs() << "mm-plan-memory: @" << program.getSymName() << " arena "
                   << peak << " bytes at batch " << program.getMaxBatch()
                   << " x seq " << program.getMaxSeq() << " ("
                   << intervals.size() << " buffers, " << unplanned
                   << " bytes without reuse)\n";
    return success();
  }
};

} // namespace
