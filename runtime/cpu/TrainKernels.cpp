// CPU training kernels; see TrainKernels.h for the contract of each.
#include "runtime/cpu/TrainKernels.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

namespace mm::cpu {

namespace {

double sigmoidD(double x) { return 1.0 / (1.0 + std::exp(-x)); }

template <typename T> T *grow(std::vector<T> &v, size_t n) {
  if (v.size() < n)
    v.resize(n);
  return v.data();
}

void store(const double *src, float *dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    dst[i] = static_cast<float>(src[i]);
}

Status checkLabel(int32_t label, int64_t r, int64_t vocab, int64_t seqLen,
                  const char *kernel) {
  if (label == -100 || (label >= 0 && label < vocab))
    return Status::ok();
  return outOfRange(std::string(kernel) + ": label " + std::to_string(label) +
                    " at [" + std::to_string(r / seqLen) + ", " +
                    std::to_string(r % seqLen) + "] is outside [0, " +
                    std::to_string(vocab) + ") and is not -100");
}
} // namespace

Status embeddingGrad(const int32_t *ids, const float *dy, float *dtable,
                     int64_t rows, int64_t vocab, int64_t hidden,
                     int64_t seqLen) {
  std::fill(dtable, dtable + vocab * hidden, 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t id = ids[r];
    if (id < 0 || id >= vocab)
      return outOfRange("embedding_grad: token id " + std::to_string(id) +
                        " at [" + std::to_string(r / seqLen) + ", " +
                        std::to_string(r % seqLen) + "] is outside [0, " +
                        std::to_string(vocab) + ")");
    float *row = dtable + id * hidden;
    for (int64_t c = 0; c < hidden; ++c)
      row[c] += dy[r * hidden + c];
  }
  return Status::ok();
}

void rmsNormGrad(const float *x, const float *w, const float *dy, float *dx,
                 float *dw, int64_t rows, int64_t n, double eps,
                 Scratch &scratch) {
  double *acc = grow(scratch.d, static_cast<size_t>(n));
  std::fill(acc, acc + n, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const float *xr = x + r * n, *gr = dy + r * n;
    const double inv = 1.0 / std::sqrt(dot(xr, xr, n) / double(n) + eps);
    double proj = 0; // Σ w dy x
    for (int64_t i = 0; i < n; ++i) {
      proj += double(w[i]) * gr[i] * xr[i];
      acc[i] += double(gr[i]) * xr[i] * inv;
    }
    const double k = inv * inv * inv * proj / double(n);
    for (int64_t i = 0; i < n; ++i)
      dx[r * n + i] = static_cast<float>(inv * w[i] * gr[i] - k * xr[i]);
  }
  store(acc, dw, n);
}

void linearGrad(const float *x, const float *w, const float *dy, float *dx,
                float *dw, int64_t rows, int64_t k, int64_t n,
                Scratch &scratch) {
  double *acc = grow(scratch.d, static_cast<size_t>(n * k + k));
  double *row = acc + n * k;
  std::fill(acc, acc + n * k, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const float *xr = x + r * k, *gr = dy + r * n;
    std::fill(row, row + k, 0.0);
    for (int64_t j = 0; j < n; ++j) {
      const double g = gr[j];
      if (g == 0)
        continue;
      const float *wj = w + j * k;
      double *aj = acc + j * k;
      for (int64_t c = 0; c < k; ++c) {
        row[c] += g * wj[c];
        aj[c] += g * xr[c];
      }
    }
    store(row, dx + r * k, k);
  }
  store(acc, dw, n * k);
}

void siluGrad(const float *x, const float *dy, float *dx, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double s = sigmoidD(x[i]);
    dx[i] = static_cast<float>(dy[i] * s * (1.0 + x[i] * (1.0 - s)));
  }
}

void sigmoidGrad(const float *x, const float *dy, float *dx, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const double s = sigmoidD(x[i]);
    dx[i] = static_cast<float>(dy[i] * s * (1.0 - s));
  }
}

void ropeGrad(const float *dy, float *dx, int64_t batch, int64_t seq,
              int64_t heads, int64_t headDim, int64_t rotaryDim, double theta,
              Scratch &scratch) {
  const int64_t half = rotaryDim / 2;
  double *invFreq =
      grow(scratch.d, static_cast<size_t>(std::max<int64_t>(half, 1)));
  for (int64_t i = 0; i < half; ++i)
    invFreq[i] = std::pow(theta, -2.0 * double(i) / double(rotaryDim));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < seq; ++t)
      for (int64_t h = 0; h < heads; ++h) {
        const int64_t base = ((b * seq + t) * heads + h) * headDim;
        const float *g = dy + base;
        float *o = dx + base;
        for (int64_t i = 0; i < half; ++i) {
          const double angle = double(t) * invFreq[i];
          const double c = std::cos(angle), s = std::sin(angle);
          const double lo = g[i], hi = g[i + half];
          // Transpose of [[c, -s], [s, c]].
          o[i] = static_cast<float>(lo * c + hi * s);
          o[i + half] = static_cast<float>(hi * c - lo * s);
        }
        if (o != g)
          std::copy(g + rotaryDim, g + headDim, o + rotaryDim);
      }
}

void lightningAttentionGrad(const float *qkv, const float *dout, float *dqkv,
                            int64_t batch, int64_t seq, int64_t heads,
                            int64_t headDim, int64_t blockSize, int64_t layer,
                            int64_t numLayers, Scratch &scratch) {
  const int64_t D = headDim;
  const int64_t rowIn = heads * 3 * D, rowOut = heads * D;
  double *state = grow(scratch.d, static_cast<size_t>(D * D + 3 * D));
  double *a = state + D * D; // [D] accumulators
  double *b2 = a + D;        // [D]
  double *tmp = b2 + D;      // [D]
  const int64_t numBlocks = (seq + blockSize - 1) / blockSize;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h) {
      const double s = lightningDecay(h, heads, layer, numLayers);
      auto q = [&](int64_t t) {
        return qkv + (b * seq + t) * rowIn + h * 3 * D;
      };
      auto k = [&](int64_t t) { return q(t) + D; };
      auto v = [&](int64_t t) { return q(t) + 2 * D; };
      auto g = [&](int64_t t) { return dout + (b * seq + t) * rowOut + h * D; };
      auto dq = [&](int64_t t) {
        return dqkv + (b * seq + t) * rowIn + h * 3 * D;
      };

      // dq_t = Σ_{u<=t} λ^(t-u) (do_t · v_u) k_u: the forward recurrence with
      // the state Σ λ^(b0-u) k_uᵀ v_u read as state · do_t.
      std::fill(state, state + D * D, 0.0);
      for (int64_t b0 = 0; b0 < seq; b0 += blockSize) {
        const int64_t m = std::min(blockSize, seq - b0);
        for (int64_t i = 0; i < m; ++i) {
          const float *gi = g(b0 + i);
          std::fill(a, a + D, 0.0);
          for (int64_t j = 0; j <= i; ++j) {
            const double w =
                std::exp(-s * double(i - j)) * dot(gi, v(b0 + j), D);
            const float *kj = k(b0 + j);
            for (int64_t r = 0; r < D; ++r)
              a[r] += w * kj[r];
          }
          const double e = std::exp(-s * double(i));
          for (int64_t r = 0; r < D; ++r) {
            const double *sr = state + r * D;
            double acc = 0;
            for (int64_t c = 0; c < D; ++c)
              acc += sr[c] * gi[c];
            a[r] += e * acc;
          }
          store(a, dq(b0 + i), D);
        }
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

      // dk_u, dv_u from G = Σ_{t >= end of block} λ^(t - end) q_tᵀ do_t, run in
      // reverse block by block.
      std::fill(state, state + D * D, 0.0);
      for (int64_t blk = numBlocks - 1; blk >= 0; --blk) {
        const int64_t b0 = blk * blockSize;
        const int64_t m = std::min(blockSize, seq - b0);
        for (int64_t j = 0; j < m; ++j) {
          const float *kj = k(b0 + j), *vj = v(b0 + j);
          std::fill(a, a + D, 0.0);   // dk
          std::fill(b2, b2 + D, 0.0); // dv
          for (int64_t i = j; i < m; ++i) {
            const double w = std::exp(-s * double(i - j));
            const float *qi = q(b0 + i), *gi = g(b0 + i);
            const double wk = w * dot(gi, vj, D), wv = w * dot(qi, kj, D);
            for (int64_t r = 0; r < D; ++r) {
              a[r] += wk * qi[r];
              b2[r] += wv * gi[r];
            }
          }
          const double e = std::exp(-s * double(m - j));
          std::fill(tmp, tmp + D, 0.0);
          for (int64_t r = 0; r < D; ++r) {
            const double *gr = state + r * D;
            double acc = 0;
            for (int64_t c = 0; c < D; ++c) {
              acc += gr[c] * vj[c];
              tmp[c] += double(kj[r]) * gr[c];
            }
            a[r] += e * acc;
          }
          for (int64_t c = 0; c < D; ++c)
            b2[c] += e * tmp[c];
          float *d = dq(b0 + j);
          store(a, d + D, D);
          store(b2, d + 2 * D, D);
        }
        const double blockDecay = std::exp(-s * double(m));
        for (int64_t r = 0; r < D * D; ++r)
          state[r] *= blockDecay;
        for (int64_t i = 0; i < m; ++i) {
          const double w = std::exp(-s * double(i));
          const float *qi = q(b0 + i), *gi = g(b0 + i);
          for (int64_t r = 0; r < D; ++r) {
            const double qr = w * qi[r];
            double *sr = state + r * D;
            for (int64_t c = 0; c < D; ++c)
              sr[c] += qr * gi[c];
          }
        }
      }
    }
}

void softmaxAttentionGrad(const float *q, const float *k, const float *v,
                          const float *dout, float *dq, float *dk, float *dv,
                          int64_t batch, int64_t seq, int64_t heads,
                          int64_t kvHeads, int64_t headDim, double scale,
                          Scratch &scratch) {
  const int64_t D = headDim, group = heads / kvHeads;
  const int64_t rowQ = heads * D, rowKv = kvHeads * D;
  const int64_t kvElems = batch * seq * rowKv;
  double *p = grow(scratch.d, static_cast<size_t>(2 * seq + D + 2 * kvElems));
  double *dp = p + seq;
  double *acc = dp + seq;
  double *dkAcc = acc + D, *dvAcc = dkAcc + kvElems;
  std::fill(dkAcc, dkAcc + 2 * kvElems, 0.0);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t kvh = h / group;
      for (int64_t t = 0; t < seq; ++t) {
        const float *qt = q + (b * seq + t) * rowQ + h * D;
        const float *gt = dout + (b * seq + t) * rowQ + h * D;
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t u = 0; u <= t; ++u) {
          p[u] = scale * dot(qt, k + (b * seq + u) * rowKv + kvh * D, D);
          mx = std::max(mx, p[u]);
        }
        double sum = 0;
        for (int64_t u = 0; u <= t; ++u) {
          p[u] = std::exp(p[u] - mx);
          sum += p[u];
        }
        double pdp = 0;
        for (int64_t u = 0; u <= t; ++u) {
          p[u] /= sum;
          dp[u] = dot(gt, v + (b * seq + u) * rowKv + kvh * D, D);
          pdp += p[u] * dp[u];
        }
        std::fill(acc, acc + D, 0.0);
        for (int64_t u = 0; u <= t; ++u) {
          const double ds = scale * p[u] * (dp[u] - pdp);
          const int64_t off = (b * seq + u) * rowKv + kvh * D;
          const float *ku = k + off;
          double *dku = dkAcc + off, *dvu = dvAcc + off;
          for (int64_t c = 0; c < D; ++c) {
            acc[c] += ds * ku[c];
            dku[c] += ds * qt[c];
            dvu[c] += p[u] * gt[c];
          }
        }
        store(acc, dq + (b * seq + t) * rowQ + h * D, D);
      }
    }
  store(dkAcc, dk, kvElems);
  store(dvAcc, dv, kvElems);
}

void moeGrad(const float *x, const float *router, const float *w1,
             const float *w2, const float *w3, const float *dy, float *dx,
             float *drouter, float *dw1, float *dw2, float *dw3, int64_t rows,
             int64_t hidden, int64_t experts, int64_t inter, int64_t topK,
             Scratch &scratch) {
  const int64_t H = hidden, I = inter, E = experts;
  const int64_t wElems = E * I * H;
  double *p = grow(scratch.d,
                   static_cast<size_t>(3 * E + 6 * I + H + E * H + 3 * wElems));
  double *dz = p + E, *dwk = dz + E;
  double *a = dwk + E, *c = a + I, *g = c + I, *dg = g + I, *da = dg + I,
         *dc = da + I;
  double *dxr = dc + I;
  double *accRouter = dxr + H, *acc1 = accRouter + E * H, *acc2 = acc1 + wElems,
         *acc3 = acc2 + wElems;
  std::fill(accRouter, accRouter + E * H + 3 * wElems, 0.0);
  int64_t *order = grow(scratch.i, static_cast<size_t>(E));
  for (int64_t r = 0; r < rows; ++r) {
    const float *xr = x + r * H, *gr = dy + r * H;
    const double kept = moeRoute(xr, router, E, H, topK, p, order);
    std::fill(dxr, dxr + H, 0.0);
    for (int64_t j = 0; j < topK; ++j) {
      const int64_t e = order[j];
      const double weight = p[e] / kept;
      for (int64_t i = 0; i < I; ++i) {
        a[i] = dot(xr, w1 + (e * I + i) * H, H);
        c[i] = dot(xr, w3 + (e * I + i) * H, H);
        g[i] = a[i] * sigmoidD(a[i]) * c[i];
        dg[i] = 0;
      }
      // dy · expert output, and the expert's backward scaled by its weight.
      double dot2 = 0;
      for (int64_t hh = 0; hh < H; ++hh) {
        const float *row = w2 + (e * H + hh) * I;
        double y = 0;
        for (int64_t i = 0; i < I; ++i)
          y += g[i] * row[i];
        dot2 += double(gr[hh]) * y;
        const double gw = weight * gr[hh];
        double *a2 = acc2 + (e * H + hh) * I;
        for (int64_t i = 0; i < I; ++i) {
          a2[i] += gw * g[i];
          dg[i] += gw * row[i];
        }
      }
      dwk[j] = dot2;
      for (int64_t i = 0; i < I; ++i) {
        const double sg = sigmoidD(a[i]);
        da[i] = dg[i] * c[i] * sg * (1.0 + a[i] * (1.0 - sg));
        dc[i] = dg[i] * a[i] * sg;
        const float *r1 = w1 + (e * I + i) * H, *r3 = w3 + (e * I + i) * H;
        double *a1 = acc1 + (e * I + i) * H, *a3 = acc3 + (e * I + i) * H;
        for (int64_t hh = 0; hh < H; ++hh) {
          a1[hh] += da[i] * xr[hh];
          a3[hh] += dc[i] * xr[hh];
          dxr[hh] += da[i] * r1[hh] + dc[i] * r3[hh];
        }
      }
    }
    // Through the renormalisation w_j = p_j / P (P = Σ_topk p) and softmax.
    double wdw = 0;
    for (int64_t j = 0; j < topK; ++j)
      wdw += dwk[j] * p[order[j]] / kept;
    std::fill(dz, dz + E, 0.0); // holds dp first
    for (int64_t j = 0; j < topK; ++j)
      dz[order[j]] = (dwk[j] - wdw) / kept;
    double pdp = 0;
    for (int64_t e = 0; e < E; ++e)
      pdp += p[e] * dz[e];
    for (int64_t e = 0; e < E; ++e) {
      const double z = p[e] * (dz[e] - pdp);
      const float *re = router + e * H;
      double *ar = accRouter + e * H;
      for (int64_t hh = 0; hh < H; ++hh) {
        ar[hh] += z * xr[hh];
        dxr[hh] += z * re[hh];
      }
    }
    store(dxr, dx + r * H, H);
  }
  store(accRouter, drouter, E * H);
  store(acc1, dw1, wElems);
  store(acc2, dw2, wElems);
  store(acc3, dw3, wElems);
}

namespace {
/// Logits of rows [r0, r0 + n) into z [n, V].
void chunkLogits(const float *h, const float *w, double *z, int64_t r0,
                 int64_t n, int64_t hidden, int64_t vocab) {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t v = 0; v < vocab; ++v)
      z[r * vocab + v] = dot(h + (r0 + r) * hidden, w + v * hidden, hidden);
}

double logSumExp(const double *z, int64_t n) {
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < n; ++i)
    mx = std::max(mx, z[i]);
  double s = 0;
  for (int64_t i = 0; i < n; ++i)
    s += std::exp(z[i] - mx);
  return mx + std::log(s);
}
} // namespace

Status lmHeadLoss(const float *h, const float *w, const int32_t *labels,
                  float *loss, int64_t rows, int64_t hidden, int64_t vocab,
                  int64_t seqLen, int64_t chunkRows, Scratch &scratch) {
  const int64_t chunk = std::min(chunkRows, rows);
  double *z = grow(scratch.d, static_cast<size_t>(chunk * vocab));
  double total = 0;
  int64_t count = 0;
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t n = std::min(chunk, rows - r0);
    chunkLogits(h, w, z, r0, n, hidden, vocab);
    for (int64_t r = 0; r < n; ++r) {
      const int32_t label = labels[r0 + r];
      MM_RETURN_IF_ERROR(
          checkLabel(label, r0 + r, vocab, seqLen, "lm_head_loss"));
      if (label == -100)
        continue;
      total += logSumExp(z + r * vocab, vocab) - z[r * vocab + label];
      ++count;
    }
  }
  *loss = count ? static_cast<float>(total / double(count))
                : std::numeric_limits<float>::quiet_NaN();
  return Status::ok();
}

Status lmHeadLossGrad(const float *h, const float *w, const int32_t *labels,
                      float *dh, float *dw, int64_t rows, int64_t hidden,
                      int64_t vocab, int64_t seqLen, int64_t chunkRows,
                      Scratch &scratch) {
  const int64_t chunk = std::min(chunkRows, rows);
  int64_t count = 0;
  for (int64_t r = 0; r < rows; ++r) {
    MM_RETURN_IF_ERROR(
        checkLabel(labels[r], r, vocab, seqLen, "lm_head_loss_grad"));
    count += labels[r] != -100;
  }
  double *z = grow(
      scratch.d, static_cast<size_t>(chunk * vocab + vocab * hidden + hidden));
  double *acc = z + chunk * vocab, *row = acc + vocab * hidden;
  std::fill(acc, acc + vocab * hidden, 0.0);
  const double invCount = count ? 1.0 / double(count) : 0.0;
  for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const int64_t n = std::min(chunk, rows - r0);
    chunkLogits(h, w, z, r0, n, hidden, vocab);
    for (int64_t r = 0; r < n; ++r) {
      const int32_t label = labels[r0 + r];
      float *dhr = dh + (r0 + r) * hidden;
      if (label == -100) {
        std::fill(dhr, dhr + hidden, 0.0f);
        continue;
      }
      double *zr = z + r * vocab;
      const double lse = logSumExp(zr, vocab);
      for (int64_t v = 0; v < vocab; ++v)
        zr[v] = std::exp(zr[v] - lse) * invCount; // d loss / d logit
      zr[label] -= invCount;
      const float *hr = h + (r0 + r) * hidden;
      std::fill(row, row + hidden, 0.0);
      for (int64_t v = 0; v < vocab; ++v) {
        const double gv = zr[v];
        const float *wv = w + v * hidden;
        double *av = acc + v * hidden;
        for (int64_t c = 0; c < hidden; ++c) {
          row[c] += gv * wv[c];
          av[c] += gv * hr[c];
        }
      }
      store(row, dhr, hidden);
    }
  }
  store(acc, dw, vocab * hidden);
  return Status::ok();
}

double sumSquares(const float *g, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i)
    s += double(g[i]) * g[i];
  return s;
}

double clipFactor(double norm, double maxNorm) {
  if (maxNorm <= 0)
    return 1.0;
  return std::min(1.0, maxNorm / (norm + 1e-6));
}

void adamw(float *p, const float *grad, float *m, float *v, int64_t n,
           const AdamWParams &a) {
  const double bc1 = 1.0 - std::pow(a.beta1, a.step);
  const double bc2 = 1.0 - std::pow(a.beta2, a.step);
  const double stepSize = a.lr / bc1, sqrtBc2 = std::sqrt(bc2);
  const double decay = 1.0 - a.lr * a.weightDecay;
  for (int64_t i = 0; i < n; ++i) {
    const double g = double(grad[i]) * a.gradScale;
    const double mi = a.beta1 * m[i] + (1.0 - a.beta1) * g;
    const double vi = a.beta2 * v[i] + (1.0 - a.beta2) * g * g;
    m[i] = static_cast<float>(mi);
    v[i] = static_cast<float>(vi);
    const double denom = std::sqrt(double(v[i])) / sqrtBc2 + a.eps;
    p[i] = static_cast<float>(double(p[i]) * decay -
                              stepSize * double(m[i]) / denom);
  }
}

namespace {
/// The row half of CAME's _approx_sq_grad: rsqrt(row[r] / mean(row)); the
/// column half is rsqrt(col[c]).
void rowFactors(const float *row, int64_t rows, double *rowFactor) {
  double mean = 0;
  for (int64_t r = 0; r < rows; ++r)
    mean += row[r];
  mean /= double(rows);
  for (int64_t r = 0; r < rows; ++r)
    rowFactor[r] = 1.0 / std::sqrt(double(row[r]) / mean);
}
} // namespace

void cameFactored(float *p, const float *grad, float *m, float *row, float *col,
                  float *resRow, float *resCol, int64_t count, int64_t rows,
                  int64_t cols, const CameParams &c, Scratch &scratch) {
  const int64_t per = rows * cols, n = count * per;
  double *u = grow(scratch.d, static_cast<size_t>(n + rows + cols));
  double *rowFactor = u + n, *colSum = rowFactor + rows;
  // Second-moment factors and the preconditioned update u = g / sqrt(v̂).
  for (int64_t s = 0; s < count; ++s) {
    const float *g = grad + s * per;
    float *rs = row + s * rows, *cs = col + s * cols;
    std::fill(colSum, colSum + cols, 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      double rsum = 0;
      for (int64_t j = 0; j < cols; ++j) {
        const double gv = double(g[r * cols + j]) * c.gradScale;
        const double sq = gv * gv + c.eps1;
        rsum += sq;
        colSum[j] += sq;
      }
      rs[r] = static_cast<float>(c.beta2 * rs[r] +
                                 (1.0 - c.beta2) * rsum / double(cols));
    }
    for (int64_t j = 0; j < cols; ++j)
      cs[j] = static_cast<float>(c.beta2 * cs[j] +
                                 (1.0 - c.beta2) * colSum[j] / double(rows));
    rowFactors(rs, rows, rowFactor);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < cols; ++j)
        u[s * per + r * cols + j] = rowFactor[r] / std::sqrt(double(cs[j])) *
                                    double(g[r * cols + j]) * c.gradScale;
  }
  double ss = 0;
  for (int64_t i = 0; i < n; ++i)
    ss += u[i] * u[i];
  const double clip =
      std::max(1.0, std::sqrt(ss / double(n)) / c.clipThreshold);
  // First moment, then the instability (u - m)² factored like v.
  for (int64_t i = 0; i < n; ++i) {
    u[i] /= clip;
    const double mi = c.beta1 * m[i] + (1.0 - c.beta1) * u[i];
    m[i] = static_cast<float>(mi);
    const double d = u[i] - double(m[i]);
    u[i] = d * d + c.eps2; // u now holds the instability
  }
  for (int64_t s = 0; s < count; ++s) {
    float *rs = resRow + s * rows, *cs = resCol + s * cols;
    const double *res = u + s * per;
    std::fill(colSum, colSum + cols, 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      double rsum = 0;
      for (int64_t j = 0; j < cols; ++j) {
        rsum += res[r * cols + j];
        colSum[j] += res[r * cols + j];
      }
      rs[r] = static_cast<float>(c.beta3 * rs[r] +
                                 (1.0 - c.beta3) * rsum / double(cols));
    }
    for (int64_t j = 0; j < cols; ++j)
      cs[j] = static_cast<float>(c.beta3 * cs[j] +
                                 (1.0 - c.beta3) * colSum[j] / double(rows));
    rowFactors(rs, rows, rowFactor);
    const double decay = 1.0 - c.lr * c.weightDecay;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < cols; ++j) {
        const int64_t i = s * per + r * cols + j;
        const double update =
            rowFactor[r] / std::sqrt(double(cs[j])) * double(m[i]);
        p[i] = static_cast<float>(double(p[i]) * decay - c.lr * update);
      }
  }
}

void cameVector(float *p, const float *grad, float *m, float *v, int64_t n,
                const CameParams &c) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double g = double(grad[i]) * c.gradScale;
    v[i] =
        static_cast<float>(c.beta2 * v[i] + (1.0 - c.beta2) * (g * g + c.eps1));
    const double u = g / std::sqrt(double(v[i]));
    ss += u * u;
  }
  const double clip =
      std::max(1.0, std::sqrt(ss / double(n)) / c.clipThreshold);
  const double decay = 1.0 - c.lr * c.weightDecay;
  for (int64_t i = 0; i < n; ++i) {
    const double u =
        double(grad[i]) * c.gradScale / std::sqrt(double(v[i])) / clip;
    m[i] = static_cast<float>(c.beta1 * m[i] + (1.0 - c.beta1) * u);
    p[i] = static_cast<float>(double(p[i]) * decay - c.lr * double(m[i]));
  }
}

} // namespace mm::cpu
