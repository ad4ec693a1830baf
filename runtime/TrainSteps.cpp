// Session support for training plans: optimizer state storage, access to the
// persistent tensors for checkpoints, the NaN/Inf check, and the dispatch of
// the training kernels of docs/kernels.md to the CPU backend.
#include "runtime/Session.h"
#include "runtime/cpu/TrainKernels.h"

#include <cmath>
#include <cstring>
#include <map>

namespace mm {

uint64_t PersistentTensor::numElements() const {
  uint64_t n = 1;
  for (int64_t d : shape)
    n *= static_cast<uint64_t>(d);
  return n;
}

Status Session::allocateStates() {
  std::map<std::string, size_t> offsets;
  std::vector<size_t> bufferOffset(plan_.buffers.size(), 0);
  size_t total = 0;
  for (size_t i = 0; i < plan_.buffers.size(); ++i) {
    const BufferDesc &b = plan_.buffers[i];
    if (b.kind != BufferKind::State)
      continue;
    auto [it, inserted] = offsets.emplace(b.name + formatShape(b.shape), total);
    bufferOffset[i] = it->second;
    if (inserted)
      total += b.maxBytes / sizeof(float);
  }
  if (total == 0)
    return Status::ok();
  stateStorage_.reset(new float[total]());
  for (size_t i = 0; i < plan_.buffers.size(); ++i)
    if (plan_.buffers[i].kind == BufferKind::State)
      bufferData_[i] = stateStorage_.get() + bufferOffset[i];
  for (const StepDesc &step : plan_.steps)
    if (step.kernel == Kernel::StoreParam)
      std::memcpy(bufferData_[step.inputs[0]], bufferData_[step.inputs[1]],
                  plan_.buffers[step.inputs[0]].maxBytes);
  return Status::ok();
}

std::vector<PersistentTensor> Session::persistentTensors() {
  std::vector<PersistentTensor> out;
  std::map<const void *, bool> seen;
  for (size_t i = 0; i < plan_.buffers.size(); ++i) {
    const BufferDesc &b = plan_.buffers[i];
    if (b.kind != BufferKind::Weight && b.kind != BufferKind::State)
      continue;
    if (!seen.emplace(bufferData_[i], true).second)
      continue;
    out.push_back({b.name, b.kind, resolveShape(b.shape, 1, 1),
                   static_cast<float *>(bufferData_[i])});
  }
  return out;
}

Status Session::checkStepFinite(size_t index) const {
  const StepDesc &step = plan_.steps[index];
  for (uint32_t o : step.outputs) {
    const BufferDesc &b = plan_.buffers[o];
    if (b.dtype != DType::F32)
      continue;
    const float *d = static_cast<const float *>(bufferData_[o]);
    const int64_t n = shapes_[o].elements;
    for (int64_t j = 0; j < n; ++j)
      if (!std::isfinite(d[j]))
        return outOfRange(nonFiniteMessage(plan_, step, b, d[j], j));
  }
  return Status::ok();
}

Status Session::runTrainStep(size_t index) {
  const StepDesc &step = plan_.steps[index];
  const KernelParams &p = step.params;
  const auto &in = step.inputs;
  const auto &outs = step.outputs;
  auto f = [&](uint32_t buffer) {
    return static_cast<const float *>(bufferData_[buffer]);
  };
  auto w = [&](uint32_t buffer) {
    return static_cast<float *>(bufferData_[buffer]);
  };
  auto i32 = [&](uint32_t buffer) {
    return static_cast<const int32_t *>(bufferData_[buffer]);
  };
  auto dims = [&](uint32_t buffer) -> const std::array<int64_t, kMaxRank> & {
    return shapes_[buffer].dims;
  };
  auto elems = [&](uint32_t buffer) { return shapes_[buffer].elements; };
  const std::array<int64_t, kMaxRank> &x = dims(in[0]);
  switch (step.kernel) {
  case Kernel::EmbeddingGrad: {
    const std::array<int64_t, kMaxRank> &table = dims(outs[0]);
    return cpu::embeddingGrad(i32(in[0]), f(in[1]), w(outs[0]), x[0] * x[1],
                              table[0], table[1], x[1]);
  }
  case Kernel::RmsNormGrad:
    cpu::rmsNormGrad(f(in[0]), f(in[1]), f(in[2]), w(outs[0]), w(outs[1]),
                     x[0] * x[1], x[2], p.eps, scratch_);
    return Status::ok();
  case Kernel::LinearGrad:
    cpu::linearGrad(f(in[0]), f(in[1]), f(in[2]), w(outs[0]), w(outs[1]),
                    x[0] * x[1], x[2], dims(in[1])[0], scratch_);
    return Status::ok();
  case Kernel::SiluGrad:
    cpu::siluGrad(f(in[0]), f(in[1]), w(outs[0]), elems(in[0]));
    return Status::ok();
  case Kernel::SigmoidGrad:
    cpu::sigmoidGrad(f(in[0]), f(in[1]), w(outs[0]), elems(in[0]));
    return Status::ok();
  case Kernel::RopeGrad:
    cpu::ropeGrad(f(in[0]), w(outs[0]), x[0], x[1], p.numHeads, p.headDim,
                  p.rotaryDim, p.theta, scratch_);
    return Status::ok();
  case Kernel::LightningAttentionGrad:
    cpu::lightningAttentionGrad(f(in[0]), f(in[1]), w(outs[0]), x[0], x[1],
                                p.numHeads, p.headDim, p.blockSize,
                                p.layerIndex, p.numLayers, scratch_);
    return Status::ok();
  case Kernel::SoftmaxAttentionGrad:
    cpu::softmaxAttentionGrad(f(in[0]), f(in[1]), f(in[2]), f(in[3]),
                              w(outs[0]), w(outs[1]), w(outs[2]), x[0], x[1],
                              p.numHeads, p.numKvHeads, p.headDim, p.scale,
                              scratch_);
    return Status::ok();
  case Kernel::MoeGrad: {
    const std::array<int64_t, kMaxRank> &w1 = dims(in[2]);
    cpu::moeGrad(f(in[0]), f(in[1]), f(in[2]), f(in[3]), f(in[4]), f(in[5]),
                 w(outs[0]), w(outs[1]), w(outs[2]), w(outs[3]), w(outs[4]),
                 x[0] * x[1], x[2], w1[0], w1[1], p.topK, scratch_);
    return Status::ok();
  }
  case Kernel::LmHeadLoss:
    return cpu::lmHeadLoss(f(in[0]), f(in[1]), i32(in[2]), w(outs[0]),
                           x[0] * x[1], x[2], dims(in[1])[0], x[1], p.chunkRows,
                           scratch_);
  case Kernel::LmHeadLossGrad:
    return cpu::lmHeadLossGrad(f(in[0]), f(in[1]), i32(in[2]), w(outs[0]),
                               w(outs[1]), x[0] * x[1], x[2], dims(in[1])[0],
                               x[1], p.chunkRows, scratch_);
  case Kernel::GradNorm: {
    double ss = 0;
    for (uint32_t g : in)
      ss += cpu::sumSquares(f(g), elems(g));
    *w(outs[0]) = static_cast<float>(std::sqrt(ss));
    return Status::ok();
  }
  case Kernel::AdamW: {
    cpu::AdamWParams a;
    a.lr = *f(in[5]);
    a.step = *f(in[6]);
    if (!(a.step >= 1))
      return invalidArgument("adamw: input 'step' must be >= 1 but is " +
                             std::to_string(a.step));
    a.beta1 = p.beta1;
    a.beta2 = p.beta2;
    a.eps = p.eps;
    a.weightDecay = p.weightDecay;
    a.gradScale = cpu::clipFactor(*f(in[4]), p.maxNorm);
    cpu::adamw(w(in[0]), f(in[1]), w(in[2]), w(in[3]), elems(in[0]), a);
    return Status::ok();
  }
  case Kernel::Came:
  case Kernel::CameVector: {
    cpu::CameParams c;
    const bool vec = step.kernel == Kernel::CameVector;
    c.lr = *f(in[vec ? 5 : 8]);
    c.beta1 = p.beta1;
    c.beta2 = p.beta2;
    c.beta3 = p.beta3;
    c.eps1 = p.eps;
    c.eps2 = p.eps2;
    c.clipThreshold = p.clipThreshold;
    c.weightDecay = p.weightDecay;
    c.gradScale = cpu::clipFactor(*f(in[vec ? 4 : 7]), p.maxNorm);
    if (vec) {
      cpu::cameVector(w(in[0]), f(in[1]), w(in[2]), w(in[3]), elems(in[0]), c);
      return Status::ok();
    }
    const size_t rank = plan_.buffers[in[0]].shape.size();
    const std::array<int64_t, kMaxRank> &d = dims(in[0]);
    const int64_t rows = d[rank - 2], cols = d[rank - 1];
    cpu::cameFactored(w(in[0]), f(in[1]), w(in[2]), w(in[3]), w(in[4]),
                      w(in[5]), w(in[6]), elems(in[0]) / (rows * cols), rows,
                      cols, c, scratch_);
    return Status::ok();
  }
  case Kernel::StoreParam:
    // Session::run rounds the bf16 weight after the step (nearest even).
    std::memcpy(w(outs[0]), f(in[0]), elems(in[0]) * sizeof(float));
    return Status::ok();
  default:
    return internalError("unhandled kernel " + step.kernelName);
  }
}

} // namespace mm
