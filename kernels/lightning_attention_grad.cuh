// lightning_attention_grad (docs/kernels.md, "Training kernels"): the backward
// of lightning attention. With λ = exp(-s_h) (the forward's per-head decay):
//   dq_t = Σ_{u≤t} λ^{t-u} (do_t·v_u) k_u
//   dk_u = Σ_{t≥u} λ^{t-u} (do_t·v_u) q_t
//   dv_u = Σ_{t≥u} λ^{t-u} (q_t·k_u) do_t
// Each is the forward's causal decayed attention o_τ = Σ_{σ≤τ} λ^{τ-σ}
// (q'_τ·k'_σ) v'_σ on remapped operands, the last two with time reversed
// (τ = T-1-t):
//   job 0 (dq): q' = do, k' = v, v' = k, forward in time → dqkv[.., 0:D]
//   job 1 (dk): q' = v,  k' = do, v' = q, reversed       → dqkv[.., D:2D]
//   job 2 (dv): q' = k,  k' = q, v' = do, reversed       → dqkv[.., 2D:3D]
// (job 0's state is the forward KV state Σ λ^{p-u} k_uᵀ v_u read transposed;
// jobs 1 and 2 both run the reverse state G = Σ λ^{t-e} q_tᵀ do_t, each from
// its side.) A job sees its operands through a Job view: the row of time step
// τ is base + τ·step, with a negative step for the reversed jobs, so every
// kernel below walks "forward" and the reversal costs nothing.
//
// Chunk-parallel over the sequence (kernels/lightning_attention_grad.h has the
// plan): with the state S(p) = Σ_{σ<p} λ^{p-σ} k'_σᵀ v'_σ (fp32 [D, D]),
//   o_τ = Σ_{p≤σ≤τ} λ^{τ-σ} (q'_τ·k'_σ) v'_σ + λ^{τ-p} q'_τ S(p),
//   S(p+m) = λ^m S(p) + Σ_{p≤σ<p+m} λ^{p+m-σ} k'_σᵀ v'_σ.
// T is cut into nseg segments of seg_len tokens. Grid z = 3·b + job, y = head
// (_states and _scan: z = 2·b + {0, 1} for jobs 0 and 2: job 1's state is the
// transpose of job 2's, Σ do_σᵀ q_σ against Σ q_σᵀ do_σ, and its _out reads
// job 2's slots transposed).
//   _states (nseg-1, H, 2B): U_s = the sum term of S over full segment s, into
//           workspace slot s ([B, 3, H, nseg, D, D] fp32; job 1's unused).
//   _scan   (⌈D²/256⌉, H, 2B): in place, slot s ← S(start of segment s), s ≥ 1.
//   _out    (nseg, H, 3B): walks its segment in sub-chunks from S(start) (zero
//           for s = 0): P = (Q'K'ᵀ) ⊙ Dm (Dm[i,j] = λ^{i-j}, j ≤ i), O =
//           diag(λ^i) Q' S + P V', S ← λ^m S + (K' ⊙ λ^{m-j})ᵀ V'.
//
// Two forms behind the same entries and plan:
// - SIMT (any T; f32, or bf16 with D ∉ {64, 128}; D ≤ ~200 by shared
//   memory): operands widened to fp32 in shared memory (rows padded by one
//   word), products on TileMap register tiles (kernels/tile_gemm.cuh),
//   sub-chunks of C = 32 tokens (16 for D > 128), the running state [D][D+1]
//   in shared memory; the states launch sums λ^{end-σ} k'_σᵀ v'_σ directly.
// - Tensor cores (bf16, D = 64, 128): the forward's chunk-parallel fast path
//   (kernels/lightning_attention.cuh, namespace lfast: 8 warps, mma.sync
//   m16n8k16, 64-token sub-chunks in padded [64][D+8] bf16 tiles, STAGES = 3
//   cp.async pipeline, the state in fp32 registers) with Job views in place of
//   the qkv addressing, and outputs stored through the output view. P, the
//   decayed K' and the state copy are rounded to bf16 for the products; every
//   accumulation is fp32.
// Rows past T are zero-filled, so a ragged last sub-chunk is exact.
// Measured (H200, bf16, test/gpu/results/2026-11-22-train-lightning_attention
// _grad.log): B=1, T=8192, H=16, D=64: 0.112 ms (states / scan / out 0.033 /
// 0.015 / 0.082 ms, each with a launch and a sync); T=65536, H=16, D=128:
// 1.62 ms (0.316 / 0.025 / 1.288), about 3× the forward's chunk path.
#pragma once

#include "kernels/lightning_attention.cuh"
#include "kernels/lightning_attention_grad.h"

namespace mm {
namespace k {
namespace lgrad {

/// One job's operands: the row of time step τ of q', k', v', o is ptr + τ·step.
template <typename T> struct Job {
  const T *q, *k, *v;
  T *o;
  long long sq, sk, sv, so;
};

template <typename T, int D>
__device__ __forceinline__ Job<T>
makeJob(const LightningGradArgs &a, long long job, long long b, long long h) {
  const long long H = a.heads, T_ = a.seq, rowIn = H * 3 * D, rowOut = H * D;
  const T *x = cptr<T>(a.qkv) + b * T_ * rowIn + h * 3 * D;
  const T *g = cptr<T>(a.dout) + b * T_ * rowOut + h * D;
  T *d = mptr<T>(a.dqkv) + b * T_ * rowIn + h * 3 * D;
  Job<T> r;
  if (job == 0) {
    r.q = g;
    r.sq = rowOut;
    r.k = x + 2 * D;
    r.sk = rowIn;
    r.v = x + D;
    r.sv = rowIn;
    r.o = d;
    r.so = rowIn;
    return r;
  }
  if (job == 1) {
    r.q = x + 2 * D;
    r.sq = rowIn;
    r.k = g;
    r.sk = rowOut;
    r.v = x;
    r.sv = rowIn;
    r.o = d + D;
  } else {
    r.q = x + D;
    r.sq = rowIn;
    r.k = x;
    r.sk = rowIn;
    r.v = g;
    r.sv = rowOut;
    r.o = d + 2 * D;
  }
  r.so = rowIn;
  const long long last = T_ - 1; // τ = 0 is the last token
  r.q += last * r.sq;
  r.k += last * r.sk;
  r.v += last * r.sv;
  r.o += last * r.so;
  r.sq = -r.sq;
  r.sk = -r.sk;
  r.sv = -r.sv;
  r.so = -r.so;
  return r;
}

/// Workspace slot of segment `seg` of (z = 3·batch + job, head blockIdx.y).
template <int D>
__device__ __forceinline__ float *slot(const LightningGradArgs &a, long long z,
                                       long long seg) {
  return mptr<float>(a.workspace) +
         ((z * a.heads + blockIdx.y) * a.nseg + seg) * D * D;
}
/// The _states and _scan launches run jobs 0 and 2 only (grid z = 2·batch +
/// {0, 1}): job 1's state Σ λ^{..} do_σᵀ q_σ is the transpose of job 2's
/// Σ λ^{..} q_σᵀ do_σ (same decay, same segments), so job 1's _out reads job
/// 2's slots transposed. Returns 3·batch + job of a states/scan block.
__device__ __forceinline__ long long statesZ() {
  return static_cast<long long>(blockIdx.z) / 2 * 3 + (blockIdx.z % 2) * 2;
}

/// Micro-tile edge dividing E (TileMap needs it to divide the tile).
template <int E> struct Edge {
  static constexpr int value = E % 4 == 0 ? 4 : E % 2 == 0 ? 2 : 1;
};

// ---------------------------------------------------------------- SIMT form

/// _states, SIMT: U = Σ_{σ<len} λ^{len-σ} k'_σᵀ v'_σ over a full segment.
template <typename T, int D>
__device__ void statesGeneric(const LightningGradArgs &a, float *sm) {
  constexpr int C = lightningGradGenericRows(D), LD = D + 1, TH = 256;
  float *Ks = sm, *Vs = Ks + C * LD;
  const long long seg = blockIdx.x, h = blockIdx.y, z = statesZ();
  const Job<T> jb = makeJob<T, D>(a, z % 3, z / 3, h);
  const float s = lfast::slope(h, a.heads, a.layer, a.num_layers);
  const long long t0 = seg * a.seg_len;
  const int len = static_cast<int>(a.seg_len);
  using Map = TileMap<D, D, Edge<D>::value, Edge<D>::value, TH>;
  float acc[Map::PER][Edge<D>::value][Edge<D>::value];
  Map::zero(acc);
  for (int c0 = 0; c0 < len; c0 += C) {
    __syncthreads();
    for (int idx = threadIdx.x; idx < C * D; idx += TH) {
      const int i = idx / D, d = idx % D;
      const long long tau = t0 + c0 + i;
      const float w = __expf(-s * static_cast<float>(len - c0 - i));
      Ks[i * LD + d] = ld(jb.k, tau * jb.sk + d) * w;
      Vs[i * LD + d] = ld(jb.v, tau * jb.sv + d);
    }
    __syncthreads();
    Map::mac(
        acc, C, [&](int d, int i) { return Ks[i * LD + d]; },
        [&](int c, int i) { return Vs[i * LD + c]; });
  }
  float *u = slot<D>(a, z, seg);
  Map::each(acc, [&](int d, int c, float &v) { u[d * D + c] = v; });
}

/// _out, SIMT.
template <typename T, int D>
__device__ void outGeneric(const LightningGradArgs &a, float *sm) {
  constexpr int C = lightningGradGenericRows(D), LD = D + 1, LP = C + 1,
                TH = 256;
  float *Qs = sm, *Ks = Qs + C * LD, *Vs = Ks + C * LD, *Ps = Vs + C * LD,
        *S = Ps + C * LP;
  const long long seg = blockIdx.x, h = blockIdx.y, z = blockIdx.z;
  const Job<T> jb = makeJob<T, D>(a, z % 3, z / 3, h);
  const float s = lfast::slope(h, a.heads, a.layer, a.num_layers);
  const long long t0 = seg * a.seg_len, rest = a.seq - t0;
  const int len = static_cast<int>(rest < a.seg_len ? rest : a.seg_len);

  if (seg == 0) {
    for (int i = threadIdx.x; i < D * LD; i += TH)
      S[i] = 0.f;
  } else if (z % 3 == 1) { // job 1: job 2's state, transposed
    const float *u = slot<D>(a, z + 1, seg);
    for (int i = threadIdx.x; i < D * D; i += TH)
      S[(i % D) * LD + i / D] = u[i];
  } else {
    const float *u = slot<D>(a, z, seg);
    for (int i = threadIdx.x; i < D * D; i += TH)
      S[(i / D) * LD + i % D] = u[i];
  }
  using MapP = TileMap<C, C, Edge<C>::value, Edge<C>::value, TH>;
  using MapO = TileMap<C, D, Edge<C>::value, Edge<D>::value, TH>;
  using MapS = TileMap<D, D, Edge<D>::value, Edge<D>::value, TH>;
  for (int c0 = 0; c0 < len; c0 += C) {
    const int m = len - c0 < C ? len - c0 : C;
    __syncthreads(); // the previous sub-chunk is done with Q, K, V, P, S
    for (int idx = threadIdx.x; idx < C * D; idx += TH) {
      const int i = idx / D, d = idx % D;
      float q = 0.f, kk = 0.f, v = 0.f;
      if (i < m) {
        const long long tau = t0 + c0 + i;
        q = ld(jb.q, tau * jb.sq + d);
        kk = ld(jb.k, tau * jb.sk + d);
        v = ld(jb.v, tau * jb.sv + d);
      }
      Qs[i * LD + d] = q;
      Ks[i * LD + d] = kk;
      Vs[i * LD + d] = v;
    }
    __syncthreads();
    {
      float acc[MapP::PER][Edge<C>::value][Edge<C>::value];
      MapP::zero(acc);
      MapP::mac(
          acc, D, [&](int i, int d) { return Qs[i * LD + d]; },
          [&](int j, int d) { return Ks[j * LD + d]; });
      MapP::each(acc, [&](int i, int j, float &v) {
        Ps[i * LP + j] =
            j <= i ? v * __expf(-s * static_cast<float>(i - j)) : 0.f;
      });
    }
    float accO[MapO::PER][Edge<C>::value][Edge<D>::value];
    MapO::zero(accO);
    MapO::mac(
        accO, D, [&](int i, int d) { return Qs[i * LD + d]; },
        [&](int c, int d) { return S[d * LD + c]; });
    MapO::each(accO, [&](int i, int, float &v) {
      v *= __expf(-s * static_cast<float>(i));
    });
    __syncthreads(); // P complete
    MapO::mac(
        accO, C, [&](int i, int j) { return Ps[i * LP + j]; },
        [&](int c, int j) { return Vs[j * LD + c]; });
    MapO::each(accO, [&](int i, int c, float &v) {
      if (i < m)
        st(jb.o, (t0 + c0 + i) * jb.so + c, v);
    });
    __syncthreads(); // every read of S and V above is done
    for (int idx = threadIdx.x; idx < m * D; idx += TH) {
      const int j = idx / D, c = idx % D;
      Vs[j * LD + c] *= __expf(-s * static_cast<float>(m - j));
    }
    __syncthreads();
    float accS[MapS::PER][Edge<D>::value][Edge<D>::value];
    MapS::zero(accS);
    MapS::mac(
        accS, C, [&](int d, int j) { return Ks[j * LD + d]; },
        [&](int c, int j) { return Vs[j * LD + c]; });
    const float dec = __expf(-s * static_cast<float>(m));
    MapS::each(accS, [&](int d, int c, float &v) {
      S[d * LD + c] = S[d * LD + c] * dec + v;
    });
  }
}

/// _scan (both forms): slot s ← S(start of segment s) for s ≥ 1, from S(b_1) =
/// U_0 and S(b_{s+1}) = λ^{seg_len} S(b_s) + U_s. Slot 0 is never read.
template <int D> __device__ void scan(const LightningGradArgs &a) {
  const long long e =
      static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= D * D)
    return;
  const long long nseg = a.nseg, stride = D * D;
  const float s = lfast::slope(blockIdx.y, a.heads, a.layer, a.num_layers);
  const float dec = expf(-s * static_cast<float>(a.seg_len));
  float *ws = slot<D>(a, statesZ(), 0) + e;
  float acc = ws[0];
  for (long long base = 1; base < nseg; base += 8) {
    float u[8];
#pragma unroll
    for (int j = 0; j < 8; ++j)
      u[j] = base + j < nseg - 1 ? ws[(base + j) * stride] : 0.f;
#pragma unroll
    for (int j = 0; j < 8; ++j)
      if (base + j < nseg) {
        ws[(base + j) * stride] = acc;
        acc = acc * dec + u[j];
      }
  }
}

// ---------------------------------------------------------- tensor-core form

constexpr int kStages = 3;

/// Starts the 16-byte copies of one [64][D] tile: rows r < m from src + r·step
/// (zero-filled past m), the thread mapping of lfast::loadSub.
template <int D>
__device__ __forceinline__ void
loadTile(bf16 *dst, const bf16 *src, long long step, int m, const bf16 *any) {
  using G = lfast::Geom<D>;
  constexpr int RPP = lfast::THREADS / G::PIECES; // rows per pass
  const int c = threadIdx.x % G::PIECES, r0 = threadIdx.x / G::PIECES;
  const bf16 *g = src + r0 * step + c * 8;
  bf16 *d = dst + r0 * G::LD + c * 8;
#pragma unroll
  for (int pass = 0; pass < lfast::C / RPP; ++pass) {
    const bool valid = r0 + pass * RPP < m;
    lfast::cpAsync16(d + pass * RPP * G::LD, valid ? g : any, valid);
    g += RPP * step;
  }
}

/// This warp's part of the state from the transpose of the fp32 slot [D][D]
/// (the layout of lfast::stateIo).
template <int D>
__device__ __forceinline__ void stateLoadT(lfast::State<D> &S,
                                           const float *slot) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2,
            t = lane & 3;
  const int dk0 = (D / 4) * (warp & 3), dv0 = (D / 2) * (warp >> 2);
#pragma unroll
  for (int mt = 0; mt < lfast::Geom<D>::MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < lfast::Geom<D>::NT; ++nt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = dk0 + 16 * mt + g + 8 * h, c = dv0 + 8 * nt + 2 * t;
        S[mt][nt][2 * h] = slot[c * D + r];
        S[mt][nt][2 * h + 1] = slot[(c + 1) * D + r];
      }
}

/// _states, tensor cores: U_s of a full segment, walking its 64-token
/// sub-chunks with the forward's state update from S = 0.
template <int D>
__device__ void statesFast(const LightningGradArgs &a, unsigned char *smem) {
  using namespace lfast;
  using G = Geom<D>;
  bf16 *stages = reinterpret_cast<bf16 *>(smem);
  const long long seg = blockIdx.x, h = blockIdx.y, z = statesZ();
  const Job<bf16> jb = makeJob<bf16, D>(a, z % 3, z / 3, h);
  const float s = slope(h, a.heads, a.layer, a.num_layers);
  const long long t0 = seg * a.seg_len;
  const bf16 *ksrc = jb.k + t0 * jb.sk, *vsrc = jb.v + t0 * jb.sv;
  const bf16 *any = cptr<bf16>(a.qkv);
  const int nsub = static_cast<int>(a.seg_len / C);
  State<D> S;
  zeroState<D>(S);
#pragma unroll
  for (int st = 0; st < kStages - 1; ++st) {
    if (st < nsub) {
      bf16 *dst = stages + st * 2 * G::TILE;
      loadTile<D>(dst, ksrc + st * C * jb.sk, jb.sk, C, any);
      loadTile<D>(dst + G::TILE, vsrc + st * C * jb.sv, jb.sv, C, any);
    }
    cpCommit();
  }
  for (int it = 0; it < nsub; ++it) {
    bf16 *cur = stages + (it % kStages) * 2 * G::TILE;
    cpWait<kStages - 2>();
    __syncthreads(); // this stage landed; iteration it-1 is done with its own
    const int nxt = it + kStages - 1;
    if (nxt < nsub) {
      bf16 *dst = stages + (nxt % kStages) * 2 * G::TILE;
      loadTile<D>(dst, ksrc + nxt * C * jb.sk, jb.sk, C, any);
      loadTile<D>(dst + G::TILE, vsrc + nxt * C * jb.sv, jb.sv, C, any);
    }
    cpCommit();
    stateUpdate<D>(S, cur, cur + G::TILE, C, s);
  }
  cpWait<0>();
  stateIo<D, true>(S, slot<D>(a, z, seg));
}

/// _out, tensor cores: the forward's lightningChunkOut on a Job view.
template <int D>
__device__ void outFast(const LightningGradArgs &a, unsigned char *smem) {
  using namespace lfast;
  using G = Geom<D>;
  constexpr int LD = G::LD, TILE = G::TILE, HALF = D / 2;
  bf16 *stages = reinterpret_cast<bf16 *>(smem);
  bf16 *Ps = stages + kStages * 3 * TILE; // [C][LP]
  bf16 *Os = Ps + C * LP;                 // [C][LD]
  bf16 *Sb = Os + TILE;                   // [D][LD]
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2,
            t = lane & 3;
  const int rg = warp & 3, half = warp >> 2;
  const long long seg = blockIdx.x, h = blockIdx.y, z = blockIdx.z;
  const Job<bf16> jb = makeJob<bf16, D>(a, z % 3, z / 3, h);
  const float s = slope(h, a.heads, a.layer, a.num_layers);
  const long long t0 = seg * a.seg_len, rest = a.seq - t0;
  const int len = static_cast<int>(rest < a.seg_len ? rest : a.seg_len);
  const int nsub = (len + C - 1) / C;
  const bf16 *qsrc = jb.q + t0 * jb.sq, *ksrc = jb.k + t0 * jb.sk,
             *vsrc = jb.v + t0 * jb.sv;
  const bf16 *any = cptr<bf16>(a.qkv);
  bf16 *dst = jb.o + t0 * jb.so;

  State<D> S;
  if (seg == 0)
    zeroState<D>(S);
  else if (z % 3 == 1)
    stateLoadT<D>(S, slot<D>(a, z + 1, seg));
  else
    stateIo<D, false>(S, slot<D>(a, z, seg));
  stateToSmem<D>(S, Sb);
#pragma unroll
  for (int st = 0; st < kStages - 1; ++st) {
    if (st < nsub) {
      const int m = len - st * C < C ? len - st * C : C;
      bf16 *d0 = stages + st * 3 * TILE;
      loadTile<D>(d0, qsrc + st * C * jb.sq, jb.sq, m, any);
      loadTile<D>(d0 + TILE, ksrc + st * C * jb.sk, jb.sk, m, any);
      loadTile<D>(d0 + 2 * TILE, vsrc + st * C * jb.sv, jb.sv, m, any);
    }
    cpCommit();
  }
  // Row decays of this thread's output rows, i = 16rg + g (+8).
  const float e0 = ex(-s * static_cast<float>(16 * rg + g));
  const float e1 = ex(-s * static_cast<float>(16 * rg + g + 8));
  for (int it = 0; it < nsub; ++it) {
    bf16 *Qs = stages + (it % kStages) * 3 * TILE, *Ks = Qs + TILE,
         *Vs = Ks + TILE;
    const int m = len - it * C < C ? len - it * C : C;
    cpWait<kStages - 2>();
    __syncthreads(); // this stage landed; iteration it-1 is done with Sb, Os
                     // and its stage
    const int nxt = it + kStages - 1;
    if (nxt < nsub) {
      const int mn = len - nxt * C < C ? len - nxt * C : C;
      bf16 *d0 = stages + (nxt % kStages) * 3 * TILE;
      loadTile<D>(d0, qsrc + nxt * C * jb.sq, jb.sq, mn, any);
      loadTile<D>(d0 + TILE, ksrc + nxt * C * jb.sk, jb.sk, mn, any);
      loadTile<D>(d0 + 2 * TILE, vsrc + nxt * C * jb.sv, jb.sv, mn, any);
    }
    cpCommit();

    // Q' fragments of rows 16rg..16rg+15, all of D (used by P and by Q'·S).
    unsigned qa[G::KS][4];
#pragma unroll
    for (int ks = 0; ks < G::KS; ++ks)
      ldsm4(qa[ks],
            Qs + (16 * rg + (lane & 15)) * LD + 16 * ks + (lane >> 4) * 8);

    // P = (Q' K'ᵀ) ⊙ Dm for rows 16rg.., keys 32·half..; key tiles past the
    // diagonal are skipped (P V' below reads keys < 16(rg+1) only).
    const int rowMax = 16 * rg + 15;
    if (32 * half <= rowMax) {
      float acc[4][4];
#pragma unroll
      for (int nt = 0; nt < 4; ++nt)
#pragma unroll
        for (int r = 0; r < 4; ++r)
          acc[nt][r] = 0.f;
#pragma unroll
      for (int np = 0; np < 2; ++np) {
        const int nb = 32 * half + 16 * np;
        if (nb <= rowMax) {
#pragma unroll
          for (int ks = 0; ks < G::KS; ++ks) {
            unsigned kb[4]; // B = K'ᵀ: K' stored [key][d]
            ldsm4(kb, Ks + (nb + (lane & 7) + ((lane >> 4) << 3)) * LD +
                          16 * ks + ((lane >> 3) & 1) * 8);
            mma(acc[2 * np], qa[ks], kb[0], kb[1]);
            mma(acc[2 * np + 1], qa[ks], kb[2], kb[3]);
          }
        }
      }
#pragma unroll
      for (int nt = 0; nt < 4; ++nt) {
        const int j = 32 * half + 8 * nt + 2 * t;
        if (32 * half + 8 * nt <= rowMax) {
#pragma unroll
          for (int hh = 0; hh < 2; ++hh) {
            const int i = 16 * rg + g + 8 * hh;
            const float v0 =
                j <= i ? acc[nt][2 * hh] * ex(-s * static_cast<float>(i - j))
                       : 0.f;
            const float v1 = j + 1 <= i
                                 ? acc[nt][2 * hh + 1] *
                                       ex(-s * static_cast<float>(i - j - 1))
                                 : 0.f;
            *reinterpret_cast<unsigned *>(Ps + i * LP + j) = packBf16(v0, v1);
          }
        }
      }
    }
    // O rows 16rg.., columns (D/2)·half..: diag(λ^i) Q' bf16(S) + P V'.
    {
      float o[G::NT][4];
#pragma unroll
      for (int nt = 0; nt < G::NT; ++nt)
#pragma unroll
        for (int r = 0; r < 4; ++r)
          o[nt][r] = 0.f;
#pragma unroll
      for (int ks = 0; ks < G::KS; ++ks)
#pragma unroll
        for (int np = 0; np < G::NT / 2; ++np) {
          unsigned sb[4]; // B = S: [d_k][d_v]
          ldsm4T(sb, Sb + (16 * ks + (lane & 7) + ((lane >> 3) & 1) * 8) * LD +
                         HALF * half + 16 * np + (lane >> 4) * 8);
          mma(o[2 * np], qa[ks], sb[0], sb[1]);
          mma(o[2 * np + 1], qa[ks], sb[2], sb[3]);
        }
#pragma unroll
      for (int nt = 0; nt < G::NT; ++nt) {
        o[nt][0] *= e0;
        o[nt][1] *= e0;
        o[nt][2] *= e1;
        o[nt][3] *= e1;
      }
      __syncthreads(); // P complete
#pragma unroll
      for (int ks = 0; ks < 4; ++ks) {
        if (ks <= rg) {
          unsigned pa[4];
          ldsm4(pa,
                Ps + (16 * rg + (lane & 15)) * LP + 16 * ks + (lane >> 4) * 8);
#pragma unroll
          for (int np = 0; np < G::NT / 2; ++np) {
            unsigned vb[4]; // B = V': [token][d_v]
            ldsm4T(vb, Vs +
                           (16 * ks + (lane & 7) + ((lane >> 3) & 1) * 8) * LD +
                           HALF * half + 16 * np + (lane >> 4) * 8);
            mma(o[2 * np], pa, vb[0], vb[1]);
            mma(o[2 * np + 1], pa, vb[2], vb[3]);
          }
        }
      }
#pragma unroll
      for (int nt = 0; nt < G::NT; ++nt) {
        const int c = HALF * half + 8 * nt + 2 * t, i = 16 * rg + g;
        *reinterpret_cast<unsigned *>(Os + i * LD + c) =
            packBf16(o[nt][0], o[nt][1]);
        *reinterpret_cast<unsigned *>(Os + (i + 8) * LD + c) =
            packBf16(o[nt][2], o[nt][3]);
      }
    }
    __syncthreads(); // O staged; every read of Sb, Ps is done

    stateUpdate<D>(S, Ks, Vs, m, s);
    stateToSmem<D>(S, Sb);
    {
      constexpr int RPP = THREADS / G::PIECES; // the mapping of loadTile
      const int c = threadIdx.x % G::PIECES, r0 = threadIdx.x / G::PIECES;
      bf16 *o = dst + (it * C + r0) * jb.so + c * 8;
#pragma unroll
      for (int pass = 0; pass < C / RPP; ++pass)
        if (r0 + pass * RPP < m)
          *reinterpret_cast<uint4 *>(o + pass * RPP * jb.so) =
              *reinterpret_cast<const uint4 *>(Os + (r0 + pass * RPP) * LD +
                                               c * 8);
    }
  }
  cpWait<0>();
}

/// The form of (T, D): SIMT, or tensor cores for bf16 with D = 64, 128.
template <typename T, int D> struct Impl {
  __device__ static void states(const LightningGradArgs &a,
                                unsigned char *smem) {
    statesGeneric<T, D>(a, reinterpret_cast<float *>(smem));
  }
  __device__ static void out(const LightningGradArgs &a, unsigned char *smem) {
    outGeneric<T, D>(a, reinterpret_cast<float *>(smem));
  }
};
template <int D> struct ImplFast {
  __device__ static void states(const LightningGradArgs &a,
                                unsigned char *smem) {
    statesFast<D>(a, smem);
  }
  __device__ static void out(const LightningGradArgs &a, unsigned char *smem) {
    outFast<D>(a, smem);
  }
};
template <> struct Impl<bf16, 64> : ImplFast<64> {};
template <> struct Impl<bf16, 128> : ImplFast<128> {};

} // namespace lgrad
} // namespace k
} // namespace mm

/// One entry per launch of lightningAttentionGradPlan: prefix##_states,
/// prefix##_scan, prefix##_out.
#define MM_LIGHTNING_ATTENTION_GRAD_ENTRIES(prefix, T, D)                      \
  extern "C" __global__ void __launch_bounds__(                                \
      256, mm::k::lightningGradStatesPerSm(D))                                 \
      prefix##_states(const mm::k::LightningGradArgs a) {                      \
    extern __shared__ __align__(16) unsigned char mm_lgrad_smem[];             \
    mm::k::lgrad::Impl<T, D>::states(a, mm_lgrad_smem);                        \
  }                                                                            \
  extern "C" __global__ void __launch_bounds__(256)                            \
      prefix##_scan(const mm::k::LightningGradArgs a) {                        \
    mm::k::lgrad::scan<D>(a);                                                  \
  }                                                                            \
  extern "C" __global__ void __launch_bounds__(                                \
      256, mm::k::lightningGradOutPerSm(D))                                    \
      prefix##_out(const mm::k::LightningGradArgs a) {                         \
    extern __shared__ __align__(16) unsigned char mm_lgrad_smem[];             \
    mm::k::lgrad::Impl<T, D>::out(a, mm_lgrad_smem);                           \
  }
