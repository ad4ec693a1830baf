// CPU reference kernels; see CpuKernels.h for the contract of each.
#include "runtime/cpu/CpuKernels.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

namespace mm::cpu {

double dot(const float *a, const float *b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i)
    s += static_cast<double>(a[i]) * b[i];
  return s;
}

double moeRoute(const float *x, const float *router, int64_t E, int64_t H,
                int64_t topK, double *p, int64_t *order) {
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t e = 0; e < E; ++e) {
    p[e] = dot(x, router + e * H, H);
    mx = std::max(mx, p[e]);
  }
  double sum = 0;
  for (int64_t e = 0; e < E; ++e) {
    p[e] = std::exp(p[e] - mx);
    sum += p[e];
  }
  for (int64_t e = 0; e < E; ++e)
    p[e] /= sum;
  // Top-k by probability; stable, so ties keep the lower expert index first.
  std::iota(order, order + E, int64_t(0));
  std::stable_sort(order, order + E,
                   [&](int64_t a, int64_t b) { return p[a] > p[b]; });
  double kept = 0;
  for (int64_t j = 0; j < topK; ++j)
    kept += p[order[j]];
  return kept;
}

namespace {

double siluD(double x) { return x / (1.0 + std::exp(-x)); }

template <typename T> void growTo(std::vector<T> &v, size_t n) {
  if (v.size() < n)
    v.resize(n);
}
} // namespace

Status embedding(const int32_t *ids, const float *table, float *out,
                 int64_t rows, int64_t vocab, int64_t hidden, int64_t seqLen) {
  for (int64_t r = 0; r < rows; ++r) {
    int64_t id = ids[r];
    if (id < 0 || id >= vocab)
      return outOfRange("embedding: token id " + std::to_string(id) + " at [" +
                        std::to_string(r / seqLen) + ", " +
                        std::to_string(r % seqLen) + "] is outside [0, " +
                        std::to_string(vocab) + ")");
    std::copy(table + id * hidden, table + (id + 1) * hidden, out + r * hidden);
  }
  return Status::ok();
}

void rmsNorm(const float *x, const float *w, float *out, int64_t rows,
             int64_t n, double eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float *xr = x + r * n;
    double ss = dot(xr, xr, n);
    double inv = 1.0 / std::sqrt(ss / static_cast<double>(n) + eps);
    float *o = out + r * n;
    for (int64_t i = 0; i < n; ++i)
      o[i] = static_cast<float>(xr[i] * inv * w[i]);
  }
}

void linear(const float *x, const float *w, float *out, int64_t rows, int64_t k,
            int64_t n) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j)
      out[r * n + j] = static_cast<float>(dot(x + r * k, w + j * k, k));
}

void silu(const float *x, float *out, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = static_cast<float>(siluD(x[i]));
}

void sigmoid(const float *x, float *out, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = static_cast<float>(1.0 / (1.0 + std::exp(-double(x[i]))));
}

void mul(const float *a, const float *b, float *out, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = static_cast<float>(double(a[i]) * b[i]);
}

void scaledAdd(const float *a, const float *b, float *out, int64_t n,
               double alpha, double beta) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = static_cast<float>(alpha * a[i] + beta * b[i]);
}

void addRmsNorm(const float *a, const float *b, const float *w, float *out,
                int64_t rows, int64_t n, double alpha, double beta,
                double eps) {
  scaledAdd(a, b, out, rows * n, alpha, beta);
  rmsNorm(out, w, out, rows, n, eps);
}

void sigmoidMul(const float *a, const float *b, float *out, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    out[i] = static_cast<float>(double(b[i]) / (1.0 + std::exp(-double(a[i]))));
}

void rope(const float *x, float *out, int64_t batch, int64_t seq, int64_t heads,
          int64_t headDim, int64_t rotaryDim, double theta, Scratch &scratch) {
  const int64_t half = rotaryDim / 2;
  growTo(scratch.d, static_cast<size_t>(half));
  double *invFreq = scratch.d.data();
  for (int64_t i = 0; i < half; ++i)
    invFreq[i] = std::pow(theta, -2.0 * double(i) / double(rotaryDim));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < seq; ++t)
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t base = ((b * seq + t) * heads + h) * headDim;
        const float *xi = x + base;
        float *o = out + base;
        for (int64_t i = 0; i < half; ++i) {
          double angle = double(t) * invFreq[i];
          double c = std::cos(angle), s = std::sin(angle);
          double lo = xi[i], hi = xi[i + half];
          o[i] = static_cast<float>(lo * c - hi * s);
          o[i + half] = static_cast<float>(hi * c + lo * s);
        }
        if (o != xi)
          std::copy(xi + rotaryDim, xi + headDim, o + rotaryDim);
      }
}

double lightningDecay(int64_t h, int64_t heads, int64_t layer,
                      int64_t numLayers) {
  double base = std::pow(2.0, -8.0 / double(heads));
  return std::pow(base, double(h + 1)) *
         (1.0 - double(layer) / (double(numLayers) - 1.0 + 1e-5) + 1e-5);
}

void lightningAttention(const float *qkv, float *out, int64_t batch,
                        int64_t seq, int64_t heads, int64_t headDim,
                        int64_t blockSize, int64_t layer, int64_t numLayers,
                        Scratch &scratch, bool siluInput) {
  const int64_t D = headDim;
  if (siluInput) {
    const size_t n = static_cast<size_t>(batch * seq * heads * 3 * D);
    growTo(scratch.f, n);
    silu(qkv, scratch.f.data(), static_cast<int64_t>(n));
    qkv = scratch.f.data();
  }
  const int64_t rowIn = heads * 3 * D, rowOut = heads * D;
  growTo(scratch.d, static_cast<size_t>(D * D + 2 * D));
  double *state = scratch.d.data(); // [D, D]: Σ decayed kᵀv of earlier blocks
  double *o = state + D * D;        // [D]
  double *qs = o + D;               // [D]: q · state
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h) {
      const double s = lightningDecay(h, heads, layer, numLayers);
      std::fill(state, state + D * D, 0.0);
      auto q = [&](int64_t t) {
        return qkv + (b * seq + t) * rowIn + h * 3 * D;
      };
      auto k = [&](int64_t t) { return q(t) + D; };
      auto v = [&](int64_t t) { return q(t) + 2 * D; };
      for (int64_t b0 = 0; b0 < seq; b0 += blockSize) {
        const int64_t m = std::min(blockSize, seq - b0);
        for (int64_t i = 0; i < m; ++i) {
          const float *qi = q(b0 + i);
          std::fill(o, o + D, 0.0);
          // Intra-block: ((Q Kᵀ) ⊙ decay) V.
          for (int64_t j = 0; j <= i; ++j) {
            double w = std::exp(-s * double(i - j)) * dot(qi, k(b0 + j), D);
            const float *vj = v(b0 + j);
            for (int64_t c = 0; c < D; ++c)
              o[c] += w * vj[c];
          }
          // Inter-block: (q ⊙ exp(-s i)) · state.
          std::fill(qs, qs + D, 0.0);
          for (int64_t r = 0; r < D; ++r) {
            const double qr = qi[r];
            const double *sr = state + r * D;
            for (int64_t c = 0; c < D; ++c)
              qs[c] += qr * sr[c];
          }
          const double e = std::exp(-s * double(i));
          float *dst = out + (b * seq + b0 + i) * rowOut + h * D;
          for (int64_t c = 0; c < D; ++c)
            dst[c] = static_cast<float>(o[c] + e * qs[c]);
        }
        // state ← exp(-s m) state + Σ_j exp(-s (m - j)) k_jᵀ v_j
        const double blockDecay = std::exp(-s * double(m));
        for (int64_t r = 0; r < D * D; ++r)
          state[r] *= blockDecay;
        for (int64_t j = 0; j < m; ++j) {
          const double w = std::exp(-s * double(m - j));
          const float *kj = k(b0 + j), *vj = v(b0 + j);
          for (int64_t r = 0; r < D; ++r) {
            const double kr = w * kj[r];
            double *sr = state + r * D;
            for (int64_t c = 0; c < D; ++c)
              sr[c] += kr * vj[c];
          }
        }
      }
    }
}

void softmaxAttention(const float *q, const float *k, const float *v,
                      float *out, int64_t batch, int64_t seq, int64_t heads,
                      int64_t kvHeads, int64_t headDim, double scale,
                      Scratch &scratch) {
  const int64_t D = headDim, group = heads / kvHeads;
  const int64_t rowQ = heads * D, rowKv = kvHeads * D;
  growTo(scratch.d, static_cast<size_t>(seq + D));
  double *scores = scratch.d.data();
  double *o = scores + seq;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t kvh = h / group;
      for (int64_t t = 0; t < seq; ++t) {
        const float *qt = q + (b * seq + t) * rowQ + h * D;
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t u = 0; u <= t; ++u) {
          scores[u] = scale * dot(qt, k + (b * seq + u) * rowKv + kvh * D, D);
          mx = std::max(mx, scores[u]);
        }
        double sum = 0;
        for (int64_t u = 0; u <= t; ++u) {
          scores[u] = std::exp(scores[u] - mx);
          sum += scores[u];
        }
        std::fill(o, o + D, 0.0);
        for (int64_t u = 0; u <= t; ++u) {
          const float *vu = v + (b * seq + u) * rowKv + kvh * D;
          for (int64_t c = 0; c < D; ++c)
            o[c] += scores[u] * vu[c];
        }
        float *dst = out + (b * seq + t) * rowQ + h * D;
        for (int64_t c = 0; c < D; ++c)
          dst[c] = static_cast<float>(o[c] / sum);
      }
    }
}

void moe(const float *x, const float *router, const float *w1, const float *w2,
         const float *w3, float *out, int64_t rows, int64_t hidden,
         int64_t experts, int64_t inter, int64_t topK, Scratch &scratch) {
  const int64_t H = hidden, I = inter, E = experts;
  growTo(scratch.d, static_cast<size_t>(E + I + H));
  growTo(scratch.i, static_cast<size_t>(E));
  double *p = scratch.d.data();
  double *g = p + E;   // [I]: silu(w1 x) ⊙ w3 x
  double *acc = g + I; // [H]
  int64_t *order = scratch.i.data();
  for (int64_t r = 0; r < rows; ++r) {
    const float *xr = x + r * H;
    const double kept = moeRoute(xr, router, E, H, topK, p, order);
    std::fill(acc, acc + H, 0.0);
    for (int64_t j = 0; j < topK; ++j) {
      const int64_t e = order[j];
      const double weight = p[e] / kept;
      for (int64_t i = 0; i < I; ++i) {
        const double a = dot(xr, w1 + (e * I + i) * H, H);
        const double c = dot(xr, w3 + (e * I + i) * H, H);
        g[i] = siluD(a) * c;
      }
      for (int64_t hh = 0; hh < H; ++hh) {
        const float *row = w2 + (e * H + hh) * I;
        double s = 0;
        for (int64_t i = 0; i < I; ++i)
          s += g[i] * row[i];
        acc[hh] += weight * s;
      }
    }
    for (int64_t hh = 0; hh < H; ++hh)
      out[r * H + hh] = static_cast<float>(acc[hh]);
  }
}

Status crossEntropy(const float *logits, const int32_t *labels, float *out,
                    int64_t rows, int64_t vocab, int64_t seqLen) {
  double total = 0;
  int64_t count = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t label = labels[r];
    if (label == -100)
      continue;
    if (label < 0 || label >= vocab)
      return outOfRange("cross_entropy: label " + std::to_string(label) +
                        " at [" + std::to_string(r / seqLen) + ", " +
                        std::to_string(r % seqLen) + "] is outside [0, " +
                        std::to_string(vocab) + ") and is not -100");
    const float *l = logits + r * vocab;
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t i = 0; i < vocab; ++i)
      mx = std::max(mx, double(l[i]));
    double sum = 0;
    for (int64_t i = 0; i < vocab; ++i)
      sum += std::exp(double(l[i]) - mx);
    total += mx + std::log(sum) - double(l[label]);
    ++count;
  }
  *out = count ? static_cast<float>(total / double(count))
               : std::numeric_limits<float>::quiet_NaN();
  return Status::ok();
}

} // namespace mm::cpu
