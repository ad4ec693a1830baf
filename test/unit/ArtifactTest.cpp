// Tests artifact loading: the flatbuffers layer (identifier, verifier,
// truncation, byte flips) and the semantic check of Verify.cpp against the
// kernel catalog.
#include "runtime/Artifact.h"

#include "TestSupport.h"

#include <gtest/gtest.h>

#include <functional>

namespace mm {
namespace {

using test::C;
using test::kB;
using test::kT;
using test::pf;
using test::pi;

// embedding → rms_norm → logits, V = 10, H = 4.
Plan smallPlan() {
  test::PlanBuilder pb(2, 8);
  uint32_t ids = pb.input("input_ids", DType::I32, {kB, kT});
  uint32_t table = pb.weight("embed", {C(10), C(4)});
  uint32_t normW = pb.weight("norm", {C(4)});
  uint32_t head = pb.weight("head", {C(10), C(4)});
  uint32_t x = pb.act("x", {kB, kT, C(4)});
  uint32_t n = pb.act("n", {kB, kT, C(4)});
  uint32_t logits = pb.act("logits", {kB, kT, C(10)});
  pb.step("embedding", {ids, table}, x);
  pb.step("rms_norm", {x, normW}, n, {pf("eps", 1e-6)});
  pb.step("logits", {n, head}, logits);
  pb.output("logits", logits);
  return pb.finish();
}

StatusOr<Plan> roundTrip(const Plan &plan) {
  std::vector<uint8_t> bytes = test::serializePlan(plan);
  return parseArtifact(bytes.data(), bytes.size(), "test.mmb");
}

// Applies `mutate` to a valid plan and expects the loader to refuse it with
// `fragment`.
void expectRejected(const std::function<void(Plan &)> &mutate,
                    const std::string &fragment, Plan plan = smallPlan()) {
  mutate(plan);
  auto r = roundTrip(plan);
  ASSERT_FALSE(r.isOk()) << "expected an error containing: " << fragment;
  EXPECT_NE(r.status().message().find(fragment), std::string::npos)
      << r.status().message();
  EXPECT_EQ(r.status().message().rfind("test.mmb: ", 0), 0u)
      << r.status().message();
  EXPECT_EQ(r.status().message().find('\n'), std::string::npos);
}

TEST(Artifact, ValidPlanLoads) {
  auto r = roundTrip(smallPlan());
  ASSERT_TRUE(r.isOk()) << r.status().message();
  EXPECT_EQ(r->steps.size(), 3u);
  EXPECT_EQ(r->steps[1].kernel, Kernel::RmsNorm);
  EXPECT_DOUBLE_EQ(r->steps[1].params.eps, 1e-6);
  EXPECT_EQ(r->buffers[6].maxBytes, 2u * 8 * 10 * 4);
  EXPECT_EQ(r->findOutput("logits"), 0);
  EXPECT_EQ(r->findInput("input_ids"), 0);
}

TEST(Artifact, TinyModelLoads) {
  test::TinyModel m = test::buildTinyModel();
  auto r = roundTrip(m.plan);
  ASSERT_TRUE(r.isOk()) << r.status().message();
}

TEST(Artifact, RejectsNonArtifacts) {
  auto bad = [](std::vector<uint8_t> bytes, const std::string &frag) {
    auto r = parseArtifact(bytes.data(), bytes.size(), "x.mmb");
    ASSERT_FALSE(r.isOk());
    EXPECT_NE(r.status().message().find(frag), std::string::npos)
        << r.status().message();
  };
  bad({}, "too short");
  bad({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, "MMB1");
  std::vector<uint8_t> good = test::serializePlan(smallPlan());
  for (size_t cut : {size_t(8), size_t(16), good.size() / 2, good.size() - 1})
    bad(std::vector<uint8_t>(good.begin(), good.begin() + cut),
        cut < 8 ? "too short" : "");
  auto missing = loadArtifact(test::tempDir() + "/no_such.mmb");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

TEST(Artifact, RejectsWrongVersion) {
  expectRejected([](Plan &p) { p.version = 2; },
                 "unsupported artifact version 2");
}

TEST(Artifact, RejectsBadLimits) {
  expectRejected([](Plan &p) { p.maxSeq = 0; }, "max_seq 0");
  expectRejected([](Plan &p) { p.maxBatch = int64_t(1) << 40; }, "max_batch");
}

TEST(Artifact, RejectsOutOfRangeBufferIndex) {
  expectRejected([](Plan &p) { p.steps[1].inputs[1] = 99; },
                 "step 1 (rms_norm): input 1 refers to buffer 99");
  expectRejected([](Plan &p) { p.steps[2].outputs[0] = 7; },
                 "output refers to buffer 7");
  expectRejected([](Plan &p) { p.outputs[0].buffer = 1000; },
                 "output binding 0 'logits' refers to buffer 1000");
  expectRejected([](Plan &p) { p.inputs[0].buffer = 50; },
                 "input binding 0 'input_ids' refers to buffer 50");
}

TEST(Artifact, RejectsShapeMismatch) {
  expectRejected([](Plan &p) { p.buffers[2].shape = {C(5)}; },
                 "step 1 (rms_norm): input w (buffer 2 'norm') has shape [5]");
  expectRejected(
      [](Plan &p) {
        p.buffers[5].shape = {kB, kT, C(5)};
      },
      "step 1 (rms_norm): output");
  expectRejected(
      [](Plan &p) {
        p.buffers[6].shape = {kB, kB, C(10)};
      },
      "step 2 (logits): output");
  expectRejected(
      [](Plan &p) {
        p.buffers[0].shape = {kB, kT, C(1)};
      },
      "must have rank 2");
  expectRejected([](Plan &p) { p.buffers[0].dtype = DType::F32; },
                 "input ids (buffer 0 'input_ids') must be i32 but is f32");
  expectRejected(
      [](Plan &p) {
        p.buffers[4].shape[2] = Dim{DimKind::Seq, 3};
      },
      "symbolic but has value 3");
  expectRejected([](Plan &p) { p.buffers[1].shape[0] = kB; },
                 "weight shape [B, 4] must be constant");
  expectRejected([](Plan &p) { p.buffers[1].shape[0] = C(0); }, "dim 0 is 0");
}

TEST(Artifact, RejectsBufferPastArena) {
  expectRejected([](Plan &p) { p.arenaBytes -= 4; },
                 "buffer 6 'logits': 640 bytes at arena offset");
  expectRejected([](Plan &p) { p.buffers[4].offset = ~uint64_t(0) - 63; },
                 "past arena_bytes");
  expectRejected([](Plan &p) { p.buffers[4].offset = 2; }, "not aligned");
}

TEST(Artifact, RejectsBadSteps) {
  expectRejected([](Plan &p) { p.steps[0].kernelName = "conv"; },
                 "step 0: unknown kernel 'conv'");
  expectRejected([](Plan &p) { p.steps[1].rawParams.clear(); },
                 "step 1 (rms_norm): missing real param 'eps'");
  expectRejected([](Plan &p) { p.steps[1].rawParams[0].f = -1; },
                 "param 'eps'");
  expectRejected([](Plan &p) { p.steps[2].inputs.pop_back(); },
                 "expects 2 inputs but has 1");
  expectRejected([](Plan &p) { p.steps[2].outputs[0] = 3; },
                 "is of kind weight; steps may only write activations");
  expectRejected([](Plan &p) { p.steps[2].outputs[0] = 5; },
                 "overlaps input x");
}

// smallPlan plus a bf16 weight and its fp32 master, stored by store_param.
Plan storeParamPlan() {
  Plan p = smallPlan();
  const uint32_t w = p.buffers.size(), master = w + 1;
  p.buffers.push_back({BufferKind::Weight, "w", DType::BF16, {C(4)}});
  p.buffers.push_back({BufferKind::State, "master:w", DType::F32, {C(4)}});
  StepDesc s;
  s.kernelName = "store_param";
  s.inputs = {master, w};
  s.outputs = {w};
  p.steps.push_back(s);
  return p;
}

TEST(Artifact, ChecksStoreParam) {
  auto r = roundTrip(storeParamPlan());
  ASSERT_TRUE(r.isOk()) << r.status().message();
  EXPECT_EQ(r->steps.back().kernel, Kernel::StoreParam);
  expectRejected([](Plan &p) { p.steps.back().outputs = {1}; },
                 "must be input param (buffer 7 'w'): the update runs in place",
                 storeParamPlan());
  expectRejected([](Plan &p) { p.buffers[8].kind = BufferKind::Weight; },
                 "input master (buffer 8 'master:w') must be a state buffer",
                 storeParamPlan());
  expectRejected([](Plan &p) { p.buffers[8].shape = {C(5)}; }, "has shape [5]",
                 storeParamPlan());
}

TEST(Artifact, RejectsBadBindings) {
  expectRejected([](Plan &p) { p.inputs[0].buffer = 4; },
                 "refers to buffer 4 'x' of kind activation");
  expectRejected([](Plan &p) { p.inputs.clear(); },
                 "is an input but no binding names it");
  expectRejected([](Plan &p) { p.outputs.push_back(p.outputs[0]); },
                 "bound twice");
  expectRejected([](Plan &p) { p.outputs[0].buffer = 1; },
                 "must name an f32 activation");
}

// Kernel-specific parameter rules, each on a one-step plan.
Plan oneStep(const std::string &kernel, std::vector<std::vector<Dim>> ins,
             std::vector<Dim> out, std::vector<RawParam> params,
             std::vector<bool> weights = {}) {
  test::PlanBuilder pb(2, 8);
  std::vector<uint32_t> idx;
  for (size_t i = 0; i < ins.size(); ++i)
    idx.push_back(i < weights.size() && weights[i]
                      ? pb.weight("w" + std::to_string(i), ins[i])
                      : pb.act("a" + std::to_string(i), ins[i]));
  uint32_t o = pb.act("out", out);
  pb.step(kernel, idx, o, params);
  pb.output("out", o);
  return pb.finish();
}

TEST(Artifact, ChecksKernelParams) {
  auto rope = [](int64_t heads, int64_t dim, int64_t rot) {
    return oneStep("rope", {{kB, kT, C(16)}}, {kB, kT, C(16)},
                   {pi("head_dim", dim), pi("num_heads", heads),
                    pi("rotary_dim", rot), pf("theta", 1e4)});
  };
  EXPECT_TRUE(roundTrip(rope(2, 8, 4)).isOk());
  expectRejected([](Plan &) {}, "must be even", rope(2, 8, 3));
  expectRejected([](Plan &) {}, "param 'rotary_dim' is 10", rope(2, 8, 10));
  expectRejected([](Plan &) {}, "num_heads * head_dim", rope(4, 8, 4));

  auto moe = [](int64_t topK) {
    return oneStep("moe",
                   {{kB, kT, C(4)},
                    {C(3), C(4)},
                    {C(3), C(6), C(4)},
                    {C(3), C(4), C(6)},
                    {C(3), C(6), C(4)}},
                   {kB, kT, C(4)}, {pi("top_k", topK)},
                   {false, true, true, true, true});
  };
  EXPECT_TRUE(roundTrip(moe(3)).isOk());
  expectRejected([](Plan &) {}, "param 'top_k' is 4 but must be in [1, 3]",
                 moe(4));
  expectRejected(
      [](Plan &p) {
        p.buffers[3].shape = {C(3), C(6), C(4)};
      },
      "input w2", moe(2));

  auto lightning = [](int64_t layer, int64_t layers) {
    return oneStep("lightning_attention", {{kB, kT, C(48)}}, {kB, kT, C(16)},
                   {pi("block_size", 4), pi("head_dim", 8),
                    pi("layer_index", layer), pi("num_heads", 2),
                    pi("num_layers", layers)});
  };
  EXPECT_TRUE(roundTrip(lightning(1, 2)).isOk());
  expectRejected([](Plan &) {}, "param 'layer_index' is 2", lightning(2, 2));
  expectRejected([](Plan &p) { p.steps[0].rawParams[0].i = 0; },
                 "param 'block_size' is 0", lightning(0, 2));

  auto attention = [](int64_t heads, int64_t kvHeads) {
    return oneStep("softmax_attention",
                   {{kB, kT, C(heads * 4)},
                    {kB, kT, C(kvHeads * 4)},
                    {kB, kT, C(kvHeads * 4)}},
                   {kB, kT, C(heads * 4)},
                   {pi("head_dim", 4), pi("num_heads", heads),
                    pi("num_kv_heads", kvHeads), pf("scale", 0.5)});
  };
  EXPECT_TRUE(roundTrip(attention(4, 2)).isOk());
  expectRejected([](Plan &) {}, "must be a multiple", attention(3, 2));
  expectRejected([](Plan &) {}, "param 'num_kv_heads' is 4", attention(2, 4));

  auto ce = oneStep("cross_entropy", {{kB, kT, C(10)}, {kB, kT}}, {}, {});
  expectRejected([](Plan &) {}, "input labels (buffer 1 'a1') must be i32", ce);
  ce.buffers[1].dtype = DType::I32;
  auto ceOk = roundTrip(ce);
  EXPECT_TRUE(ceOk.isOk()) << ceOk.status().message();
}

// Every single-byte corruption of a valid artifact either loads or is refused;
// none crashes.
TEST(Artifact, SurvivesEveryByteFlip) {
  const std::vector<uint8_t> good =
      test::serializePlan(test::buildTinyModel().plan);
  size_t refused = 0, loaded = 0;
  for (size_t i = 0; i < good.size(); ++i)
    for (uint8_t x : {uint8_t(0x01), uint8_t(0x80), uint8_t(0xff)}) {
      std::vector<uint8_t> bytes = good;
      bytes[i] ^= x;
      auto r = parseArtifact(bytes.data(), bytes.size(), "flip.mmb");
      (r.isOk() ? loaded : refused) += 1;
      if (!r.isOk()) {
        EXPECT_EQ(r.status().message().find('\n'), std::string::npos);
      }
    }
  EXPECT_GT(refused, 0u);
  RecordProperty("loaded", static_cast<int>(loaded));
}

} // namespace
} // namespace mm
