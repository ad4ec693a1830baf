// lightning_attention_grad (docs/kernels.md, "Training kernels"): argument
// block, workspace size and launch plan of
// kernels/lightning_attention_grad.cuh.
//
// The backward is three causal decayed linear attentions of the forward's form
// o_τ = Σ_{σ≤τ} λ^{τ-σ} (q'_τ·k'_σ) v'_σ, on remapped operands (see the .cuh):
// job 0 (dq) forward in time, jobs 1 (dk) and 2 (dv) backward in time. Every
// job runs chunk-parallel over the sequence: T is cut into nseg segments of
// seg_len tokens (a multiple of 64, the last ragged). Launches, in order:
//   "_states" grid (nseg-1, H, 2B): the decayed [D,D] state sum of each full
//             segment into the workspace (skipped when nseg = 1), for jobs 0
//             and 2 (job 1's state is job 2's transposed);
//   "_scan"   grid (⌈D²/256⌉, H, 2B): exclusive scan of those, in place;
//   "_out"    grid (nseg, H, 3B): each segment's outputs from its start state.
// Every launch has lightningGradThreads() threads. The same plan serves f32
// (SIMT fp32 kernels, any D up to lightningGradMaxGenericDim) and bf16 (tensor
// cores for D = 64 and 128, the SIMT kernels otherwise); its shared-memory
// sizes are the larger of the two forms'.
#pragma once

#include "kernels/args.h"
#include "kernels/launch.h"

namespace mm {
namespace k {

/// qkv [B, T, H*3*D] T (per head q | k | v, D each, already silu'd), dout [B,
/// T, H*D] T -> dqkv [B, T, H*3*D] T. `workspace`: fp32 segment states
/// [B, 3, H, nseg, D, D] (lightningAttentionGradWorkspaceBytes).
struct LightningGradArgs {
  dptr qkv, dout, dqkv, workspace;
  long long batch, seq, heads, layer, num_layers;
  // Filled by lightningAttentionGradPlan.
  long long seg_len, nseg;
};

MM_HD constexpr int lightningGradThreads() { return 256; }
/// Head dims with the tensor-core (bf16) form.
MM_HD constexpr bool lightningGradFastDim(long long d) {
  return d == 64 || d == 128;
}
/// Tokens per sub-chunk of the SIMT form.
MM_HD constexpr int lightningGradGenericRows(long long D) {
  return D > 128 ? 16 : 32;
}
/// Shared memory of the SIMT form (fp32): Q, K, V [C][D+1], P [C][C+1] and
/// the running state [D][D+1] (the states launch uses a part of it).
MM_HD constexpr long long lightningGradGenericSmem(long long D) {
  return 4ll * (3ll * lightningGradGenericRows(D) * (D + 1) +
                1ll * lightningGradGenericRows(D) *
                    (lightningGradGenericRows(D) + 1) +
                D * (D + 1));
}
MM_HD constexpr long long lightningGradGenericStatesSmem(long long D) {
  return 4ll * 2 * lightningGradGenericRows(D) * (D + 1);
}
/// Shared memory of the tensor-core form (3-stage cp.async pipelines of
/// padded [64][D+8] bf16 tiles; the out launch adds P [64][72], O [64][D+8]
/// and a bf16 copy of the state [D][D+8]).
MM_HD constexpr long long lightningGradFastStatesSmem(long long D) {
  return 3ll * 2 * 64 * (D + 8) * 2;
}
MM_HD constexpr long long lightningGradFastOutSmem(long long D) {
  return 3ll * 3 * 64 * (D + 8) * 2 + 64ll * 72 * 2 + 64ll * (D + 8) * 2 +
         D * (D + 8) * 2;
}
/// Blocks per multiprocessor the launches are built for (__launch_bounds__).
MM_HD constexpr int lightningGradOutPerSm(long long D) {
  return D == 64 ? 2 : 1;
}
MM_HD constexpr int lightningGradStatesPerSm(long long D) {
  return D == 64 ? 4 : D == 128 ? 2 : 1;
}
/// Bound on all segments of all jobs, 3·B·H·nseg: about four waves of the out
/// launch, or one segment per job when that is more. Monotone in B and T, so
/// the workspace sized for the maximum shapes holds every smaller run.
MM_HD constexpr long long lightningGradSlotBudget(long long B, long long H,
                                                  long long T, long long sms,
                                                  long long D) {
  const long long jobs = 3 * B * H, sub = (T + 63) / 64;
  const long long q = 4ll * lightningGradOutPerSm(D) * sms;
  const long long cap = jobs > q ? jobs : q;
  return jobs * sub < cap ? jobs * sub : cap;
}

#if !defined(__CUDACC_RTC__)

/// Segment length (a multiple of 64) for the run's B, T: the forward's cost
/// model (lightningChunkSegLen: waves of the out and states launches times the
/// segment length, plus the state traffic), over segment counts within
/// lightningGradSlotBudget.
inline long long lightningAttentionGradSegLen(long long B, long long T,
                                              long long H, long long sms,
                                              int D) {
  const long long jobs = 3 * B * H, sub = (T + 63) / 64;
  long long maxSegs = lightningGradSlotBudget(B, H, T, sms, D) / jobs;
  if (maxSegs < 1)
    maxSegs = 1;
  const long long outPerSm = lightningGradOutPerSm(D),
                  statesPerSm = lightningGradStatesPerSm(D);
  long long best = sub * 64, bestCost = -1;
  for (long long n = 1; n <= sub && n <= maxSegs; ++n) {
    const long long len = (sub + n - 1) / n * 64, segs = (T + len - 1) / len;
    const long long wavesOut =
        (jobs * segs + outPerSm * sms - 1) / (outPerSm * sms);
    const long long wavesStates =
        (jobs * (segs - 1) + statesPerSm * sms - 1) / (statesPerSm * sms);
    const long long cost = 10 * wavesOut * len + 4 * wavesStates * len +
                           10 * (segs - 1) * jobs * 2 * D / sms;
    if (bestCost < 0 || cost < bestCost) {
      bestCost = cost;
      best = len;
    }
  }
  return best;
}

/// fp32 segment states for the (maximum) shapes in `a`.
inline unsigned long long
lightningAttentionGradWorkspaceBytes(const LightningGradArgs &a, int D,
                                     int sms) {
  const long long slots =
      lightningGradSlotBudget(a.batch, a.heads, a.seq, sms, D);
  const unsigned long long bytes = 4ull * slots * D * D;
  return bytes < 256 ? 256 : bytes;
}

/// Fills seg_len, nseg and the launches; returns their count (0: D too large
/// for the SIMT form's shared memory, or an empty run).
inline int lightningAttentionGradPlan(LightningGradArgs &a, int D, int sms,
                                      Launch *out) {
  if (a.batch < 1 || a.seq < 1 || a.heads < 1 || D < 1)
    return 0;
  const long long gen = lightningGradGenericSmem(D);
  if (gen > 227 * 1024)
    return 0;
  a.seg_len = lightningAttentionGradSegLen(a.batch, a.seq, a.heads, sms, D);
  a.nseg = (a.seq + a.seg_len - 1) / a.seg_len;
  const bool fast = lightningGradFastDim(D);
  const long long gst = lightningGradGenericStatesSmem(D);
  const long long st = fast && lightningGradFastStatesSmem(D) > gst
                           ? lightningGradFastStatesSmem(D)
                           : gst;
  const long long os = fast && lightningGradFastOutSmem(D) > gen
                           ? lightningGradFastOutSmem(D)
                           : gen;
  const unsigned H = static_cast<unsigned>(a.heads),
                 Z = static_cast<unsigned>(3 * a.batch),
                 Z2 = static_cast<unsigned>(2 * a.batch);
  const unsigned th = lightningGradThreads();
  int n = 0;
  if (a.nseg > 1) {
    out[n++] = Launch{"_states", static_cast<unsigned>(a.nseg - 1), H, Z2,
                      th,        static_cast<unsigned>(st)};
    out[n++] = Launch{
        "_scan", static_cast<unsigned>((1ll * D * D + th - 1) / th), H, Z2, th,
        0};
  }
  out[n++] = Launch{"_out", static_cast<unsigned>(a.nseg), H, Z,
                    th,     static_cast<unsigned>(os)};
  return n;
}

#endif

} // namespace k
} // namespace mm
