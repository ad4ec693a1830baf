// softmax_attention_grad (docs/kernels.md, "Training kernels"): the argument
// block, workspace size and launch plan of kernels/softmax_attention_grad.cuh
// (the ABI of kernels/launch.h). Host and device includable; NVRTC compiles it
// as part of the generated unit.
//
// Three launches over one argument block (with the forward's saved_lse and
// saved_out, "_delta" (grid (Tpad/128, Hq, B), 256 threads: delta =
// rowsum(dO ∘ O), lse of the padding rows zeroed, dq accumulator rows zeroed)
// runs instead of "_stats" and lse is the forward's):
//   "_stats" grid (Tpad/128, Hq, B), 256 threads: per query row the base-2
//            log-sum-exp of the scaled scores (lse) and delta = Σ_u
//            p_u·(dO·v_u)
//            (= rowsum(dO ∘ O)) into fp32 workspace [B, Hq, Tpad]; zeroes the
//            fp32 dq accumulator rows of its tile;
//   "_dkdv"  grid (Tpad/KEYS, Hkv, B), 2·KEYS threads (KEYS = sagDkdvKeys(D):
//            64 at D = 128, else 128): per key block and kv head, dk and dv
//            (summed over the query heads of the group)
//            written directly; dq's partial sums added atomically into the fp32
//            accumulator [B, T, Hq*D];
//   "_dq"    grid-stride: dq = scale · accumulator, stored as T.
// Tpad = T rounded up to 128. The geometry depends only on the shapes and D,
// not on the element type (the plan does not know it): the dynamic shared
// memory is the larger of the bf16 tensor-core form (D = 64, 128) and the SIMT
// form.
#pragma once

#include "kernels/args.h"
#include "kernels/launch.h"

namespace mm {
namespace k {

/// softmax_attention_grad: q, dout [B,T,Hq*D], k, v [B,T,Hkv*D] -> dq, dk, dv
/// (shapes of q, k, v), all T. Appended (filled by the plan): lse, delta (fp32
/// [B, Hq, tpad]), dq_acc (fp32 [B, T, Hq*D]) inside `workspace`; tpad.
struct SoftmaxAttentionGradArgs {
  dptr q, k, v, dout, dq, dk, dv, workspace;
  long long batch, seq, heads, kv_heads;
  double scale;
  dptr lse, delta, dq_acc;
  long long tpad;
  // Set by the executor (0 = recompute): the forward's row statistics in the
  // layout of `lse` (SoftmaxAttentionArgs::lse, lse_stride = tpad) and a copy
  // of its output O [B, T, Hq*D]. With them "_delta" replaces "_stats":
  // delta = rowsum(dO ∘ O), one read of dO and O instead of a pass over the
  // keys.
  dptr saved_lse, saved_out;
};

/// Query rows per "_stats" block (and the padding of T), threads of "_stats".
MM_HD constexpr int sagBlockRows() { return 128; }
MM_HD constexpr int sagThreads() { return 256; }
/// Whether the bf16 form of head dim D runs on the tensor cores.
MM_HD constexpr bool sagFastHeadDim(long long d) { return d == 64 || d == 128; }
/// Query rows per step of the tensor-core "_dkdv" (register budget: dk and dv
/// accumulators of 16 keys × D per warp).
MM_HD constexpr int sagFastBq(int D) { return D == 128 ? 32 : 64; }
/// Keys per "_dkdv" block (16 per warp) and its threads, for all forms of
/// head dim D; blocks per multiprocessor the entries are compiled for. Measured
/// on an H200 (test/gpu/results/2026-11-22-train-softmax_attention_grad.log):
/// D = 64 runs best as one 128-key block per SM (8 warps, 252 registers),
/// D = 128 as two 64-key blocks per SM (4 warps each, BQ = 32).
MM_HD constexpr int sagDkdvKeys(int D) { return D == 128 ? 64 : 128; }
MM_HD constexpr int sagDkdvThreads(int D) { return 2 * sagDkdvKeys(D); }
MM_HD constexpr int sagDkdvMinBlocks(int elemBytes, int D) {
  return elemBytes == 2 && sagFastHeadDim(D) ? 256 / sagDkdvThreads(D) : 1;
}
/// Keys per tile of the tensor-core "_stats" and its blocks per multiprocessor
/// (32-key tiles fit 128 registers: two blocks per SM, ~20% faster than one
/// with 64-key tiles).
MM_HD constexpr int sagFastStatsBk(int) { return 32; }
MM_HD constexpr int sagStatsMinBlocks(int elemBytes, int D) {
  return elemBytes == 2 && sagFastHeadDim(D) ? 2 : 1;
}
/// Shared memory (bytes) of the tensor-core forms: "_stats" double-buffers K
/// and V tiles of BK keys ([BK][D+8] bf16); "_dkdv" holds K and V of the block
/// ([BK][D+8]), two stages of Q and dO tiles ([BQ][D+8]) and dSᵀ [BK][BQ+8].
MM_HD constexpr long long sagFastStatsSmem(int D, int BK) {
  return 2ll * 2 * BK * (D + 8) * 2;
}
MM_HD constexpr long long sagFastDkdvSmem(int D, int BQ, int BK) {
  return (2ll * BK + 4ll * BQ) * (D + 8) * 2 + 1ll * BK * (BQ + 8) * 2;
}
/// Shared memory (bytes) of the SIMT forms (32-row sub-tiles, f32 rows padded
/// by one word): "_stats" Q, dO, K, V [32][D+1]; "_dkdv" the same plus P and dS
/// [32][33] and the tile's lse and delta [32].
MM_HD constexpr long long sagSimtStatsSmem(int D) {
  return 4ll * 32 * (D + 1) * 4;
}
MM_HD constexpr long long sagSimtDkdvSmem(int D) {
  return 4ll * 32 * (D + 1) * 4 + 2ll * 32 * 33 * 4 + 2ll * 32 * 4;
}

#if !defined(__CUDACC_RTC__)
inline long long sagPad(long long t) {
  return (t + sagBlockRows() - 1) / sagBlockRows() * sagBlockRows();
}
inline unsigned long long sagAlign(unsigned long long n) {
  return (n + 255) / 256 * 256;
}

/// Workspace bytes: lse and delta [B, Hq, Tpad] f32 and dq_acc [B, T, Hq*D]
/// f32, each 256-byte aligned.
inline unsigned long long
softmaxAttentionGradWorkspaceBytes(const SoftmaxAttentionGradArgs &a, int D,
                                   int sms) {
  (void)sms;
  const unsigned long long rows =
      static_cast<unsigned long long>(a.batch) * a.heads * sagPad(a.seq);
  return 2 * sagAlign(rows * 4) +
         sagAlign(static_cast<unsigned long long>(a.batch) * a.seq * a.heads *
                  D * 4);
}

inline int softmaxAttentionGradPlan(SoftmaxAttentionGradArgs &a, int D, int sms,
                                    Launch *out) {
  a.tpad = sagPad(a.seq);
  const unsigned long long rows =
      static_cast<unsigned long long>(a.batch) * a.heads * a.tpad;
  const bool saved = a.saved_lse && a.saved_out;
  a.lse = saved ? a.saved_lse : a.workspace;
  a.delta = a.workspace + sagAlign(rows * 4);
  a.dq_acc = a.delta + sagAlign(rows * 4);
  long long statsSmem = sagSimtStatsSmem(D), dkdvSmem = sagSimtDkdvSmem(D);
  if (sagFastHeadDim(D)) {
    const long long fs = sagFastStatsSmem(D, sagFastStatsBk(D));
    const long long fd = sagFastDkdvSmem(D, sagFastBq(D), sagDkdvKeys(D));
    statsSmem = fs > statsSmem ? fs : statsSmem;
    dkdvSmem = fd > dkdvSmem ? fd : dkdvSmem;
  }
  const unsigned tiles = static_cast<unsigned>(a.tpad / sagBlockRows());
  out[0] = {saved ? "_delta" : "_stats",
            tiles,
            static_cast<unsigned>(a.heads),
            static_cast<unsigned>(a.batch),
            static_cast<unsigned>(sagThreads()),
            static_cast<unsigned>(saved ? 0 : statsSmem)};
  out[1] = {"_dkdv",
            static_cast<unsigned>(a.tpad / sagDkdvKeys(D)),
            static_cast<unsigned>(a.kv_heads),
            static_cast<unsigned>(a.batch),
            static_cast<unsigned>(sagDkdvThreads(D)),
            static_cast<unsigned>(dkdvSmem)};
  const long long n = a.batch * a.seq * a.heads * D;
  long long blocks = (n + 4 * 256 - 1) / (4 * 256);
  if (blocks > 8ll * sms)
    blocks = 8ll * sms;
  if (blocks < 1)
    blocks = 1;
  out[2] = {"_dq", static_cast<unsigned>(blocks), 1, 1, 256, 0};
  return 3;
}
#endif

} // namespace k
} // namespace mm
