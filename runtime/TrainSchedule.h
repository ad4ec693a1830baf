// How the CUDA backend issues a training plan beyond one launch plan per step
// (runtime/cuda/CudaTrain.cpp): which neighbouring steps share one pass and
// which adamw / grad_norm steps become multi-tensor launches. Plain C++ on the
// Plan (no CUDA), so `mm-run inspect` can print it and CI can test it on
// machines without a GPU.
#pragma once

#include "runtime/Artifact.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mm {

struct TrainSchedule {
  /// Per step: done by a neighbouring step's pass (not issued itself).
  std::vector<bool> skip;
  /// Per lm_head_loss_grad step: the loss buffer it also writes (the
  /// lm_head_loss of the same h, w, labels just before it), or -1.
  std::vector<int64_t> fusedLoss;
  /// Per adamw step: the bf16 weight it also stores (the store_param of its
  /// master just after it), or -1.
  std::vector<int64_t> fusedStore;
  /// Runs of adamw steps with the same grad_norm, lr and step inputs and the
  /// same hyper-parameters (store_param steps fused into them may sit in
  /// between): one multi-tensor launch at the first step. Runs of 2 or more.
  std::vector<std::vector<size_t>> adamGroups;
  /// Per step: the index in adamGroups of the group it leads, or -1.
  std::vector<int64_t> adamGroupOf;
  /// grad_norm steps whose gradients all have constant shapes: one
  /// multi-tensor launch over a table of them.
  std::vector<size_t> multiNorm;
  /// Per linear / linear_grad / moe step: the scaled_add step right after it
  /// that adds its (input-)gradient or output to another tensor, done by
  /// cuBLASLt's epilogue or the MoE combine (out = coef·product +
  /// other·coef'), or -1. Only when nothing else reads the product and the
  /// sum's memory does not overlap what the step reads (see fuseLinearAdd).
  std::vector<int64_t> fusedAdd;
  /// Per softmax_attention_grad step: the softmax_attention step of the same
  /// q, k, v (not rewritten in between) whose row log-sum-exp and output the
  /// executor keeps for it (kernels/args.h SoftmaxAttentionArgs::lse), or -1;
  /// savedFor is the inverse (per forward step, its gradient step or -1).
  std::vector<int64_t> savedAttention, savedFor;
  /// Per mul step i: the sigmoid_grad step i+2 when steps i, i+1, i+2 are an
  /// output gate's backward (u = dy·a, v = dy·b, w = sigmoid_grad(x, u), u
  /// read by nothing else): one pass (sigmoid_grad's "_gate" entry) at step i
  /// writes v and w; -1 otherwise (see fuseGateGrad).
  std::vector<int64_t> fusedGate;
};

/// Whether steps i, i+1, i+2 can run as one gate-backward pass (see
/// TrainSchedule::fusedGate).
bool fuseGateGrad(const Plan &plan, size_t i);

/// The operands of a gate-backward pass at mul step i: dy (the input both
/// products share), a (dy's partner in step i), b (in step i+1); false when
/// the two products share no input.
struct GateOperands {
  uint32_t dy = 0, a = 0, b = 0;
};
bool gateOperands(const Plan &plan, size_t i, GateOperands *out);

/// Whether scaled_add step `add` can be folded into linear / linear_grad step
/// `lin` (see TrainSchedule::fusedAdd).
bool fuseLinearAdd(const Plan &plan, size_t lin, size_t add);

TrainSchedule planTrainSchedule(const Plan &plan);

/// One line per fusion and multi-tensor group ("" for a plan without
/// training steps), for `mm-run inspect`.
std::string describeTrainSchedule(const Plan &plan, const TrainSchedule &s);

} // namespace mm
