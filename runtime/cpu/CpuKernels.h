// The CPU reference backend: every kernel of docs/kernels.md in plain C++, f32
// storage with dot products, reductions and the lightning KV state kept in
// double, so results match a float64 NumPy reference to about 1e-5 relative.
// Used as the oracle for GPU kernels and to run whole models in CI without a
// GPU.
//
// Operands have already been checked by the artifact verifier (shapes, params);
// the only run-time errors are data-dependent ones (token ids and labels out of
// range), reported as Status. Every function is thread-compatible: it touches
// only its arguments and the caller's Scratch.
#pragma once

#include "runtime/base/Status.h"

#include <cstdint>
#include <vector>

namespace mm::cpu {

/// Temporary storage reused across kernel calls: it grows to the largest step
/// once, so later runs do not allocate.
struct Scratch {
  std::vector<double> d;
  std::vector<int64_t> i;
  std::vector<float> f;
};

/// out[r] = table[ids[r]] for r < rows; `seqLen` (T) only locates a bad id in
/// the message.
Status embedding(const int32_t *ids, const float *table, float *out,
                 int64_t rows, int64_t vocab, int64_t hidden, int64_t seqLen);

/// x * rsqrt(mean(x²) + eps) * w over rows of n. May run in place (out == x).
void rmsNorm(const float *x, const float *w, float *out, int64_t rows,
             int64_t n, double eps);

/// out[r, j] = Σ_k x[r, k] w[j, k]  (x [rows, k], w [n, k], out [rows, n]).
void linear(const float *x, const float *w, float *out, int64_t rows, int64_t k,
            int64_t n);

/// Elementwise; each may run in place.
void silu(const float *x, float *out, int64_t n);
void sigmoid(const float *x, float *out, int64_t n);
void mul(const float *a, const float *b, float *out, int64_t n);
void scaledAdd(const float *a, const float *b, float *out, int64_t n,
               double alpha, double beta);

/// Fused kernels (mm-fuse): rms_norm(alpha*a + beta*b) and sigmoid(a) * b.
/// Each may run in place.
void addRmsNorm(const float *a, const float *b, const float *w, float *out,
                int64_t rows, int64_t n, double alpha, double beta, double eps);
void sigmoidMul(const float *a, const float *b, float *out, int64_t n);

/// NeoX rotate-half RoPE on channels [0, rotaryDim) of each head of x [B, T,
/// H*D]; the position of token t is t; channels [rotaryDim, D) pass through.
/// May run in place.
void rope(const float *x, float *out, int64_t batch, int64_t seq, int64_t heads,
          int64_t headDim, int64_t rotaryDim, double theta, Scratch &scratch);

/// Per-head decay rate s_h of lightning attention for head h of H, layer l of
/// L.
double lightningDecay(int64_t h, int64_t heads, int64_t layer,
                      int64_t numLayers);

/// Causal decayed linear attention, block-wise (Lightning Attention-2): qkv [B,
/// T, H*3*D] with q|k|v per head, out [B, T, H*D]. `out` must not alias `qkv`.
/// With `siluInput` the operand is the pre-activation: silu(qkv) is used.
void lightningAttention(const float *qkv, float *out, int64_t batch,
                        int64_t seq, int64_t heads, int64_t headDim,
                        int64_t blockSize, int64_t layer, int64_t numLayers,
                        Scratch &scratch, bool siluInput = false);

/// Causal softmax attention with GQA: q [B, T, Hq*D], k and v [B, T, Hkv*D],
/// out [B, T, Hq*D].
void softmaxAttention(const float *q, const float *k, const float *v,
                      float *out, int64_t batch, int64_t seq, int64_t heads,
                      int64_t kvHeads, int64_t headDim, double scale,
                      Scratch &scratch);

/// Top-k routed SwiGLU experts: x [rows, H], router [E, H], w1 and w3 [E, I,
/// H], w2 [E, H, I].
void moe(const float *x, const float *router, const float *w1, const float *w2,
         const float *w3, float *out, int64_t rows, int64_t hidden,
         int64_t experts, int64_t inter, int64_t topK, Scratch &scratch);

/// Mean over tokens with label >= 0 of logsumexp(logits) - logits[label]; label
/// -100 is ignored and any other label outside [0, V) is an error. With no
/// counted token the result is NaN (as PyTorch gives).
Status crossEntropy(const float *logits, const int32_t *labels, float *out,
                    int64_t rows, int64_t vocab, int64_t seqLen);

/// Dot product of two float vectors accumulated in double (as every CPU kernel
/// reduces).
double dot(const float *a, const float *b, int64_t n);

/// The MoE router of one token x [H]: p[e] = softmax(x · router[e]) in double,
/// `order` the experts by descending p (stable, so ties keep the lower index
/// first). Returns the sum of the top-k probabilities, the renormaliser of the
/// kept weights. p and order hold E entries.
double moeRoute(const float *x, const float *router, int64_t E, int64_t H,
                int64_t topK, double *p, int64_t *order);

} // namespace mm::cpu
