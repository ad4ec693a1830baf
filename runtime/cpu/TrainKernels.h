// CPU reference implementations of the training kernels of docs/kernels.md:
// the backward of every forward kernel, the chunked lm_head + cross-entropy
// loss and its gradient, the global gradient norm and the optimizer updates
// (AdamW, CAME). f32 storage; every reduction (dot products, sums over tokens
// for weight gradients, the lightning state and its reverse-time counterpart)
// is accumulated in double, so results match float64 references to ~1e-6.
//
// Operand shapes were checked by the artifact verifier. Each function is
// thread-compatible: it touches only its arguments and the caller's Scratch.
// No function may run with an output aliasing an input unless it says so.
#pragma once

#include "runtime/base/Status.h"
#include "runtime/cpu/CpuKernels.h"

#include <cstdint>

namespace mm::cpu {

/// dtable[V, H] = Σ_{r: ids[r] = v} dy[r] (zero for unused rows).
Status embeddingGrad(const int32_t *ids, const float *dy, float *dtable,
                     int64_t rows, int64_t vocab, int64_t hidden,
                     int64_t seqLen);

/// Backward of rms_norm: dx [rows, n] and dw [n] (summed over rows).
void rmsNormGrad(const float *x, const float *w, const float *dy, float *dx,
                 float *dw, int64_t rows, int64_t n, double eps,
                 Scratch &scratch);

/// Backward of linear (y = x wᵀ): dx = dy w [rows, k], dw = dyᵀ x [n, k].
void linearGrad(const float *x, const float *w, const float *dy, float *dx,
                float *dw, int64_t rows, int64_t k, int64_t n,
                Scratch &scratch);

/// dx = dy * silu'(x) and dy * sigmoid'(x), elementwise (dx may alias dy).
void siluGrad(const float *x, const float *dy, float *dx, int64_t n);
void sigmoidGrad(const float *x, const float *dy, float *dx, int64_t n);

/// Backward of rope: the inverse rotation of dy (may run in place).
void ropeGrad(const float *dy, float *dx, int64_t batch, int64_t seq,
              int64_t heads, int64_t headDim, int64_t rotaryDim, double theta,
              Scratch &scratch);

/// Backward of lightning_attention: dqkv [B, T, H*3*D] (q|k|v per head) from
/// qkv and dout [B, T, H*D]. dq runs the KV-state recurrence forward block by
/// block; dk and dv run its transpose (the state Σ λ^(t-b0) q_tᵀ do_t) in
/// reverse, block by block.
void lightningAttentionGrad(const float *qkv, const float *dout, float *dqkv,
                            int64_t batch, int64_t seq, int64_t heads,
                            int64_t headDim, int64_t blockSize, int64_t layer,
                            int64_t numLayers, Scratch &scratch);

/// Backward of softmax_attention, flash style: the probabilities of each query
/// row are recomputed from q and k, never stored. dk and dv are summed over
/// the query heads that share a kv head.
void softmaxAttentionGrad(const float *q, const float *k, const float *v,
                          const float *dout, float *dq, float *dk, float *dv,
                          int64_t batch, int64_t seq, int64_t heads,
                          int64_t kvHeads, int64_t headDim, double scale,
                          Scratch &scratch);

/// Backward of moe, including the router gradient through softmax and the
/// renormalised top-k weights (the selection itself is piecewise constant).
void moeGrad(const float *x, const float *router, const float *w1,
             const float *w2, const float *w3, const float *dy, float *dx,
             float *drouter, float *dw1, float *dw2, float *dw3, int64_t rows,
             int64_t hidden, int64_t experts, int64_t inter, int64_t topK,
             Scratch &scratch);

/// Mean cross-entropy of (h wᵀ) against labels, computed `chunkRows` token
/// rows at a time so that at most chunkRows x V logits exist at once. Label
/// -100 is ignored; other labels outside [0, V) are errors. NaN if no token
/// counts.
Status lmHeadLoss(const float *h, const float *w, const int32_t *labels,
                  float *loss, int64_t rows, int64_t hidden, int64_t vocab,
                  int64_t seqLen, int64_t chunkRows, Scratch &scratch);

/// Gradient of lmHeadLoss: dh [rows, H] and dw [V, H], chunked the same way.
Status lmHeadLossGrad(const float *h, const float *w, const int32_t *labels,
                      float *dh, float *dw, int64_t rows, int64_t hidden,
                      int64_t vocab, int64_t seqLen, int64_t chunkRows,
                      Scratch &scratch);

/// Squared L2 norm of `n` values, in double.
double sumSquares(const float *g, int64_t n);

/// Factor torch.nn.utils.clip_grad_norm_ scales gradients by: min(1,
/// maxNorm / (norm + 1e-6)), or 1 when maxNorm <= 0.
double clipFactor(double norm, double maxNorm);

struct AdamWParams {
  double lr = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0;
  double step = 1;      // 1-based, for the bias corrections
  double gradScale = 1; // clipping factor applied to the gradient
};

/// torch.optim.AdamW on n elements, in place on the fp32 master weights p and
/// the moments m, v.
void adamw(float *p, const float *grad, float *m, float *v, int64_t n,
           const AdamWParams &a);

struct CameParams {
  double lr = 0, beta1 = 0.9, beta2 = 0.999, beta3 = 0.9999;
  double eps1 = 1e-30, eps2 = 1e-16, clipThreshold = 1.0, weightDecay = 0;
  double gradScale = 1;
};

/// CAME (Luo et al., ACL 2023; reference implementation yangluo7/CAME) for a
/// stack of `count` matrices [rows, cols]: factored second moments (row
/// [count, rows], col [count, cols]) and factored confidence (resRow, resCol);
/// m has the parameter's shape. Weight decay is decoupled (p -= lr*wd*p).
void cameFactored(float *p, const float *grad, float *m, float *row, float *col,
                  float *resRow, float *resCol, int64_t count, int64_t rows,
                  int64_t cols, const CameParams &c, Scratch &scratch);

/// CAME for a vector: unfactored second moment v; no confidence term.
void cameVector(float *p, const float *grad, float *m, float *v, int64_t n,
                const CameParams &c);

} // namespace mm::cpu
