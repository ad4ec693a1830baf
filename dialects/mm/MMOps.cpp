//===- MMOps.cpp - mm dialect op verifiers --------------------------------===//
//
// Every message says what was expected and what was found, naming the operand.
//
//===----------------------------------------------------------------------===//

#include "mm/MMOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/STLExtras.h"

using namespace mlir;
using namespace mm;

namespace {

/// A weight is either the whole named tensor or, with both slice attributes,
/// a slice along one axis of it; a slice is never also stacked over {e}.
template <typename Op>
LogicalResult verifyWeightSlice(Op op, StringRef name, int64_t rank,
                                std::optional<uint64_t> axis,
                                std::optional<uint64_t> offset) {
  if (!axis && !offset)
    return success();
  if (!axis || !offset)
    return op.emitOpError()
           << "expects slice_axis and slice_offset together but got only "
           << (axis ? "slice_axis" : "slice_offset");
  // I64Attr getters are unsigned: reinterpret to see negative values.
  int64_t a = static_cast<int64_t>(*axis), o = static_cast<int64_t>(*offset);
  if (a < 0 || a >= rank)
    return op.emitOpError()
           << "expects slice_axis in [0, " << rank << ") but got " << a;
  if (o < 0)
    return op.emitOpError()
           << "expects a non-negative slice_offset but got " << o;
  if (name.contains("{e}"))
    return op.emitOpError() << "expects a sliced weight not to be stacked "
                               "over {e} but got '"
                            << name << "'";
  return success();
}

std::string shapeString(RankedTensorType type) {
  std::string s = "[";
  llvm::raw_string_ostream os(s);
  llvm::interleaveComma(type.getShape(), os, [&](int64_t d) {
    if (ShapedType::isDynamic(d))
      os << "?";
    else
      os << d;
  });
  os << "]";
  return s;
}

bool dimsCompatible(int64_t a, int64_t b) {
  return ShapedType::isDynamic(a) || ShapedType::isDynamic(b) || a == b;
}

/// Small helper carrying the op so each check is one line at the call site.
class Checker {
public:
  explicit Checker(Operation *op) : op(op) {}

  LogicalResult rank(StringRef what, Value v, int64_t expected) {
    auto type = cast<RankedTensorType>(v.getType());
    if (type.getRank() == expected)
      return success();
    return op->emitOpError()
           << "expects " << what << " of rank " << expected << " but got rank "
           << type.getRank() << " " << shapeString(type);
  }

  /// `expected` may be dynamic, in which case any size matches.
  LogicalResult dim(StringRef what, Value v, int64_t index, int64_t expected,
                    StringRef because = "") {
    auto type = cast<RankedTensorType>(v.getType());
    int64_t actual = type.getDimSize(index);
    if (dimsCompatible(actual, expected))
      return success();
    auto diag = op->emitOpError() << "expects " << what << " dim " << index
                                  << " to be " << expected;
    if (!because.empty())
      diag << " (" << because << ")";
    diag << " but got " << actual << " in " << shapeString(type);
    return diag;
  }

  /// The dim must be a compile-time constant (weights, head widths).
  LogicalResult staticDim(StringRef what, Value v, int64_t index) {
    auto type = cast<RankedTensorType>(v.getType());
    if (!type.isDynamicDim(index))
      return success();
    return op->emitOpError() << "expects " << what << " dim " << index
                             << " to be static but got " << shapeString(type);
  }

  LogicalResult sameElementType(StringRef what, Value v, Value ref,
                                StringRef refName) {
    Type a = cast<RankedTensorType>(v.getType()).getElementType();
    Type b = cast<RankedTensorType>(ref.getType()).getElementType();
    if (a == b)
      return success();
    return op->emitOpError() << "expects " << what << " element type " << b
                             << " (as " << refName << ") but got " << a;
  }

  LogicalResult positive(StringRef what, int64_t value) {
    if (value > 0)
      return success();
    return op->emitOpError() << "expects " << what << " > 0 but got " << value;
  }

private:
  Operation *op;
};

int64_t dimOf(Value v, int64_t index) {
  return cast<RankedTensorType>(v.getType()).getDimSize(index);
}

/// Checks `[B, T, N]` activations: `result` has the batch/sequence dims of
/// `input` and the given last dim.
LogicalResult checkActivation(Checker &c, Value input, Value result,
                              int64_t lastDim) {
  if (failed(c.rank("input", input, 3)) ||
      failed(c.rank("result", result, 3)) ||
      failed(c.dim("result", result, 0, dimOf(input, 0), "batch of input")) ||
      failed(
          c.dim("result", result, 1, dimOf(input, 1), "sequence of input")) ||
      failed(c.dim("result", result, 2, lastDim)) ||
      failed(c.staticDim("input", input, 2)) ||
      failed(c.staticDim("result", result, 2)) ||
      failed(c.sameElementType("result", result, input, "input")))
    return failure();
  return success();
}

/// Checks a weight `[N, K]` projecting `input [B, T, K]` to `result [B, T, N]`.
LogicalResult checkProjection(Operation *op, Value input, Value weight,
                              Value result) {
  Checker c(op);
  if (failed(c.rank("weight", weight, 2)) ||
      failed(checkActivation(c, input, result, dimOf(weight, 0))) ||
      failed(c.dim("weight", weight, 1, dimOf(input, 2), "input features")) ||
      failed(c.sameElementType("weight", weight, input, "input")))
    return failure();
  return success();
}

} // namespace

LogicalResult ParamOp::verify() {
  auto type = getResult().getType();
  if (!type.hasStaticShape())
    return emitOpError() << "expects a static shape for weight '" << getName()
                         << "' but got " << shapeString(type);
  if (getName().empty())
    return emitOpError() << "expects a non-empty weight name";
  return verifyWeightSlice(*this, getName(), type.getRank(), getSliceAxis(),
                           getSliceOffset());
}

LogicalResult EmbeddingOp::verify() {
  Checker c(*this);
  Value ids = getIds(), table = getTable(), result = getResult();
  if (failed(c.rank("ids", ids, 2)) || failed(c.rank("table", table, 2)) ||
      failed(c.rank("result", result, 3)) ||
      failed(c.dim("result", result, 0, dimOf(ids, 0), "batch of ids")) ||
      failed(c.dim("result", result, 1, dimOf(ids, 1), "sequence of ids")) ||
      failed(c.dim("result", result, 2, dimOf(table, 1), "table width")) ||
      failed(c.sameElementType("result", result, table, "table")))
    return failure();
  return success();
}

LogicalResult RMSNormOp::verify() {
  Checker c(*this);
  Value input = getInput(), weight = getWeight();
  if (failed(c.rank("weight", weight, 1)) ||
      failed(checkActivation(c, input, getResult(), dimOf(input, 2))) ||
      failed(c.dim("weight", weight, 0, dimOf(input, 2), "input features")) ||
      failed(c.sameElementType("weight", weight, input, "input")))
    return failure();
  if (!(getEps().convertToDouble() > 0.0))
    return emitOpError() << "expects eps > 0 but got "
                         << getEps().convertToDouble();
  return success();
}

LogicalResult LinearOp::verify() {
  return checkProjection(*this, getInput(), getWeight(), getResult());
}

LogicalResult LogitsOp::verify() {
  return checkProjection(*this, getInput(), getWeight(), getResult());
}

LogicalResult RopeOp::verify() {
  Checker c(*this);
  int64_t heads = getNumHeads(), headDim = getHeadDim(),
          rotary = getRotaryDim();
  if (failed(c.positive("num_heads", heads)) ||
      failed(c.positive("head_dim", headDim)) ||
      failed(c.positive("rotary_dim", rotary)))
    return failure();
  if (rotary % 2 != 0 || rotary > headDim)
    return emitOpError() << "expects an even rotary_dim <= head_dim ("
                         << headDim << ") but got " << rotary;
  if (!(getTheta().convertToDouble() > 0.0))
    return emitOpError() << "expects theta > 0 but got "
                         << getTheta().convertToDouble();
  if (failed(checkActivation(c, getInput(), getResult(), heads * headDim)) ||
      failed(c.dim("input", getInput(), 2, heads * headDim,
                   "num_heads * head_dim")))
    return failure();
  return success();
}

LogicalResult LightningAttentionOp::verify() {
  Checker c(*this);
  int64_t heads = getNumHeads(), headDim = getHeadDim();
  if (failed(c.positive("num_heads", heads)) ||
      failed(c.positive("head_dim", headDim)) ||
      failed(c.positive("block_size", getBlockSize())) ||
      failed(c.positive("num_layers", getNumLayers())))
    return failure();
  if (getLayerIndex() < 0 || getLayerIndex() >= getNumLayers())
    return emitOpError() << "expects layer_index in [0, " << getNumLayers()
                         << ") but got " << getLayerIndex();
  if (failed(checkActivation(c, getQkv(), getResult(), heads * headDim)) ||
      failed(c.dim("qkv", getQkv(), 2, 3 * heads * headDim,
                   "3 * num_heads * head_dim")))
    return failure();
  return success();
}

LogicalResult SoftmaxAttentionOp::verify() {
  Checker c(*this);
  int64_t heads = getNumHeads(), kvHeads = getNumKvHeads(),
          headDim = getHeadDim();
  if (failed(c.positive("num_heads", heads)) ||
      failed(c.positive("num_kv_heads", kvHeads)) ||
      failed(c.positive("head_dim", headDim)))
    return failure();
  if (heads % kvHeads != 0)
    return emitOpError() << "expects num_kv_heads to divide num_heads ("
                         << heads << ") but got " << kvHeads;
  if (!(getScale().convertToDouble() > 0.0))
    return emitOpError() << "expects scale > 0 but got "
                         << getScale().convertToDouble();
  Value q = getQuery(), k = getKey(), v = getValue();
  if (failed(checkActivation(c, q, getResult(), heads * headDim)) ||
      failed(c.dim("query", q, 2, heads * headDim, "num_heads * head_dim")))
    return failure();
  for (auto [name, operand] : {std::pair<StringRef, Value>{"key", k},
                               std::pair<StringRef, Value>{"value", v}}) {
    if (failed(c.rank(name, operand, 3)) ||
        failed(c.dim(name, operand, 0, dimOf(q, 0), "batch of query")) ||
        failed(c.dim(name, operand, 1, dimOf(q, 1), "sequence of query")) ||
        failed(c.dim(name, operand, 2, kvHeads * headDim,
                     "num_kv_heads * head_dim")) ||
        failed(c.sameElementType(name, operand, q, "query")))
      return failure();
  }
  return success();
}

LogicalResult MoEOp::verify() {
  Checker c(*this);
  Value x = getInput(), router = getRouter(), w1 = getW1(), w2 = getW2(),
        w3 = getW3();
  if (failed(c.rank("router", router, 2)) || failed(c.rank("w1", w1, 3)) ||
      failed(c.rank("w2", w2, 3)) || failed(c.rank("w3", w3, 3)) ||
      failed(checkActivation(c, x, getResult(), dimOf(x, 2))))
    return failure();
  int64_t hidden = dimOf(x, 2), experts = dimOf(router, 0), ffn = dimOf(w1, 1);
  if (failed(c.dim("router", router, 1, hidden, "hidden size")) ||
      failed(c.dim("w1", w1, 0, experts, "experts of router")) ||
      failed(c.dim("w1", w1, 2, hidden, "hidden size")) ||
      failed(c.dim("w3", w3, 0, experts, "experts of router")) ||
      failed(c.dim("w3", w3, 1, ffn, "ffn size of w1")) ||
      failed(c.dim("w3", w3, 2, hidden, "hidden size")) ||
      failed(c.dim("w2", w2, 0, experts, "experts of router")) ||
      failed(c.dim("w2", w2, 1, hidden, "hidden size")) ||
      failed(c.dim("w2", w2, 2, ffn, "ffn size of w1")))
    return failure();
  for (auto [name, operand] : {std::pair<StringRef, Value>{"router", router},
                               {"w1", w1},
                               {"w2", w2},
                               {"w3", w3}})
    if (failed(c.sameElementType(name, operand, x, "input")))
      return failure();
  if (getTopK() < 1 || getTopK() > experts)
    return emitOpError() << "expects top_k in [1, " << experts
                         << "] (the number of experts) but got " << getTopK();
  return success();
}

LogicalResult CrossEntropyOp::verify() {
  Checker c(*this);
  Value logits = getLogits(), labels = getLabels();
  if (failed(c.rank("logits", logits, 3)) ||
      failed(c.rank("labels", labels, 2)) ||
      failed(c.dim("labels", labels, 0, dimOf(logits, 0), "batch of logits")) ||
      failed(
          c.dim("labels", labels, 1, dimOf(logits, 1), "sequence of logits")))
    return failure();
  return success();
}

#define GET_OP_CLASSES
#include "mm/MMOps.cpp.inc"
