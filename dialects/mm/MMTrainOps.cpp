//===- MMTrainOps.cpp - verifiers of the mm training ops ------------------===//
//
// A gradient has the type of what it is the gradient of; the forward operands
// a backward op repeats obey the forward op's rules (checked against the
// forward attributes). Messages say what was expected and what was found.
//
//===----------------------------------------------------------------------===//

#include "mm/MMOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"

using namespace mlir;
using namespace mm;

namespace {

int64_t dimOf(Value v, int64_t i) {
  return cast<RankedTensorType>(v.getType()).getDimSize(i);
}
int64_t rankOf(Value v) {
  return cast<RankedTensorType>(v.getType()).getRank();
}

/// `v` must have exactly the type of `ref`.
LogicalResult sameType(Operation *op, StringRef what, Value v,
                       StringRef refName, Value ref) {
  if (v.getType() == ref.getType())
    return success();
  return op->emitOpError() << "expects " << what << " of type " << ref.getType()
                           << " (as " << refName << ") but got " << v.getType();
}

LogicalResult rank(Operation *op, StringRef what, Value v, int64_t want) {
  if (rankOf(v) == want)
    return success();
  return op->emitOpError() << "expects " << what << " of rank " << want
                           << " but got " << v.getType();
}

LogicalResult lastDim(Operation *op, StringRef what, Value v, int64_t want,
                      StringRef because) {
  int64_t got = dimOf(v, rankOf(v) - 1);
  if (got == want)
    return success();
  return op->emitOpError() << "expects " << what << " last dim " << want << " ("
                           << because << ") but got " << got;
}

LogicalResult positive(Operation *op, StringRef what, int64_t v) {
  if (v > 0)
    return success();
  return op->emitOpError() << "expects " << what << " > 0 but got " << v;
}

/// Batch and sequence of a [B, T, ...] activation must agree with `ref`'s.
LogicalResult sameRows(Operation *op, StringRef what, Value v, Value ref) {
  for (int64_t i = 0; i < 2; ++i) {
    int64_t a = dimOf(v, i), b = dimOf(ref, i);
    if (!ShapedType::isDynamic(a) && !ShapedType::isDynamic(b) && a != b)
      return op->emitOpError() << "expects " << what << " dim " << i
                               << " to be " << b << " but got " << a;
  }
  return success();
}

LogicalResult beta(Operation *op, StringRef what, APFloat v) {
  double d = v.convertToDouble();
  if (d >= 0 && d < 1)
    return success();
  return op->emitOpError() << "expects " << what << " in [0, 1) but got " << d;
}

LogicalResult nonNegative(Operation *op, StringRef what, APFloat v) {
  double d = v.convertToDouble();
  if (d >= 0)
    return success();
  return op->emitOpError() << "expects " << what << " >= 0 but got " << d;
}

} // namespace

LogicalResult EmbeddingGradOp::verify() {
  Operation *op = *this;
  if (failed(rank(op, "ids", getIds(), 2)) ||
      failed(rank(op, "dy", getDy(), 3)) ||
      failed(rank(op, "dtable", getDtable(), 2)) ||
      failed(sameRows(op, "dy", getDy(), getIds())))
    return failure();
  if (!getDtable().getType().hasStaticShape())
    return emitOpError() << "expects a static dtable shape but got "
                         << getDtable().getType();
  return lastDim(op, "dtable", getDtable(), dimOf(getDy(), 2), "width of dy");
}

LogicalResult RMSNormGradOp::verify() {
  Operation *op = *this;
  if (failed(rank(op, "input", getInput(), 3)) ||
      failed(rank(op, "weight", getWeight(), 1)) ||
      failed(lastDim(op, "weight", getWeight(), dimOf(getInput(), 2),
                     "input features")) ||
      failed(sameType(op, "dy", getDy(), "input", getInput())) ||
      failed(sameType(op, "dx", getDx(), "input", getInput())) ||
      failed(sameType(op, "dw", getDw(), "weight", getWeight())))
    return failure();
  if (!(getEps().convertToDouble() > 0.0))
    return emitOpError() << "expects eps > 0 but got "
                         << getEps().convertToDouble();
  return success();
}

LogicalResult LinearGradOp::verify() {
  Operation *op = *this;
  if (failed(rank(op, "input", getInput(), 3)) ||
      failed(rank(op, "weight", getWeight(), 2)) ||
      failed(rank(op, "dy", getDy(), 3)) ||
      failed(lastDim(op, "input", getInput(), dimOf(getWeight(), 1),
                     "weight dim 1")) ||
      failed(
          lastDim(op, "dy", getDy(), dimOf(getWeight(), 0), "weight dim 0")) ||
      failed(sameRows(op, "dy", getDy(), getInput())) ||
      failed(sameType(op, "dx", getDx(), "input", getInput())) ||
      failed(sameType(op, "dw", getDw(), "weight", getWeight())))
    return failure();
  return success();
}

LogicalResult SiluGradOp::verify() {
  if (failed(sameType(*this, "dy", getDy(), "input", getInput())))
    return failure();
  return sameType(*this, "dx", getDx(), "input", getInput());
}

LogicalResult SigmoidGradOp::verify() {
  if (failed(sameType(*this, "dy", getDy(), "input", getInput())))
    return failure();
  return sameType(*this, "dx", getDx(), "input", getInput());
}

LogicalResult RopeGradOp::verify() {
  Operation *op = *this;
  int64_t heads = getNumHeads(), headDim = getHeadDim(),
          rotary = getRotaryDim();
  if (failed(positive(op, "num_heads", heads)) ||
      failed(positive(op, "head_dim", headDim)) ||
      failed(positive(op, "rotary_dim", rotary)))
    return failure();
  if (rotary % 2 != 0 || rotary > headDim)
    return emitOpError() << "expects an even rotary_dim <= head_dim ("
                         << headDim << ") but got " << rotary;
  if (!(getTheta().convertToDouble() > 0.0))
    return emitOpError() << "expects theta > 0 but got "
                         << getTheta().convertToDouble();
  if (failed(rank(op, "dy", getDy(), 3)) ||
      failed(
          lastDim(op, "dy", getDy(), heads * headDim, "num_heads * head_dim")))
    return failure();
  return sameType(op, "dx", getDx(), "dy", getDy());
}

LogicalResult LightningAttentionGradOp::verify() {
  Operation *op = *this;
  int64_t heads = getNumHeads(), headDim = getHeadDim();
  if (failed(positive(op, "num_heads", heads)) ||
      failed(positive(op, "head_dim", headDim)) ||
      failed(positive(op, "block_size", getBlockSize())) ||
      failed(positive(op, "num_layers", getNumLayers())))
    return failure();
  if (getLayerIndex() < 0 || getLayerIndex() >= getNumLayers())
    return emitOpError() << "expects layer_index in [0, " << getNumLayers()
                         << ") but got " << getLayerIndex();
  if (failed(rank(op, "qkv", getQkv(), 3)) ||
      failed(rank(op, "dout", getDout(), 3)) ||
      failed(lastDim(op, "qkv", getQkv(), 3 * heads * headDim,
                     "3 * num_heads * head_dim")) ||
      failed(lastDim(op, "dout", getDout(), heads * headDim,
                     "num_heads * head_dim")) ||
      failed(sameRows(op, "dout", getDout(), getQkv())))
    return failure();
  return sameType(op, "dqkv", getDqkv(), "qkv", getQkv());
}

LogicalResult SoftmaxAttentionGradOp::verify() {
  Operation *op = *this;
  int64_t heads = getNumHeads(), kvHeads = getNumKvHeads(),
          headDim = getHeadDim();
  if (failed(positive(op, "num_heads", heads)) ||
      failed(positive(op, "num_kv_heads", kvHeads)) ||
      failed(positive(op, "head_dim", headDim)))
    return failure();
  if (heads % kvHeads != 0)
    return emitOpError() << "expects num_kv_heads to divide num_heads ("
                         << heads << ") but got " << kvHeads;
  if (failed(rank(op, "query", getQuery(), 3)) ||
      failed(lastDim(op, "query", getQuery(), heads * headDim,
                     "num_heads * head_dim")) ||
      failed(rank(op, "key", getKey(), 3)) ||
      failed(lastDim(op, "key", getKey(), kvHeads * headDim,
                     "num_kv_heads * head_dim")) ||
      failed(sameType(op, "value", getValue(), "key", getKey())) ||
      failed(sameRows(op, "key", getKey(), getQuery())) ||
      failed(sameType(op, "dout", getDout(), "query", getQuery())) ||
      failed(sameType(op, "dq", getDq(), "query", getQuery())) ||
      failed(sameType(op, "dk", getDk(), "key", getKey())) ||
      failed(sameType(op, "dv", getDv(), "value", getValue())))
    return failure();
  return success();
}

LogicalResult MoEGradOp::verify() {
  Operation *op = *this;
  Value x = getInput(), router = getRouter(), w1 = getW1(), w2 = getW2(),
        w3 = getW3();
  if (failed(rank(op, "input", x, 3)) ||
      failed(rank(op, "router", router, 2)) || failed(rank(op, "w1", w1, 3)) ||
      failed(rank(op, "w2", w2, 3)) || failed(sameType(op, "w3", w3, "w1", w1)))
    return failure();
  int64_t hidden = dimOf(x, 2), experts = dimOf(router, 0), ffn = dimOf(w1, 1);
  if (dimOf(router, 1) != hidden || dimOf(w1, 0) != experts ||
      dimOf(w1, 2) != hidden || dimOf(w2, 0) != experts ||
      dimOf(w2, 1) != hidden || dimOf(w2, 2) != ffn)
    return emitOpError()
           << "expects router [E, H], w1 and w3 [E, I, H], w2 [E, "
              "H, I] with H = "
           << hidden << " but got " << router.getType() << ", " << w1.getType()
           << ", " << w2.getType();
  if (getTopK() < 1 || getTopK() > experts)
    return emitOpError() << "expects top_k in [1, " << experts
                         << "] (the number of experts) but got " << getTopK();
  if (failed(sameType(op, "dy", getDy(), "input", x)) ||
      failed(sameType(op, "dx", getDx(), "input", x)) ||
      failed(sameType(op, "drouter", getDrouter(), "router", router)) ||
      failed(sameType(op, "dw1", getDw1(), "w1", w1)) ||
      failed(sameType(op, "dw2", getDw2(), "w2", w2)) ||
      failed(sameType(op, "dw3", getDw3(), "w3", w3)))
    return failure();
  return success();
}

static LogicalResult verifyLMHead(Operation *op, Value h, Value w, Value labels,
                                  int64_t chunkRows) {
  if (failed(rank(op, "input", h, 3)) || failed(rank(op, "weight", w, 2)) ||
      failed(rank(op, "labels", labels, 2)) ||
      failed(lastDim(op, "input", h, dimOf(w, 1), "weight dim 1")) ||
      failed(sameRows(op, "labels", labels, h)))
    return failure();
  return positive(op, "chunk_rows", chunkRows);
}

LogicalResult LMHeadLossOp::verify() {
  return verifyLMHead(*this, getInput(), getWeight(), getLabels(),
                      getChunkRows());
}

LogicalResult LMHeadLossGradOp::verify() {
  Operation *op = *this;
  if (failed(verifyLMHead(op, getInput(), getWeight(), getLabels(),
                          getChunkRows())) ||
      failed(sameType(op, "dinput", getDinput(), "input", getInput())) ||
      failed(sameType(op, "dweight", getDweight(), "weight", getWeight())))
    return failure();
  return success();
}

LogicalResult GradNormOp::verify() {
  if (getGrads().empty())
    return emitOpError() << "expects at least one gradient";
  return success();
}

LogicalResult StateOp::verify() {
  auto type = getResult().getType();
  if (!type.hasStaticShape() || !type.getElementType().isF32())
    return emitOpError() << "expects a static f32 state but got " << type;
  if (getName().empty())
    return emitOpError() << "expects a non-empty state name";
  return success();
}

/// Shared by the optimizer updates: grad and states match the param; results
/// are the updated param and states.
static LogicalResult verifyUpdate(Operation *op, Value param, Value grad,
                                  ArrayRef<Value> states,
                                  ArrayRef<Type> stateTypes) {
  auto pType = cast<RankedTensorType>(param.getType());
  auto gType = cast<RankedTensorType>(grad.getType());
  if (pType.getShape() != gType.getShape() || !gType.getElementType().isF32())
    return op->emitOpError()
           << "expects grad of shape of param and f32 but got " << gType
           << " for param " << pType;
  for (auto [i, s] : llvm::enumerate(states)) {
    if (s.getType() != stateTypes[i])
      return op->emitOpError() << "expects state " << i << " of type "
                               << stateTypes[i] << " but got " << s.getType();
  }
  if (op->getResult(0).getType() != param.getType())
    return op->emitOpError() << "expects new_param of type " << param.getType()
                             << " but got " << op->getResult(0).getType();
  for (auto [i, s] : llvm::enumerate(states))
    if (op->getResult(i + 1).getType() != s.getType())
      return op->emitOpError()
             << "expects result " << i + 1 << " of type " << s.getType()
             << " but got " << op->getResult(i + 1).getType();
  return success();
}

static RankedTensorType f32Like(RankedTensorType t, ArrayRef<int64_t> shape) {
  return RankedTensorType::get(shape, Float32Type::get(t.getContext()));
}

LogicalResult AdamWOp::verify() {
  Operation *op = *this;
  auto pType = cast<RankedTensorType>(getParam().getType());
  Type st = f32Like(pType, pType.getShape());
  if (failed(beta(op, "beta1", getBeta1())) ||
      failed(beta(op, "beta2", getBeta2())) ||
      failed(nonNegative(op, "eps", getEps())) ||
      failed(nonNegative(op, "weight_decay", getWeightDecay())) ||
      failed(nonNegative(op, "max_norm", getMaxNorm())))
    return failure();
  return verifyUpdate(op, getParam(), getGrad(), {getM(), getV()}, {st, st});
}

static LogicalResult verifyCameAttrs(Operation *op, APFloat b1, APFloat b2,
                                     APFloat b3, APFloat eps, APFloat eps2,
                                     APFloat clip, APFloat wd,
                                     APFloat maxNorm) {
  if (failed(beta(op, "beta1", b1)) || failed(beta(op, "beta2", b2)) ||
      failed(beta(op, "beta3", b3)) || failed(nonNegative(op, "eps", eps)) ||
      failed(nonNegative(op, "eps2", eps2)) ||
      failed(nonNegative(op, "weight_decay", wd)) ||
      failed(nonNegative(op, "max_norm", maxNorm)))
    return failure();
  if (!(clip.convertToDouble() > 0))
    return op->emitOpError()
           << "expects clip_threshold > 0 but got " << clip.convertToDouble();
  return success();
}

LogicalResult CameOp::verify() {
  Operation *op = *this;
  if (failed(verifyCameAttrs(op, getBeta1(), getBeta2(), getBeta3(), getEps(),
                             getEps2(), getClipThreshold(), getWeightDecay(),
                             getMaxNorm())))
    return failure();
  auto pType = cast<RankedTensorType>(getParam().getType());
  if (pType.getRank() < 2)
    return emitOpError() << "expects a param of rank >= 2 to factor but got "
                         << pType << " (use mm.came_vector)";
  ArrayRef<int64_t> shape = pType.getShape();
  SmallVector<int64_t> row(shape.drop_back()), col(shape.drop_back());
  col.back() = shape.back();
  Type m = f32Like(pType, shape), r = f32Like(pType, row),
       c = f32Like(pType, col);
  return verifyUpdate(op, getParam(), getGrad(),
                      {getM(), getRow(), getCol(), getResRow(), getResCol()},
                      {m, r, c, r, c});
}

LogicalResult CameVectorOp::verify() {
  Operation *op = *this;
  if (failed(verifyCameAttrs(op, getBeta1(), getBeta2(), getBeta3(), getEps(),
                             getEps2(), getClipThreshold(), getWeightDecay(),
                             getMaxNorm())))
    return failure();
  auto pType = cast<RankedTensorType>(getParam().getType());
  if (pType.getRank() != 1)
    return emitOpError() << "expects a param of rank 1 but got " << pType;
  Type st = f32Like(pType, pType.getShape());
  return verifyUpdate(op, getParam(), getGrad(), {getM(), getV()}, {st, st});
}
