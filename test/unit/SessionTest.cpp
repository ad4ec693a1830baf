// Tests the Session: weight binding (by name, stacked {e} experts, shape and
// presence errors), input binding (B and T from the inputs, limits), memory
// refusal, and whole-model runs.
#include "runtime/Session.h"

#include "TestSupport.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

namespace mm {
namespace {

using test::C;
using test::kB;
using test::kT;
using test::pf;
using test::pi;

std::string tempPath(const std::string &name) {
  return test::tempDir() + "/mm_session_" + name;
}

std::unique_ptr<SafetensorsFile>
writeWeights(const std::string &name, const std::vector<test::StTensor> &t) {
  std::string path = tempPath(name);
  test::writeFile(path, test::safetensorsBytes(t));
  auto f = SafetensorsFile::open(path);
  EXPECT_TRUE(f.isOk()) << f.status().message();
  return std::move(f).value();
}

StatusOr<std::unique_ptr<Session>> makeSession(const Plan &plan,
                                               const SafetensorsFile &weights,
                                               SessionOptions options = {}) {
  std::vector<uint8_t> bytes = test::serializePlan(plan);
  auto loaded = parseArtifact(bytes.data(), bytes.size(), "t.mmb");
  if (!loaded.isOk())
    return loaded.status();
  return Session::create(std::move(loaded).value(), {&weights}, options);
}

NamedInput ids(const std::vector<int32_t> &v, int64_t b, int64_t t) {
  return NamedInput{"input_ids", NpyDType::I32, {b, t}, v.data()};
}

std::vector<int32_t> randomIds(size_t n, int32_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> v(n);
  for (int32_t &x : v)
    x = static_cast<int32_t>(rng() % vocab);
  return v;
}

TEST(Session, SmallPlanMatchesHandComputation) {
  test::PlanBuilder pb(2, 4);
  uint32_t in = pb.input("input_ids", DType::I32, {kB, kT});
  uint32_t x = pb.act("x", {kB, kT, C(3)});
  uint32_t n = pb.act("n", {kB, kT, C(3)});
  uint32_t l = pb.act("logits", {kB, kT, C(5)});
  pb.step("embedding", {in, pb.weight("embed", {C(5), C(3)})}, x);
  pb.step("rms_norm", {x, pb.weight("norm", {C(3)})}, n, {pf("eps", 1e-5)});
  pb.step("logits", {n, pb.weight("head", {C(5), C(3)})}, l);
  pb.output("logits", l);
  std::mt19937 rng(7);
  auto embed = test::randomValues(rng, 15), norm = test::randomValues(rng, 3),
       head = test::randomValues(rng, 15);
  auto w = writeWeights("small.safetensors",
                        {test::f32Tensor("embed", {5, 3}, embed),
                         test::f32Tensor("norm", {3}, norm),
                         test::f32Tensor("head", {5, 3}, head)});
  auto s = makeSession(pb.finish(), *w);
  ASSERT_TRUE(s.isOk()) << s.status().message();
  std::vector<int32_t> tok = {4, 0, 2};
  ASSERT_TRUE(s.value()->run({ids(tok, 1, 3)}).isOk());
  auto out = s.value()->output("logits");
  ASSERT_TRUE(out.isOk());
  EXPECT_EQ(out->shape, (std::vector<int64_t>{1, 3, 5}));
  for (int t = 0; t < 3; ++t) {
    const float *e = &embed[tok[t] * 3];
    double ms =
        (double(e[0]) * e[0] + double(e[1]) * e[1] + double(e[2]) * e[2]) / 3;
    for (int v = 0; v < 5; ++v) {
      double ref = 0;
      for (int c = 0; c < 3; ++c)
        ref += e[c] / std::sqrt(ms + 1e-5) * norm[c] * head[v * 3 + c];
      EXPECT_NEAR(out->data[t * 5 + v], ref, 1e-5 * std::abs(ref) + 1e-6);
    }
  }
}

TEST(Session, StacksExpertWeights) {
  const int64_t H = 4, E = 3, I = 5;
  test::PlanBuilder pb(1, 3);
  uint32_t x = pb.input("x", DType::F32, {kB, kT, C(H)});
  uint32_t out = pb.act("out", {kB, kT, C(H)});
  pb.step("moe",
          {x, pb.weight("gate", {C(E), C(H)}),
           pb.weight("e.{e}.w1", {C(E), C(I), C(H)}),
           pb.weight("e.{e}.w2", {C(E), C(H), C(I)}),
           pb.weight("e.{e}.w3", {C(E), C(I), C(H)})},
          out, {pi("top_k", 2)});
  pb.output("out", out);
  std::mt19937 rng(3);
  std::vector<test::StTensor> tensors;
  std::vector<float> gate = test::randomValues(rng, E * H), w1, w2, w3;
  tensors.push_back(test::f32Tensor("gate", {E, H}, gate));
  for (int e = 0; e < E; ++e) {
    auto a = test::randomValues(rng, I * H), b = test::randomValues(rng, H * I),
         c = test::randomValues(rng, I * H);
    w1.insert(w1.end(), a.begin(), a.end());
    w2.insert(w2.end(), b.begin(), b.end());
    w3.insert(w3.end(), c.begin(), c.end());
    std::string p = "e." + std::to_string(e) + ".";
    tensors.push_back(test::f32Tensor(p + "w1", {I, H}, a));
    tensors.push_back(test::f32Tensor(p + "w2", {H, I}, b));
    tensors.push_back(test::f32Tensor(p + "w3", {I, H}, c));
  }
  auto w = writeWeights("moe.safetensors", tensors);
  auto s = makeSession(pb.finish(), *w);
  ASSERT_TRUE(s.isOk()) << s.status().message();
  std::vector<float> xv = test::randomValues(rng, 3 * H);
  ASSERT_TRUE(
      s.value()->run({{"x", NpyDType::F32, {1, 3, H}, xv.data()}}).isOk());
  std::vector<float> ref(3 * H);
  cpu::Scratch scratch;
  cpu::moe(xv.data(), gate.data(), w1.data(), w2.data(), w3.data(), ref.data(),
           3, H, E, I, 2, scratch);
  auto o = s.value()->output("out");
  ASSERT_TRUE(o.isOk());
  EXPECT_EQ(std::vector<float>(o->data, o->data + 3 * H), ref);
}

class TinySession : public ::testing::Test {
protected:
  void SetUp() override {
    model_ = test::buildTinyModel();
    weights_ = writeWeights("tiny.safetensors", model_.weights);
  }
  test::TinyModel model_;
  std::unique_ptr<SafetensorsFile> weights_;
};

TEST_F(TinySession, RunsCausallyAndPerRow) {
  auto s = makeSession(model_.plan, *weights_);
  ASSERT_TRUE(s.isOk()) << s.status().message();
  Session &session = *s.value();
  const int64_t V = 32, T = 12;
  std::vector<int32_t> tok = randomIds(2 * T, 32, 11);
  ASSERT_TRUE(session.run({ids(tok, 2, T)}).isOk());
  auto full = session.output("logits");
  ASSERT_TRUE(full.isOk());
  EXPECT_EQ(full->shape, (std::vector<int64_t>{2, T, V}));
  std::vector<float> fullLogits(full->data, full->data + 2 * T * V);
  for (float v : fullLogits)
    ASSERT_TRUE(std::isfinite(v));
  // Row 1 alone, on a prefix of 7 tokens, gives the same logits: causal and
  // batch-independent.
  std::vector<int32_t> row1(tok.begin() + T, tok.begin() + T + 7);
  ASSERT_TRUE(session.run({ids(row1, 1, 7)}).isOk());
  auto part = session.output("logits");
  ASSERT_TRUE(part.isOk());
  for (int64_t i = 0; i < 7 * V; ++i)
    ASSERT_NEAR(part->data[i], fullLogits[T * V + i],
                1e-6 * std::abs(fullLogits[T * V + i]) + 1e-7)
        << i;
}

TEST_F(TinySession, RejectsBadInputs) {
  auto s = makeSession(model_.plan, *weights_);
  ASSERT_TRUE(s.isOk()) << s.status().message();
  Session &session = *s.value();
  std::vector<int32_t> tok(40, 1);
  auto expectError = [&](std::vector<NamedInput> in, const std::string &frag) {
    Status st = session.run(in);
    ASSERT_FALSE(st.isOk()) << frag;
    EXPECT_NE(st.message().find(frag), std::string::npos) << st.message();
  };
  expectError({ids(tok, 1, 13)}, "sequence length 13 is outside [1, 12]");
  expectError({ids(tok, 3, 2)}, "batch 3 is outside [1, 2]");
  expectError({}, "input 'input_ids' was not given");
  expectError({ids(tok, 1, 2), ids(tok, 1, 2)}, "given twice");
  expectError({{"labels", NpyDType::I32, {1, 2}, tok.data()}},
              "the artifact has no input 'labels' (inputs: input_ids)");
  expectError({{"input_ids", NpyDType::I32, {2}, tok.data()}},
              "expected shape [B, T] but got [2]");
  expectError({{"input_ids", NpyDType::F32, {1, 2}, tok.data()}},
              "expected i32 data but got float32");
  std::vector<int64_t> big = {1, int64_t(1) << 33};
  expectError({{"input_ids", NpyDType::I64, {1, 2}, big.data()}},
              "value 8589934592 at index 1 does not fit in int32");
  tok[3] = 32;
  expectError({ids(tok, 1, 5)}, "token id 32 at [0, 3] is outside [0, 32)");
  EXPECT_FALSE(session.output("logits").isOk()); // no successful run
  EXPECT_FALSE(session.output("nope").isOk());
}

TEST_F(TinySession, ReportsWeightErrors) {
  auto expectError = [&](std::vector<test::StTensor> tensors,
                         const std::string &frag) {
    auto w = writeWeights("bad.safetensors", tensors);
    auto s = makeSession(model_.plan, *w);
    ASSERT_FALSE(s.isOk()) << frag;
    EXPECT_NE(s.status().message().find(frag), std::string::npos)
        << s.status().message();
  };
  auto without = [&](const std::string &name) {
    std::vector<test::StTensor> t;
    for (const auto &x : model_.weights)
      if (x.name != name)
        t.push_back(x);
    return t;
  };
  expectError(without("norm.weight"), "weight 'norm.weight' is not in ");
  expectError(
      without("layers.1.block_sparse_moe.experts.3.w2.weight"),
      "weight 'layers.1.block_sparse_moe.experts.3.w2.weight' is not in");
  auto transposed = model_.weights;
  for (auto &t : transposed)
    if (t.name == "embed.weight")
      t.shape = {16, 32};
  expectError(transposed,
              "weight 'embed.weight': expected [32, 16] but file has [16, 32]");
  auto wrongExpert = model_.weights;
  for (auto &t : wrongExpert)
    if (t.name == "layers.0.block_sparse_moe.experts.2.w1.weight")
      t.shape = {4, 16, 2};
  expectError(wrongExpert, "weight 'layers.0.block_sparse_moe.experts.2.w1."
                           "weight': expected [8, 16] but file has [4, 16, 2]");
}

TEST_F(TinySession, RefusesPlansLargerThanMemory) {
  SessionOptions small;
  small.memoryLimitBytes = 1024;
  auto s = makeSession(model_.plan, *weights_, small);
  ASSERT_FALSE(s.isOk());
  EXPECT_EQ(s.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.status().message().find("only 1024 bytes"), std::string::npos);
  // An arena beyond physical memory is refused before anything is allocated.
  Plan huge = model_.plan;
  huge.arenaBytes = physicalMemoryBytes() * 2;
  std::vector<uint8_t> bytes = test::serializePlan(huge);
  auto loaded = parseArtifact(bytes.data(), bytes.size(), "huge.mmb");
  ASSERT_TRUE(loaded.isOk()) << loaded.status().message();
  auto h = Session::create(std::move(loaded).value(), {weights_.get()});
  ASSERT_FALSE(h.isOk());
  EXPECT_NE(h.status().message().find("physical memory"), std::string::npos);
}

TEST(Session, CrossEntropyWithLabelsInput) {
  test::PlanBuilder pb(2, 4);
  uint32_t logits = pb.input("logits_in", DType::F32, {kB, kT, C(6)});
  uint32_t labels = pb.input("labels", DType::I32, {kB, kT});
  uint32_t loss = pb.act("loss", {});
  pb.step("cross_entropy", {logits, labels}, loss);
  pb.output("loss", loss);
  auto w = writeWeights("none.safetensors", {});
  auto s = makeSession(pb.finish(), *w);
  ASSERT_TRUE(s.isOk()) << s.status().message();
  std::mt19937 rng(5);
  std::vector<float> l = test::randomValues(rng, 2 * 3 * 6);
  std::vector<int32_t> lab = {1, -100, 5, 0, 2, 3};
  ASSERT_TRUE(s.value()
                  ->run({{"logits_in", NpyDType::F32, {2, 3, 6}, l.data()},
                         {"labels", NpyDType::I32, {2, 3}, lab.data()}})
                  .isOk());
  auto out = s.value()->output("loss");
  ASSERT_TRUE(out.isOk());
  EXPECT_TRUE(out->shape.empty());
  float ref = NAN;
  ASSERT_TRUE(cpu::crossEntropy(l.data(), lab.data(), &ref, 6, 6, 3).isOk());
  EXPECT_EQ(out->data[0], ref);
  // B disagreeing between inputs.
  Status st = s.value()->run({{"logits_in", NpyDType::F32, {2, 3, 6}, l.data()},
                              {"labels", NpyDType::I32, {1, 3}, lab.data()}});
  EXPECT_NE(st.message().find("disagrees"), std::string::npos) << st.message();
}

} // namespace
} // namespace mm
