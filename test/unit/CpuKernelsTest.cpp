// Numeric tests of the CPU reference kernels against naive float64
// implementations written here from docs/kernels.md. Inputs are random and
// never zero; outputs are poisoned with NaN first.
#include "runtime/cpu/CpuKernels.h"

#include "TestSupport.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace mm::cpu {
namespace {

std::mt19937 &rng() {
  static std::mt19937 r(1234);
  return r;
}

std::vector<float> rnd(size_t n, float scale = 1.0f) {
  return test::randomValues(rng(), n, scale);
}

std::vector<float> poisoned(size_t n) {
  return std::vector<float>(n, std::numeric_limits<float>::quiet_NaN());
}

// ‖out − ref‖ / ‖ref‖; NaN anywhere (an unwritten element) makes it NaN.
double relError(const std::vector<float> &out, const std::vector<double> &ref) {
  EXPECT_EQ(out.size(), ref.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    num += (out[i] - ref[i]) * (out[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / den);
}

#define EXPECT_CLOSE(out, ref)                                                 \
  do {                                                                         \
    double e_ = relError(out, ref);                                            \
    EXPECT_TRUE(e_ <= 1e-6) << "relative error " << e_;                        \
  } while (0)

// Per-token recurrence: KV = exp(-s) KV + kᵀv; o = q KV.
std::vector<double> naiveLightning(const std::vector<float> &qkv, int64_t B,
                                   int64_t T, int64_t H, int64_t D,
                                   int64_t layer, int64_t L) {
  std::vector<double> out(B * T * H * D);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      double s = std::pow(std::pow(2.0, -8.0 / H), h + 1) *
                 (1 - double(layer) / (L - 1 + 1e-5) + 1e-5);
      std::vector<double> kv(D * D, 0.0);
      for (int64_t t = 0; t < T; ++t) {
        const float *q = &qkv[(b * T + t) * H * 3 * D + h * 3 * D];
        const float *k = q + D, *v = q + 2 * D;
        for (int64_t r = 0; r < D; ++r)
          for (int64_t c = 0; c < D; ++c)
            kv[r * D + c] = std::exp(-s) * kv[r * D + c] + double(k[r]) * v[c];
        for (int64_t c = 0; c < D; ++c) {
          double o = 0;
          for (int64_t r = 0; r < D; ++r)
            o += q[r] * kv[r * D + c];
          out[(b * T + t) * H * D + h * D + c] = o;
        }
      }
    }
  return out;
}

TEST(CpuKernels, LightningBlockwiseMatchesRecurrence) {
  const int64_t B = 2, T = 11, H = 3, D = 5, L = 4;
  Scratch scratch;
  for (int64_t layer : {0, 2, 3}) {
    std::vector<float> qkv = rnd(B * T * H * 3 * D);
    std::vector<double> ref = naiveLightning(qkv, B, T, H, D, layer, L);
    // T = 11 is not a multiple of 4 or 3; block 1 and block ≥ T are the
    // extremes.
    for (int64_t block : {1, 3, 4, 16}) {
      std::vector<float> out = poisoned(B * T * H * D);
      lightningAttention(qkv.data(), out.data(), B, T, H, D, block, layer, L,
                         scratch);
      EXPECT_CLOSE(out, ref);
    }
  }
}

// The fused kernels of mm-fuse equal the unfused chains they replace.
TEST(CpuKernels, FusedKernelsMatchTheirChains) {
  const int64_t rows = 7, n = 13;
  std::vector<float> a = rnd(rows * n), b = rnd(rows * n), w = rnd(n);
  std::vector<float> sum(rows * n), chain(rows * n), fused = poisoned(rows * n);
  scaledAdd(a.data(), b.data(), sum.data(), rows * n, 1.3, 0.9);
  rmsNorm(sum.data(), w.data(), chain.data(), rows, n, 1e-5);
  addRmsNorm(a.data(), b.data(), w.data(), fused.data(), rows, n, 1.3, 0.9,
             1e-5);
  EXPECT_CLOSE(fused, std::vector<double>(chain.begin(), chain.end()));

  std::vector<float> gate(rows * n);
  sigmoid(a.data(), gate.data(), rows * n);
  mul(gate.data(), b.data(), chain.data(), rows * n);
  fused = poisoned(rows * n);
  sigmoidMul(a.data(), b.data(), fused.data(), rows * n);
  EXPECT_CLOSE(fused, std::vector<double>(chain.begin(), chain.end()));

  const int64_t B = 2, T = 9, H = 2, D = 4;
  std::vector<float> qkv = rnd(B * T * H * 3 * D), act(qkv.size());
  silu(qkv.data(), act.data(), static_cast<int64_t>(qkv.size()));
  Scratch scratch;
  std::vector<float> unfused(B * T * H * D);
  lightningAttention(act.data(), unfused.data(), B, T, H, D, 4, 1, 3, scratch);
  fused = poisoned(B * T * H * D);
  lightningAttention(qkv.data(), fused.data(), B, T, H, D, 4, 1, 3, scratch,
                     /*siluInput=*/true);
  EXPECT_CLOSE(fused, std::vector<double>(unfused.begin(), unfused.end()));
}

TEST(CpuKernels, LightningDecayFormula) {
  // s_h = (2^(-8/H))^(h+1) * (1 - l/(L-1+1e-5) + 1e-5)
  EXPECT_NEAR(lightningDecay(0, 8, 0, 4), 0.5 * (1 + 1e-5), 1e-15);
  EXPECT_NEAR(lightningDecay(7, 8, 3, 4),
              std::pow(0.5, 8) * (1 - 3 / (3 + 1e-5) + 1e-5), 1e-15);
}

TEST(CpuKernels, RopePartialRotary) {
  const int64_t B = 2, T = 5, H = 3, D = 8, R = 4;
  const double theta = 10000.0;
  std::vector<float> x = rnd(B * T * H * D);
  std::vector<double> ref(x.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t base = ((b * T + t) * H + h) * D;
        for (int64_t c = 0; c < D; ++c)
          ref[base + c] = x[base + c];
        for (int64_t i = 0; i < R / 2; ++i) {
          double f = t * std::pow(theta, -2.0 * i / R);
          ref[base + i] =
              x[base + i] * std::cos(f) - x[base + i + R / 2] * std::sin(f);
          ref[base + i + R / 2] =
              x[base + i + R / 2] * std::cos(f) + x[base + i] * std::sin(f);
        }
      }
  Scratch scratch;
  std::vector<float> out = poisoned(x.size());
  rope(x.data(), out.data(), B, T, H, D, R, theta, scratch);
  EXPECT_CLOSE(out, ref);
  // Channels [R, D) pass through bit for bit; in place gives the same result.
  for (int64_t c = R; c < D; ++c)
    EXPECT_EQ(out[D + c], x[D + c]);
  std::vector<float> inPlace = x;
  rope(inPlace.data(), inPlace.data(), B, T, H, D, R, theta, scratch);
  EXPECT_EQ(inPlace, out);
  // Full rotary_dim = D.
  std::vector<float> full = poisoned(x.size());
  rope(x.data(), full.data(), B, T, H, D, D, theta, scratch);
  EXPECT_FALSE(std::isnan(full[D - 1]));
}

TEST(CpuKernels, SoftmaxAttentionGqa) {
  const int64_t B = 2, T = 7, Hq = 4, Hkv = 2, D = 6;
  const double scale = 1.0 / std::sqrt(double(D));
  std::vector<float> q = rnd(B * T * Hq * D), k = rnd(B * T * Hkv * D),
                     v = rnd(B * T * Hkv * D);
  std::vector<double> ref(B * T * Hq * D);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h)
      for (int64_t t = 0; t < T; ++t) {
        const int64_t kvh = h / (Hq / Hkv);
        std::vector<double> w(t + 1);
        for (int64_t u = 0; u <= t; ++u) {
          double s = 0;
          for (int64_t c = 0; c < D; ++c)
            s += double(q[(b * T + t) * Hq * D + h * D + c]) *
                 k[(b * T + u) * Hkv * D + kvh * D + c];
          w[u] = std::exp(s * scale);
        }
        double sum = std::accumulate(w.begin(), w.end(), 0.0);
        for (int64_t c = 0; c < D; ++c) {
          double o = 0;
          for (int64_t u = 0; u <= t; ++u)
            o += w[u] / sum * v[(b * T + u) * Hkv * D + kvh * D + c];
          ref[(b * T + t) * Hq * D + h * D + c] = o;
        }
      }
  Scratch scratch;
  std::vector<float> out = poisoned(ref.size());
  softmaxAttention(q.data(), k.data(), v.data(), out.data(), B, T, Hq, Hkv, D,
                   scale, scratch);
  EXPECT_CLOSE(out, ref);
}

std::vector<double> naiveMoe(const std::vector<float> &x,
                             const std::vector<float> &router,
                             const std::vector<float> &w1,
                             const std::vector<float> &w2,
                             const std::vector<float> &w3, int64_t rows,
                             int64_t H, int64_t E, int64_t I, int64_t K) {
  std::vector<double> out(rows * H, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<double> p(E);
    for (int64_t e = 0; e < E; ++e) {
      double s = 0;
      for (int64_t h = 0; h < H; ++h)
        s += double(x[r * H + h]) * router[e * H + h];
      p[e] = s;
    }
    double mx = *std::max_element(p.begin(), p.end()), sum = 0;
    for (double &v : p)
      sum += (v = std::exp(v - mx));
    for (double &v : p)
      v /= sum;
    std::vector<int64_t> idx(E);
    std::iota(idx.begin(), idx.end(), 0);
    std::sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) {
      return p[a] != p[b] ? p[a] > p[b] : a < b;
    });
    double kept = 0;
    for (int64_t j = 0; j < K; ++j)
      kept += p[idx[j]];
    for (int64_t j = 0; j < K; ++j) {
      int64_t e = idx[j];
      std::vector<double> g(I);
      for (int64_t i = 0; i < I; ++i) {
        double a = 0, c = 0;
        for (int64_t h = 0; h < H; ++h) {
          a += double(x[r * H + h]) * w1[(e * I + i) * H + h];
          c += double(x[r * H + h]) * w3[(e * I + i) * H + h];
        }
        g[i] = a / (1 + std::exp(-a)) * c;
      }
      for (int64_t h = 0; h < H; ++h) {
        double s = 0;
        for (int64_t i = 0; i < I; ++i)
          s += g[i] * w2[(e * H + h) * I + i];
        out[r * H + h] += p[e] / kept * s;
      }
    }
  }
  return out;
}

TEST(CpuKernels, MoeTopK) {
  const int64_t rows = 9, H = 6, E = 5, I = 7;
  std::vector<float> x = rnd(rows * H), router = rnd(E * H),
                     w1 = rnd(E * I * H), w2 = rnd(E * H * I),
                     w3 = rnd(E * I * H);
  Scratch scratch;
  for (int64_t k : {1, 2, 5}) {
    std::vector<float> out = poisoned(rows * H);
    moe(x.data(), router.data(), w1.data(), w2.data(), w3.data(), out.data(),
        rows, H, E, I, k, scratch);
    EXPECT_CLOSE(out, naiveMoe(x, router, w1, w2, w3, rows, H, E, I, k));
  }
}

TEST(CpuKernels, MoeTiesPickLowerExpert) {
  const int64_t rows = 3, H = 4, E = 4, I = 3;
  std::vector<float> x = rnd(rows * H), router = rnd(E * H),
                     w1 = rnd(E * I * H), w2 = rnd(E * H * I),
                     w3 = rnd(E * I * H);
  // Experts 1 and 3 get identical, dominant router rows: top-1 must pick
  // expert 1.
  for (int64_t h = 0; h < H; ++h)
    router[1 * H + h] = router[3 * H + h] = 5.0f * x[h];
  Scratch scratch;
  std::vector<float> out = poisoned(rows * H);
  moe(x.data(), router.data(), w1.data(), w2.data(), w3.data(), out.data(),
      rows, H, E, I, 1, scratch);
  std::vector<double> ref = naiveMoe(x, router, w1, w2, w3, rows, H, E, I, 1);
  for (int64_t h = 0; h < H; ++h)
    EXPECT_NEAR(out[h], ref[h], 1e-5 * std::abs(ref[h]) + 1e-6);
  // Only expert 1 contributes with weight 1 for row 0.
  std::vector<float> only1 = w2;
  for (int64_t i = 0; i < H * I; ++i)
    only1[3 * H * I + i] = 0;
  std::vector<float> out2 = poisoned(rows * H);
  moe(x.data(), router.data(), w1.data(), only1.data(), w3.data(), out2.data(),
      rows, H, E, I, 1, scratch);
  for (int64_t h = 0; h < H; ++h)
    EXPECT_EQ(out2[h], out[h]);
}

TEST(CpuKernels, DenseAndElementwise) {
  const int64_t rows = 6, K = 5, N = 3;
  std::vector<float> x = rnd(rows * K), w = rnd(N * K), nw = rnd(K);
  std::vector<double> ref(rows * N);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k)
        ref[r * N + n] += double(x[r * K + k]) * w[n * K + k];
  std::vector<float> out = poisoned(rows * N);
  linear(x.data(), w.data(), out.data(), rows, K, N);
  EXPECT_CLOSE(out, ref);

  std::vector<double> normRef(rows * K);
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t k = 0; k < K; ++k)
      ss += double(x[r * K + k]) * x[r * K + k];
    for (int64_t k = 0; k < K; ++k)
      normRef[r * K + k] = x[r * K + k] / std::sqrt(ss / K + 1e-6) * nw[k];
  }
  std::vector<float> normOut = poisoned(rows * K);
  rmsNorm(x.data(), nw.data(), normOut.data(), rows, K, 1e-6);
  EXPECT_CLOSE(normOut, normRef);

  std::vector<float> b = rnd(rows * K);
  std::vector<double> siluRef(x.size()), sigRef(x.size()), mulRef(x.size()),
      addRef(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    sigRef[i] = 1 / (1 + std::exp(-double(x[i])));
    siluRef[i] = x[i] * sigRef[i];
    mulRef[i] = double(x[i]) * b[i];
    addRef[i] = 3.5566 * x[i] + 1.0 * b[i];
  }
  std::vector<float> o = poisoned(x.size());
  silu(x.data(), o.data(), rows * K);
  EXPECT_CLOSE(o, siluRef);
  o = poisoned(x.size());
  sigmoid(x.data(), o.data(), rows * K);
  EXPECT_CLOSE(o, sigRef);
  o = poisoned(x.size());
  mul(x.data(), b.data(), o.data(), rows * K);
  EXPECT_CLOSE(o, mulRef);
  o = poisoned(x.size());
  scaledAdd(x.data(), b.data(), o.data(), rows * K, 3.5566, 1.0);
  EXPECT_CLOSE(o, addRef);
}

TEST(CpuKernels, EmbeddingChecksIds) {
  std::vector<float> table = rnd(4 * 3);
  std::vector<int32_t> ids = {3, 0, 2, 1};
  std::vector<float> out = poisoned(12);
  ASSERT_TRUE(
      embedding(ids.data(), table.data(), out.data(), 4, 4, 3, 2).isOk());
  for (int c = 0; c < 3; ++c)
    EXPECT_EQ(out[c], table[9 + c]);
  ids[3] = 4;
  Status s = embedding(ids.data(), table.data(), out.data(), 4, 4, 3, 2);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("token id 4 at [1, 1] is outside [0, 4)"),
            std::string::npos)
      << s.message();
}

TEST(CpuKernels, CrossEntropy) {
  const int64_t rows = 4, V = 6;
  std::vector<float> logits = rnd(rows * V, 3.0f);
  std::vector<int32_t> labels = {2, -100, 5, 0};
  double total = 0;
  for (int64_t r : {0, 2, 3}) {
    double sum = 0;
    for (int64_t v = 0; v < V; ++v)
      sum += std::exp(double(logits[r * V + v]));
    total += std::log(sum) - logits[r * V + labels[r]];
  }
  float out = NAN;
  ASSERT_TRUE(
      crossEntropy(logits.data(), labels.data(), &out, rows, V, 2).isOk());
  EXPECT_NEAR(out, total / 3, 1e-6 * std::abs(total));
  labels[1] = -1;
  Status s = crossEntropy(logits.data(), labels.data(), &out, rows, V, 2);
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("label -1 at [0, 1]"), std::string::npos)
      << s.message();
  std::vector<int32_t> ignored(rows, -100);
  ASSERT_TRUE(
      crossEntropy(logits.data(), ignored.data(), &out, rows, V, 2).isOk());
  EXPECT_TRUE(std::isnan(out));
}

} // namespace
} // namespace mm::cpu
