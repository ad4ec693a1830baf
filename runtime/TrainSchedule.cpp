// See TrainSchedule.h.
#include "runtime/TrainSchedule.h"

#include <algorithm>

namespace mm {
namespace {

/// Activations whose arena ranges intersect (weights, inputs and states have
/// their own allocations, so they overlap only themselves).
bool overlaps(const Plan &plan, uint32_t a, uint32_t b) {
  if (a == b)
    return true;
  const BufferDesc &x = plan.buffers[a], &y = plan.buffers[b];
  if (x.kind != BufferKind::Activation || y.kind != BufferKind::Activation)
    return false;
  return x.offset < y.offset + y.maxBytes && y.offset < x.offset + x.maxBytes;
}

/// An output that an elementwise pass (or cuBLASLt's C → D epilogue) writes
/// while reading `b` at the same index: b's exact memory, or apart; never a
/// shifted overlap.
bool exactOrApart(const Plan &plan, uint32_t a, uint32_t b) {
  if (!overlaps(plan, a, b))
    return true;
  const BufferDesc &x = plan.buffers[a], &y = plan.buffers[b];
  return a == b || (x.offset == y.offset && x.maxBytes == y.maxBytes);
}

/// Whether only step `step` reads buffer b (and the plan does not return it).
bool readOnlyBy(const Plan &plan, uint32_t b, size_t step) {
  for (size_t i = 0; i < plan.steps.size(); ++i)
    for (uint32_t in : plan.steps[i].inputs)
      if (in == b && i != step)
        return false;
  for (const Binding &o : plan.outputs)
    if (o.buffer == b)
      return false;
  return true;
}

} // namespace

bool gateOperands(const Plan &plan, size_t i, GateOperands *out) {
  const std::vector<uint32_t> &p1 = plan.steps[i].inputs,
                              &p2 = plan.steps[i + 1].inputs;
  for (int p = 0; p < 2; ++p)
    for (int q = 0; q < 2; ++q)
      if (p1[p] == p2[q]) {
        *out = {p1[p], p1[1 - p], p2[1 - q]};
        return true;
      }
  return false;
}

bool fuseGateGrad(const Plan &plan, size_t i) {
  if (i + 2 >= plan.steps.size())
    return false;
  const StepDesc &m1 = plan.steps[i], &m2 = plan.steps[i + 1],
                 &g = plan.steps[i + 2];
  if (m1.kernel != Kernel::Mul || m2.kernel != Kernel::Mul ||
      g.kernel != Kernel::SigmoidGrad || m1.inputs.size() != 2 ||
      m2.inputs.size() != 2 || g.inputs.size() != 2)
    return false;
  const uint32_t u = m1.outputs[0], v = m2.outputs[0], w = g.outputs[0];
  if (g.inputs[1] != u || !readOnlyBy(plan, u, i + 2))
    return false;
  GateOperands o;
  if (!gateOperands(plan, i, &o))
    return false;
  const uint32_t dy = o.dy, a = o.a, b = o.b, x = g.inputs[0];
  const DType t = plan.buffers[dy].dtype;
  for (uint32_t buf : {a, b, x, u, v, w})
    if (plan.buffers[buf].dtype != t)
      return false;
  for (uint32_t o : {v, w})
    for (uint32_t r : {dy, a, b, x})
      if (!exactOrApart(plan, o, r))
        return false;
  return !overlaps(plan, v, w);
}

bool fuseLinearAdd(const Plan &plan, size_t lin, size_t add) {
  const StepDesc &l = plan.steps[lin], &s = plan.steps[add];
  if ((l.kernel != Kernel::Linear && l.kernel != Kernel::LinearGrad &&
       l.kernel != Kernel::Moe) ||
      l.params.lastPosition || s.kernel != Kernel::ScaledAdd ||
      s.inputs.size() != 2)
    return false;
  const uint32_t prod = l.outputs[0], sum = s.outputs[0];
  const int which = s.inputs[0] == prod ? 0 : s.inputs[1] == prod ? 1 : -1;
  if (which < 0 || s.inputs[0] == s.inputs[1])
    return false;
  const uint32_t other = s.inputs[1 - which];
  for (uint32_t o : l.outputs)
    if (o == other)
      return false;
  const BufferDesc &pb = plan.buffers[prod];
  if (pb.kind != BufferKind::Activation ||
      plan.buffers[sum].dtype != pb.dtype ||
      plan.buffers[other].dtype != pb.dtype ||
      (l.kernel != Kernel::LinearGrad &&
       plan.buffers[l.inputs[0]].dtype != pb.dtype))
    return false;
  // Nothing but the scaled_add reads the product (it is never written).
  if (!readOnlyBy(plan, prod, add))
    return false;
  // cuBLASLt reads `other` while writing `sum`: the same memory (in place) or
  // apart. The products' operands are read while `sum` is written, and the
  // weight gradient of linear_grad after it.
  if (!exactOrApart(plan, sum, other))
    return false;
  for (uint32_t b : l.inputs)
    if (overlaps(plan, sum, b))
      return false;
  for (size_t o = 1; o < l.outputs.size(); ++o)
    if (overlaps(plan, sum, l.outputs[o]))
      return false;
  return true;
}

TrainSchedule planTrainSchedule(const Plan &plan) {
  const size_t n = plan.steps.size();
  TrainSchedule t;
  t.skip.assign(n, false);
  t.fusedLoss.assign(n, -1);
  t.fusedStore.assign(n, -1);
  t.adamGroupOf.assign(n, -1);
  t.fusedAdd.assign(n, -1);
  t.fusedGate.assign(n, -1);
  for (size_t i = 0; i + 2 < n; ++i)
    if (fuseGateGrad(plan, i)) {
      t.fusedGate[i] = static_cast<int64_t>(i + 2);
      t.skip[i + 1] = t.skip[i + 2] = true;
      i += 2;
    }
  t.savedAttention.assign(n, -1);
  t.savedFor.assign(n, -1);
  for (size_t j = 0; j < n; ++j) {
    const StepDesc &g = plan.steps[j];
    if (g.kernel != Kernel::SoftmaxAttentionGrad)
      continue;
    for (size_t i = j; i-- > 0;) {
      const StepDesc &f = plan.steps[i];
      bool rewritten = false;
      for (uint32_t o : f.outputs)
        for (size_t q = 0; q < 3; ++q)
          rewritten = rewritten || o == g.inputs[q];
      if (f.kernel == Kernel::SoftmaxAttention && t.savedFor[i] < 0 &&
          std::equal(f.inputs.begin(), f.inputs.end(), g.inputs.begin()) &&
          f.params.numHeads == g.params.numHeads &&
          f.params.numKvHeads == g.params.numKvHeads &&
          f.params.headDim == g.params.headDim &&
          f.params.scale == g.params.scale) {
        t.savedAttention[j] = static_cast<int64_t>(i);
        t.savedFor[i] = static_cast<int64_t>(j);
        break;
      }
      if (rewritten)
        break;
    }
  }
  for (size_t i = 0; i + 1 < n; ++i)
    if (fuseLinearAdd(plan, i, i + 1)) {
      t.fusedAdd[i] = static_cast<int64_t>(i + 1);
      t.skip[i + 1] = true;
      ++i;
    }
  for (size_t i = 1; i < n; ++i) {
    const StepDesc &s = plan.steps[i], &prev = plan.steps[i - 1];
    // lm_head_loss then lm_head_loss_grad of the same h, w, labels: one pass.
    if (s.kernel == Kernel::LmHeadLossGrad &&
        prev.kernel == Kernel::LmHeadLoss && prev.inputs == s.inputs &&
        prev.params.chunkRows == s.params.chunkRows) {
      t.fusedLoss[i] = prev.outputs[0];
      t.skip[i - 1] = true;
    }
    // adamw then store_param of its master into a bf16 weight: one pass.
    if (s.kernel == Kernel::StoreParam && prev.kernel == Kernel::AdamW &&
        prev.inputs[0] == s.inputs[0] &&
        plan.buffers[s.inputs[1]].dtype == DType::BF16) {
      t.fusedStore[i - 1] = s.inputs[1];
      t.skip[i] = true;
    }
  }
  auto same = [&](const StepDesc &a, const StepDesc &b) {
    const KernelParams &x = a.params, &y = b.params;
    return a.inputs[4] == b.inputs[4] && a.inputs[5] == b.inputs[5] &&
           a.inputs[6] == b.inputs[6] && x.beta1 == y.beta1 &&
           x.beta2 == y.beta2 && x.eps == y.eps &&
           x.weightDecay == y.weightDecay && x.maxNorm == y.maxNorm;
  };
  for (size_t i = 0; i < n; ++i) {
    if (plan.steps[i].kernel != Kernel::AdamW)
      continue;
    std::vector<size_t> group = {i};
    size_t j = i + 1;
    for (; j < n; ++j) {
      const StepDesc &s = plan.steps[j];
      if (s.kernel == Kernel::StoreParam && t.skip[j])
        continue; // fused into the adamw before it
      if (s.kernel != Kernel::AdamW || !same(plan.steps[i], s))
        break;
      group.push_back(j);
    }
    if (group.size() > 1) {
      for (size_t k = 1; k < group.size(); ++k)
        t.skip[group[k]] = true;
      t.adamGroupOf[i] = static_cast<int64_t>(t.adamGroups.size());
      t.adamGroups.push_back(std::move(group));
    }
    i = j - 1;
  }
  for (size_t i = 0; i < n; ++i) {
    if (plan.steps[i].kernel != Kernel::GradNorm)
      continue;
    bool constant = true;
    for (uint32_t g : plan.steps[i].inputs)
      for (const Dim &d : plan.buffers[g].shape)
        constant = constant && d.kind == DimKind::Const;
    if (constant)
      t.multiNorm.push_back(i);
  }
  return t;
}

std::string describeTrainSchedule(const Plan &plan, const TrainSchedule &t) {
  std::string out;
  size_t stores = 0, adds[3] = {0, 0, 0};
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    if (t.fusedAdd[i] >= 0)
      ++adds[plan.steps[i].kernel == Kernel::LinearGrad ? 1
             : plan.steps[i].kernel == Kernel::Moe      ? 2
                                                        : 0];
    if (t.fusedLoss[i] >= 0)
      out += "cuda: step " + std::to_string(i) +
             " (lm_head_loss_grad) also computes the loss of step " +
             std::to_string(i - 1) + " (one logits product per chunk)\n";
    stores += t.fusedStore[i] >= 0;
  }
  for (size_t j = 0; j < plan.steps.size(); ++j)
    if (t.savedAttention[j] >= 0)
      out += "cuda: step " + std::to_string(j) +
             " (softmax_attention_grad) reuses the row log-sum-exp and output "
             "of step " +
             std::to_string(t.savedAttention[j]) + "\n";
  size_t gates = 0;
  for (int64_t g : t.fusedGate)
    gates += g >= 0;
  if (gates)
    out += "cuda: " + std::to_string(gates) +
           " output-gate backwards (mul, mul, sigmoid_grad) run as one pass "
           "each\n";
  if (adds[0])
    out += "cuda: " + std::to_string(adds[0]) +
           " scaled_add steps fused into the linear before them (cuBLASLt "
           "epilogue)\n";
  if (adds[1])
    out += "cuda: " + std::to_string(adds[1]) +
           " scaled_add steps fused into the linear_grad before them "
           "(cuBLASLt epilogue)\n";
  if (adds[2])
    out += "cuda: " + std::to_string(adds[2]) +
           " scaled_add steps fused into the moe before them (its combine)\n";
  if (stores)
    out += "cuda: " + std::to_string(stores) +
           " store_param steps fused into the adamw before them\n";
  for (const std::vector<size_t> &g : t.adamGroups)
    out += "cuda: adamw steps " + std::to_string(g.front()) + ".." +
           std::to_string(g.back()) + " (" + std::to_string(g.size()) +
           " tensors) run as one multi-tensor launch\n";
  for (size_t i : t.multiNorm)
    out += "cuda: step " + std::to_string(i) + " (grad_norm over " +
           std::to_string(plan.steps[i].inputs.size()) +
           " gradients) runs as one multi-tensor launch\n";
  return out;
}

} // namespace mm
