// Semantic check of a Plan against the kernel catalog (docs/kernels.md):
// program limits, buffers, bindings, and per step the arity, dtypes, ranks,
// symbolic shapes (Dim kind + value) and params. After this, kernels trust
// their operands and never check shapes again.
#include "runtime/Artifact.h"

#include <cmath>
#include <limits>
#include <map>
#include <set>

namespace mm {
namespace {

struct KernelInfo {
  Kernel kernel;
  size_t numInputs; // 0: variadic, at least one
  const char *inputNames[9];
  bool elementwise; // reads each element once before writing it: may run in
                    // place
  size_t numOutputs = 1;
  // Optimizer updates write their outputs in place: output j is exactly input
  // inPlace[j] (a weight or a state), never an activation.
  int inPlace[6] = {-1, -1, -1, -1, -1, -1};
};

// Inputs in catalog order; each kernel has exactly one output.
const std::map<std::string, KernelInfo> &kernelTable() {
  static const std::map<std::string, KernelInfo> table = {
      {"embedding", {Kernel::Embedding, 2, {"ids", "table"}, false}},
      {"rms_norm", {Kernel::RmsNorm, 2, {"x", "w"}, true}},
      {"linear", {Kernel::Linear, 2, {"x", "w"}, false}},
      {"logits", {Kernel::Logits, 2, {"x", "w"}, false}},
      {"silu", {Kernel::Silu, 1, {"x"}, true}},
      {"sigmoid", {Kernel::Sigmoid, 1, {"x"}, true}},
      {"mul", {Kernel::Mul, 2, {"a", "b"}, true}},
      {"scaled_add", {Kernel::ScaledAdd, 2, {"a", "b"}, true}},
      {"rope", {Kernel::Rope, 1, {"x"}, true}},
      {"lightning_attention", {Kernel::LightningAttention, 1, {"qkv"}, false}},
      {"softmax_attention",
       {Kernel::SoftmaxAttention, 3, {"q", "k", "v"}, false}},
      {"moe", {Kernel::Moe, 5, {"x", "router", "w1", "w2", "w3"}, false}},
      {"cross_entropy", {Kernel::CrossEntropy, 2, {"logits", "labels"}, false}},
      {"add_rms_norm", {Kernel::AddRmsNorm, 3, {"a", "b", "w"}, true}},
      {"sigmoid_mul", {Kernel::SigmoidMul, 2, {"a", "b"}, true}},
      // Training kernels.
      {"embedding_grad", {Kernel::EmbeddingGrad, 2, {"ids", "dy"}, false}},
      {"rms_norm_grad", {Kernel::RmsNormGrad, 3, {"x", "w", "dy"}, false, 2}},
      {"linear_grad", {Kernel::LinearGrad, 3, {"x", "w", "dy"}, false, 2}},
      {"silu_grad", {Kernel::SiluGrad, 2, {"x", "dy"}, true}},
      {"sigmoid_grad", {Kernel::SigmoidGrad, 2, {"x", "dy"}, true}},
      {"rope_grad", {Kernel::RopeGrad, 1, {"dy"}, true}},
      {"lightning_attention_grad",
       {Kernel::LightningAttentionGrad, 2, {"qkv", "dout"}, false}},
      {"softmax_attention_grad",
       {Kernel::SoftmaxAttentionGrad, 4, {"q", "k", "v", "dout"}, false, 3}},
      {"moe_grad",
       {Kernel::MoeGrad, 6, {"x", "router", "w1", "w2", "w3", "dy"}, false, 5}},
      {"lm_head_loss", {Kernel::LmHeadLoss, 3, {"h", "w", "labels"}, false}},
      {"lm_head_loss_grad",
       {Kernel::LmHeadLossGrad, 3, {"h", "w", "labels"}, false, 2}},
      {"grad_norm", {Kernel::GradNorm, 0, {"grads"}, false}},
      {"adamw",
       {Kernel::AdamW,
        7,
        {"param", "grad", "m", "v", "grad_norm", "lr", "step"},
        false,
        3,
        {0, 2, 3, -1, -1, -1}}},
      {"came",
       {Kernel::Came,
        9,
        {"param", "grad", "m", "row", "col", "res_row", "res_col", "grad_norm",
         "lr"},
        false,
        6,
        {0, 2, 3, 4, 5, 6}}},
      {"came_vector",
       {Kernel::CameVector,
        6,
        {"param", "grad", "m", "v", "grad_norm", "lr"},
        false,
        3,
        {0, 2, 3, -1, -1, -1}}},
      {"store_param",
       {Kernel::StoreParam,
        2,
        {"master", "param"},
        false,
        1,
        {1, -1, -1, -1, -1, -1}}},
  };
  return table;
}

const char *kindName(BufferKind k) {
  switch (k) {
  case BufferKind::Activation:
    return "activation";
  case BufferKind::Weight:
    return "weight";
  case BufferKind::Input:
    return "input";
  case BufferKind::State:
    return "state";
  }
  return "?";
}

std::string bufferLabel(const Plan &plan, uint32_t index) {
  std::string s = "buffer " + std::to_string(index);
  const std::string &name = plan.buffers[index].name;
  if (!name.empty())
    s += " '" + name + "'";
  return s;
}

// Multiplies into `acc` unless the product would exceed `limit`.
bool mulWithin(uint64_t &acc, uint64_t factor, uint64_t limit) {
  if (factor != 0 && acc > limit / factor)
    return false;
  acc *= factor;
  return acc <= limit;
}

class StepChecker {
public:
  StepChecker(const Plan &plan, StepDesc &step, size_t index,
              const KernelInfo &info)
      : plan_(plan), step_(step), info_(info),
        where_("step " + std::to_string(index) + " (" + step.kernelName + ")") {
  }

  Status fail(const std::string &m) const {
    return invalidArgument(where_ + ": " + m);
  }

  const BufferDesc &in(size_t i) const {
    return plan_.buffers[step_.inputs[i]];
  }
  const BufferDesc &out(size_t j = 0) const {
    return plan_.buffers[step_.outputs[j]];
  }

  std::string inRole(size_t i) const {
    const char *name =
        info_.numInputs == 0 ? info_.inputNames[0] : info_.inputNames[i];
    return std::string("input ") + name + " (" +
           bufferLabel(plan_, step_.inputs[i]) + ")";
  }
  std::string outRole(size_t j = 0) const {
    return outName(j) + " (" + bufferLabel(plan_, step_.outputs[j]) + ")";
  }
  std::string outName(size_t j) const {
    return info_.numOutputs == 1 ? "output" : "output " + std::to_string(j);
  }

  Status checkOperands() {
    if (info_.numInputs == 0 ? step_.inputs.empty()
                             : step_.inputs.size() != info_.numInputs)
      return fail("expects " +
                  (info_.numInputs ? std::to_string(info_.numInputs)
                                   : std::string("at least 1")) +
                  " inputs but has " + std::to_string(step_.inputs.size()));
    if (step_.outputs.size() != info_.numOutputs)
      return fail("expects " + std::to_string(info_.numOutputs) + " output" +
                  (info_.numOutputs == 1 ? "" : "s") + " but has " +
                  std::to_string(step_.outputs.size()));
    for (size_t i = 0; i < step_.inputs.size(); ++i)
      if (step_.inputs[i] >= plan_.buffers.size())
        return fail("input " + std::to_string(i) + " refers to buffer " +
                    std::to_string(step_.inputs[i]) + " but there are only " +
                    std::to_string(plan_.buffers.size()));
    for (size_t j = 0; j < step_.outputs.size(); ++j)
      if (step_.outputs[j] >= plan_.buffers.size())
        return fail(outName(j) + " refers to buffer " +
                    std::to_string(step_.outputs[j]) + " but there are only " +
                    std::to_string(plan_.buffers.size()));
    for (size_t j = 0; j < step_.outputs.size(); ++j) {
      const int src = info_.inPlace[j];
      if (src >= 0) {
        if (step_.outputs[j] != step_.inputs[src])
          return fail(outRole(j) + " must be " + inRole(src) +
                      ": the update runs in place");
        if (out(j).kind != BufferKind::Weight &&
            out(j).kind != BufferKind::State)
          return fail(outRole(j) + " is of kind " + kindName(out(j).kind) +
                      "; an update writes a weight or a state");
        continue;
      }
      if (out(j).kind != BufferKind::Activation)
        return fail(outRole(j) + " is of kind " + kindName(out(j).kind) +
                    "; steps may only write activations");
    }
    return checkAliasing();
  }

  // The CPU kernels of non-elementwise steps read inputs after writing output
  // elements, so their outputs must not share arena bytes with an input or
  // with each other; elementwise ones may run exactly in place.
  Status checkAliasing() const {
    for (size_t j = 0; j < step_.outputs.size(); ++j) {
      const BufferDesc &o = out(j);
      if (o.kind != BufferKind::Activation)
        continue;
      auto overlaps = [&](const BufferDesc &b) {
        return b.kind == BufferKind::Activation &&
               b.offset < o.offset + o.maxBytes &&
               o.offset < b.offset + b.maxBytes;
      };
      for (size_t i = 0; i < step_.inputs.size(); ++i) {
        const BufferDesc &b = in(i);
        if (!overlaps(b))
          continue;
        bool exactInPlace = info_.elementwise && b.offset == o.offset &&
                            b.shape == o.shape && b.dtype == o.dtype;
        if (!exactInPlace)
          return fail(outRole(j) + " overlaps " + inRole(i) + " in the arena");
      }
      for (size_t j2 = 0; j2 < j; ++j2)
        if (overlaps(out(j2)))
          return fail(outRole(j) + " overlaps " + outRole(j2) +
                      " in the arena");
    }
    return Status::ok();
  }

  Status dtype(const BufferDesc &b, const std::string &role, DType want) const {
    if (b.dtype != want)
      return fail(role + " must be " + dtypeName(want) + " but is " +
                  dtypeName(b.dtype));
    return Status::ok();
  }

  // The float activations of an inference step are all f32 or all bf16 (an
  // artifact compiled with dtype=bf16). Those of a training step may mix both
  // (dtype=bf16 training: bf16 activations and their gradients, f32 weight
  // gradients); only the CPU backend runs training, and it holds both as f32.
  // Weights may be stored in any float type: the CPU backend converts them
  // when bound, the CUDA backend checks them against the step's type.
  Status floatOperand(const BufferDesc &b, const std::string &role) const {
    if (b.kind == BufferKind::Weight && b.dtype != DType::I32)
      return Status::ok();
    if (trainStep_ && b.dtype == DType::BF16)
      return Status::ok();
    return dtype(b, role, act_);
  }

  // The activation type of an inference step: that of its first float
  // activation operand (the output for embedding, whose inputs are ids and a
  // weight); f32 when it has none.
  void inferActivationType() {
    act_ = DType::F32;
    auto isFloat = [](DType t) { return t == DType::F32 || t == DType::BF16; };
    for (size_t i = 0; i < step_.inputs.size(); ++i)
      if (in(i).kind != BufferKind::Weight && isFloat(in(i).dtype)) {
        act_ = in(i).dtype;
        return;
      }
    if (isFloat(out().dtype))
      act_ = out().dtype;
  }

  Status rank(const BufferDesc &b, const std::string &role, size_t r) const {
    if (b.shape.size() != r)
      return fail(role + " must have rank " + std::to_string(r) +
                  " but has shape " + formatShape(b.shape));
    return Status::ok();
  }

  Status dimEq(const BufferDesc &a, const std::string &aRole, size_t ad,
               const BufferDesc &b, const std::string &bRole, size_t bd) const {
    if (a.shape[ad] != b.shape[bd])
      return fail(aRole + " has shape " + formatShape(a.shape) + " and " +
                  bRole + " has shape " + formatShape(b.shape) + ": dim " +
                  std::to_string(ad) + " must equal dim " + std::to_string(bd));
    return Status::ok();
  }

  Status dimConst(const BufferDesc &b, const std::string &role, size_t d,
                  int64_t want, const std::string &why) const {
    const Dim &dim = b.shape[d];
    if (dim.kind != DimKind::Const || dim.value != want)
      return fail(role + " has shape " + formatShape(b.shape) + ": dim " +
                  std::to_string(d) + " must be " + std::to_string(want) +
                  " (" + why + ")");
    return Status::ok();
  }

  Status sameShape(const BufferDesc &a, const std::string &aRole,
                   const BufferDesc &b, const std::string &bRole) const {
    if (a.shape != b.shape)
      return fail(aRole + " has shape " + formatShape(a.shape) + " but " +
                  bRole + " has shape " + formatShape(b.shape));
    return Status::ok();
  }

  DType act_ = DType::F32;
  bool trainStep_ = false;

  const RawParam *find(const char *name) const {
    for (const RawParam &p : step_.rawParams)
      if (p.name == name)
        return &p;
    return nullptr;
  }

  Status intParam(const char *name, int64_t lo, int64_t hi,
                  int64_t &out) const {
    const RawParam *p = find(name);
    if (!p)
      return fail("missing integer param '" + std::string(name) + "'");
    if (p->i < lo || p->i > hi)
      return fail("param '" + std::string(name) + "' is " +
                  std::to_string(p->i) + " but must be in [" +
                  std::to_string(lo) + ", " + std::to_string(hi) + "]");
    out = p->i;
    return Status::ok();
  }

  Status floatParam(const char *name, double lo, double &out) const {
    const RawParam *p = find(name);
    if (!p)
      return fail("missing real param '" + std::string(name) + "'");
    if (!std::isfinite(p->f) || p->f < lo)
      return fail("param '" + std::string(name) + "' is " +
                  std::to_string(p->f) +
                  " but must be finite and >= " + std::to_string(lo));
    out = p->f;
    return Status::ok();
  }

  /// The params of rope and rope_grad: heads, head width, an even rotary
  /// width within the head, a positive base.
  Status ropeParams(KernelParams &p) {
    MM_RETURN_IF_ERROR(intParam("num_heads", 1, kMaxIntParam, p.numHeads));
    MM_RETURN_IF_ERROR(intParam("head_dim", 1, kMaxIntParam, p.headDim));
    MM_RETURN_IF_ERROR(intParam("rotary_dim", 0, p.headDim, p.rotaryDim));
    if (p.rotaryDim % 2 != 0)
      return fail("param 'rotary_dim' is " + std::to_string(p.rotaryDim) +
                  " but must be even");
    MM_RETURN_IF_ERROR(floatParam("theta", 0.0, p.theta));
    if (p.theta <= 0)
      return fail("param 'theta' must be positive");
    return Status::ok();
  }

  Status checkKernel();
  Status checkTrainKernel();

  // Tile params are optional (GPU targets only) but must be sane when present.
  Status tileParams() const {
    KernelParams &p = step_.params;
    const std::pair<const char *, int64_t *> tiles[] = {
        {"tile_threads", &p.tileThreads},
        {"tile_block", &p.tileBlock},
        {"tile_dv", &p.tileDv},
        {"tile_q", &p.tileQ},
        {"tile_k", &p.tileK},
        {"tile_m", &p.tileM},
        {"tile_n", &p.tileN},
        {"tile_chunk", &p.tileChunk}};
    for (auto [name, field] : tiles)
      if (find(name))
        MM_RETURN_IF_ERROR(intParam(name, 1, 1024, *field));
    if (const RawParam *silu = find("silu_input")) {
      if (info_.kernel != Kernel::LightningAttention || silu->i < 0 ||
          silu->i > 1)
        return fail("param 'silu_input' must be 0 or 1 and only on "
                    "lightning_attention");
      p.siluInput = silu->i == 1;
    }
    return Status::ok();
  }

private:
  const Plan &plan_;
  StepDesc &step_;
  const KernelInfo &info_;
  std::string where_;
};

Status StepChecker::checkKernel() {
  KernelParams &p = step_.params;
  const BufferDesc &o = out();
  const std::string oR = outRole();
  const double kLowest = -std::numeric_limits<double>::max();
  inferActivationType();
  switch (info_.kernel) {
  case Kernel::Embedding: {
    MM_RETURN_IF_ERROR(dtype(in(0), inRole(0), DType::I32));
    MM_RETURN_IF_ERROR(rank(in(0), inRole(0), 2));
    MM_RETURN_IF_ERROR(floatOperand(in(1), inRole(1)));
    MM_RETURN_IF_ERROR(rank(in(1), inRole(1), 2));
    MM_RETURN_IF_ERROR(dtype(o, oR, act_));
    MM_RETURN_IF_ERROR(rank(o, oR, 3));
    MM_RETURN_IF_ERROR(dimEq(o, oR, 0, in(0), inRole(0), 0));
    MM_RETURN_IF_ERROR(dimEq(o, oR, 1, in(0), inRole(0), 1));
    return dimEq(o, oR, 2, in(1), inRole(1), 1);
  }
  case Kernel::AddRmsNorm:
    MM_RETURN_IF_ERROR(floatOperand(in(1), inRole(1)));
    MM_RETURN_IF_ERROR(sameShape(in(1), inRole(1), in(0), inRole(0)));
    MM_RETURN_IF_ERROR(floatOperand(in(2), inRole(2)));
    MM_RETURN_IF_ERROR(rank(in(2), inRole(2), 1));
    MM_RETURN_IF_ERROR(floatOperand(in(0), inRole(0)));
    MM_RETURN_IF_ERROR(rank(in(0), inRole(0), 3));
    MM_RETURN_IF_ERROR(dimEq(in(2), inRole(2), 0, in(0), inRole(0), 2));
    MM_RETURN_IF_ERROR(dtype(o, oR, act_));
    MM_RETURN_IF_ERROR(sameShape(o, oR, in(0), inRole(0)));
    MM_RETURN_IF_ERROR(floatParam("alpha", kLowest, p.alpha));
    MM_RETURN_IF_ERROR(floatParam("beta", kLowest, p.beta));
    return floatParam("eps", 0.0, p.eps);
  case Kernel::RmsNorm: {
    MM_RETURN_IF_ERROR(floatOperand(in(0), inRole(0)));
    MM_RETURN_IF_ERROR(rank(in(0), inRole(0), 3));
    MM_RETURN_IF_ERROR(floatOperand(in(1), inRole(1)));
    MM_RETURN_IF_ERROR(rank(in(1), inRole(1), 1));
    MM_RETURN_IF_ERROR(dimEq(in(1), inRole(1), 0, in(0), inRole(0), 2));
    MM_RETURN_IF_ERROR(dtype(o, oR, act_));
    MM_RETURN_IF_ERROR(sameShape(o, oR, in(0), inRole(0)));
    return floatParam("eps", 0.0, p.eps);
  }
  case Kernel::Linear:
  case Kernel::Logits: {
    MM_RETURN_IF_ERROR(floatOperand(in(0), inRole(0)));
    MM_RETURN_IF_ERROR(rank(in(0), inRole(0), 3));
    MM_RETURN_IF_ERROR(floatOperand(in(1), inRole(1)));
    MM_RETURN_IF_ERROR(rank(in(1), inRole(1), 2));
    MM_RETURN_IF_ERROR(dimEq(in(1), inRole(1), 1, in(0), inRole(0), 2));
    // bf16 projections may write f32 (the logits of a bf16 artifact).
    if (o.dtype != DType::F32)
      MM_RETURN_IF_ERROR(dtype(o, oR, act_));
    MM_RETURN_IF_ERROR(rank(o, oR, 3));
    MM_RETURN_IF_ERROR(dimEq(o, oR, 0, in(0), inRole(0), 0));
    if (const RawParam *last = find("last_position")) {
      if (info_.kernel != Kernel::Logits || last->i < 0 || last->i > 1)
        return fail("param 'last_position' must be 0 or 1 and only on logits");
      p.lastPosition = last->i == 1;
    }
    if (p.lastPosition)
      MM_RETURN_IF_ERROR(
          dimConst(o, oR, 1, 1, "last_position: one row per sequence"));
    else
      MM_RETURN_IF_ERROR(dimEq(o, oR, 1, in(0), inRole(0), 1));
    return dimEq(o, oR, 2, in(1), inRole(1), 0);
  }
  case Kernel::Silu:
  case Kernel::Sigmoid:
    MM_RETURN_IF_ERROR(floatOperand(in(0), inRole(0)));
    MM_RETURN_IF_ERROR(dtype(o, oR, act_));
    return sameShape(o, oR, in(0), inRole(0));
  case Kernel::Mul:
  case Kernel::SigmoidMul:
  case Kernel::ScaledAdd:
    MM_RETURN_IF_ERROR(floatOperand(in(0), inRole(0)));
    MM_RETURN_IF_ERROR(floatOperand(in(1), inRole(1)));
    MM_RETURN_IF_ERROR(sameShape(in(1), inRole(1), in(0), inRole(0)));
    MM_RETURN_IF_ERROR(dtype(o, oR, act_));
    MM_RETURN_IF_ERROR(sameShape(o, oR, in(0), inRole(0)));
    if (info_.kernel == Kernel::ScaledAdd) {
      MM_RETURN_IF_ERROR(floatParam("alpha", kLowest, p.alpha));
      MM_RETURN_IF_ERROR(floatParam("beta", kLowest, p.beta));
    }
    return Status::ok();
  case Kernel::Rope: {
    MM_RETURN_IF_ERROR(ropeParams(p));
    MM_RETURN_IF_ERROR(floatOperand(in(0), inRole(0)));
    MM_RETURN_IF_ERROR(rank(in(0), inRole(0), 3));
    MM_RETURN_IF_ERROR(dimConst(in(0), inRole(0), 2, p.numHeads * p.headDim,
                                "num_heads * head_dim"));
    MM_RETURN_IF_ERROR(dtype(o, oR, act_));
    return sameShape(o, oR, in(0), inRole(0));
  }
  case Kernel::LightningAttention: {
    MM_RETURN_IF_ERROR(intParam("num_heads", 1, kMaxIntParam, p.numHeads));
    MM_RETURN_IF_ERROR(intParam("head_dim", 1, kMaxIntParam, p.headDim));
    MM_RETURN_IF_ERROR(intParam("block_size", 1, kMaxIntParam, p.blockSize));
    MM_RETURN_IF_ERROR(intParam("num_layers", 1, kMaxIntParam, p.numLayers));
    MM_RETURN_IF_ERROR(
        intParam("layer_index", 0, p.numLayers - 1, p.layerIndex));
    MM_RETURN_IF_ERROR(floatOperand(in(0), inRole(0)));
    MM_RETURN_IF_ERROR(rank(in(0), inRole(0), 3));
    MM_RETURN_IF_ERROR(dimConst(in(0), inRole(0), 2, p.numHeads * 3 * p.headDim,
                                "num_heads * 3 * head_dim"));
    MM_RETURN_IF_ERROR(dtype(o, oR, act_));
    MM_RETURN_IF_ERROR(rank(o, oR, 3));
    MM_RETURN_IF_ERROR(dimEq(o, oR, 0, in(0), inRole(0), 0));
    MM_RETURN_IF_ERROR(dimEq(o, oR, 1, in(0), inRole(0), 1));
    return dimConst(o, oR, 2, p.numHeads * p.headDim, "num_heads * head_dim");
  }
  case Kernel::SoftmaxAttention: {
    MM_RETURN_IF_ERROR(intParam("num_heads", 1, kMaxIntParam, p.numHeads));
    MM_RETURN_IF_ERROR(intParam("num_kv_heads", 1, p.numHeads, p.numKvHeads));
    if (p.numHeads % p.numKvHeads != 0)
      return fail("param 'num_heads' (" + std::to_string(p.numHeads) +
                  ") must be a multiple of 'num_kv_heads' (" +
                  std::to_string(p.numKvHeads) + ")");
    MM_RETURN_IF_ERROR(intParam("head_dim", 1, kMaxIntParam, p.headDim));
    MM_RETURN_IF_ERROR(floatParam("scale", kLowest, p.scale));
    for (size_t i = 0; i < 3; ++i) {
      MM_RETURN_IF_ERROR(floatOperand(in(i), inRole(i)));
      MM_RETURN_IF_ERROR(rank(in(i), inRole(i), 3));
      MM_RETURN_IF_ERROR(dimEq(in(i), inRole(i), 0, in(0), inRole(0), 0));
      MM_RETURN_IF_ERROR(dimEq(in(i), inRole(i), 1, in(0), inRole(0), 1));
    }
    MM_RETURN_IF_ERROR(dimConst(in(0), inRole(0), 2, p.numHeads * p.headDim,
                                "num_heads * head_dim"));
    for (size_t i = 1; i < 3; ++i)
      MM_RETURN_IF_ERROR(dimConst(in(i), inRole(i), 2, p.numKvHeads * p.headDim,
                                  "num_kv_heads * head_dim"));
    MM_RETURN_IF_ERROR(dtype(o, oR, act_));
    return sameShape(o, oR, in(0), inRole(0));
  }
  case Kernel::Moe: {
    const BufferDesc &x = in(0), &router = in(1), &w1 = in(2), &w2 = in(3),
                     &w3 = in(4);
    MM_RETURN_IF_ERROR(floatOperand(x, inRole(0)));
    MM_RETURN_IF_ERROR(rank(x, inRole(0), 3));
    MM_RETURN_IF_ERROR(floatOperand(router, inRole(1)));
    MM_RETURN_IF_ERROR(rank(router, inRole(1), 2));
    for (size_t i = 2; i < 5; ++i) {
      MM_RETURN_IF_ERROR(floatOperand(in(i), inRole(i)));
      MM_RETURN_IF_ERROR(rank(in(i), inRole(i), 3));
    }
    // router [E,H]; w1, w3 [E,I,H]; w2 [E,H,I]
    MM_RETURN_IF_ERROR(dimEq(router, inRole(1), 1, x, inRole(0), 2));
    MM_RETURN_IF_ERROR(dimEq(w1, inRole(2), 0, router, inRole(1), 0));
    MM_RETURN_IF_ERROR(dimEq(w1, inRole(2), 2, x, inRole(0), 2));
    MM_RETURN_IF_ERROR(sameShape(w3, inRole(4), w1, inRole(2)));
    MM_RETURN_IF_ERROR(dimEq(w2, inRole(3), 0, router, inRole(1), 0));
    MM_RETURN_IF_ERROR(dimEq(w2, inRole(3), 1, x, inRole(0), 2));
    MM_RETURN_IF_ERROR(dimEq(w2, inRole(3), 2, w1, inRole(2), 1));
    const Dim &e = router.shape[0];
    if (e.kind != DimKind::Const)
      return fail(inRole(1) + " must have a constant expert count but has " +
                  formatShape(router.shape));
    MM_RETURN_IF_ERROR(intParam("top_k", 1, e.value, p.topK));
    MM_RETURN_IF_ERROR(dtype(o, oR, act_));
    return sameShape(o, oR, x, inRole(0));
  }
  case Kernel::CrossEntropy: {
    MM_RETURN_IF_ERROR(floatOperand(in(0), inRole(0)));
    MM_RETURN_IF_ERROR(rank(in(0), inRole(0), 3));
    MM_RETURN_IF_ERROR(dtype(in(1), inRole(1), DType::I32));
    MM_RETURN_IF_ERROR(rank(in(1), inRole(1), 2));
    MM_RETURN_IF_ERROR(dimEq(in(1), inRole(1), 0, in(0), inRole(0), 0));
    MM_RETURN_IF_ERROR(dimEq(in(1), inRole(1), 1, in(0), inRole(0), 1));
    MM_RETURN_IF_ERROR(dtype(o, oR, DType::F32));
    return rank(o, oR, 0);
  }
  default:
    act_ = DType::F32;
    trainStep_ = true;
    return checkTrainKernel();
  }
}

// Training kernels of docs/kernels.md ("Training kernels").
Status StepChecker::checkTrainKernel() {
  KernelParams &p = step_.params;
  const double kLowest = -std::numeric_limits<double>::max();
  auto f32Act = [&](size_t i, size_t r) -> Status {
    MM_RETURN_IF_ERROR(floatOperand(in(i), inRole(i)));
    return rank(in(i), inRole(i), r);
  };
  auto outLike = [&](size_t j, const BufferDesc &ref,
                     const std::string &refRole) -> Status {
    if (out(j).dtype != DType::BF16)
      MM_RETURN_IF_ERROR(dtype(out(j), outRole(j), DType::F32));
    return sameShape(out(j), outRole(j), ref, refRole);
  };
  auto scalar = [&](size_t i) -> Status {
    MM_RETURN_IF_ERROR(dtype(in(i), inRole(i), DType::F32));
    return rank(in(i), inRole(i), 0);
  };
  auto stateLike = [&](size_t i, const std::vector<Dim> &shape) -> Status {
    if (in(i).kind != BufferKind::State)
      return fail(inRole(i) + " must be a state buffer");
    if (in(i).shape != shape)
      return fail(inRole(i) + " has shape " + formatShape(in(i).shape) +
                  " but must be " + formatShape(shape));
    return Status::ok();
  };
  auto betaParam = [&](const char *name, double &out) -> Status {
    MM_RETURN_IF_ERROR(floatParam(name, 0.0, out));
    if (out >= 1.0)
      return fail("param '" + std::string(name) + "' must be in [0, 1)");
    return Status::ok();
  };
  switch (info_.kernel) {
  case Kernel::EmbeddingGrad:
    MM_RETURN_IF_ERROR(dtype(in(0), inRole(0), DType::I32));
    MM_RETURN_IF_ERROR(rank(in(0), inRole(0), 2));
    MM_RETURN_IF_ERROR(f32Act(1, 3));
    MM_RETURN_IF_ERROR(dimEq(in(1), inRole(1), 0, in(0), inRole(0), 0));
    MM_RETURN_IF_ERROR(dimEq(in(1), inRole(1), 1, in(0), inRole(0), 1));
    MM_RETURN_IF_ERROR(dtype(out(), outRole(), DType::F32));
    MM_RETURN_IF_ERROR(rank(out(), outRole(), 2));
    MM_RETURN_IF_ERROR(dimConst(
        out(), outRole(), 0,
        out().shape[0].kind == DimKind::Const ? out().shape[0].value : -1,
        "a constant vocabulary size"));
    return dimEq(out(), outRole(), 1, in(1), inRole(1), 2);
  case Kernel::RmsNormGrad:
    MM_RETURN_IF_ERROR(f32Act(0, 3));
    MM_RETURN_IF_ERROR(f32Act(1, 1));
    MM_RETURN_IF_ERROR(dimEq(in(1), inRole(1), 0, in(0), inRole(0), 2));
    MM_RETURN_IF_ERROR(floatOperand(in(2), inRole(2)));
    MM_RETURN_IF_ERROR(sameShape(in(2), inRole(2), in(0), inRole(0)));
    MM_RETURN_IF_ERROR(outLike(0, in(0), inRole(0)));
    MM_RETURN_IF_ERROR(outLike(1, in(1), inRole(1)));
    return floatParam("eps", 0.0, p.eps);
  case Kernel::LinearGrad:
    MM_RETURN_IF_ERROR(f32Act(0, 3));
    MM_RETURN_IF_ERROR(f32Act(1, 2));
    MM_RETURN_IF_ERROR(f32Act(2, 3));
    MM_RETURN_IF_ERROR(dimEq(in(1), inRole(1), 1, in(0), inRole(0), 2));
    MM_RETURN_IF_ERROR(dimEq(in(2), inRole(2), 0, in(0), inRole(0), 0));
    MM_RETURN_IF_ERROR(dimEq(in(2), inRole(2), 1, in(0), inRole(0), 1));
    MM_RETURN_IF_ERROR(dimEq(in(2), inRole(2), 2, in(1), inRole(1), 0));
    MM_RETURN_IF_ERROR(outLike(0, in(0), inRole(0)));
    return outLike(1, in(1), inRole(1));
  case Kernel::SiluGrad:
  case Kernel::SigmoidGrad:
    MM_RETURN_IF_ERROR(floatOperand(in(0), inRole(0)));
    MM_RETURN_IF_ERROR(floatOperand(in(1), inRole(1)));
    MM_RETURN_IF_ERROR(sameShape(in(1), inRole(1), in(0), inRole(0)));
    return outLike(0, in(0), inRole(0));
  case Kernel::RopeGrad: {
    MM_RETURN_IF_ERROR(ropeParams(p));
    MM_RETURN_IF_ERROR(f32Act(0, 3));
    MM_RETURN_IF_ERROR(dimConst(in(0), inRole(0), 2, p.numHeads * p.headDim,
                                "num_heads * head_dim"));
    return outLike(0, in(0), inRole(0));
  }
  case Kernel::LightningAttentionGrad:
    MM_RETURN_IF_ERROR(intParam("num_heads", 1, kMaxIntParam, p.numHeads));
    MM_RETURN_IF_ERROR(intParam("head_dim", 1, kMaxIntParam, p.headDim));
    MM_RETURN_IF_ERROR(intParam("block_size", 1, kMaxIntParam, p.blockSize));
    MM_RETURN_IF_ERROR(intParam("num_layers", 1, kMaxIntParam, p.numLayers));
    MM_RETURN_IF_ERROR(
        intParam("layer_index", 0, p.numLayers - 1, p.layerIndex));
    MM_RETURN_IF_ERROR(f32Act(0, 3));
    MM_RETURN_IF_ERROR(dimConst(in(0), inRole(0), 2, p.numHeads * 3 * p.headDim,
                                "num_heads * 3 * head_dim"));
    MM_RETURN_IF_ERROR(f32Act(1, 3));
    MM_RETURN_IF_ERROR(dimEq(in(1), inRole(1), 0, in(0), inRole(0), 0));
    MM_RETURN_IF_ERROR(dimEq(in(1), inRole(1), 1, in(0), inRole(0), 1));
    MM_RETURN_IF_ERROR(dimConst(in(1), inRole(1), 2, p.numHeads * p.headDim,
                                "num_heads * head_dim"));
    return outLike(0, in(0), inRole(0));
  case Kernel::SoftmaxAttentionGrad:
    MM_RETURN_IF_ERROR(intParam("num_heads", 1, kMaxIntParam, p.numHeads));
    MM_RETURN_IF_ERROR(intParam("num_kv_heads", 1, p.numHeads, p.numKvHeads));
    if (p.numHeads % p.numKvHeads != 0)
      return fail("param 'num_heads' (" + std::to_string(p.numHeads) +
                  ") must be a multiple of 'num_kv_heads' (" +
                  std::to_string(p.numKvHeads) + ")");
    MM_RETURN_IF_ERROR(intParam("head_dim", 1, kMaxIntParam, p.headDim));
    MM_RETURN_IF_ERROR(floatParam("scale", kLowest, p.scale));
    for (size_t i = 0; i < 4; ++i) {
      MM_RETURN_IF_ERROR(f32Act(i, 3));
      MM_RETURN_IF_ERROR(dimEq(in(i), inRole(i), 0, in(0), inRole(0), 0));
      MM_RETURN_IF_ERROR(dimEq(in(i), inRole(i), 1, in(0), inRole(0), 1));
    }
    MM_RETURN_IF_ERROR(dimConst(in(0), inRole(0), 2, p.numHeads * p.headDim,
                                "num_heads * head_dim"));
    MM_RETURN_IF_ERROR(sameShape(in(3), inRole(3), in(0), inRole(0)));
    for (size_t i = 1; i < 3; ++i)
      MM_RETURN_IF_ERROR(dimConst(in(i), inRole(i), 2, p.numKvHeads * p.headDim,
                                  "num_kv_heads * head_dim"));
    for (size_t j = 0; j < 3; ++j)
      MM_RETURN_IF_ERROR(outLike(j, in(j), inRole(j)));
    return Status::ok();
  case Kernel::MoeGrad: {
    const BufferDesc &x = in(0), &router = in(1), &w1 = in(2), &w2 = in(3),
                     &w3 = in(4);
    MM_RETURN_IF_ERROR(f32Act(0, 3));
    MM_RETURN_IF_ERROR(f32Act(1, 2));
    for (size_t i = 2; i < 5; ++i)
      MM_RETURN_IF_ERROR(f32Act(i, 3));
    MM_RETURN_IF_ERROR(dimEq(router, inRole(1), 1, x, inRole(0), 2));
    MM_RETURN_IF_ERROR(dimEq(w1, inRole(2), 0, router, inRole(1), 0));
    MM_RETURN_IF_ERROR(dimEq(w1, inRole(2), 2, x, inRole(0), 2));
    MM_RETURN_IF_ERROR(sameShape(w3, inRole(4), w1, inRole(2)));
    MM_RETURN_IF_ERROR(dimEq(w2, inRole(3), 0, router, inRole(1), 0));
    MM_RETURN_IF_ERROR(dimEq(w2, inRole(3), 1, x, inRole(0), 2));
    MM_RETURN_IF_ERROR(dimEq(w2, inRole(3), 2, w1, inRole(2), 1));
    MM_RETURN_IF_ERROR(floatOperand(in(5), inRole(5)));
    MM_RETURN_IF_ERROR(sameShape(in(5), inRole(5), x, inRole(0)));
    const Dim &e = router.shape[0];
    if (e.kind != DimKind::Const)
      return fail(inRole(1) + " must have a constant expert count but has " +
                  formatShape(router.shape));
    MM_RETURN_IF_ERROR(intParam("top_k", 1, e.value, p.topK));
    for (size_t j = 0; j < 5; ++j)
      MM_RETURN_IF_ERROR(outLike(j, in(j), inRole(j)));
    return Status::ok();
  }
  case Kernel::LmHeadLoss:
  case Kernel::LmHeadLossGrad:
    MM_RETURN_IF_ERROR(f32Act(0, 3));
    MM_RETURN_IF_ERROR(f32Act(1, 2));
    MM_RETURN_IF_ERROR(dimEq(in(1), inRole(1), 1, in(0), inRole(0), 2));
    MM_RETURN_IF_ERROR(dtype(in(2), inRole(2), DType::I32));
    MM_RETURN_IF_ERROR(rank(in(2), inRole(2), 2));
    MM_RETURN_IF_ERROR(dimEq(in(2), inRole(2), 0, in(0), inRole(0), 0));
    MM_RETURN_IF_ERROR(dimEq(in(2), inRole(2), 1, in(0), inRole(0), 1));
    MM_RETURN_IF_ERROR(intParam("chunk_rows", 1, kMaxIntParam, p.chunkRows));
    if (info_.kernel == Kernel::LmHeadLoss) {
      MM_RETURN_IF_ERROR(dtype(out(), outRole(), DType::F32));
      return rank(out(), outRole(), 0);
    }
    MM_RETURN_IF_ERROR(outLike(0, in(0), inRole(0)));
    return outLike(1, in(1), inRole(1));
  case Kernel::GradNorm:
    for (size_t i = 0; i < step_.inputs.size(); ++i)
      MM_RETURN_IF_ERROR(dtype(in(i), inRole(i), DType::F32));
    MM_RETURN_IF_ERROR(dtype(out(), outRole(), DType::F32));
    return rank(out(), outRole(), 0);
  case Kernel::AdamW:
  case Kernel::Came:
  case Kernel::CameVector: {
    // The param is the weight itself, or (dtype=bf16) its fp32 master state.
    const BufferDesc &param = in(0);
    if (param.kind == BufferKind::State)
      MM_RETURN_IF_ERROR(dtype(param, inRole(0), DType::F32));
    else if (param.kind != BufferKind::Weight)
      return fail(inRole(0) + " must be a weight or a state");
    MM_RETURN_IF_ERROR(floatOperand(param, inRole(0)));
    MM_RETURN_IF_ERROR(dtype(in(1), inRole(1), DType::F32));
    MM_RETURN_IF_ERROR(sameShape(in(1), inRole(1), param, inRole(0)));
    MM_RETURN_IF_ERROR(stateLike(2, param.shape));
    MM_RETURN_IF_ERROR(betaParam("beta1", p.beta1));
    MM_RETURN_IF_ERROR(betaParam("beta2", p.beta2));
    MM_RETURN_IF_ERROR(floatParam("eps", 0.0, p.eps));
    MM_RETURN_IF_ERROR(floatParam("weight_decay", 0.0, p.weightDecay));
    MM_RETURN_IF_ERROR(floatParam("max_norm", 0.0, p.maxNorm));
    if (info_.kernel == Kernel::AdamW) {
      MM_RETURN_IF_ERROR(stateLike(3, param.shape));
      for (size_t i = 4; i < 7; ++i)
        MM_RETURN_IF_ERROR(scalar(i));
      return Status::ok();
    }
    MM_RETURN_IF_ERROR(betaParam("beta3", p.beta3));
    MM_RETURN_IF_ERROR(floatParam("eps2", 0.0, p.eps2));
    MM_RETURN_IF_ERROR(floatParam("clip_threshold", 0.0, p.clipThreshold));
    if (p.clipThreshold <= 0)
      return fail("param 'clip_threshold' must be positive");
    if (info_.kernel == Kernel::CameVector) {
      MM_RETURN_IF_ERROR(rank(param, inRole(0), 1));
      MM_RETURN_IF_ERROR(stateLike(3, param.shape));
      MM_RETURN_IF_ERROR(scalar(4));
      return scalar(5);
    }
    if (param.shape.size() < 2)
      return fail(inRole(0) + " must have rank >= 2 to be factored but has " +
                  formatShape(param.shape));
    std::vector<Dim> rowShape(param.shape.begin(), param.shape.end() - 1);
    std::vector<Dim> colShape = rowShape;
    colShape.back() = param.shape.back();
    MM_RETURN_IF_ERROR(stateLike(3, rowShape));
    MM_RETURN_IF_ERROR(stateLike(4, colShape));
    MM_RETURN_IF_ERROR(stateLike(5, rowShape));
    MM_RETURN_IF_ERROR(stateLike(6, colShape));
    MM_RETURN_IF_ERROR(scalar(7));
    return scalar(8);
  }
  case Kernel::StoreParam:
    if (in(0).kind != BufferKind::State)
      return fail(inRole(0) + " must be a state buffer");
    MM_RETURN_IF_ERROR(dtype(in(0), inRole(0), DType::F32));
    if (in(1).kind != BufferKind::Weight)
      return fail(inRole(1) + " must be a weight");
    return sameShape(in(1), inRole(1), in(0), inRole(0));
  default:
    return fail("unhandled kernel");
  }
}

Status checkBuffers(Plan &plan) {
  for (size_t i = 0; i < plan.buffers.size(); ++i) {
    BufferDesc &b = plan.buffers[i];
    auto fail = [&](const std::string &m) {
      return invalidArgument(bufferLabel(plan, static_cast<uint32_t>(i)) +
                             ": " + m);
    };
    uint64_t elems = 1;
    const uint64_t limit = kMaxBufferBytes / dtypeSize(b.dtype);
    for (size_t d = 0; d < b.shape.size(); ++d) {
      const Dim &dim = b.shape[d];
      uint64_t size;
      if (dim.kind == DimKind::Const) {
        if (dim.value < 1 || dim.value > kMaxConstDim)
          return fail("dim " + std::to_string(d) + " is " +
                      std::to_string(dim.value) + " but must be in [1, " +
                      std::to_string(kMaxConstDim) + "]");
        size = static_cast<uint64_t>(dim.value);
      } else {
        if (dim.value != 0)
          return fail("dim " + std::to_string(d) +
                      " is symbolic but has value " +
                      std::to_string(dim.value) + " (must be 0)");
        if (b.kind == BufferKind::Weight || b.kind == BufferKind::State)
          return fail(std::string(kindName(b.kind)) + " shape " +
                      formatShape(b.shape) + " must be constant");
        size = static_cast<uint64_t>(dim.kind == DimKind::Batch ? plan.maxBatch
                                                                : plan.maxSeq);
      }
      if (!mulWithin(elems, size, limit))
        return fail("shape " + formatShape(b.shape) + " is too large");
    }
    b.maxBytes = elems * dtypeSize(b.dtype);
    if (b.kind != BufferKind::Weight && b.sliceAxis != -1)
      return fail("only weights can be slices");
    switch (b.kind) {
    case BufferKind::Activation:
      if (b.offset % dtypeSize(b.dtype) != 0)
        return fail("arena offset " + std::to_string(b.offset) +
                    " is not aligned to its element size");
      if (b.offset > plan.arenaBytes || b.maxBytes > plan.arenaBytes - b.offset)
        return fail(std::to_string(b.maxBytes) + " bytes at arena offset " +
                    std::to_string(b.offset) + " run past arena_bytes " +
                    std::to_string(plan.arenaBytes));
      break;
    case BufferKind::State:
      if (b.dtype != DType::F32)
        return fail(std::string("state buffers must be f32, not ") +
                    dtypeName(b.dtype));
      [[fallthrough]];
    case BufferKind::Weight:
      if (b.sliceAxis != -1) {
        if (b.sliceAxis < 0 ||
            b.sliceAxis >= static_cast<int32_t>(b.shape.size()))
          return fail("slice_axis " + std::to_string(b.sliceAxis) +
                      " is outside the weight's rank " +
                      std::to_string(b.shape.size()));
        if (b.sliceOffset < 0 || b.sliceOffset > kMaxConstDim)
          return fail("slice_offset " + std::to_string(b.sliceOffset) +
                      " must be in [0, " + std::to_string(kMaxConstDim) + "]");
        if (b.name.find("{e}") != std::string::npos)
          return fail("a sliced weight cannot also be stacked over {e}");
      }
      [[fallthrough]];
    case BufferKind::Input:
      if (b.name.empty())
        return fail(std::string(kindName(b.kind)) +
                    " buffer needs a name to be bound by");
      break;
    }
  }
  return Status::ok();
}

/// "input binding 0 'input_ids'", for messages.
std::string bindingLabel(const char *kind, size_t i, const Binding &b) {
  return std::string(kind) + " binding " + std::to_string(i) + " '" + b.name +
         "'";
}

/// What every binding must satisfy: a name, unique among the bindings of its
/// kind, and a buffer index inside the plan.
Status checkBindingRef(const Plan &plan, const std::string &where,
                       const Binding &b, std::set<std::string> &names) {
  if (b.name.empty())
    return invalidArgument(where + " has no name");
  if (!names.insert(b.name).second)
    return invalidArgument(where + " is bound twice");
  if (b.buffer >= plan.buffers.size())
    return invalidArgument(where + " refers to buffer " +
                           std::to_string(b.buffer) + " but there are only " +
                           std::to_string(plan.buffers.size()));
  return Status::ok();
}

Status checkBindings(const Plan &plan) {
  std::set<std::string> names;
  std::vector<int> inputUses(plan.buffers.size(), 0);
  for (size_t i = 0; i < plan.inputs.size(); ++i) {
    const Binding &b = plan.inputs[i];
    const std::string where = bindingLabel("input", i, b);
    MM_RETURN_IF_ERROR(checkBindingRef(plan, where, b, names));
    const BufferDesc &buf = plan.buffers[b.buffer];
    if (buf.kind != BufferKind::Input)
      return invalidArgument(where + " refers to " +
                             bufferLabel(plan, b.buffer) + " of kind " +
                             kindName(buf.kind) + ", not an input buffer");
    if (buf.dtype != DType::I32 && buf.dtype != DType::F32)
      return invalidArgument(where + ": inputs must be i32 or f32, not " +
                             dtypeName(buf.dtype));
    ++inputUses[b.buffer];
  }
  for (size_t i = 0; i < plan.buffers.size(); ++i) {
    if (plan.buffers[i].kind == BufferKind::Input && inputUses[i] != 1)
      return invalidArgument(bufferLabel(plan, static_cast<uint32_t>(i)) +
                             (inputUses[i] == 0
                                  ? " is an input but no binding names it"
                                  : " is named by several input bindings"));
  }
  names.clear();
  for (size_t i = 0; i < plan.outputs.size(); ++i) {
    const Binding &b = plan.outputs[i];
    const std::string where = bindingLabel("output", i, b);
    MM_RETURN_IF_ERROR(checkBindingRef(plan, where, b, names));
    const BufferDesc &buf = plan.buffers[b.buffer];
    if (buf.kind != BufferKind::Activation || buf.dtype != DType::F32)
      return invalidArgument(where + " must name an f32 activation, but " +
                             bufferLabel(plan, b.buffer) + " is " +
                             dtypeName(buf.dtype) + " of kind " +
                             kindName(buf.kind));
  }
  return Status::ok();
}

} // namespace

Status verifyPlan(Plan &plan) {
  if (plan.version != kSchemaVersion)
    return invalidArgument(
        "unsupported artifact version " + std::to_string(plan.version) +
        " (this runtime reads " + std::to_string(kSchemaVersion) + ")");
  if (plan.maxBatch < 1 || plan.maxBatch > kMaxBatch)
    return invalidArgument("max_batch " + std::to_string(plan.maxBatch) +
                           " is outside [1, " + std::to_string(kMaxBatch) +
                           "]");
  if (plan.maxSeq < 1 || plan.maxSeq > kMaxSeq)
    return invalidArgument("max_seq " + std::to_string(plan.maxSeq) +
                           " is outside [1, " + std::to_string(kMaxSeq) + "]");
  if (plan.buffers.size() > (size_t(1) << 24) ||
      plan.steps.size() > (size_t(1) << 24))
    return invalidArgument("too many buffers or steps");
  MM_RETURN_IF_ERROR(checkBuffers(plan));
  MM_RETURN_IF_ERROR(checkBindings(plan));
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    StepDesc &step = plan.steps[i];
    auto it = kernelTable().find(step.kernelName);
    if (it == kernelTable().end())
      return invalidArgument("step " + std::to_string(i) +
                             ": unknown kernel '" + step.kernelName + "'");
    step.kernel = it->second.kernel;
    StepChecker checker(plan, step, i, it->second);
    MM_RETURN_IF_ERROR(checker.checkOperands());
    MM_RETURN_IF_ERROR(checker.checkKernel());
    MM_RETURN_IF_ERROR(checker.tileParams());
  }
  return Status::ok();
}

} // namespace mm
