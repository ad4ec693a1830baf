// See TrainSchedule.h.
#include "runtime/TrainSchedule.h"

namespace mm {

TrainSchedule planTrainSchedule(const Plan &plan) {
  const size_t n = plan.steps.size();
  TrainSchedule t;
  t.skip.assign(n, false);
  t.fusedLoss.assign(n, -1);
  t.fusedStore.assign(n, -1);
  t.adamGroupOf.assign(n, -1);
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
  size_t stores = 0;
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    if (t.fusedLoss[i] >= 0)
      out += "cuda: step " + std::to_string(i) +
             " (lm_head_loss_grad) also computes the loss of step " +
             std::to_string(i - 1) + " (one logits product per chunk)\n";
    stores += t.fusedStore[i] >= 0;
  }
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
