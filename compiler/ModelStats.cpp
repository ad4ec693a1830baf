//===- ModelStats.cpp - parameter counts and per-GPU memory plan ----------===//
//
// Shapes only: no weights are read. The parallel layout and the memory model
// are described with the pass in Passes.td. TP shares are found from the graph
// (not from weight names): a linear whose input is whole is column-parallel
// (its result is split over heads), one whose input is split is row-parallel
// (its result is whole again after the all-reduce); elementwise ops, norms,
// RoPE and attention keep the split of their input.
//
//===----------------------------------------------------------------------===//

#include "mm/Compiler/Passes.h"
#include "mm/MMOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <set>
#include <tuple>

#define DEBUG_TYPE "mm-model-stats"

namespace mm {
#define GEN_PASS_DEF_MODELSTATSPASS
#include "mm/Compiler/Passes.h.inc"
} // namespace mm

using namespace mlir;

namespace {

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

int64_t numElements(RankedTensorType type, int64_t batch, int64_t seq) {
  int64_t n = 1;
  for (auto [i, d] : llvm::enumerate(type.getShape()))
    n *= ShapedType::isDynamic(d) ? (i == 0 ? batch : seq) : d;
  return n;
}

/// True if `v` (through RoPE) is the key or value operand of a softmax
/// attention, whose heads are the KV heads.
mm::SoftmaxAttentionOp kvConsumer(Value v) {
  for (Operation *user : v.getUsers()) {
    if (auto rope = dyn_cast<mm::RopeOp>(user))
      if (auto a = kvConsumer(rope.getResult()))
        return a;
    if (auto a = dyn_cast<mm::SoftmaxAttentionOp>(user))
      if (a.getKey() == v || a.getValue() == v)
        return a;
  }
  return nullptr;
}

std::string gib(uint64_t bytes) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << llvm::format("%.2f GiB", bytes / double(1ull << 30));
  return s;
}

std::string billions(int64_t n) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << llvm::format("%.2fB", n / 1e9);
  return s;
}

struct ModelStatsPass : mm::impl::ModelStatsPassBase<ModelStatsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto funcs = llvm::to_vector(module.getOps<func::FuncOp>());
    if (funcs.size() != 1) {
      module.emitError() << "mm-model-stats expects exactly one func.func (the "
                            "model) but found "
                         << funcs.size();
      return signalPassFailure();
    }
    if (failed(checkOptions(module)) || failed(analyse(funcs.front())))
      return signalPassFailure();
  }

  LogicalResult checkOptions(ModuleOp module) {
    if (tp < 1 || ep < 1 || dp < 1 || maxBatch < 1 || maxSeq < 1)
      return module.emitError()
             << "mm-model-stats expects tp, ep, dp, max-batch and max-seq >= 1";
    if ((tp * dp) % ep != 0)
      return module.emitError()
             << "mm-model-stats expects ep (" << int64_t(ep)
             << ") to divide tp*dp (" << int64_t(tp * dp) << ")";
    if (dtype == "f32")
      dtypeBytes = 4;
    else if (dtype == "bf16" || dtype == "f16")
      dtypeBytes = 2;
    else
      return module.emitError()
             << "mm-model-stats expects dtype f32, bf16 or f16 but got '"
             << dtype << "'";
    return success();
  }

  LogicalResult analyse(func::FuncOp fn) {
    const int64_t B = maxBatch, T = maxSeq;
    // Share of each value held by one GPU (1: whole, 1/tp: split by heads).
    llvm::DenseMap<Value, double> share;
    llvm::DenseMap<Value, double> paramShare;
    auto setParam = [&](Value w, double s) {
      if (!paramShare.count(w))
        paramShare[w] = s;
    };
    int64_t hidden = 0;
    uint64_t stateBytes = 0, kvBytes = 0;
    llvm::DenseSet<Value> embeddingParams;
    // Extra bytes an op needs while it runs (the MoE's scratch).
    llvm::DenseMap<Operation *, uint64_t> scratch;
    // Share of an expert weight one token uses: top_k / E.
    llvm::DenseMap<Value, double> activeFraction;

    for (Operation &op : fn.getBody().front()) {
      auto in = [&](unsigned i) { return share.lookup(op.getOperand(i)); };
      if (isa<mm::ParamOp, func::ReturnOp>(op))
        continue;
      if (auto e = dyn_cast<mm::EmbeddingOp>(op)) {
        hidden = cast<RankedTensorType>(e.getTable().getType()).getDimSize(1);
        setParam(e.getTable(), 1.0 / tp);
        embeddingParams.insert(e.getTable());
        share[e.getResult()] = 1;
      } else if (auto l = dyn_cast<mm::LogitsOp>(op)) {
        setParam(l.getWeight(), 1.0 / tp);
        embeddingParams.insert(l.getWeight());
        share[l.getResult()] = 1.0 / tp;
      } else if (auto l = dyn_cast<mm::LinearOp>(op)) {
        double s;
        if (in(0) < 1) {
          s = 1; // row-parallel: the weight is split along its input
          setParam(l.getWeight(), in(0));
        } else {
          s = 1.0 / tp; // column-parallel: split by the heads it produces
          if (auto a = kvConsumer(l.getResult()))
            s = double(ceilDiv(a.getNumKvHeads(), tp)) / a.getNumKvHeads();
          setParam(l.getWeight(), s);
        }
        share[l.getResult()] = s;
      } else if (auto n = dyn_cast<mm::RMSNormOp>(op)) {
        setParam(n.getWeight(), in(0));
        share[n.getResult()] = in(0);
      } else if (auto m = dyn_cast<mm::MoEOp>(op)) {
        auto w1 = cast<RankedTensorType>(m.getW1().getType());
        int64_t experts = w1.getDimSize(0), ffn = w1.getDimSize(1);
        if (experts % ep != 0)
          return m.emitOpError()
                 << "has " << experts << " experts, which ep=" << int64_t(ep)
                 << " does not divide";
        int64_t k = m.getTopK();
        setParam(m.getRouter(), 1);
        for (Value w : {m.getW1(), m.getW2(), m.getW3()}) {
          setParam(w, 1.0 / ep);
          activeFraction[w] = double(k) / experts;
        }
        uint64_t routed = ceilDiv(B * T * k, ep);
        scratch[&op] =
            (routed * 2 * ffn + 2 * uint64_t(B * T * k) * hidden) * dtypeBytes;
        share[m.getResult()] = 1;
      } else if (auto a = dyn_cast<mm::LightningAttentionOp>(op)) {
        int64_t d = a.getHeadDim();
        stateBytes += uint64_t(B) * ceilDiv(a.getNumHeads(), tp) * d * d * 4;
        share[a.getResult()] = in(0);
      } else if (auto a = dyn_cast<mm::SoftmaxAttentionOp>(op)) {
        kvBytes += 2 * uint64_t(B) * T * ceilDiv(a.getNumKvHeads(), tp) *
                   a.getHeadDim() * dtypeBytes;
        share[a.getResult()] = in(0);
      } else if (op.getNumOperands() > 0 && op.getNumResults() == 1) {
        // silu, sigmoid, mul, scaled_add, rope, cross_entropy: as input 0.
        share[op.getResult(0)] =
            op.getResult(0).getType() == op.getOperand(0).getType() ? in(0) : 1;
      } else {
        return op.emitOpError() << "is not known to mm-model-stats";
      }
    }

    // Parameters, each weight once (tied tables are one value; the same
    // tensor slice named twice is one parameter).
    int64_t total = 0, active = 0, embedding = 0;
    double weightBytes = 0;
    std::set<std::tuple<std::string, int64_t, int64_t>> seen;
    for (auto p : fn.getBody().front().getOps<mm::ParamOp>()) {
      auto key = std::make_tuple(
          p.getName().str(), p.getSliceAxis() ? int64_t(*p.getSliceAxis()) : -1,
          p.getSliceOffset() ? int64_t(*p.getSliceOffset()) : 0);
      if (!seen.insert(key).second)
        continue;
      int64_t n = numElements(p.getResult().getType(), B, T);
      total += n;
      double activeShare = activeFraction.count(p.getResult())
                               ? activeFraction.lookup(p.getResult())
                               : 1.0;
      active += int64_t(std::llround(n * activeShare));
      if (embeddingParams.contains(p.getResult()))
        embedding += n;
      double s = paramShare.count(p.getResult())
                     ? paramShare.lookup(p.getResult())
                     : 1.0;
      weightBytes += n * s * dtypeBytes;
    }

    // Activation peak: each op's result lives from the op to its last use
    // (to the end for returned values).
    llvm::DenseMap<Operation *, size_t> position;
    size_t index = 0;
    for (Operation &op : fn.getBody().front())
      position[&op] = index++;
    std::vector<int64_t> delta(index + 2, 0);
    uint64_t peak = 0;
    std::vector<uint64_t> extra(index + 1, 0);
    for (Operation &op : fn.getBody().front()) {
      if (isa<mm::ParamOp, func::ReturnOp>(op))
        continue;
      size_t begin = position[&op];
      if (scratch.count(&op))
        extra[begin] = scratch[&op];
      for (Value r : op.getResults()) {
        auto type = cast<RankedTensorType>(r.getType());
        uint64_t bytes =
            uint64_t(std::ceil(numElements(type, B, T) * share.lookup(r))) *
            dtypeBytes;
        size_t end = begin;
        for (Operation *user : r.getUsers())
          end =
              std::max(end, isa<func::ReturnOp>(user) ? index : position[user]);
        delta[begin] += bytes;
        delta[end + 1] -= bytes;
      }
    }
    int64_t live = 0;
    for (size_t i = 0; i <= index; ++i) {
      live += delta[i];
      peak = std::max(peak, uint64_t(live) + extra[i]);
    }

    uint64_t weights = uint64_t(std::llround(weightBytes));
    uint64_t totalBytes = weights + peak + stateBytes + kvBytes;
    Builder b(fn.getContext());
    auto i64 = [&](int64_t v) { return b.getI64IntegerAttr(v); };
    NamedAttrList attrs;
    attrs.set("total_params", i64(total));
    attrs.set("active_params", i64(active));
    attrs.set("active_params_non_embedding", i64(active - embedding));
    attrs.set("tp", i64(tp));
    attrs.set("ep", i64(ep));
    attrs.set("dp", i64(dp));
    attrs.set("max_batch", i64(maxBatch));
    attrs.set("max_seq", i64(maxSeq));
    attrs.set("dtype", b.getStringAttr(dtype));
    attrs.set("weight_bytes_per_gpu", i64(weights));
    attrs.set("activation_bytes_per_gpu", i64(peak));
    attrs.set("lightning_state_bytes_per_gpu", i64(stateBytes));
    attrs.set("kv_cache_bytes_per_gpu", i64(kvBytes));
    attrs.set("total_bytes_per_gpu", i64(totalBytes));
    getOperation()->setAttr("mm.model_stats",
                            attrs.getDictionary(fn.getContext()));
    if (report) {
      llvm::errs() << "mm-model-stats: @" << fn.getSymName() << " params total "
                   << total << " (" << billions(total) << "), active " << active
                   << " (" << billions(active) << "), active without embedding "
                   << "and lm_head " << active - embedding << " ("
                   << billions(active - embedding) << ")\n";
      llvm::errs() << "mm-model-stats: tp=" << tp << " ep=" << ep
                   << " dp=" << dp << " (" << tp * dp << " GPUs), batch "
                   << maxBatch << " x seq " << maxSeq << ", " << dtype
                   << ": per GPU weights " << weights << " (" << gib(weights)
                   << "), activations " << peak << " (" << gib(peak)
                   << "), lightning state " << stateBytes << " ("
                   << gib(stateBytes) << "), KV cache " << kvBytes << " ("
                   << gib(kvBytes) << "), total " << totalBytes << " ("
                   << gib(totalBytes) << ")\n";
    }
    return success();
  }

  int64_t dtypeBytes = 2;
};

} // namespace
