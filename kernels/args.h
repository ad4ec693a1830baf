// Kernel argument blocks: the ABI between the runtime (host C++, runtime/cuda/)
// and the kernel entry points that the compiler's codegen emits (one `extern
// "C" __global__` function per instantiation, taking exactly one of these
// structs by value).
//
// Plain C structs of 8-byte fields so host and device agree on the layout
// without any CUDA header: pointers travel as `unsigned long long` device
// addresses, sizes as `long long`, reals as `double`. Each struct names the
// kernel of docs/kernels.md it serves.
#pragma once

// Marks the helpers below as callable on both sides under nvcc and NVRTC.
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define MM_HD __host__ __device__
#else
#define MM_HD
#endif

namespace mm {
namespace k {

typedef unsigned long long dptr; // a device address

/// Run-time errors a kernel can report (bad token id, bad label): the first
/// offending row wins. `row` is row+1 (0 = no error), `value` the offending
/// value, `kind` one of the codes below.
struct ErrorSlot {
  unsigned long long row;
  long long value;
  long long kind;
};
enum { kErrorTokenId = 1, kErrorLabel = 2 };

/// embedding: out[r] = table[ids[r]].
struct EmbeddingArgs {
  dptr ids, table, out, error; // error: ErrorSlot*
  long long rows, vocab, hidden;
};

/// rms_norm, and add_rms_norm (x = alpha*a + beta*b fused in front).
struct RmsNormArgs {
  dptr a, b, w, out; // b unused by plain rms_norm
  long long rows, n;
  double eps, alpha, beta;
};

/// silu, sigmoid, mul, scaled_add, sigmoid_mul: out[i] = f(a[i], b[i]).
struct ElementwiseArgs {
  dptr a, b, out; // b unused by unary ops
  long long n;
  double alpha, beta;
};

/// rope: NeoX rotate-half on channels [0, rotary_dim) of each head.
struct RopeArgs {
  dptr x, out;
  long long batch, seq, heads, head_dim, rotary_dim;
  double theta;
};

/// lightning_attention: qkv [B,T,H*3*D] -> out [B,T,H*D].
struct LightningArgs {
  dptr qkv, out;
  long long batch, seq, heads, layer, num_layers;
};

/// lightning_attention, chunk-parallel fast path (bf16, D = 64 or 128;
/// kernels/lightning_attention.cuh): three launches over the same block.
/// `state` is fp32 workspace [B, H, nseg, D, D] (lightningChunkStateFloats); T
/// is cut into nseg segments of seg_len tokens (the last ragged).
struct LightningChunkArgs {
  dptr qkv, out, state;
  long long batch, seq, heads, layer, num_layers, seg_len, nseg;
};

/// softmax_attention: q [B,T,Hq*D], k and v [B,T,Hkv*D] -> out [B,T,Hq*D].
/// Appended, 0 unless a training step's backward reuses them
/// (runtime/TrainSchedule.h, savedAttention): `lse` gets each query row's
/// base-2 log-sum-exp of the scaled scores, m·scale·log2e + log2 Σ 2^(...),
/// f32 at lse[(b·Hq + h)·lse_stride + t] for t < T (the layout of
/// softmax_attention_grad's workspace), and `out_copy` a second copy of out.
///
/// Appended for the FA3 form (attentionFa3Tile, sm_90a), which loads Q, K and
/// V with TMA: `tma_maps` = 1 and three CUtensorMaps (opaque here: TmaDesc has
/// CUtensorMap's size and alignment) that softmaxAttentionTmaMaps
/// (kernels/softmax_attention_tma.h, host only) encodes from q, k, v, batch,
/// seq, heads and kv_heads. That entry requires them (it traps on tma_maps =
/// 0) and takes the block as a `const __grid_constant__` parameter, so the
/// maps are read from parameter space. Other tiles ignore these fields.
struct alignas(128) TmaDesc {
  unsigned long long w[16];
};
struct SoftmaxAttentionArgs {
  dptr q, k, v, out;
  long long batch, seq, heads, kv_heads;
  double scale;
  dptr lse, out_copy;
  long long lse_stride;
  long long tma_maps;
  TmaDesc tma_q, tma_k, tma_v;
};

/// moe: the five kernels of kernels/moe.cuh share one argument block. Workspace
/// arrays (device memory the runtime sizes with moeWorkspaceBytes):
/// topk_expert, topk_weight, slot_pos [rows*top_k]; perm_slot [rows*top_k];
/// offsets, tile_offsets [experts+1]; h [rows*top_k, I] (element type of x); y
/// [rows*top_k, H] (element type of x; sized for f32).
/// Appended: with `add` != 0 the combine writes out = out_scale·Σ +
/// add_scale·add (add of out's type and shape, in place or apart): a residual
/// scaled_add folded into the layer (runtime/TrainSchedule.h, fusedAdd).
struct MoeArgs {
  dptr x, router, w1, w2, w3, out;
  dptr topk_expert, topk_weight, slot_pos, perm_slot, offsets, tile_offsets, h,
      y;
  long long rows, hidden, experts, inter, top_k;
  dptr add;
  double out_scale, add_scale;
};

/// cross_entropy: per-row losses into `row_loss` (f32 workspace [rows], -1
/// marks an ignored row), then one block reduces them into the scalar `out`.
struct CrossEntropyArgs {
  dptr logits, labels, out, row_loss, error;
  long long rows, vocab;
};

/// Shared-memory floats of the tiled kernels, from their template parameters;
/// the runtime reserves exactly this (times 4 bytes) when it launches them.
MM_HD constexpr long long lightningSmemFloats(int D, int BLOCK, int DV) {
  return 2ll * BLOCK * (D + 1) + 1ll * BLOCK * (DV + 1) +
         1ll * BLOCK * (BLOCK + 1) + 1ll * D * (DV + 1);
}
MM_HD constexpr long long attentionSmemFloats(int D, int BQ, int BK) {
  return 1ll * BQ * (D + 1) + 2ll * BK * (D + 1) + 1ll * BQ * (BK + 1) +
         3ll * BQ;
}
/// The FA3 form of the bf16 attention (sm_90a, kernels/softmax_attention.cuh):
/// D = 128, 128×128 tiles on a producer and two consumer warpgroups (THREADS =
/// 3·BQ); K+V stages in its ring, whether the consumers ping-pong, and its
/// dynamic shared memory (1 KB alignment slack, Q and each stage's K and V as
/// 128×128 bf16).
MM_HD constexpr bool attentionFa3Tile(int D, int BQ, int BK, int THREADS) {
  return D == 128 && BQ == 128 && BK == 128 && THREADS == 3 * BQ;
}
/// Two stages: with the TMA producer, 2 stages measured as fast as or faster
/// than 3 (bench/results/fa3tma.md; with cp.async 3 were needed).
MM_HD constexpr int attentionFa3Stages() { return 2; }
/// The FA3 form's producer: true = TMA (one thread, tensor maps in the
/// argument block), false = 16-byte cp.async by the producer warpgroup.
MM_HD constexpr bool attentionFa3Tma() { return true; }
MM_HD constexpr bool attentionFa3PingPong() { return true; }
MM_HD constexpr bool attentionFa3EarlyK() { return true; }
MM_HD constexpr bool attentionFa3PackEarly() { return false; }
MM_HD constexpr long long attentionFa3SmemBytes(int stages) {
  return 1024ll + (1ll + 2 * stages) * 128 * 128 * 2;
}
/// Dynamic shared memory (bytes) of the bf16 tensor-core attention: two stages
/// of K and V tiles, [BK][D+8] bf16 each; the FA3 tile (BQ and THREADS given)
/// attentionFa3SmemBytes.
MM_HD constexpr long long attentionBf16SmemBytes(int D, int BK, int BQ = 0,
                                                 int THREADS = 0) {
  return attentionFa3Tile(D, BQ, BK, THREADS)
             ? attentionFa3SmemBytes(attentionFa3Stages())
             : 2ll * 2 * BK * (D + 8) * 2;
}
/// Chunk-parallel lightning attention (bf16, D = 64 or 128;
/// lightningChunkHeadDim): tokens per sub-chunk, threads per block,
/// shared-memory bytes of the per-segment state kernel and the output kernel
/// (STAGES-deep cp.async pipelines of padded [64][D+8] bf16 tiles, plus P
/// [64][72], O [64][D+8] and the bf16 state [D][D+8]), the fp32 workspace ([D,
/// D] per segment) and the blocks of the scan launch (D·D/1024).
MM_HD constexpr bool lightningChunkHeadDim(long long d) {
  return d == 64 || d == 128;
}
MM_HD constexpr int lightningChunkRows() { return 64; }
MM_HD constexpr int lightningChunkThreads() { return 256; }
MM_HD constexpr long long lightningChunkStatesSmem(int D, int stages) {
  return stages * 2ll * 64 * (D + 8) * 2;
}
MM_HD constexpr long long lightningChunkOutSmem(int D, int stages) {
  return stages * 3ll * 64 * (D + 8) * 2 + 64ll * 72 * 2 + 64ll * (D + 8) * 2 +
         1ll * D * (D + 8) * 2;
}
MM_HD constexpr long long lightningChunkStateFloats(int D, long long batch,
                                                    long long heads,
                                                    long long nseg) {
  return batch * heads * nseg * D * D;
}
MM_HD constexpr int lightningChunkScanBlocks(int D) { return D * D / 1024; }
/// Fused single launch (sm_90a, D = 128; lightningChunkFused, decoupled
/// look-back): the workspace holds fp32 [B·H, nseg, 2, D, D] (per segment its
/// own state contribution and the state at its end), then ints: [B·H·nseg]
/// status words, an error word, (a pad,) a 64-bit ticket counter at int index
/// lightningFusedTicket; the lightningFusedFlagInts ints must be zero before
/// each launch.
MM_HD constexpr long long lightningFusedStateFloats(int D, long long bh,
                                                    long long nseg) {
  return 2 * bh * nseg * D * D;
}
MM_HD constexpr long long lightningFusedTicket(long long bh, long long nseg) {
  return (bh * nseg + 2) & ~1ll;
}
MM_HD constexpr long long lightningFusedFlagInts(long long bh, long long nseg) {
  return lightningFusedTicket(bh, nseg) + 2;
}
/// Most segments of one sequence and head in the fused launch (its workspace
/// holds two [D, D] slots a segment, as many bytes as the three launches'
/// 2·lightningFusedMaxSegments slots).
MM_HD constexpr long long lightningFusedMaxSegments() { return 128; }
/// Segment length of the fused single launch (sm_90a, D = 128) for T tokens of
/// `bh` (batch × heads) sequences on `sms` multiprocessors, or 0 where the
/// three launches run instead. `force` < 0: the default policy, segments of
/// 8192 tokens (measured fastest of 512..8192 at T = 64K..1M, H = 16,
/// bench/results/llook.md) when they make at least 3/4 of a wave of blocks
/// (one block per multiprocessor); force = 0: never; force > 0: segments of
/// `force` tokens (rounded up to 64; a test knob). Either way at most
/// lightningFusedMaxSegments() segments.
MM_HD inline long long lightningFusedSegLen(long long T, long long bh,
                                            long long sms,
                                            long long force = -1) {
  if (force == 0 || T <= 0)
    return 0;
  long long seg = force > 0 ? force : 8192;
  const long long minSeg =
      (T + lightningFusedMaxSegments() - 1) / lightningFusedMaxSegments();
  seg = (seg > minSeg ? seg : minSeg);
  seg = (seg + 63) / 64 * 64;
  if (force < 0 && 4 * bh * ((T + seg - 1) / seg) < 3 * sms)
    return 0;
  return seg;
}
/// Segment length (a multiple of 64) for T tokens of `bh` (batch × heads)
/// independent sequences on `sms` multiprocessors, head dim D. Each launch
/// walks its segments sequentially, so its time is about waves × seg_len: the
/// output launch runs one block per multiprocessor at D = 128 (218 KB of shared
/// memory) and two at D = 64 (110 KB), the states launch two (four at D = 64)
/// at about 0.4 of the output's cost per token (measured, H200); plus the
/// per-segment state traffic (about 2·D tokens' worth of bytes per segment: [D,
/// D] fp32 against 3·D bf16 per token).
MM_HD inline long long lightningChunkSegLen(long long T, long long bh,
                                            long long sms, int D) {
  const long long sub = (T + 63) / 64;
  const long long outPerSm = D <= 64 ? 2 : 1, statesPerSm = 2 * outPerSm;
  long long best = sub * 64, bestCost = -1;
  for (long long n = 1; n <= sub && n <= 4096; ++n) {
    const long long len = (sub + n - 1) / n * 64, segs = (T + len - 1) / len;
    const long long wavesOut =
        (bh * segs + outPerSm * sms - 1) / (outPerSm * sms);
    const long long wavesStates =
        (bh * (segs - 1) + statesPerSm * sms - 1) / (statesPerSm * sms);
    const long long cost = 10 * wavesOut * len + 4 * wavesStates * len +
                           10 * (segs - 1) * bh * 2 * D / sms;
    if (bestCost < 0 || cost < bestCost) {
      bestCost = cost;
      best = len;
    }
  }
  return best;
}

/// The MoE kernels keep per-block expert tables in shared memory of this many
/// entries.
MM_HD constexpr int moeMaxExperts() { return 256; }
/// The sm_90a bf16 form of the MoE GEMMs (kernels/moe.cuh, moeGemmWgmma): the
/// tile pass picks it as tile_m = tile_n = 128, tile_k = 64 (down: 128 × 256
/// tiles). Persistent CTAs (one per multiprocessor, moeWgmmaGrid) stage
/// operands in dynamic shared memory, moeWgmmaStages deep; the runtime launches
/// both GEMMs with moeWgmmaSmemBytes of it.
MM_HD constexpr bool moeWgmmaTiles(long long bm, long long bn, long long bk) {
  return bm == 128 && bn == 128 && bk == 64;
}
MM_HD constexpr int moeWgmmaStages() { return 4; }
/// Threads of a wgmma GEMM CTA: one producer warpgroup (cp.async) and two
/// consumer warpgroups (wgmma); the route and combine kernels keep
/// tile_threads.
MM_HD constexpr int moeWgmmaThreads() { return 384; }
MM_HD constexpr long long moeWgmmaSmemBytes() {
  // A (128 rows) and B (256 rows: gate then up, or 256 down columns) of 64 bf16
  // per stage, plus 1 KiB to align the 128-byte swizzle atoms to 1024 bytes.
  return moeWgmmaStages() * (128ll + 256) * 64 * 2 + 1024;
}
/// CTAs of a persistent wgmma GEMM: one per multiprocessor, at most one per
/// work item (maxMTiles: the bound on M-tiles, moeGemmTiles).
MM_HD constexpr long long moeWgmmaGrid(long long multiprocessors,
                                       long long maxMTiles, long long n,
                                       bool gateUp) {
  const long long items =
      maxMTiles * ((n + (gateUp ? 127 : 255)) / (gateUp ? 128 : 256));
  return items < multiprocessors ? items : multiprocessors;
}

} // namespace k
} // namespace mm
