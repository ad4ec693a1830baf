//===- Autodiff.cpp - reverse-mode autodiff of the mm model function ------===//
//
// Turns the inference function `(input_ids) -> logits` into a training step.
// The final mm.logits is replaced by the fused, chunked mm.lm_head_loss, then
// the ops are walked in reverse and each states its backward (the table in
// MMTrainOps.td); gradients of a value used several times are summed with
// mm.scaled_add, whose own backward only records factors that fold into those
// sums (a residual junction costs one scaled_add, not a scaled copy and a sum). With an optimizer, the global gradient norm and one update
// per weight (on zero-initialised mm.state tensors) follow, and the function
// returns (loss, grad_norm); without, it returns the loss and every weight's
// gradient as "grad:<weight name>".
//
// Activation recomputation (`recompute`): the ops of each decoder layer (found
// by the "model.layers.N." weights they read) are cloned right before that
// layer's backward, and the backward reads the clones, so only each layer's
// input stays alive between the forward and backward passes.
//
//===----------------------------------------------------------------------===//

#include "mm/Compiler/Passes.h"
#include "mm/MMOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"

#include <set>

#define DEBUG_TYPE "mm-autodiff"

namespace mm {
#define GEN_PASS_DEF_AUTODIFFPASS
#include "mm/Compiler/Passes.h.inc"
} // namespace mm

using namespace mlir;

namespace {

std::string locName(Location loc) {
  if (auto n = dyn_cast<NameLoc>(loc))
    return n.getName().str();
  return "";
}

/// Decoder layer of each op, by the weights it reads: an op reading a weight
/// named "model.layers.N...." starts (or continues) layer N, one reading any
/// other weight ends it, and ops reading none belong to the current layer.
/// Weight names survive textual IR, unlike locations.
llvm::DenseMap<Operation *, int64_t>
assignLayers(ArrayRef<Operation *> forwardOps) {
  llvm::DenseMap<Operation *, int64_t> layers;
  int64_t current = -1;
  for (Operation *op : forwardOps) {
    if (isa<mm::ParamOp>(op))
      continue;
    for (Value operand : op->getOperands()) {
      auto param = operand.getDefiningOp<mm::ParamOp>();
      if (!param)
        continue;
      llvm::StringRef name = param.getName();
      int64_t layer = -1;
      if (name.consume_front("model.layers.") && name.consumeInteger(10, layer))
        layer = -1;
      current = layer;
      break;
    }
    if (current >= 0)
      layers[op] = current;
  }
  return layers;
}

struct AutodiffPass : mm::impl::AutodiffPassBase<AutodiffPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto funcs = llvm::to_vector(module.getOps<func::FuncOp>());
    if (funcs.size() != 1) {
      module.emitError() << "mm-autodiff expects exactly one func.func (the "
                            "model) but found "
                         << funcs.size();
      return signalPassFailure();
    }
    if (optimizer != "adamw" && optimizer != "came" && optimizer != "none") {
      module.emitError() << "mm-autodiff expects optimizer adamw, came or none "
                            "but got '"
                         << optimizer << "'";
      return signalPassFailure();
    }
    if (chunkRows < 1) {
      module.emitError() << "mm-autodiff expects chunk-rows >= 1 but got "
                         << chunkRows;
      return signalPassFailure();
    }
    if (failed(differentiate(funcs.front())))
      return signalPassFailure();
  }

  // --- state of one run ---------------------------------------------------
  OpBuilder *b = nullptr;
  llvm::DenseMap<Value, Value> grads;
  // A pending factor of a gradient: grads[v] · gradScale[v] is the gradient
  // of v (1 when absent). The backward of mm.scaled_add leaves its factors
  // pending instead of emitting scaled copies; they fold into the next sum
  // (one scaled_add instead of two) or are applied when the gradient is read.
  llvm::DenseMap<Value, double> gradScale;
  IRMapping recomputed; // forward value -> its clone in the backward pass
  std::set<int64_t> recomputedLayers;
  std::vector<Operation *> forwardOps;
  llvm::DenseMap<Operation *, int64_t> layerOf;

  Value fwd(Value v) { return recomputed.lookupOrDefault(v); }

  Location gradLoc(Operation *op) {
    std::string name = locName(op->getLoc());
    if (name.empty())
      return op->getLoc();
    return NameLoc::get(b->getStringAttr(name + ".grad"));
  }

  /// Adds factor · g to the gradient of v.
  void accumulate(Value v, Value g, Location loc, double factor = 1.0) {
    auto it = grads.find(v);
    if (it == grads.end()) {
      grads[v] = g;
      if (factor != 1.0)
        gradScale[v] = factor;
      return;
    }
    const double mine = gradScale.count(v) ? gradScale.lookup(v) : 1.0;
    it->second = mm::ScaledAddOp::create(*b, loc, g.getType(), it->second, g,
                                         b->getF64FloatAttr(mine),
                                         b->getF64FloatAttr(factor));
    gradScale.erase(v);
  }

  /// The gradient of v with any pending factor applied (a scaled copy).
  Value gradOf(Value v, Location loc) {
    Value g = grads.lookup(v);
    auto it = gradScale.find(v);
    if (!g || it == gradScale.end())
      return g;
    g = scaled(g, it->second, loc);
    grads[v] = g;
    gradScale.erase(it);
    return g;
  }

  Value scaled(Value dy, double factor, Location loc) {
    return mm::ScaledAddOp::create(*b, loc, dy.getType(), dy, dy,
                                   b->getF64FloatAttr(factor),
                                   b->getF64FloatAttr(0.0));
  }

  /// Clones the forward ops of `layer` (except weights) at the insertion point.
  void recomputeLayer(int64_t layer) {
    if (!recomputedLayers.insert(layer).second)
      return;
    for (Operation *op : forwardOps) {
      auto it = layerOf.find(op);
      if (it != layerOf.end() && it->second == layer)
        b->clone(*op, recomputed);
    }
  }

  LogicalResult backward(Operation *op) {
    if (isa<mm::ParamOp>(op))
      return success();
    bool any =
        llvm::any_of(op->getResults(), [&](Value r) { return grads.count(r); });
    if (!any)
      return success();
    if (recompute)
      if (auto it = layerOf.find(op); it != layerOf.end())
        recomputeLayer(it->second);
    Location loc = gradLoc(op);
    if (auto a = dyn_cast<mm::ScaledAddOp>(op)) {
      // y = α·lhs + β·rhs: dlhs = α·dy, drhs = β·dy, with dy's own pending
      // factor multiplied in and nothing emitted yet.
      Value y = a.getResult();
      const double f = gradScale.count(y) ? gradScale.lookup(y) : 1.0;
      Value dy = grads.lookup(y);
      accumulate(a.getLhs(), dy, loc, f * a.getAlpha().convertToDouble());
      accumulate(a.getRhs(), dy, loc, f * a.getBeta().convertToDouble());
      return success();
    }
    Value dy = gradOf(op->getResult(0), loc);
    auto t = [](Value v) { return v.getType(); };
    if (auto e = dyn_cast<mm::EmbeddingOp>(op)) {
      accumulate(
          e.getTable(),
          mm::EmbeddingGradOp::create(*b, loc, t(e.getTable()), e.getIds(), dy),
          loc);
    } else if (auto n = dyn_cast<mm::RMSNormOp>(op)) {
      auto g = mm::RMSNormGradOp::create(*b, loc, t(n.getInput()),
                                         t(n.getWeight()), fwd(n.getInput()),
                                         n.getWeight(), dy, n.getEpsAttr());
      accumulate(n.getInput(), g.getDx(), loc);
      accumulate(n.getWeight(), g.getDw(), loc);
    } else if (auto l = dyn_cast<mm::LinearOp>(op)) {
      auto g =
          mm::LinearGradOp::create(*b, loc, t(l.getInput()), t(l.getWeight()),
                                   fwd(l.getInput()), l.getWeight(), dy);
      accumulate(l.getInput(), g.getDx(), loc);
      accumulate(l.getWeight(), g.getDw(), loc);
    } else if (auto s = dyn_cast<mm::SiluOp>(op)) {
      accumulate(s.getInput(),
                 mm::SiluGradOp::create(*b, loc, t(s.getInput()),
                                        fwd(s.getInput()), dy),
                 loc);
    } else if (auto s = dyn_cast<mm::SigmoidOp>(op)) {
      accumulate(s.getInput(),
                 mm::SigmoidGradOp::create(*b, loc, t(s.getInput()),
                                           fwd(s.getInput()), dy),
                 loc);
    } else if (auto m = dyn_cast<mm::MulOp>(op)) {
      Value da = mm::MulOp::create(*b, loc, dy.getType(), dy, fwd(m.getRhs()));
      Value db = mm::MulOp::create(*b, loc, dy.getType(), dy, fwd(m.getLhs()));
      accumulate(m.getLhs(), da, loc);
      accumulate(m.getRhs(), db, loc);
    } else if (auto r = dyn_cast<mm::RopeOp>(op)) {
      accumulate(r.getInput(),
                 mm::RopeGradOp::create(*b, loc, t(r.getInput()), dy,
                                        r.getNumHeadsAttr(), r.getHeadDimAttr(),
                                        r.getRotaryDimAttr(), r.getThetaAttr()),
                 loc);
    } else if (auto la = dyn_cast<mm::LightningAttentionOp>(op)) {
      accumulate(la.getQkv(),
                 mm::LightningAttentionGradOp::create(
                     *b, loc, t(la.getQkv()), fwd(la.getQkv()), dy,
                     la.getNumHeadsAttr(), la.getHeadDimAttr(),
                     la.getBlockSizeAttr(), la.getLayerIndexAttr(),
                     la.getNumLayersAttr()),
                 loc);
    } else if (auto sa = dyn_cast<mm::SoftmaxAttentionOp>(op)) {
      auto g = mm::SoftmaxAttentionGradOp::create(
          *b, loc,
          TypeRange{t(sa.getQuery()), t(sa.getKey()), t(sa.getValue())},
          fwd(sa.getQuery()), fwd(sa.getKey()), fwd(sa.getValue()), dy,
          sa.getNumHeadsAttr(), sa.getNumKvHeadsAttr(), sa.getHeadDimAttr(),
          sa.getScaleAttr());
      accumulate(sa.getQuery(), g.getDq(), loc);
      accumulate(sa.getKey(), g.getDk(), loc);
      accumulate(sa.getValue(), g.getDv(), loc);
    } else if (auto moe = dyn_cast<mm::MoEOp>(op)) {
      auto g = mm::MoEGradOp::create(
          *b, loc,
          TypeRange{t(moe.getInput()), t(moe.getRouter()), t(moe.getW1()),
                    t(moe.getW2()), t(moe.getW3())},
          fwd(moe.getInput()), moe.getRouter(), moe.getW1(), moe.getW2(),
          moe.getW3(), dy, moe.getTopKAttr());
      accumulate(moe.getInput(), g.getDx(), loc);
      accumulate(moe.getRouter(), g.getDrouter(), loc);
      accumulate(moe.getW1(), g.getDw1(), loc);
      accumulate(moe.getW2(), g.getDw2(), loc);
      accumulate(moe.getW3(), g.getDw3(), loc);
    } else {
      return op->emitOpError()
             << "has no backward in mm-autodiff (train mode supports the ops "
                "of the model function built by mm-import)";
    }
    return success();
  }

  LogicalResult differentiate(func::FuncOp fn) {
    if (!fn.getBody().hasOneBlock())
      return fn.emitOpError() << "expects a single-block model function";
    Block &body = fn.getBody().front();
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    if (ret.getNumOperands() != 1)
      return ret.emitOpError() << "mm-autodiff expects the model to return "
                                  "only its logits but it returns "
                               << ret.getNumOperands() << " values";
    auto logits = ret.getOperand(0).getDefiningOp<mm::LogitsOp>();
    if (!logits || !logits->hasOneUse())
      return ret.emitOpError() << "mm-autodiff expects the returned value to "
                                  "be an mm.logits used only by the return";
    if (fn.getNumArguments() != 1)
      return fn.emitOpError() << "mm-autodiff expects one argument (the token "
                                 "ids) but got "
                              << fn.getNumArguments();

    OpBuilder builder(ret);
    b = &builder;
    MLIRContext *ctx = fn.getContext();
    int64_t dyn = ShapedType::kDynamic;
    auto scalarType = RankedTensorType::get({}, builder.getF32Type());
    Value labels = body.addArgument(
        RankedTensorType::get({dyn, dyn}, builder.getI32Type()), fn.getLoc());
    const bool update = optimizer != "none";
    Value lr, step;
    if (update) {
      lr = body.addArgument(scalarType, fn.getLoc());
      step = body.addArgument(scalarType, fn.getLoc());
    }

    for (Operation &op : body.without_terminator())
      if (&op != logits.getOperation())
        forwardOps.push_back(&op);
    layerOf = assignLayers(forwardOps);

    Value h = logits.getInput(), head = logits.getWeight();
    Location lossLoc = NameLoc::get(builder.getStringAttr("lm_head.loss"));
    Value loss =
        mm::LMHeadLossOp::create(builder, lossLoc, scalarType, h, head, labels,
                                 builder.getI64IntegerAttr(chunkRows));
    auto seed = mm::LMHeadLossGradOp::create(
        builder, NameLoc::get(builder.getStringAttr("lm_head.grad")),
        TypeRange{h.getType(), head.getType()}, h, head, labels,
        builder.getI64IntegerAttr(chunkRows));
    accumulate(h, seed.getDinput(), seed.getLoc());
    accumulate(head, seed.getDweight(), seed.getLoc());

    for (Operation *op : llvm::reverse(forwardOps))
      if (failed(backward(op)))
        return failure();

    // Weights in first-use order, each once, with its gradient.
    std::vector<std::pair<mm::ParamOp, Value>> params;
    for (Operation *op : forwardOps)
      if (auto p = dyn_cast<mm::ParamOp>(op))
        if (Value g = gradOf(p.getResult(), p.getLoc()))
          params.push_back({p, g});

    SmallVector<Value> results{loss};
    SmallVector<std::string> names{"loss"};
    if (!update) {
      for (auto &[p, g] : params) {
        results.push_back(g);
        names.push_back("grad:" + p.getName().str());
      }
    } else {
      SmallVector<Value> all;
      for (auto &[p, g] : params)
        all.push_back(g);
      Value norm = mm::GradNormOp::create(
          builder, NameLoc::get(builder.getStringAttr("grad_norm")), scalarType,
          all);
      for (auto &[p, g] : params)
        emitUpdate(p, g, norm, lr, step);
      results.push_back(norm);
      names.push_back("grad_norm");
    }
    func::ReturnOp::create(builder, ret.getLoc(), results);
    ret.erase();
    logits.erase();

    SmallVector<Type> argTypes(body.getArgumentTypes());
    SmallVector<Type> resultTypes;
    for (Value v : results)
      resultTypes.push_back(v.getType());
    fn.setType(FunctionType::get(ctx, argTypes, resultTypes));
    fn.setArgAttr(0, "mm.name", builder.getStringAttr("input_ids"));
    fn.setArgAttrs(
        1, {builder.getNamedAttr("mm.name", builder.getStringAttr("labels"))});
    if (update) {
      fn.setArgAttrs(
          2, {builder.getNamedAttr("mm.name", builder.getStringAttr("lr"))});
      fn.setArgAttrs(
          3, {builder.getNamedAttr("mm.name", builder.getStringAttr("step"))});
    }
    for (auto [i, name] : llvm::enumerate(names))
      fn.setResultAttrs(
          i, {builder.getNamedAttr("mm.name", builder.getStringAttr(name))});
    return success();
  }

  Value state(const std::string &name, ArrayRef<int64_t> shape, Location loc) {
    return mm::StateOp::create(
        *b, loc, RankedTensorType::get(shape, b->getF32Type()), name);
  }

  void emitUpdate(mm::ParamOp p, Value g, Value norm, Value lr, Value step) {
    std::string name = p.getName().str();
    Location loc = NameLoc::get(b->getStringAttr(name + ".update"));
    auto type = p.getResult().getType();
    ArrayRef<int64_t> shape = type.getShape();
    auto f = [&](double v) { return b->getF64FloatAttr(v); };
    if (optimizer == "adamw") {
      Value m = state("adamw.m:" + name, shape, loc);
      Value v = state("adamw.v:" + name, shape, loc);
      mm::AdamWOp::create(*b, loc, TypeRange{type, m.getType(), v.getType()}, p,
                          g, m, v, norm, lr, step, f(beta1), f(beta2), f(eps),
                          f(weightDecay), f(maxNorm));
      return;
    }
    // CAME: eps is CAME's eps1 (default 1e-30), the instability eps2 1e-16.
    const double cameEps = 1e-30, cameEps2 = 1e-16, clip = 1.0;
    if (shape.size() == 1) {
      Value m = state("came.m:" + name, shape, loc);
      Value v = state("came.v:" + name, shape, loc);
      mm::CameVectorOp::create(
          *b, loc, TypeRange{type, m.getType(), v.getType()}, p, g, m, v, norm,
          lr, f(beta1), f(beta2), f(beta3), f(cameEps), f(cameEps2), f(clip),
          f(weightDecay), f(maxNorm));
      return;
    }
    SmallVector<int64_t> row(shape.drop_back()), col(shape.drop_back());
    col.back() = shape.back();
    Value m = state("came.m:" + name, shape, loc);
    Value r = state("came.row:" + name, row, loc);
    Value c = state("came.col:" + name, col, loc);
    Value rr = state("came.res_row:" + name, row, loc);
    Value rc = state("came.res_col:" + name, col, loc);
    mm::CameOp::create(*b, loc,
                       TypeRange{type, m.getType(), r.getType(), c.getType(),
                                 rr.getType(), rc.getType()},
                       p, g, m, r, c, rr, rc, norm, lr, f(beta1), f(beta2),
                       f(beta3), f(cameEps), f(cameEps2), f(clip),
                       f(weightDecay), f(maxNorm));
  }
};

} // namespace
