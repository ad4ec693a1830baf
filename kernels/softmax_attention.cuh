// softmax_attention (docs/kernels.md): causal softmax attention forward with
// GQA, in the FlashAttention-2 form: per query tile, walk the key/value tiles
// up to the diagonal keeping a running row max m and row sum l in fp32 (online
// softmax), rescaling the output accumulator by exp(m_old - m_new) at each
// tile; divide by l at the end. Query head h reads kv head h / (Hq/Hkv).
//
// Operands: q [B, T, Hq*D], k and v [B, T, Hkv*D], out [B, T, Hq*D], all T,
// row-major. Tiling: grid (ceil(T/BQ), Hq, B). f32 shared memory (floats, rows
// padded by one word): Q [BQ][D+1], K and V [BK][D+1], P [BQ][BK+1], m, l,
// rescale [BQ] = attentionSmemFloats. f32: S = Q Kᵀ and O += P V run on TileMap
// register tiles in fp32 (O stays in registers across tiles); one warp per
// query row does the softmax bookkeeping. bf16: two tensor-core forms, both
// with Q fragments in registers, S and O fp32 in registers, P rounded to bf16
// and fed from the S registers into P V, softmax in base 2:
//  - any target, D ≤ 256, THREADS = 2·BQ: mma.sync.m16n8k16, a warp per 16
//    query rows; K and V tiles double-buffered in dynamic shared memory by
//    cp.async (attentionBf16SmemBytes) as [BK][D+8] (16-byte row pad), fed by
//    ldmatrix (V with .trans).
//  - sm_90a with D = 128, BQ = BK = 128 and THREADS = 3·BQ (mm-tile's pick
//    there): the FA3 form (softmaxAttentionFa3 below): a producer warpgroup
//    filling an mbarrier ring of K and V tiles by TMA (tensor maps in the
//    argument block, kernels/softmax_attention_tma.h; 128-byte swizzle, two
//    [BK][64] halves per tile), two wgmma consumer warpgroups (64 query rows
//    each) with the softmax of one key tile under the P V product of the
//    previous one, and ping-pong between them.
// All forms: query tiles run heaviest first (block n takes tile
// nQ-1-n/(Hq·B)); key tiles past a warp's (warpgroup's) diagonal are skipped
// and only tiles crossing it or T are masked. Keys past T or past the diagonal
// are -inf. With SoftmaxAttentionArgs::lse / out_copy set (a training step
// whose backward reuses them) every form also writes each row's base-2
// log-sum-exp and a copy of the output.
#pragma once

#include "kernels/async_copy.cuh"
#include "kernels/tile_gemm.cuh"

namespace mm {
namespace k {

/// Four 8×8 bf16 matrices; lanes 8i..8i+7 give the row addresses of matrix i.
/// Plain: lane (g,t) gets row g, columns 2t..2t+1 of each; `.trans`: rows
/// 2t..2t+1 of column g.
__device__ __forceinline__ void ldMatrix4(unsigned (&r)[4], unsigned addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldMatrix2(unsigned (&r)[4], unsigned addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(addr));
}
__device__ __forceinline__ void ldMatrix4Trans(unsigned (&r)[4],
                                               unsigned addr) {
  asm volatile(
      "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
      : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
      : "r"(addr));
}
/// The backward's row statistic (SoftmaxAttentionArgs::lse) of the two rows a
/// quad of lanes holds: scaled max ms (base 2) and the quad-reduced sum l.
__device__ __forceinline__ void saveRowLse(const SoftmaxAttentionArgs &p,
                                           long long b, long long h,
                                           long long rowA, long long rowB,
                                           int t, float msA, float lA,
                                           float msB, float lB) {
  if (!p.lse || t != 0)
    return;
  float *lse = mptr<float>(p.lse) + (b * p.heads + h) * p.lse_stride;
  if (rowA < p.seq)
    lse[rowA] = msA + log2f(lA);
  if (rowB < p.seq)
    lse[rowB] = msB + log2f(lB);
}
/// The tensor-core epilogue's store: rows A's and B's packed bf16 pairs at
/// column c (elements; rows rowQ elements apart) of out, and of out_copy when
/// the backward keeps it; rows past T are skipped.
__device__ __forceinline__ void storeRowPair(const SoftmaxAttentionArgs &p,
                                             long long b, long long rowQ,
                                             long long rowA, long long rowB,
                                             long long c, unsigned vA,
                                             unsigned vB) {
  unsigned *out = mptr<unsigned>(p.out), *copy = mptr<unsigned>(p.out_copy);
  if (rowA < p.seq) {
    const long long at = ((b * p.seq + rowA) * rowQ + c) / 2;
    out[at] = vA;
    if (copy)
      copy[at] = vA;
  }
  if (rowB < p.seq) {
    const long long at = ((b * p.seq + rowB) * rowQ + c) / 2;
    out[at] = vB;
    if (copy)
      copy[at] = vB;
  }
}
__device__ __forceinline__ float exp2Approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
template <int D, int BQ, int BK, int THREADS>
__device__ void softmaxAttentionTensorCores(const SoftmaxAttentionArgs &p,
                                            float *smem) {
  static_assert(THREADS == 2 * BQ && BQ % 16 == 0,
                "one warp per 16 query rows");
  static_assert(D % 16 == 0 && BK % 16 == 0 && D <= 256, "mma tiles");
  constexpr int LD =
      D + 8; // bf16 row stride: ldmatrix's 8 rows hit distinct banks
  constexpr int TILE = BK * LD;        // one K or V tile
  constexpr int CHUNKS = BK * (D / 8); // 16-byte pieces of one tile
  unsigned short *sm = reinterpret_cast<unsigned short *>(smem);
  const unsigned smBase =
      sharedAddr(sm); // stage s: K at 2s·TILE, V at (2s+1)·TILE

  // Heaviest query tiles (the most key tiles under the causal mask) start
  // first, across all heads and batches: block n of the launch takes query tile
  // nQ-1-n/(Hq·B).
  const long long HB = static_cast<long long>(gridDim.y) * gridDim.z;
  const long long lin = blockIdx.x + static_cast<long long>(gridDim.x) *
                                         (blockIdx.y + gridDim.y * blockIdx.z);
  const long long hb = lin % HB;
  const long long q0 = (gridDim.x - 1 - lin / HB) * BQ;
  const long long h = hb % gridDim.y, b = hb / gridDim.y;

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2,
            t = lane & 3;
  const long long T_ = p.seq, H = p.heads, HKV = p.kv_heads;
  const long long kvh = h / (H / HKV);
  const long long rowQ = H * D, rowKV = HKV * D;
  const unsigned short *q = cptr<unsigned short>(p.q),
                       *k = cptr<unsigned short>(p.k),
                       *v = cptr<unsigned short>(p.v);
  // Softmax in base 2: p = 2^(s·scale·log2e − m·scale·log2e), one FFMA and one
  // EX2 per score.
  const float sl = static_cast<float>(p.scale) * 1.4426950408889634f;
  const long long warpRow = q0 + warp * 16, rowA = warpRow + g, rowB = rowA + 8;

  const long long kvEnd = q0 + BQ < T_ ? q0 + BQ : T_;
  const int nTiles = static_cast<int>((kvEnd + BK - 1) / BK);
  auto loadTile = [&](int tile) {
    const long long k0 = static_cast<long long>(tile) * BK;
    const unsigned dst = smBase + (tile & 1) * (4 * TILE);
#pragma unroll
    for (int idx = threadIdx.x; idx < CHUNKS; idx += THREADS) {
      const int j = idx / (D / 8), c = (idx % (D / 8)) * 8;
      const bool in = k0 + j < T_;
      const long long off = (b * T_ + (in ? k0 + j : 0)) * rowKV + kvh * D + c;
      const unsigned at = dst + 2 * (j * LD + c);
      cpAsync16(at, k + off, in);
      cpAsync16(at + 2 * TILE, v + off, in);
    }
    cpAsyncCommit();
  };
  loadTile(0);

  auto ld32 = [](const unsigned short *ptr) {
    return *reinterpret_cast<const unsigned *>(ptr);
  };
  unsigned qa[D / 16][4];
#pragma unroll
  for (int kd = 0; kd < D / 16; ++kd) {
    const int c = kd * 16 + 2 * t;
    const unsigned short *pa = q + (b * T_ + rowA) * rowQ + h * D + c;
    const unsigned short *pb = q + (b * T_ + rowB) * rowQ + h * D + c;
    qa[kd][0] = rowA < T_ ? ld32(pa) : 0u;
    qa[kd][1] = rowB < T_ ? ld32(pb) : 0u;
    qa[kd][2] = rowA < T_ ? ld32(pa + 8) : 0u;
    qa[kd][3] = rowB < T_ ? ld32(pb + 8) : 0u;
  }
  float o[D / 8][4];
#pragma unroll
  for (int nd = 0; nd < D / 8; ++nd)
#pragma unroll
    for (int c = 0; c < 4; ++c)
      o[nd][c] = 0.f;
  float mA = -infinity(), mB = -infinity(), lA = 0.f, lB = 0.f;

  // Per-lane ldmatrix offsets (bytes): K tiles untransposed (matrix i = keys
  // +0..7, d +8i), V tiles transposed (matrix i = keys +8(i&1)..., d +8(i>>1)).
  const unsigned kLane = 2 * ((lane & 7) * LD + (lane >> 3) * 8);
  const unsigned vLane =
      2 * (((lane & 7) + ((lane >> 3) & 1) * 8) * LD + (lane >> 4) * 8);

  for (int tile = 0; tile < nTiles; ++tile) {
    cpAsyncWaitAll();
    __syncthreads(); // this tile has landed; every warp is done with the other
                     // stage
    if (tile + 1 < nTiles)
      loadTile(tile + 1); // overlaps this tile's arithmetic
    const long long k0 = static_cast<long long>(tile) * BK;
    if (k0 > warpRow + 15)
      continue; // every key of the tile is past the diagonal for this warp's
                // rows
    const unsigned kBase = smBase + (tile & 1) * (4 * TILE),
                   vBase = kBase + 2 * TILE;

    float s[BK / 8][4];
#pragma unroll
    for (int nt = 0; nt < BK / 8; ++nt)
#pragma unroll
      for (int c = 0; c < 4; ++c)
        s[nt][c] = 0.f;
#pragma unroll
    for (int kd = 0; kd < D / 16; kd += 2) {
#pragma unroll
      for (int nt = 0; nt < BK / 8; ++nt) {
        unsigned kb[4];
        const unsigned at = kBase + kLane + 2 * (nt * 8 * LD + kd * 16);
        if (kd + 1 < D / 16) {
          ldMatrix4(kb, at);
        } else {
          ldMatrix2(kb, at);
        }
        const unsigned b0[2] = {kb[0], kb[1]};
        mmaBf16(s[nt], qa[kd], b0);
        if (kd + 1 < D / 16) {
          const unsigned b1[2] = {kb[2], kb[3]};
          mmaBf16(s[nt], qa[kd + 1], b1);
        }
      }
    }
    // Only tiles that cross this warp's diagonal or the end of the sequence are
    // masked.
    if (k0 + BK - 1 > warpRow || k0 + BK > T_) {
#pragma unroll
      for (int nt = 0; nt < BK / 8; ++nt)
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const long long key = k0 + nt * 8 + 2 * t + (c & 1);
          if (key > (c < 2 ? rowA : rowB) || key >= T_)
            s[nt][c] = -infinity();
        }
    }
    float mxA = mA, mxB = mB;
#pragma unroll
    for (int nt = 0; nt < BK / 8; ++nt) {
      mxA = fmaxf(mxA, fmaxf(s[nt][0], s[nt][1]));
      mxB = fmaxf(mxB, fmaxf(s[nt][2], s[nt][3]));
    }
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
      mxA = fmaxf(mxA, __shfl_xor_sync(0xffffffffu, mxA, off));
      mxB = fmaxf(mxB, __shfl_xor_sync(0xffffffffu, mxB, off));
    }
    // Tile 0 shows key 0 to every row, so the maxima are finite from the first
    // tile on; the first rescale is 2^(-inf) = 0.
    const float rA = exp2Approx((mA - mxA) * sl),
                rB = exp2Approx((mB - mxB) * sl);
    mA = mxA;
    mB = mxB;
    const float nA = -mA * sl, nB = -mB * sl;
    float sumA = 0.f, sumB = 0.f;
#pragma unroll
    for (int nt = 0; nt < BK / 8; ++nt) {
      s[nt][0] = exp2Approx(fmaf(s[nt][0], sl, nA));
      s[nt][1] = exp2Approx(fmaf(s[nt][1], sl, nA));
      s[nt][2] = exp2Approx(fmaf(s[nt][2], sl, nB));
      s[nt][3] = exp2Approx(fmaf(s[nt][3], sl, nB));
      sumA += s[nt][0] + s[nt][1];
      sumB += s[nt][2] + s[nt][3];
    }
    lA = lA * rA +
         sumA; // per-thread partial sums; the quad is reduced at the end
    lB = lB * rB + sumB;
#pragma unroll
    for (int nd = 0; nd < D / 8; ++nd) {
      o[nd][0] *= rA;
      o[nd][1] *= rA;
      o[nd][2] *= rB;
      o[nd][3] *= rB;
    }
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) {
      const unsigned pa[4] = {packBf16(s[2 * kk][0], s[2 * kk][1]),
                              packBf16(s[2 * kk][2], s[2 * kk][3]),
                              packBf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              packBf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int nd = 0; nd < D / 8; nd += 2) {
        unsigned vb[4];
        ldMatrix4Trans(vb, vBase + vLane + 2 * (kk * 16 * LD + nd * 8));
        const unsigned b0[2] = {vb[0], vb[1]}, b1[2] = {vb[2], vb[3]};
        mmaBf16(o[nd], pa, b0);
        mmaBf16(o[nd + 1], pa, b1);
      }
    }
  }
#pragma unroll
  for (int off = 1; off <= 2; off <<= 1) {
    lA += __shfl_xor_sync(0xffffffffu, lA, off);
    lB += __shfl_xor_sync(0xffffffffu, lB, off);
  }
  const float iA = 1.f / lA, iB = 1.f / lB;
  saveRowLse(p, b, h, rowA, rowB, t, mA * sl, lA, mB * sl, lB);
#pragma unroll
  for (int nd = 0; nd < D / 8; ++nd)
    storeRowPair(p, b, rowQ, rowA, rowB, h * D + nd * 8 + 2 * t,
                 packBf16(o[nd][0] * iA, o[nd][1] * iA),
                 packBf16(o[nd][2] * iB, o[nd][3] * iB));
}

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
// The sm_90a form: wgmma (one warpgroup per 64 query rows) with K and V tiles
// in shared memory in the 128-byte-swizzled layout of the tensor cores; Q and P
// are the register A operands.

/// Shared-memory matrix descriptor of a 128-byte-swizzled operand (PTX ISA,
/// wgmma): start address, leading and stride byte offsets, layout type 1 (128B
/// swizzle) in bits 62-63.
__device__ __forceinline__ unsigned long long
wgmmaDesc(unsigned addr, unsigned lbo, unsigned sbo) {
  return static_cast<unsigned long long>((addr & 0x3FFFF) >> 4) |
         (static_cast<unsigned long long>(lbo >> 4) << 16) |
         (static_cast<unsigned long long>(sbo >> 4) << 32) | (1ull << 62);
}
__device__ __forceinline__ void wgmmaFence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmmaCommit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmmaWait0() {
  asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
}
/// Keeps the compiler from moving accesses of wgmma accumulators across issue
/// and wait.
template <int N> __device__ __forceinline__ void wgmmaFenceRegs(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
    asm volatile("" : "+f"(d[i])::"memory");
}
/// d (+)= a·B for one warpgroup: a 64×16 bf16 from registers (the mma.sync A
/// fragment of each warp's 16 rows), B 16×N from shared memory (TRANS_B 0:
/// K-major, 1: N-major), d 64×N fp32 in the mma.sync C fragment order per 8
/// columns; scaleD 0 overwrites d.
template <int TRANS_B>
__device__ __forceinline__ void
wgmmaM64N128K16(float (&d)[64], const unsigned (&a)[4],
                unsigned long long descB, int scaleD) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%"
      "20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%"
      "38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%"
      "56,%57,%58,%59,%60,%61,%62,%63}, "
      "{%64,%65,%66,%67}, %68, p, 1, 1, %70;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),
        "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]),
        "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),
        "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]),
        "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]),
        "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]),
        "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]),
        "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]),
        "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]),
        "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]),
        "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(descB), "r"(scaleD),
        "n"(TRANS_B));
}


// ---- The FA3 form (sm_90a, D = 128, BQ = BK = 128, THREADS = 3·BQ = 384) ----
//
// Warp-specialised, one CTA per 128 query rows. Warpgroup 0 is the producer
// (setmaxnreg 40): it loads Q once, then K(0), then K(t+1) and V(t) for
// t = 0, 1, ... (the order the consumers need them) into the 128-byte-swizzled
// layout wgmma reads (16-byte chunk c of a row lands at (c % 8) ^ (row % 8) of
// the 64-column half c / 8; halves [128][64] are 16 KB apart). K and V tiles
// live in an attentionFa3Stages()-deep ring; each has a full mbarrier and an
// empty one (lane 0 of the 8 consumer warps arrives).
//  - TMA (attentionFa3Tma(), the default): one thread issues two
//    cp.async.bulk.tensor.3d copies per tile (one per 64-column half, box
//    (64, 128, 1) of the maps SoftmaxAttentionArgs::tma_q/k/v, 128-byte
//    swizzle) after mbarrier.arrive.expect_tx of the tile's 32 KB; rows past T
//    are outside the map and arrive as zeros (kernels/softmax_attention_tma.h
//    builds the maps on the host; the argument block is a __grid_constant__
//    parameter so the maps' addresses are parameter-space addresses).
//    KV_EVICT_LAST adds an L2 evict_last policy to the K and V copies
//    (measured: no gain).
//  - cp.async: all 128 threads copy 16-byte chunks (thread tid copies chunk
//    c = tid % 16 of rows tid / 16 + 8 i) and arrive through
//    cp.async.mbarrier.arrive.noinc (128 arrivals per full barrier).
// Warpgroups 1 and 2 (setmaxnreg 232) own query rows q0..q0+63 and
// q0+64..q0+127: S = Q Kᵀ with Q and K from shared memory (SS wgmma), O += P V
// with P from registers (RS wgmma), online softmax in base 2 as above.
// Intra-warpgroup overlap: at key tile j a consumer issues S(j) and then
// O += P(j-1) V(j-1), waits for S(j) only (wait_group 1), releases K(j)
// (EARLY_K), does the softmax of S(j) while P(j-1) V(j-1) runs, then waits for
// it, releases V(j-1), rescales O and packs P(j) to bf16. ptxas hoists a wgmma
// wait to the top of its basic block (it would run before the softmax), so the
// consumer waits for the full barrier of K(j+1) between the softmax and the
// wait: that spin loop ends the block. Ping-pong (PINGPONG): named barriers 1
// and 2 make the consumers take turns issuing their GEMMs, so one's softmax
// runs under the other's tensor-core work. PACK_EARLY packs P(j) before the
// wait into a second register buffer (measured slower: it spills). Dynamic
// shared memory: attentionFa3SmemBytes (1 KB alignment slack, Q 32 KB, 64 KB
// per stage: 161 KB at the default 2 stages, 225 KB at 3); the mbarriers are
// static.
__device__ __forceinline__ void wgmmaWait1() {
  asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory");
}
/// One arrival on `bar` that also expects `bytes` of TMA transactions.
__device__ __forceinline__ void mbarArriveExpectTx(unsigned bar,
                                                   unsigned bytes) {
  asm volatile(
      "mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar),
      "r"(bytes)
      : "memory");
}
/// TMA: the box of tensor map `map` (a generic address of a CUtensorMap in
/// parameter or global memory) at coordinates (c0, c1, c2) into shared memory
/// at `dst` (1024-byte aligned for the 128-byte swizzle), completing `bytes`
/// transactions on `bar`.
__device__ __forceinline__ void tmaLoad3d(unsigned dst, const void *map, int c0,
                                          int c1, int c2, unsigned bar) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::"
      "complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(dst),
      "l"(map), "r"(c0), "r"(c1), "r"(c2), "r"(bar)
      : "memory");
}
/// The same with an L2 cache policy (createpolicy) as the copy's hint.
__device__ __forceinline__ void tmaLoad3dHint(unsigned dst, const void *map,
                                              int c0, int c1, int c2,
                                              unsigned bar,
                                              unsigned long long policy) {
  asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::"
               "complete_tx::bytes.L2::cache_hint [%0], [%1, {%2, %3, %4}], "
               "[%5], %6;\n" ::"r"(dst),
               "l"(map), "r"(c0), "r"(c1), "r"(c2), "r"(bar), "l"(policy)
               : "memory");
}
template <int BQ, int BK, int THREADS, int STAGES = attentionFa3Stages(),
          bool PINGPONG = attentionFa3PingPong(),
          bool EARLY_K = attentionFa3EarlyK(),
          bool PACK_EARLY = attentionFa3PackEarly(),
          bool TMA = attentionFa3Tma(), bool KV_EVICT_LAST = false>
__device__ void softmaxAttentionFa3(const SoftmaxAttentionArgs &p,
                                    float *smem) {
  constexpr int D = 128;
  static_assert(BQ == 128 && BK == 128 && THREADS == 3 * BQ,
                "FA3 form: a producer and two consumer warpgroups");
  // At key tile j a consumer waits for K(j+1) before it releases V(j-1) (and,
  // without EARLY_K, K(j-1)); the producer loads K(j+1) after V(j-1).
  static_assert(STAGES >= 2 && (EARLY_K || STAGES >= 3),
                "stages the consumers' waits need");
  constexpr unsigned HALF = 128 * 128, TILE = 2 * HALF; // [128][64] bf16
  // Q at smBase, stage s: K at smBase + TILE + 2s·TILE, V one TILE further.
  const unsigned smBase = (sharedAddr(smem) + 1023u) & ~1023u;
  __shared__ __align__(8) unsigned long long fullK[STAGES], fullV[STAGES],
      emptyK[STAGES], emptyV[STAGES], qBar;

  const long long HB = static_cast<long long>(gridDim.y) * gridDim.z;
  const long long lin = blockIdx.x + static_cast<long long>(gridDim.x) *
                                         (blockIdx.y + gridDim.y * blockIdx.z);
  const long long hb = lin % HB;
  const long long q0 = (gridDim.x - 1 - lin / HB) * BQ;
  const long long h = hb % gridDim.y, b = hb / gridDim.y;
  const long long T_ = p.seq, H = p.heads, HKV = p.kv_heads;
  const long long kvh = h / (H / HKV);
  const long long rowQ = H * D, rowKV = HKV * D;
  const long long kvEnd = q0 + BQ < T_ ? q0 + BQ : T_;
  const int nTiles = static_cast<int>((kvEnd + BK - 1) / BK);

  if (threadIdx.x == 0) {
    // full: TMA, the producer thread's expect_tx arrival; cp.async, every
    // producer thread
    constexpr unsigned fills = TMA ? 1 : 128;
    for (int s = 0; s < STAGES; ++s) {
      mbarInit(sharedAddr(&fullK[s]), fills);
      mbarInit(sharedAddr(&fullV[s]), fills);
      mbarInit(sharedAddr(&emptyK[s]), 8); // lane 0 of consumer warps
      mbarInit(sharedAddr(&emptyV[s]), 8);
    }
    mbarInit(sharedAddr(&qBar), fills);
    // the initialised barriers, visible to the TMA unit (async proxy)
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();
  const int wg = threadIdx.x >> 7;

  if (wg == 0) {
    // ---- producer: Q, K(0), then K(t+1) and V(t) for t = 0, 1, ... ----
    asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n" ::: "memory");
    if constexpr (TMA) {
      if (threadIdx.x != 0)
        return;
      if (!p.tma_maps)
        __trap(); // the host did not build the tensor maps (contract: args.h)
      const int cq = static_cast<int>(h * D), ck = static_cast<int>(kvh * D),
                bb = static_cast<int>(b);
      unsigned long long policy = 0;
      if constexpr (KV_EVICT_LAST)
        asm volatile("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;\n"
                     : "=l"(policy));
      mbarArriveExpectTx(sharedAddr(&qBar), TILE); // 32 KB: two halves
      tmaLoad3d(smBase, &p.tma_q, cq, static_cast<int>(q0), bb,
                sharedAddr(&qBar));
      tmaLoad3d(smBase + HALF, &p.tma_q, cq + 64, static_cast<int>(q0), bb,
                sharedAddr(&qBar));
      auto load = [&](int t, bool isV) {
        const int slot = t % STAGES;
        if (t >= STAGES)
          mbarWait(sharedAddr(isV ? &emptyV[slot] : &emptyK[slot]),
                   static_cast<unsigned>(((t / STAGES) & 1) ^ 1));
        const unsigned dst =
            smBase + TILE + slot * (2 * TILE) + (isV ? TILE : 0);
        const unsigned bar = sharedAddr(isV ? &fullV[slot] : &fullK[slot]);
        const void *map = isV ? &p.tma_v : &p.tma_k;
        mbarArriveExpectTx(bar, TILE);
        if constexpr (KV_EVICT_LAST) { // K, V are re-read by every query tile
          tmaLoad3dHint(dst, map, ck, t * BK, bb, bar, policy);
          tmaLoad3dHint(dst + HALF, map, ck + 64, t * BK, bb, bar, policy);
        } else {
          tmaLoad3d(dst, map, ck, t * BK, bb, bar);
          tmaLoad3d(dst + HALF, map, ck + 64, t * BK, bb, bar);
        }
      };
      load(0, false);
      for (int t = 0; t < nTiles; ++t) {
        if (t + 1 < nTiles)
          load(t + 1, false);
        load(t, true);
      }
      return;
    }
    const int tid = threadIdx.x, c = tid & 15, r = tid >> 4;
    const unsigned at =
        (c >> 3) * HALF + r * 128 + (((c & 7) ^ r) << 4); // + 1024 i
    {
      const unsigned short *src =
          cptr<unsigned short>(p.q) + (b * T_) * rowQ + h * D + c * 8;
#pragma unroll 4
      for (int i = 0; i < 16; ++i) {
        const long long row = q0 + r + 8 * i;
        const bool in = row < T_;
        cpAsync16(smBase + at + 1024 * i, src + (in ? row : 0) * rowQ, in);
      }
      mbarArriveCpAsync(sharedAddr(&qBar));
    }
    const long long base = (b * T_) * rowKV + kvh * D + c * 8;
    auto load = [&](int t, bool isV) {
      const int slot = t % STAGES;
      if (t >= STAGES)
        mbarWait(sharedAddr(isV ? &emptyV[slot] : &emptyK[slot]),
                 static_cast<unsigned>(((t / STAGES) & 1) ^ 1));
      const unsigned dst =
          smBase + TILE + slot * (2 * TILE) + (isV ? TILE : 0) + at;
      const unsigned short *src = cptr<unsigned short>(isV ? p.v : p.k) + base;
#pragma unroll 4
      for (int i = 0; i < 16; ++i) {
        const long long key = static_cast<long long>(t) * BK + r + 8 * i;
        const bool in = key < T_;
        cpAsync16(dst + 1024 * i, src + (in ? key : 0) * rowKV, in);
      }
      mbarArriveCpAsync(sharedAddr(isV ? &fullV[slot] : &fullK[slot]));
    };
    load(0, false);
    for (int t = 0; t < nTiles; ++t) {
      if (t + 1 < nTiles)
        load(t + 1, false);
      load(t, true);
    }
    asm volatile("cp.async.wait_all;\n" ::: "memory");
    return;
  }

  // ---- consumers: warpgroup 1 rows q0..q0+63, warpgroup 2 q0+64..q0+127 ----
  asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n" ::: "memory");
  const int cw = wg - 1, warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31,
            g = lane >> 2, t4 = lane & 3;
  const long long warpRow = q0 + cw * 64 + warp * 16;
  const long long rowA = warpRow + g, rowB = rowA + 8;
  const float sl = static_cast<float>(p.scale) * 1.4426950408889634f;
  const unsigned qBase = smBase + cw * (64 * 128);
  // Ping-pong: named barrier 1 + cw opens this warpgroup's GEMM window; the
  // other warpgroup arrives on it when it has issued its own GEMMs.
  auto windowOpen = [&] {
    if constexpr (PINGPONG)
      asm volatile("bar.sync %0, 256;\n" ::"r"(1 + cw) : "memory");
  };
  auto windowClose = [&](bool last) {
    if constexpr (PINGPONG)
      if (!(last && cw == 1)) // keeps the arrivals on barrier 1 equal to syncs
        asm volatile("bar.arrive %0, 256;\n" ::"r"(2 - cw) : "memory");
  };
  if constexpr (PINGPONG)
    if (cw == 1)
      asm volatile("bar.arrive 1, 256;\n" ::: "memory"); // consumer 0 first

  auto waitFull = [&](unsigned long long *bar, int tile) {
    mbarWait(sharedAddr(&bar[tile % STAGES]),
             static_cast<unsigned>((tile / STAGES) & 1));
  };
  auto release = [&](unsigned long long *bar, int tile) {
    if (lane == 0)
      mbarArrive(sharedAddr(&bar[tile % STAGES]));
  };
  auto issueS = [&](float(&s)[64], int tile) {
    const unsigned kBase = smBase + TILE + (tile % STAGES) * (2 * TILE);
    wgmmaFence();
#pragma unroll
    for (int kd = 0; kd < D / 16; ++kd)
      wgmmaBf16N128(
          s, wgmmaDesc(qBase + (kd >> 2) * HALF + (kd & 3) * 32, 16, 1024),
          wgmmaDesc(kBase + (kd >> 2) * HALF + (kd & 3) * 32, 16, 1024), kd);
    wgmmaCommit();
  };
  float o[D / 2];
#pragma unroll
  for (int i = 0; i < D / 2; ++i)
    o[i] = 0.f;
  using PFrag = unsigned[BK / 16][4];
  auto issuePV = [&](const PFrag &pa, int tile) {
    const unsigned vBase = smBase + 2 * TILE + (tile % STAGES) * (2 * TILE);
    wgmmaFence();
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) // V N-major: halves HALF apart
      wgmmaM64N128K16<1>(o, pa[kk], wgmmaDesc(vBase + kk * 2048, HALF, 1024),
                         1);
    wgmmaCommit();
  };
  auto keepLive = [](PFrag &pa) { // P stays in registers until its wgmma ends
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk)
      asm volatile(""
                   : "+r"(pa[kk][0]), "+r"(pa[kk][1]), "+r"(pa[kk][2]),
                     "+r"(pa[kk][3])::"memory");
  };
  float mA = -infinity(), mB = -infinity(), lA = 0.f, lB = 0.f;
  // Softmax of key tile `tile` in place (s becomes 2^(s·sl − m·sl)); returns
  // the rescale factors of the running output in rA, rB.
  auto softmax = [&](float(&s)[64], int tile, float &rA, float &rB) {
    const long long k0 = static_cast<long long>(tile) * BK;
    if (k0 + BK - 1 > warpRow || k0 + BK > T_) {
      // Keys k0 + j with j < lim are visible to the row: key <= row, key < T.
      auto lim = [&](long long row) {
        const long long end = (row + 1 < T_ ? row + 1 : T_) - k0;
        return static_cast<int>(end < 0 ? 0 : end > BK ? BK : end);
      };
      const int limA = lim(rowA), limB = lim(rowB);
#pragma unroll
      for (int nt = 0; nt < BK / 8; ++nt)
#pragma unroll
        for (int c = 0; c < 4; ++c)
          if (nt * 8 + 2 * t4 + (c & 1) >= (c < 2 ? limA : limB))
            s[nt * 4 + c] = -infinity();
    }
    float mxA = mA, mxB = mB;
#pragma unroll
    for (int nt = 0; nt < BK / 8; ++nt) {
      mxA = fmaxf(mxA, fmaxf(s[nt * 4], s[nt * 4 + 1]));
      mxB = fmaxf(mxB, fmaxf(s[nt * 4 + 2], s[nt * 4 + 3]));
    }
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
      mxA = fmaxf(mxA, __shfl_xor_sync(0xffffffffu, mxA, off));
      mxB = fmaxf(mxB, __shfl_xor_sync(0xffffffffu, mxB, off));
    }
    // Tile 0 shows key 0 to every row, so the maxima are finite from the first
    // tile on; the first rescale is 2^(-inf) = 0.
    rA = exp2Approx((mA - mxA) * sl);
    rB = exp2Approx((mB - mxB) * sl);
    mA = mxA;
    mB = mxB;
    const float nA = -mA * sl, nB = -mB * sl;
    float sumA = 0.f, sumB = 0.f;
#pragma unroll
    for (int nt = 0; nt < BK / 8; ++nt) {
      s[nt * 4 + 0] = exp2Approx(fmaf(s[nt * 4 + 0], sl, nA));
      s[nt * 4 + 1] = exp2Approx(fmaf(s[nt * 4 + 1], sl, nA));
      s[nt * 4 + 2] = exp2Approx(fmaf(s[nt * 4 + 2], sl, nB));
      s[nt * 4 + 3] = exp2Approx(fmaf(s[nt * 4 + 3], sl, nB));
      sumA += s[nt * 4 + 0] + s[nt * 4 + 1];
      sumB += s[nt * 4 + 2] + s[nt * 4 + 3];
    }
    lA = lA * rA + sumA; // per-thread partial sums; the quad is reduced at the
    lB = lB * rB + sumB; // end
  };
  auto pack = [&](const float(&s)[64], PFrag &pa) {
#pragma unroll
    for (int kk = 0; kk < BK / 16; ++kk) {
      pa[kk][0] = packBf16(s[8 * kk + 0], s[8 * kk + 1]);
      pa[kk][1] = packBf16(s[8 * kk + 2], s[8 * kk + 3]);
      pa[kk][2] = packBf16(s[8 * kk + 4], s[8 * kk + 5]);
      pa[kk][3] = packBf16(s[8 * kk + 6], s[8 * kk + 7]);
    }
  };

  float s[BK / 2];
  PFrag paA, paB;
  mbarWait(sharedAddr(&qBar), 0);
  waitFull(fullK, 0);
  // the cp.async (generic proxy) writes, seen through the barrier, before
  // wgmma reads them (async proxy); TMA writes are async-proxy already
  if constexpr (!TMA)
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
  windowOpen();
  issueS(s, 0);
  windowClose(false);
  wgmmaWait0();
  wgmmaFenceRegs(s);
  if constexpr (EARLY_K)
    release(emptyK, 0);
  {
    float rA, rB;
    softmax(s, 0, rA, rB); // o is zero: no rescale
    pack(s, paA);
  }
  // Key tile `tile`: S(tile) and P(tile-1) V(tile-1) in flight, softmax of
  // S(tile) under the second; P(tile-1) is in pin, P(tile) goes to pout (the
  // same array unless PACK_EARLY, which packs before the wait).
  auto step = [&](int tile, PFrag &pin, PFrag &pout) {
    waitFull(fullK, tile); // (already seen at the end of the last step)
    waitFull(fullV, tile - 1);
    if constexpr (!TMA)
      asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    windowOpen();
    issueS(s, tile);
    issuePV(pin, tile - 1);
    windowClose(false);
    wgmmaWait1(); // S(tile) is done, P(tile-1) V(tile-1) may still run
    wgmmaFenceRegs(s);
    if constexpr (EARLY_K)
      release(emptyK, tile);
    float rA, rB;
    softmax(s, tile, rA, rB);
    if constexpr (PACK_EARLY) {
      pack(s, pout);
      keepLive(pout);
    } else {
      wgmmaFenceRegs(s);
    }
    // The softmax must run under P(tile-1) V(tile-1), but ptxas hoists a
    // wgmma wait to the top of its basic block: with the softmax results
    // pinned, wait for the next K tile here (the branch and the spin loop end
    // the block; the next step needs that tile anyway), then for the wgmma.
    asm volatile("" : "+f"(rA), "+f"(rB), "+f"(lA), "+f"(lB)::"memory");
    if (tile + 1 < nTiles)
      waitFull(fullK, tile + 1);
    wgmmaWait0();
    wgmmaFenceRegs(o);
    keepLive(pin);
    release(emptyV, tile - 1);
    if constexpr (!EARLY_K)
      release(emptyK, tile - 1);
#pragma unroll
    for (int nd = 0; nd < D / 8; ++nd) {
      o[nd * 4 + 0] *= rA;
      o[nd * 4 + 1] *= rA;
      o[nd * 4 + 2] *= rB;
      o[nd * 4 + 3] *= rB;
    }
    if constexpr (!PACK_EARLY)
      pack(s, pout);
  };
  auto finish = [&](PFrag &pa) {
    waitFull(fullV, nTiles - 1);
    if constexpr (!TMA)
      asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    windowOpen();
    issuePV(pa, nTiles - 1);
    windowClose(true);
    wgmmaWait0();
    wgmmaFenceRegs(o);
    keepLive(pa);
    release(emptyV, nTiles - 1);
    if constexpr (!EARLY_K)
      release(emptyK, nTiles - 1);
  };
  if constexpr (PACK_EARLY) {
    int tile = 1;
    for (; tile + 1 < nTiles; tile += 2) {
      step(tile, paA, paB);
      step(tile + 1, paB, paA);
    }
    if (tile < nTiles) {
      step(tile, paA, paB);
      finish(paB);
    } else {
      finish(paA);
    }
  } else {
    for (int tile = 1; tile < nTiles; ++tile)
      step(tile, paA, paA);
    finish(paA);
  }

#pragma unroll
  for (int off = 1; off <= 2; off <<= 1) {
    lA += __shfl_xor_sync(0xffffffffu, lA, off);
    lB += __shfl_xor_sync(0xffffffffu, lB, off);
  }
  const float iA = 1.f / lA, iB = 1.f / lB;
  saveRowLse(p, b, h, rowA, rowB, t4, mA * sl, lA, mB * sl, lB);
#pragma unroll
  for (int nd = 0; nd < D / 8; ++nd)
    storeRowPair(p, b, rowQ, rowA, rowB, h * D + nd * 8 + 2 * t4,
                 packBf16(o[nd * 4] * iA, o[nd * 4 + 1] * iA),
                 packBf16(o[nd * 4 + 2] * iB, o[nd * 4 + 3] * iB));
}
#endif

template <typename T, int D, int BQ, int BK, int THREADS>
__device__ void softmaxAttentionSimt(const SoftmaxAttentionArgs &p,
                                     float *smem) {
  constexpr int LD = D + 1, LP = BK + 1;
  float *Qs = smem;
  float *Ks = Qs + BQ * LD;
  float *Vs = Ks + BK * LD;
  float *Ps = Vs + BK * LD;
  float *rowM = Ps + BQ * LP;
  float *rowL = rowM + BQ;
  float *rowScale = rowL + BQ;

  const long long q0 = static_cast<long long>(blockIdx.x) * BQ;
  const long long h = blockIdx.y, b = blockIdx.z;
  const long long T_ = p.seq, H = p.heads, HKV = p.kv_heads;
  const long long kvh = h / (H / HKV);
  const long long rowQ = H * D, rowKV = HKV * D;
  const T *q = cptr<T>(p.q), *k = cptr<T>(p.k), *v = cptr<T>(p.v);
  const float scale = static_cast<float>(p.scale);

  using MapS =
      TileMap<BQ, BK, MicroEdge<BQ>::value, MicroEdge<BK>::value, THREADS>;
  using MapO =
      TileMap<BQ, D, MicroEdge<BQ>::value, MicroEdge<D>::value, THREADS>;

  for (int idx = threadIdx.x; idx < BQ * D; idx += THREADS) {
    const int i = idx / D, d = idx % D;
    Qs[i * LD + d] =
        q0 + i < T_ ? ld(q, (b * T_ + q0 + i) * rowQ + h * D + d) : 0.f;
  }
  for (int i = threadIdx.x; i < BQ; i += THREADS) {
    rowM[i] = -infinity();
    rowL[i] = 0.f;
  }
  float accO[MapO::PER][MicroEdge<BQ>::value][MicroEdge<D>::value];
  MapO::zero(accO);

  const long long kvEnd = q0 + BQ < T_ ? q0 + BQ : T_;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  for (long long k0 = 0; k0 < kvEnd; k0 += BK) {
    __syncthreads(); // the previous tile is done with K, V, P
    for (int idx = threadIdx.x; idx < BK * D; idx += THREADS) {
      const int j = idx / D, d = idx % D;
      const bool in = k0 + j < T_;
      const long long off = (b * T_ + k0 + j) * rowKV + kvh * D + d;
      Ks[j * LD + d] = in ? ld(k, off) : 0.f;
      Vs[j * LD + d] = in ? ld(v, off) : 0.f;
    }
    __syncthreads();
    {
      float accS[MapS::PER][MicroEdge<BQ>::value][MicroEdge<BK>::value];
      MapS::zero(accS);
      MapS::mac(
          accS, D, [&](int i, int d) { return Qs[i * LD + d]; },
          [&](int j, int d) { return Ks[j * LD + d]; });
      MapS::each(accS, [&](int i, int j, float &s) {
        const long long kj = k0 + j;
        Ps[i * LP + j] = kj <= q0 + i && kj < T_ ? s * scale : -infinity();
      });
    }
    __syncthreads();
    for (int i = warp; i < BQ; i += THREADS / 32) {
      float mx = -infinity();
      for (int j = lane; j < BK; j += 32)
        mx = fmaxf(mx, Ps[i * LP + j]);
      mx = warpMax(mx);
      const float mOld = rowM[i];
      const float mNew = fmaxf(mOld, mx);
      float sum = 0.f;
      for (int j = lane; j < BK; j += 32) {
        const float e =
            mNew == -infinity() ? 0.f : __expf(Ps[i * LP + j] - mNew);
        Ps[i * LP + j] = e;
        sum += e;
      }
      sum = warpSum(sum);
      if (lane == 0) {
        const float r = mOld == -infinity() ? 0.f : __expf(mOld - mNew);
        rowScale[i] = r;
        rowL[i] = rowL[i] * r + sum;
        rowM[i] = mNew;
      }
    }
    __syncthreads();
    MapO::each(accO, [&](int i, int, float &o) { o *= rowScale[i]; });
    MapO::mac(
        accO, BK, [&](int i, int j) { return Ps[i * LP + j]; },
        [&](int d, int j) { return Vs[j * LD + d]; });
  }
  T *out = mptr<T>(p.out), *copy = mptr<T>(p.out_copy);
  MapO::each(accO, [&](int i, int d, float &o) {
    if (q0 + i < T_) {
      const long long at = (b * T_ + q0 + i) * rowQ + h * D + d;
      st(out, at, o / rowL[i]);
      if (copy)
        st(copy, at, o / rowL[i]);
    }
  });
  if (p.lse) // natural-log units here (scores scaled by `scale`)
    for (int i = threadIdx.x; i < BQ; i += THREADS)
      if (q0 + i < T_)
        mptr<float>(p.lse)[(b * H + h) * p.lse_stride + q0 + i] =
            (rowM[i] + logf(rowL[i])) * 1.4426950408889634f;
}

/// f32 and bf16 share one entry signature; `smem` is the dynamic shared memory
/// of the f32 form (attentionSmemFloats), unused by the bf16 form.
template <typename T, int D, int BQ, int BK, int THREADS>
__device__ void softmaxAttention(const SoftmaxAttentionArgs &p, float *smem) {
  // Tensor cores need head_dim in k16 steps; bf16 with another head_dim (8, 12,
  // ...) takes the SIMT form, which loads bf16 and computes in fp32 like the
  // f32 form.
  if constexpr (sizeof(T) == 2 && D % 16 == 0) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    if constexpr (attentionFa3Tile(D, BQ, BK, THREADS))
      softmaxAttentionFa3<BQ, BK, THREADS>(p, smem);
    else
#endif
    {
      static_assert(!attentionFa3Tile(D, BQ, BK, THREADS),
                    "the FA3 tile (THREADS = 3*BQ) needs the sm_90a target");
      softmaxAttentionTensorCores<D, BQ, BK, THREADS>(p, smem);
    }
  } else
    softmaxAttentionSimt<T, D, BQ, BK, THREADS>(p, smem);
}

} // namespace k
} // namespace mm
