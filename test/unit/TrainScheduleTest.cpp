// TrainSchedule (runtime/TrainSchedule.h): which training steps the CUDA
// backend fuses and groups, decided from the plan alone.
#include "runtime/TrainSchedule.h"
#include "test/unit/TestSupport.h"

#include <gtest/gtest.h>

namespace mm {
namespace {

using test::C;

uint32_t buffer(Plan &p, BufferKind kind, const std::string &name, DType t,
                std::vector<Dim> shape) {
  BufferDesc b;
  b.kind = kind;
  b.name = name;
  b.dtype = t;
  b.shape = std::move(shape);
  p.buffers.push_back(b);
  return static_cast<uint32_t>(p.buffers.size() - 1);
}

void step(Plan &p, Kernel k, std::vector<uint32_t> in,
          std::vector<uint32_t> out, KernelParams params = {}) {
  StepDesc s;
  s.kernel = k;
  s.inputs = std::move(in);
  s.outputs = std::move(out);
  s.params = params;
  p.steps.push_back(s);
}

TEST(TrainSchedule, FusesAndGroups) {
  Plan p;
  p.target = "sm_90a";
  const auto A = BufferKind::Activation, W = BufferKind::Weight,
             S = BufferKind::State, I = BufferKind::Input;
  const uint32_t h = buffer(p, A, "h", DType::BF16, {test::kB, test::kT, C(8)});
  const uint32_t head = buffer(p, W, "lm_head", DType::BF16, {C(16), C(8)});
  const uint32_t labels =
      buffer(p, I, "labels", DType::I32, {test::kB, test::kT});
  const uint32_t loss = buffer(p, A, "loss", DType::F32, {});
  const uint32_t dh =
      buffer(p, A, "dh", DType::BF16, {test::kB, test::kT, C(8)});
  const uint32_t g1 = buffer(p, A, "g1", DType::F32, {C(16), C(8)});
  const uint32_t g2 = buffer(p, A, "g2", DType::F32, {C(8)});
  const uint32_t gDyn = buffer(p, A, "gdyn", DType::F32, {test::kB, C(8)});
  const uint32_t norm = buffer(p, A, "norm", DType::F32, {});
  const uint32_t norm2 = buffer(p, A, "norm2", DType::F32, {});
  const uint32_t lr = buffer(p, I, "lr", DType::F32, {});
  const uint32_t lr2 = buffer(p, I, "lr2", DType::F32, {});
  const uint32_t stepIn = buffer(p, I, "step", DType::F32, {});
  const uint32_t w2 = buffer(p, W, "w2", DType::BF16, {C(8)});
  const uint32_t w3 = buffer(p, W, "w3", DType::F32, {C(8)});
  auto states = [&](const std::string &n, std::vector<Dim> shape) {
    return std::vector<uint32_t>{
        buffer(p, S, "master:" + n, DType::F32, shape),
        buffer(p, S, "adamw.m:" + n, DType::F32, shape),
        buffer(p, S, "adamw.v:" + n, DType::F32, shape)};
  };
  const auto s1 = states("lm_head", {C(16), C(8)}), s2 = states("w2", {C(8)});
  const auto s3 = states("w3", {C(8)});
  KernelParams chunk;
  chunk.chunkRows = 64;
  step(p, Kernel::LmHeadLoss, {h, head, labels}, {loss}, chunk);       // 0
  step(p, Kernel::LmHeadLossGrad, {h, head, labels}, {dh, g1}, chunk); // 1
  step(p, Kernel::GradNorm, {g1, g2}, {norm});                         // 2
  step(p, Kernel::GradNorm, {g1, gDyn}, {norm2});                      // 3
  auto adamw = [&](const std::vector<uint32_t> &st, uint32_t g, uint32_t l) {
    step(p, Kernel::AdamW, {st[0], g, st[1], st[2], norm, l, stepIn},
         {st[0], st[1], st[2]});
  };
  adamw(s1, g1, lr);                                  // 4
  step(p, Kernel::StoreParam, {s1[0], head}, {head}); // 5
  adamw(s2, g2, lr);                                  // 6
  step(p, Kernel::StoreParam, {s2[0], w2}, {w2});     // 7
  adamw(s3, g2, lr2);                                 // 8: other lr
  step(p, Kernel::StoreParam, {s3[0], w3}, {w3});     // 9: f32 weight

  const TrainSchedule t = planTrainSchedule(p);
  EXPECT_EQ(t.skip, (std::vector<bool>{true, false, false, false, false, true,
                                       true, true, false, false}));
  EXPECT_EQ(t.fusedLoss[1], static_cast<int64_t>(loss));
  EXPECT_EQ(t.fusedStore[4], static_cast<int64_t>(head));
  EXPECT_EQ(t.fusedStore[6], static_cast<int64_t>(w2));
  EXPECT_EQ(t.fusedStore[8], -1); // f32 weights keep their store_param step
  ASSERT_EQ(t.adamGroups.size(), 1u);
  EXPECT_EQ(t.adamGroups[0], (std::vector<size_t>{4, 6}));
  EXPECT_EQ(t.adamGroupOf[4], 0);
  EXPECT_EQ(t.adamGroupOf[8], -1);
  EXPECT_EQ(t.multiNorm, (std::vector<size_t>{2})); // step 3 has a [B, 8]
  const std::string d = describeTrainSchedule(p, t);
  EXPECT_NE(
      d.find("step 1 (lm_head_loss_grad) also computes the loss of step 0"),
      std::string::npos)
      << d;
  EXPECT_NE(d.find("adamw steps 4..6 (2 tensors)"), std::string::npos) << d;
}

/// An activation [B, T, n] at arena offset `at` (maxBytes set as the
/// verifier would, for B·T ≤ 64).
uint32_t act(Plan &p, const std::string &name, uint64_t at, int64_t n = 8,
             DType t = DType::BF16) {
  const uint32_t b = buffer(p, BufferKind::Activation, name, t,
                            {test::kB, test::kT, C(n)});
  p.buffers[b].offset = at;
  p.buffers[b].maxBytes = 64 * n * dtypeSize(t);
  return b;
}

TEST(TrainSchedule, FoldsScaledAddIntoLinear) {
  Plan p;
  const uint32_t w = buffer(p, BufferKind::Weight, "w", DType::BF16,
                            {C(8), C(8)});
  const uint32_t x = act(p, "x", 0), r = act(p, "r", 1024),
                 y = act(p, "y", 2048), sum = act(p, "sum", 3072),
                 dy = act(p, "dy", 4096), dx = act(p, "dx", 5120),
                 dsum = act(p, "dsum", 6144), z = act(p, "z", 7168);
  const uint32_t dw = buffer(p, BufferKind::Activation, "dw", DType::F32,
                             {C(8), C(8)});
  p.buffers[dw].offset = 8192;
  p.buffers[dw].maxBytes = 256;
  KernelParams add;
  add.alpha = 2;
  add.beta = 1;
  step(p, Kernel::Linear, {x, w}, {y});              // 0
  step(p, Kernel::ScaledAdd, {r, y}, {sum}, add);    // 1: folded into 0
  step(p, Kernel::LinearGrad, {x, w, dy}, {dx, dw}); // 2
  step(p, Kernel::ScaledAdd, {dx, r}, {dsum}, add);  // 3: folded into 2
  step(p, Kernel::Silu, {sum}, {z});                 // 4
  TrainSchedule t = planTrainSchedule(p);
  EXPECT_EQ(t.fusedAdd,
            (std::vector<int64_t>{1, -1, 3, -1, -1}));
  EXPECT_EQ(t.skip, (std::vector<bool>{false, true, false, true, false}));
  const std::string d = describeTrainSchedule(p, t);
  EXPECT_NE(d.find("1 scaled_add steps fused into the linear before them"),
            std::string::npos)
      << d;
  EXPECT_NE(d.find("1 scaled_add steps fused into the linear_grad before"),
            std::string::npos)
      << d;

  // In place on the other operand is fine.
  p.steps[1].outputs = {r};
  p.steps[4].inputs = {r};
  EXPECT_TRUE(fuseLinearAdd(p, 0, 1));
  p.steps[1].outputs = {sum};
  p.steps[4].inputs = {sum};

  // The sum would overwrite what the products still read: dy (dx, then dw),
  // x, or only partly overlap the other operand.
  p.buffers[dsum].offset = p.buffers[dy].offset + 16;
  EXPECT_FALSE(fuseLinearAdd(p, 2, 3));
  p.buffers[dsum].offset = p.buffers[x].offset;
  EXPECT_FALSE(fuseLinearAdd(p, 2, 3));
  p.buffers[dsum].offset = p.buffers[r].offset + 2;
  EXPECT_FALSE(fuseLinearAdd(p, 2, 3));
  p.buffers[dsum].offset = 6144;
  EXPECT_TRUE(fuseLinearAdd(p, 2, 3));

  // Another reader of the product keeps the product (and the scaled_add).
  p.steps[4].inputs = {y};
  EXPECT_FALSE(fuseLinearAdd(p, 0, 1));
  p.steps[4].inputs = {sum};
  // A returned product too.
  p.outputs.push_back({"y", y});
  EXPECT_FALSE(fuseLinearAdd(p, 0, 1));
  p.outputs.clear();
  // Only the step right after, and only the last-position form's absence.
  EXPECT_FALSE(fuseLinearAdd(p, 0, 3));
  p.steps[0].params.lastPosition = true;
  EXPECT_FALSE(fuseLinearAdd(p, 0, 1));
  p.steps[0].params.lastPosition = false;
  // The MoE layer's combine takes the sum too.
  {
    Plan m = p;
    m.steps[0].kernel = Kernel::Moe;
    m.steps[0].inputs = {x, w, w, w, w};
    EXPECT_TRUE(fuseLinearAdd(m, 0, 1));
    EXPECT_NE(describeTrainSchedule(m, planTrainSchedule(m))
                  .find("1 scaled_add steps fused into the moe before them"),
              std::string::npos);
  }
  // A bf16 product summed into an f32 tensor is not one cuBLASLt epilogue.
  const uint32_t r32 = act(p, "r32", 9000, 8, DType::F32);
  p.steps[1].inputs = {r32, y};
  EXPECT_FALSE(fuseLinearAdd(p, 0, 1));
}

TEST(TrainSchedule, AttentionBackwardKeepsForwardStatistics) {
  Plan p;
  const uint32_t q = act(p, "q", 0), k = act(p, "k", 1024),
                 v = act(p, "v", 2048), o = act(p, "o", 3072),
                 o2 = act(p, "o2", 4096), dO = act(p, "do", 5120),
                 dq = act(p, "dq", 6144), dk = act(p, "dk", 7168),
                 dv = act(p, "dv", 8192), y = act(p, "y", 9216);
  KernelParams a;
  a.numHeads = 2;
  a.numKvHeads = 1;
  a.headDim = 4;
  a.scale = 0.5;
  step(p, Kernel::SoftmaxAttention, {q, k, v}, {o}, a);             // 0
  step(p, Kernel::Silu, {o}, {y});                                  // 1
  step(p, Kernel::SoftmaxAttentionGrad, {q, k, v, dO}, {dq, dk, dv}, // 2
       a);
  TrainSchedule t = planTrainSchedule(p);
  EXPECT_EQ(t.savedAttention[2], 0);
  EXPECT_EQ(t.savedFor[0], 2);
  EXPECT_NE(describeTrainSchedule(p, t).find(
                "step 2 (softmax_attention_grad) reuses the row log-sum-exp "
                "and output of step 0"),
            std::string::npos);
  // Another scale, or k rewritten in between: recompute.
  p.steps[2].params.scale = 0.25;
  EXPECT_EQ(planTrainSchedule(p).savedAttention[2], -1);
  p.steps[2].params.scale = 0.5;
  p.steps[1].outputs = {k};
  EXPECT_EQ(planTrainSchedule(p).savedAttention[2], -1);
  p.steps[1].outputs = {o2};
  EXPECT_EQ(planTrainSchedule(p).savedAttention[2], 0);
}

TEST(TrainSchedule, OutputGateBackwardInOnePass) {
  Plan p;
  const uint32_t dy = act(p, "dy", 0), a = act(p, "a", 1024),
                 b = act(p, "b", 2048), x = act(p, "x", 3072),
                 u = act(p, "u", 4096), v = act(p, "v", 5120),
                 w = act(p, "w", 6144), z = act(p, "z", 7168);
  step(p, Kernel::Mul, {dy, a}, {u});        // 0: u = dy·a
  step(p, Kernel::Mul, {b, dy}, {v});        // 1: v = dy·b (dy second)
  step(p, Kernel::SigmoidGrad, {x, u}, {w}); // 2: w = sigmoid_grad(x, u)
  step(p, Kernel::Silu, {w}, {z});           // 3
  TrainSchedule t = planTrainSchedule(p);
  EXPECT_EQ(t.fusedGate, (std::vector<int64_t>{2, -1, -1, -1}));
  EXPECT_EQ(t.skip, (std::vector<bool>{false, true, true, false}));
  EXPECT_NE(describeTrainSchedule(p, t).find(
                "1 output-gate backwards (mul, mul, sigmoid_grad) run as one "
                "pass each"),
            std::string::npos);
  // w in dy's exact memory is fine (same index, same thread); shifted is not.
  p.buffers[w].offset = p.buffers[dy].offset;
  EXPECT_TRUE(fuseGateGrad(p, 0));
  p.buffers[w].offset = p.buffers[dy].offset + 256;
  EXPECT_FALSE(fuseGateGrad(p, 0));
  p.buffers[w].offset = 6144;
  // u read by another step, or no shared dy: three steps.
  p.steps[3].inputs = {u};
  EXPECT_FALSE(fuseGateGrad(p, 0));
  p.steps[3].inputs = {w};
  p.steps[1].inputs = {b, a}; // the shared operand plays dy: still u = dy·a
  EXPECT_TRUE(fuseGateGrad(p, 0));
  p.steps[1].inputs = {b, x};
  EXPECT_FALSE(fuseGateGrad(p, 0));
}

TEST(TrainSchedule, NothingForInference) {
  Plan p;
  p.buffers.push_back({BufferKind::Activation, "x", DType::F32, {C(4)}});
  step(p, Kernel::Silu, {0}, {0});
  const TrainSchedule t = planTrainSchedule(p);
  EXPECT_EQ(t.skip, std::vector<bool>{false});
  EXPECT_TRUE(t.adamGroups.empty());
  EXPECT_TRUE(t.multiNorm.empty());
  EXPECT_EQ(describeTrainSchedule(p, t), "");
}

} // namespace
} // namespace mm
