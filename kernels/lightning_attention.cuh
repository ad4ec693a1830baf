// lightning_attention (docs/kernels.md): causal decayed linear attention,
// forward, in the Lightning Attention-2 form. With decay s = s_h of the head
// and blocks of BLOCK tokens, for each block (rows i < m of the block, Q K V
// its [m, D] slices):
//   O     = ((Q Kᵀ) ⊙ Dm) V  +  diag(exp(-s·i)) · Q · KV      intra-block +
//   inter-block KV   ← exp(-s·m) · KV  +  (K ⊙ exp(-s·(m-j)))ᵀ V fp32 state [D,
//   D]
// with Dm[i,j] = exp(-s(i-j)) for j ≤ i, else 0. With SILU_IN the qkv operand
// is the pre-activation and silu is applied as it is loaded (the `silu` step
// fused by mm-fuse).
//
// Operands: qkv [B, T, H*3*D] T (head h reads q|k|v from channels h*3D + [0,D)
// | [D,2D) | [2D,3D)), out [B, T, H*D] T (head-major), row-major. out must not
// alias qkv. Tiling: grid (D/DV, H, B). Output columns are independent, so each
// block owns DV columns of the value dim and keeps only KV[:, c0:c0+DV] in
// shared memory, walking the blocks of T in order. Shared memory (floats, rows
// padded by one word): Q, K [BLOCK][D+1], V [BLOCK][DV+1], P [BLOCK][BLOCK+1],
// KV [D][DV+1] = lightningSmemFloats(D, BLOCK, DV). All products run on TileMap
// register tiles in fp32; rows past T are zero-filled, so a ragged last block
// is exact.
#pragma once

#include "kernels/tile_gemm.cuh"

namespace mm {
namespace k {

template <typename T, int D, int BLOCK, int DV, int THREADS, bool SILU_IN>
__device__ void lightningAttention(const LightningArgs &p, float *smem) {
  static_assert(D % DV == 0, "DV must divide D");
  constexpr int LQ = D + 1, LV = DV + 1, LP = BLOCK + 1;
  float *Qs = smem;
  float *Ks = Qs + BLOCK * LQ;
  float *Vs = Ks + BLOCK * LQ;
  float *Ps = Vs + BLOCK * LV;
  float *KV = Ps + BLOCK * LP;

  const int c0 = blockIdx.x * DV;
  const long long h = blockIdx.y, b = blockIdx.z;
  const long long H = p.heads, T_ = p.seq;
  const double decay =
      pow(pow(2.0, -8.0 / static_cast<double>(H)), static_cast<double>(h + 1)) *
      (1.0 -
       static_cast<double>(p.layer) /
           (static_cast<double>(p.num_layers) - 1.0 + 1e-5) +
       1e-5);
  const float s = static_cast<float>(decay);

  using MapP = TileMap<BLOCK, BLOCK, MicroEdge<BLOCK>::value,
                       MicroEdge<BLOCK>::value, THREADS>;
  using MapO = TileMap<BLOCK, DV, MicroEdge<BLOCK>::value, MicroEdge<DV>::value,
                       THREADS>;
  using MapS =
      TileMap<D, DV, MicroEdge<D>::value, MicroEdge<DV>::value, THREADS>;

  for (int i = threadIdx.x; i < D * LV; i += THREADS)
    KV[i] = 0.f;

  const T *qkv = cptr<T>(p.qkv);
  T *out = mptr<T>(p.out);
  const long long rowIn = H * 3 * D, rowOut = H * D;
  for (long long b0 = 0; b0 < T_; b0 += BLOCK) {
    const int m = static_cast<int>(T_ - b0 < BLOCK ? T_ - b0 : BLOCK);
    __syncthreads(); // the previous block is done with Q, K, V, P
    for (int idx = threadIdx.x; idx < BLOCK * D; idx += THREADS) {
      const int i = idx / D, d = idx % D;
      float q = 0.f, kk = 0.f;
      if (i < m) {
        const long long base = (b * T_ + b0 + i) * rowIn + h * 3 * D;
        q = ld(qkv, base + d);
        kk = ld(qkv, base + D + d);
        if (SILU_IN) {
          q = siluF(q);
          kk = siluF(kk);
        }
      }
      Qs[i * LQ + d] = q;
      Ks[i * LQ + d] = kk;
    }
    for (int idx = threadIdx.x; idx < BLOCK * DV; idx += THREADS) {
      const int i = idx / DV, c = idx % DV;
      float v = 0.f;
      if (i < m) {
        v = ld(qkv, (b * T_ + b0 + i) * rowIn + h * 3 * D + 2 * D + c0 + c);
        if (SILU_IN)
          v = siluF(v);
      }
      Vs[i * LV + c] = v;
    }
    __syncthreads();

    // P = (Q Kᵀ) ⊙ Dm.
    {
      float acc[MapP::PER][MicroEdge<BLOCK>::value][MicroEdge<BLOCK>::value];
      MapP::zero(acc);
      MapP::mac(
          acc, D, [&](int i, int d) { return Qs[i * LQ + d]; },
          [&](int j, int d) { return Ks[j * LQ + d]; });
      MapP::each(acc, [&](int i, int j, float &v) {
        Ps[i * LP + j] =
            j <= i ? v * __expf(-s * static_cast<float>(i - j)) : 0.f;
      });
    }
    // O = diag(exp(-s i)) Q KV + P V.
    float accO[MapO::PER][MicroEdge<BLOCK>::value][MicroEdge<DV>::value];
    MapO::zero(accO);
    MapO::mac(
        accO, D, [&](int i, int d) { return Qs[i * LQ + d]; },
        [&](int c, int d) { return KV[d * LV + c]; });
    MapO::each(accO, [&](int i, int, float &v) {
      v *= __expf(-s * static_cast<float>(i));
    });
    __syncthreads(); // P is complete
    MapO::mac(
        accO, BLOCK, [&](int i, int j) { return Ps[i * LP + j]; },
        [&](int c, int j) { return Vs[j * LV + c]; });
    MapO::each(accO, [&](int i, int c, float &v) {
      if (i < m)
        st(out, (b * T_ + b0 + i) * rowOut + h * D + c0 + c, v);
    });

    // KV ← exp(-s m) KV + (K ⊙ exp(-s(m-j)))ᵀ V; the row weights go on V.
    __syncthreads(); // every read of KV and V above is done
    for (int idx = threadIdx.x; idx < m * DV; idx += THREADS) {
      const int j = idx / DV, c = idx % DV;
      Vs[j * LV + c] *= __expf(-s * static_cast<float>(m - j));
    }
    __syncthreads();
    float accS[MapS::PER][MicroEdge<D>::value][MicroEdge<DV>::value];
    MapS::zero(accS);
    MapS::mac(
        accS, BLOCK, [&](int d, int j) { return Ks[j * LQ + d]; },
        [&](int c, int j) { return Vs[j * LV + c]; });
    const float blockDecay = __expf(-s * static_cast<float>(m));
    MapS::each(accS, [&](int d, int c, float &v) {
      KV[d * LV + c] = KV[d * LV + c] * blockDecay + v;
    });
  }
}

// ---- Chunk-parallel fast path: bf16 operands, D ∈ {64, 128}, tensor cores
// (mma.sync m16n8k16) ----
//
// With λ = exp(-s) and the state at position p, S(p) = Σ_{u<p} λ^{p-u} k_uᵀ v_u
// (fp32, [D, D]):
//   o_t = Σ_{p≤u≤t} λ^{t-u} (q_t·k_u) v_u + λ^{t-p} q_t S(p)      for any p ≤
//   t, S(p+m) = λ^m S(p) + Σ_{p≤u<p+m} λ^{p+m-u} k_uᵀ v_u.
// T is cut into nseg segments of seg_len tokens (a multiple of 64;
// lightningChunkSegLen), and each segment into sub-chunks of 64 tokens. Three
// launches:
//   1. states  grid (nseg-1, H, B): U_s = the second term of S(p+m) over
//   segment s, walking its
//      sub-chunks (the state update below from S = 0), into slot s of the
//      workspace.
//   2. scan    grid (D·D/1024, H, B): in place, slot s ← S(start of segment s)
//   for s ≥ 1
//      (S(b_1) = U_0, S(b_{s+1}) = λ^{seg_len} S(b_s) + U_s); slot 0 is never
//      read.
//   3. out     grid (nseg, H, B): each block walks its segment from S(start)
//   (zero for s = 0),
//      per sub-chunk: P = (Q Kᵀ) ⊙ Dm (bf16 in shared memory), O = diag(λ^i) Q
//      bf16(S) + P V, then S ← λ^m S + (K ⊙ λ^{m-j})ᵀ V with S held in fp32
//      registers.
// Each reads q, k, v of a sub-chunk with 16-byte cp.async into padded [64][D+8]
// bf16 tiles (conflict-free ldmatrix), STAGES deep; rows past T are
// zero-filled, so a ragged last sub-chunk is exact. 8 warps: warp w owns state
// rows (D/4)(w%4).., columns (D/2)(w/4).. (D²/256 fp32 registers), P rows
// 16(w%4).., keys 32(w/4).., and O rows 16(w%4).., columns (D/2)(w/4)...
// Products run on bf16 operands (P, the decayed K and the state copy are
// rounded to bf16) with fp32 accumulation; the state itself stays fp32. With
// SILU_IN silu is applied in shared memory by the thread that copied each 16
// bytes, before the barrier that publishes them. D is a template parameter: 128
// (the large presets) and 64 (`small`); Geom<D> refuses others. On sm_90a the
// output launch at D = 128 runs on wgmma instead (lightningChunkOutWgmma below:
// same grid, threads and shared-memory budget, 128-byte-swizzled tiles).
// On sm_90a at D = 128 and long T the runtime runs all three in ONE launch
// instead (lightningChunkFused, decoupled look-back over the segments; its
// choice and segment length: lightningFusedSegLen in kernels/args.h).

namespace lfast {
constexpr int C = 64, LP = C + 8, THREADS = 256;

/// Tile geometry of head dim D: padded row, one [64][D+8] tile, and this warp's
/// fragments.
template <int D> struct Geom {
  static_assert(D == 64 || D == 128,
                "the chunk-parallel lightning path supports D = 64, 128");
  static constexpr int LD = D + 8;
  static constexpr int TILE = C * LD; // elements of one [64][D+8] tile
  static constexpr int MT = D / 64;   // m16 tiles of this warp's D/4 state rows
  static constexpr int NT =
      D / 16; // n8 tiles of this warp's D/2 state / output columns
  static constexpr int KS = D / 16;    // k16 steps over D
  static constexpr int PIECES = D / 8; // 16-byte pieces of one tile row
};

__device__ __forceinline__ unsigned smemAddr(const void *p) {
  return static_cast<unsigned>(
      __cvta_generic_to_shared(p)); // visible to the optimiser
}
__device__ __forceinline__ void ldsm4(unsigned (&r)[4], const bf16 *p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smemAddr(p))
               : "memory");
}
__device__ __forceinline__ void ldsm4T(unsigned (&r)[4], const bf16 *p) {
  asm volatile(
      "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
      : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
      : "r"(smemAddr(p))
      : "memory");
}
/// 16 bytes global → shared; valid = false zero-fills without reading.
__device__ __forceinline__ void cpAsync16(bf16 *dst, const bf16 *src,
                                          bool valid) {
  asm volatile(
      "cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smemAddr(dst)),
      "l"(src), "r"(valid ? 16 : 0)
      : "memory");
}
__device__ __forceinline__ void cpCommit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int N> __device__ __forceinline__ void cpWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void mma(float (&c)[4], const unsigned (&a)[4],
                                    unsigned b0, unsigned b1) {
  const unsigned b[2] = {b0, b1};
  mmaBf16(c, a, b);
}
/// e^x as one ex2.approx.ftz (the decay factors; results below 2^-126 flush to
/// zero, where
/// __expf spends a compare and two multiplies a call keeping them).
__device__ __forceinline__ float ex(float x) {
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(r) : "f"(x * 1.44269504088896341f));
  return r;
}
__device__ __forceinline__ float lo(unsigned x) {
  return __uint_as_float(x << 16);
}
__device__ __forceinline__ float hi(unsigned x) {
  return __uint_as_float(x & 0xffff0000u);
}
__device__ __forceinline__ unsigned scalePair(unsigned x, float w0, float w1) {
  return packBf16(lo(x) * w0, hi(x) * w1);
}

/// The decay s_h of docs/kernels.md (double, as the reference).
__device__ __forceinline__ float slope(long long h, long long H,
                                       long long layer, long long L) {
  const double d =
      pow(pow(2.0, -8.0 / static_cast<double>(H)), static_cast<double>(h + 1)) *
      (1.0 -
       static_cast<double>(layer) / (static_cast<double>(L) - 1.0 + 1e-5) +
       1e-5);
  return static_cast<float>(d);
}

/// Starts the copies of one sub-chunk (m valid rows from `src`, the q of its
/// first token) into `stage`: q|k|v tiles (PARTS = 3) or k|v tiles (PARTS = 2,
/// from src + D).
template <int D, int PARTS>
__device__ __forceinline__ void
loadSub(bf16 *stage, const bf16 *src, long long rowIn, int m, const bf16 *any) {
  // Thread → fixed piece c of rows r0, r0 + RPP, ..: the addresses are a base
  // plus immediates (the former idx / (PARTS·PIECES) mapping cost ~30 integer
  // instructions a copy).
  using G = Geom<D>;
  constexpr int RPP = THREADS / G::PIECES; // rows per pass
  const int c = threadIdx.x % G::PIECES, r0 = threadIdx.x / G::PIECES;
  const bf16 *g = src + r0 * rowIn + (3 - PARTS) * D + c * 8;
  bf16 *d = stage + r0 * G::LD + c * 8;
#pragma unroll
  for (int pass = 0; pass < C / RPP; ++pass) {
    const bool valid = r0 + pass * RPP < m;
#pragma unroll
    for (int part = 0; part < PARTS; ++part)
      cpAsync16(d + part * G::TILE + pass * RPP * G::LD,
                valid ? g + part * D : any, valid);
    g += RPP * rowIn;
  }
}
/// silu on the pieces this thread copied by loadSub<D, PARTS> (visible to it
/// after cpWait).
template <int D, int PARTS>
__device__ __forceinline__ void siluSub(bf16 *stage, int m) {
  using G = Geom<D>;
  constexpr int RPP = THREADS / G::PIECES;
  const int c = threadIdx.x % G::PIECES, r0 = threadIdx.x / G::PIECES;
#pragma unroll
  for (int pass = 0; pass < C / RPP; ++pass) {
    if (r0 + pass * RPP >= m)
      continue;
#pragma unroll
    for (int part = 0; part < PARTS; ++part) {
      unsigned *x = reinterpret_cast<unsigned *>(
          stage + part * G::TILE + (r0 + pass * RPP) * G::LD + c * 8);
#pragma unroll
      for (int e = 0; e < 4; ++e)
        x[e] = packBf16(siluF(lo(x[e])), siluF(hi(x[e])));
    }
  }
}

/// This warp's part of the fp32 state: rows dk0 + 16mt + g (+8), columns dv0 +
/// 8nt + 2t (+1), in mma C-fragment order.
template <int D> using State = float[Geom<D>::MT][Geom<D>::NT][4];

/// S ← λ^m S + (K ⊙ λ^{m-j})ᵀ V over one sub-chunk (rows j ≥ m of K, V are
/// zero).
template <int D>
__device__ __forceinline__ void stateUpdate(State<D> &S, const bf16 *Ks,
                                            const bf16 *Vs, int m, float s) {
  using G = Geom<D>;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, t = lane & 3;
  const int dk0 = (D / 4) * (warp & 3), dv0 = (D / 2) * (warp >> 2);
  const float dec = ex(-s * static_cast<float>(m));
#pragma unroll
  for (int mt = 0; mt < G::MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < G::NT; ++nt)
#pragma unroll
      for (int r = 0; r < 4; ++r)
        S[mt][nt][r] *= dec;
#pragma unroll
  for (int ks = 0; ks < 4; ++ks) {
    // A = (K ⊙ w)ᵀ: [d_k][token], from K stored [token][d_k] (transposed 8×8
    // loads).
    unsigned a[G::MT][4];
#pragma unroll
    for (int mt = 0; mt < G::MT; ++mt)
      ldsm4T(a[mt], Ks + (16 * ks + (lane & 7) + ((lane >> 4) << 3)) * G::LD +
                        dk0 + 16 * mt + ((lane >> 3) & 1) * 8);
    const float j0 = static_cast<float>(16 * ks + 2 * t);
    const float mf = static_cast<float>(m);
    const float w00 = ex(-s * (mf - j0)), w01 = ex(-s * (mf - j0 - 1.f));
    const float w10 = ex(-s * (mf - j0 - 8.f)), w11 = ex(-s * (mf - j0 - 9.f));
#pragma unroll
    for (int mt = 0; mt < G::MT; ++mt) {
      a[mt][0] = scalePair(a[mt][0], w00, w01);
      a[mt][1] = scalePair(a[mt][1], w00, w01);
      a[mt][2] = scalePair(a[mt][2], w10, w11);
      a[mt][3] = scalePair(a[mt][3], w10, w11);
    }
#pragma unroll
    for (int np = 0; np < G::NT / 2; ++np) {
      unsigned b[4]; // B = V: [token][d_v]
      ldsm4T(b, Vs + (16 * ks + (lane & 7) + ((lane >> 3) & 1) * 8) * G::LD +
                    dv0 + 16 * np + (lane >> 4) * 8);
#pragma unroll
      for (int mt = 0; mt < G::MT; ++mt) {
        mma(S[mt][2 * np], a[mt], b[0], b[1]);
        mma(S[mt][2 * np + 1], a[mt], b[2], b[3]);
      }
    }
  }
}

template <int D> __device__ __forceinline__ void zeroState(State<D> &S) {
#pragma unroll
  for (int mt = 0; mt < Geom<D>::MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < Geom<D>::NT; ++nt)
#pragma unroll
      for (int r = 0; r < 4; ++r)
        S[mt][nt][r] = 0.f;
}

/// fp32 state slot [D][D] ↔ this warp's registers.
template <int D, bool STORE>
__device__ __forceinline__ void stateIo(State<D> &S, float *slot) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2,
            t = lane & 3;
  const int dk0 = (D / 4) * (warp & 3), dv0 = (D / 2) * (warp >> 2);
#pragma unroll
  for (int mt = 0; mt < Geom<D>::MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < Geom<D>::NT; ++nt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float2 *p = reinterpret_cast<float2 *>(
            slot + (dk0 + 16 * mt + g + 8 * h) * D + dv0 + 8 * nt + 2 * t);
        if (STORE) {
          *p = make_float2(S[mt][nt][2 * h], S[mt][nt][2 * h + 1]);
        } else {
          const float2 v = *p;
          S[mt][nt][2 * h] = v.x;
          S[mt][nt][2 * h + 1] = v.y;
        }
      }
}

/// bf16 copy of the state into Sb [D][D+8].
template <int D>
__device__ __forceinline__ void stateToSmem(const State<D> &S, bf16 *Sb) {
  using G = Geom<D>;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2,
            t = lane & 3;
  const int dk0 = (D / 4) * (warp & 3), dv0 = (D / 2) * (warp >> 2);
#pragma unroll
  for (int mt = 0; mt < G::MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < G::NT; ++nt)
#pragma unroll
      for (int h = 0; h < 2; ++h)
        *reinterpret_cast<unsigned *>(Sb + (dk0 + 16 * mt + g + 8 * h) * G::LD +
                                      dv0 + 8 * nt + 2 * t) =
            packBf16(S[mt][nt][2 * h], S[mt][nt][2 * h + 1]);
}
} // namespace lfast

/// Launch 1 (grid (nseg-1, H, B), lightningChunkThreads() threads,
/// lightningChunkStatesSmem(D, STAGES) bytes): U_s of every full segment s <
/// nseg-1.
template <int D, int STAGES, bool SILU_IN>
__device__ void lightningChunkStates(const LightningChunkArgs &p,
                                     unsigned char *smem) {
  using namespace lfast;
  using G = Geom<D>;
  bf16 *stages = reinterpret_cast<bf16 *>(smem);
  const long long seg = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const long long H = p.heads, T_ = p.seq, rowIn = H * 3 * D;
  const float s = slope(h, H, p.layer, p.num_layers);
  const bf16 *qkv = cptr<bf16>(p.qkv);
  const bf16 *src = qkv + (b * T_ + seg * p.seg_len) * rowIn + h * 3 * D;
  const int nsub =
      static_cast<int>(p.seg_len / C); // segments before the last are full
  State<D> S;
  zeroState<D>(S);
#pragma unroll
  for (int st = 0; st < STAGES - 1; ++st) {
    if (st < nsub)
      loadSub<D, 2>(stages + st * 2 * G::TILE, src + st * C * rowIn, rowIn, C,
                    qkv);
    cpCommit();
  }
  for (int it = 0; it < nsub; ++it) {
    bf16 *cur = stages + (it % STAGES) * 2 * G::TILE;
    cpWait<STAGES - 2>();
    if (SILU_IN)
      siluSub<D, 2>(cur, C);
    __syncthreads();
    const int nxt = it + STAGES - 1;
    if (nxt < nsub)
      loadSub<D, 2>(stages + (nxt % STAGES) * 2 * G::TILE,
                    src + nxt * C * rowIn, rowIn, C, qkv);
    cpCommit();
    stateUpdate<D>(S, cur, cur + G::TILE, C, s);
  }
  cpWait<0>();
  stateIo<D, true>(S,
                   mptr<float>(p.state) + ((b * H + h) * p.nseg + seg) * D * D);
}

/// Launch 2 (grid (D·D/1024, H, B), 256 threads): exclusive scan of the segment
/// states in place.
template <int D>
__device__ void lightningChunkScan(const LightningChunkArgs &p) {
  using namespace lfast;
  static_assert(Geom<D>::TILE > 0, "instantiates Geom<D>, which checks D");
  const long long h = blockIdx.y, b = blockIdx.z, H = p.heads, nseg = p.nseg;
  const long long e =
      static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= D * D / 4)
    return;
  const float s = slope(h, H, p.layer, p.num_layers);
  const float dec = expf(-s * static_cast<float>(p.seg_len));
  float4 *ws = reinterpret_cast<float4 *>(mptr<float>(p.state) +
                                          (b * H + h) * nseg * D * D) +
               e;
  const long long stride = D * D / 4;
  float4 acc = ws[0];
  for (long long base = 1; base < nseg; base += 8) {
    float4 u[8];
#pragma unroll
    for (int j = 0; j < 8; ++j)
      u[j] = base + j < nseg - 1 ? ws[(base + j) * stride]
                                 : make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
    for (int j = 0; j < 8; ++j)
      if (base + j < nseg) {
        ws[(base + j) * stride] = acc;
        acc.x = acc.x * dec + u[j].x;
        acc.y = acc.y * dec + u[j].y;
        acc.z = acc.z * dec + u[j].z;
        acc.w = acc.w * dec + u[j].w;
      }
  }
}

#ifndef MM_LIGHTNING_WGMMA_VAR
#define MM_LIGHTNING_WGMMA_VAR 26
#endif
/// The default form of the sm_90a output launch (lightningChunkOutWgmma VAR):
/// 26 = PIPE | VSCALE | UPD_SS, the fastest of those measured on the H200
/// (bench/results/lfuse.md).
constexpr int kLightningWgmmaVar = MM_LIGHTNING_WGMMA_VAR;

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
// ---- sm_90a output launch at D = 128: wgmma ----
//
// Same algorithm and grid as lightningChunkOut (sm_80 and D = 64 keep the
// mma.sync form above); the 8 warps are two warpgroups, warpgroup w owning the
// value columns 64w..64w+63 of O and of the fp32 state (S[0..127][64w..], 64
// registers a thread: two m64 blocks of d_k), so the warpgroups share only the
// q|k|v stages. Per sub-chunk of m ≤ 64 rows, in the default form
// (kLightningWgmmaVar = 26; the VAR bits below), each warpgroup
//   1. issues P = Q Kᵀ (m64n64k16 ×8, A = Q, B = K, both K-major in shared
//      memory) and O = Q bf16(S) (×8, B = the bf16 state copy, N-major) as two
//      wgmma groups;
//   2. while they run, scales its half of V in shared memory by the decay
//      weights, V' = diag(λ^{m-j}) V, then issues S ← λ^m S + Kᵀ V' (2 m64
//      blocks × 4, A = Kᵀ through an M-major descriptor of the K tile, B = V');
//   3. masks P causally (no decay: it is on V') into bf16 A fragments, scales O
//      by λ^m and issues O += mask(P) V' (×4, A = P from registers), so that
//      O·λ^{i-m} = λ^i Q S + Σ_{j≤i} λ^{i-j} (q_i·k_j) v_j;
//   4. once the update is done writes bf16(S) for the next sub-chunk (its own
//      half of the copy), then scales O by λ^{i-m} and writes it through a
//      padded [64][D+8] tile as 16-byte pieces of its columns.
// Both warpgroups compute the full 64×64 P (P V needs all keys of a row; 1 of
// the 7 MFLOP a sub-chunk). Q, K, V tiles (16 KB) and the state copy (32 KB)
// are in the 128-byte-swizzled layout the tensor cores read: [rows][64] halves
// of 128-byte rows, 16-byte chunk c of row r at chunk c ^ (r & 7), 8-row groups
// 1024 bytes apart. λ^{±64} stays within fp32 and bf16 range (s_h < 1). With
// FUSED the same loop is phase B of the fused single launch
// (lightningChunkFused, below).
namespace lwg {
constexpr unsigned HALF = 64 * 128, TILE = 2 * HALF, SHALF = 128 * 128;

__device__ __forceinline__ unsigned long long desc(unsigned addr, unsigned lbo,
                                                   unsigned sbo) {
  return static_cast<unsigned long long>((addr & 0x3FFFF) >> 4) |
         (static_cast<unsigned long long>(lbo >> 4) << 16) |
         (static_cast<unsigned long long>(sbo >> 4) << 32) | (1ull << 62);
}
/// K-major operand (128-byte rows), k16 step kd of a 128-wide K.
__device__ __forceinline__ unsigned long long descK(unsigned base, int kd) {
  return desc(base + (kd >> 2) * HALF + (kd & 3) * 32, 16, 1024);
}
__device__ __forceinline__ void fence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void commit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N = 0> __device__ __forceinline__ void wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
template <int N> __device__ __forceinline__ void fenceRegs(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
    asm volatile("" : "+f"(d[i])::"memory");
}
__device__ __forceinline__ void proxyFence() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
/// Named barrier of one warpgroup (ids 1, 2).
__device__ __forceinline__ void wgBarrier(int wg) {
  asm volatile("bar.sync %0, 128;\n" ::"r"(1 + wg) : "memory");
}

#define MM_LWG_D32                                                             \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]),      \
      "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]),             \
      "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),         \
      "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),         \
      "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]),         \
      "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]),         \
      "+f"(d[31])
/// d (+)= A·B, m64n64k16, A and B from shared memory (A K-major when TA = 0,
/// M-major when TA = 1; B K-major when TB = 0, N-major when TB = 1); acc = 0
/// overwrites d.
template <int TB, int TA = 0>
__device__ __forceinline__ void mmaSS(float (&d)[32], unsigned long long da,
                                      unsigned long long db, int acc) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
               "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,"
               "%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, "
               "%32, %33, p, 1, 1, %36, %35;\n}\n"
               : MM_LWG_D32
               : "l"(da), "l"(db), "r"(acc), "n"(TB), "n"(TA));
}
/// d (+)= A·B, m64n64k16, A from registers (each warp's mma.sync A fragment
/// of its 16 rows), B from shared memory (TB as mmaSS); acc = 0 overwrites d.
template <int TB = 1>
__device__ __forceinline__ void mmaRS(float (&d)[32], const unsigned (&a)[4],
                                      unsigned long long db, int acc = 1) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
               "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,"
               "%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, "
               "{%32,%33,%34,%35}, %36, p, 1, 1, %38;\n}\n"
               : MM_LWG_D32
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(acc),
                 "n"(TB));
}
#undef MM_LWG_D32

/// Byte offset of 16-byte chunk c (0..15) of row r in a swizzled [rows][128]
/// tile of `half` bytes a 64-column half.
__device__ __forceinline__ unsigned swz(int r, int c, unsigned half) {
  return (c >> 3) * half + r * 128 + (((c & 7) ^ (r & 7)) << 4);
}

/// Copies of one sub-chunk (m valid rows from src, the q of its first token)
/// into the swizzled q|k|v tiles at shared address `stage` (parts P0.. of
/// q|k|v, part p at stage + (p - P0)·TILE); thread → chunk
/// c = tid % 16 of rows r0 = tid / 16, +16, +32, +48 (r & 7 is the same for
/// all four, so the addresses are a base plus immediates).
template <int P0 = 0>
__device__ __forceinline__ void loadSub(unsigned stage, const bf16 *src,
                                        long long rowIn, int m,
                                        const bf16 *any) {
  constexpr int D = 128;
  const int c = threadIdx.x & 15, r0 = threadIdx.x >> 4;
  const bf16 *g = src + r0 * rowIn + c * 8;
  const unsigned d = stage + swz(r0, c, HALF);
#pragma unroll
  for (int pass = 0; pass < 4; ++pass) {
    const bool valid = r0 + 16 * pass < m;
#pragma unroll
    for (int part = P0; part < 3; ++part)
      asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(
                       d + (part - P0) * TILE + pass * 16 * 128),
                   "l"(valid ? g + part * D : any), "r"(valid ? 16 : 0)
                   : "memory");
    g += 16 * rowIn;
  }
}
/// silu on the pieces this thread copied by loadSub (visible after cpWait).
template <int P0 = 0>
__device__ __forceinline__ void siluSub(unsigned char *stage, int m) {
  const int c = threadIdx.x & 15, r0 = threadIdx.x >> 4;
#pragma unroll
  for (int pass = 0; pass < 4; ++pass) {
    if (r0 + 16 * pass >= m)
      continue;
#pragma unroll
    for (int part = P0; part < 3; ++part) {
      unsigned *x = reinterpret_cast<unsigned *>(
          stage + (part - P0) * TILE + swz(r0, c, HALF) + pass * 16 * 128);
#pragma unroll
      for (int e = 0; e < 4; ++e)
        x[e] = packBf16(siluF(lfast::lo(x[e])), siluF(lfast::hi(x[e])));
    }
  }
}
} // namespace lwg

/// VAR (bit mask; lightningChunkOut uses kLightningWgmmaVar): bit 0 stores O
/// from the accumulators straight to global memory (no staging tile); bit 1
/// issues Q Kᵀ, Q·S and the state update as three wgmma groups and masks P
/// while the last two run (then P V, and the state copy once the update is
/// done); bit 2 feeds Q from registers (ldmatrix) instead of shared memory;
/// bit 3 puts the decay weights on V in shared memory instead (V' =
/// diag(λ^{m-j}) V, each warpgroup its half, while Q Kᵀ and Q·S run), so that P
/// needs only the causal mask and O = λ^{i-m} (λ^m Q·S + mask(Q Kᵀ) V'), no
/// exponential per element; bit 4 (needs bit 3) reads A = Kᵀ of the update from
/// shared memory (M-major descriptor) instead of ldmatrix.trans fragments.
template <int STAGES, bool SILU_IN, int VAR, bool FUSED = false>
__device__ void lightningChunkOutWgmma(const LightningChunkArgs &p,
                                       unsigned char *smemRaw) {
  using namespace lfast;
  constexpr int D = 128, LDO = D + 8;
  static_assert(STAGES * 3 * lwg::TILE + 2 * lwg::SHALF + C * LDO * 2 + 1024 <=
                    lightningChunkOutSmem(D, STAGES),
                "the wgmma layout fits the bytes the runtime reserves");
  const unsigned raw = smemAddr(smemRaw);
  const unsigned base = (raw + 1023u) & ~1023u;
  unsigned char *smem = smemRaw + (base - raw); // 1024-byte aligned
  const unsigned sbBase = base + STAGES * 3 * lwg::TILE;
  unsigned char *sb = smem + STAGES * 3 * lwg::TILE;
  bf16 *Os = reinterpret_cast<bf16 *>(sb + 2 * lwg::SHALF); // [C][LDO]

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2,
            t = lane & 3;
  const int wg = warp >> 2, q4 = warp & 3;
  const long long H = p.heads, T_ = p.seq, rowIn = H * 3 * D, rowOut = H * D;
  long long seg = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  int *flags = nullptr; // FUSED: [B·H·nseg] prefix-ready flags, error, ticket
  if constexpr (FUSED) {
    // Items in ticket order (segment-major), so a block waits only on blocks
    // that started before it.
    flags = reinterpret_cast<int *>(
        mptr<float>(p.state) +
        lightningFusedStateFloats(D, p.batch * H, p.nseg));
    __shared__ unsigned long long ticket;
    if (threadIdx.x == 0)
      ticket = atomicAdd(reinterpret_cast<unsigned long long *>(
                             flags + lightningFusedTicket(p.batch * H, p.nseg)),
                         1ull);
    __syncthreads();
    const long long tk = static_cast<long long>(ticket);
    const long long bh = tk % (p.batch * H);
    seg = tk / (p.batch * H);
    h = bh % H;
    b = bh / H;
  }
  const float s = slope(h, H, p.layer, p.num_layers);
  const long long t0 = seg * p.seg_len;
  const long long rest = T_ - t0;
  const int len = static_cast<int>(rest < p.seg_len ? rest : p.seg_len);
  const int nsub = (len + C - 1) / C;
  const bf16 *qkv = cptr<bf16>(p.qkv);
  const bf16 *src = qkv + (b * T_ + t0) * rowIn + h * 3 * D;
  bf16 *dst = mptr<bf16>(p.out) + (b * T_ + t0) * rowOut + h * D;

  // This thread's state: S[mb][4nt + r] = S(d_k = 64mb + 16q4 + g + 8(r/2),
  // d_v = 64wg + 8nt + 2t + r%2), the wgmma accumulator order.
  float S[2][32];
  if constexpr (FUSED) {
    // Decoupled look-back (bench/results/llook.md). Workspace of (b, h):
    // slots[2 seg] = A_seg, the segment's own contribution (aggregate),
    // slots[2 seg + 1] = I_seg = S(end of segment seg) (inclusive prefix);
    // status[seg] = 1 once A_seg is published, 2 once I_seg is.
    const long long bh = b * H + h;
    float *slots = mptr<float>(p.state) + bh * 2 * p.nseg * D * D;
    int *status = flags + bh * p.nseg;
    const bool full = seg < p.nseg - 1; // the last segment publishes nothing
    // Phase A (segments before the last): U = Σ_u λ^{len-u} k_uᵀ v_u over the
    // segment's k, v, walking its sub-chunks backwards (last first) with the
    // weights λ^{len-64c-j} on K directly (no decay of the accumulator), so
    // that phase B's first sub-chunks are the ones read last: still in L2.
#pragma unroll
    for (int mb = 0; mb < 2; ++mb)
#pragma unroll
      for (int e = 0; e < 32; ++e)
        S[mb][e] = 0.f;
    // Phase A needs only k|v: AST stages of 32 KB over the q|k|v stages and
    // the state copy (free until the look-back): 5 stages, 4 sub-chunks in
    // flight (the three q|k|v stages hold 2).
    constexpr int AST =
        (STAGES * 3 * lwg::TILE + 2 * lwg::SHALF) / (2 * lwg::TILE);
    static_assert(AST * 2 * lwg::TILE <=
                      STAGES * 3 * lwg::TILE + 2 * lwg::SHALF,
                  "phase A's stages fit before the O tile");
    // Sub-chunk of phase A's iteration `it` (MM_LIGHTNING_FUSED_FORWARD:
    // first to last, for comparison).
    auto subA = [&](int it) {
#ifdef MM_LIGHTNING_FUSED_FORWARD
      return it;
#else
      return nsub - 1 - it;
#endif
    };
#ifdef MM_LIGHTNING_FUSED_SKIP_A
    const int nsubA = 0; // a measurement knob only: no phase A, wrong results
#else
    const int nsubA = nsub;
#endif
    if (full) {
#pragma unroll
      for (int st = 0; st < AST - 1; ++st) {
        if (st < nsubA)
          lwg::loadSub<1>(base + st * 2 * lwg::TILE, src + subA(st) * C * rowIn,
                          rowIn, C, qkv);
        cpCommit();
      }
      for (int it = 0; it < nsubA; ++it) {
        const int stage = it % AST;
        const unsigned kB = base + stage * 2 * lwg::TILE, vB = kB + lwg::TILE;
        cpWait<AST - 2>();
        if (SILU_IN)
          lwg::siluSub<1>(smem + stage * 2 * lwg::TILE, C);
        lwg::proxyFence();
        __syncthreads();
        const int nxt = it + AST - 1;
        if (nxt < nsubA)
          lwg::loadSub<1>(base + (nxt % AST) * 2 * lwg::TILE,
                          src + subA(nxt) * C * rowIn, rowIn, C, qkv);
        cpCommit();
        unsigned ka[2][4][4];
        const int r = (lane & 7) + ((lane >> 4) << 3);
        const int c = 2 * q4 + ((lane >> 3) & 1);
#pragma unroll
        for (int mb = 0; mb < 2; ++mb)
#pragma unroll
          for (int ks = 0; ks < 4; ++ks) {
            const unsigned addr = kB + mb * lwg::HALF + (16 * ks + r) * 128 +
                                  ((c ^ (lane & 7)) << 4);
            asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 "
                         "{%0,%1,%2,%3}, [%4];\n"
                         : "=r"(ka[mb][ks][0]), "=r"(ka[mb][ks][1]),
                           "=r"(ka[mb][ks][2]), "=r"(ka[mb][ks][3])
                         : "r"(addr)
                         : "memory");
          }
        // Token j of sub-chunk c sits len - 64c - j before the segment's end.
        const float end = static_cast<float>(len - C * subA(it));
#pragma unroll
        for (int ks = 0; ks < 4; ++ks) {
          const float j0 = static_cast<float>(16 * ks + 2 * t);
          const float w00 = ex(-s * (end - j0)),
                      w01 = ex(-s * (end - j0 - 1.f));
          const float w10 = ex(-s * (end - j0 - 8.f)),
                      w11 = ex(-s * (end - j0 - 9.f));
#pragma unroll
          for (int mb = 0; mb < 2; ++mb) {
            ka[mb][ks][0] = scalePair(ka[mb][ks][0], w00, w01);
            ka[mb][ks][1] = scalePair(ka[mb][ks][1], w00, w01);
            ka[mb][ks][2] = scalePair(ka[mb][ks][2], w10, w11);
            ka[mb][ks][3] = scalePair(ka[mb][ks][3], w10, w11);
          }
        }
        lwg::fenceRegs(S[0]);
        lwg::fenceRegs(S[1]);
        lwg::fence();
        const unsigned long long dV0 =
            lwg::desc(vB + wg * lwg::HALF, lwg::HALF, 1024);
#pragma unroll
        for (int mb = 0; mb < 2; ++mb)
#pragma unroll
          for (int ks = 0; ks < 4; ++ks)
            lwg::mmaRS(S[mb], ka[mb][ks], dV0 + ((ks * 2048) >> 4));
        lwg::commit();
        lwg::wait<0>();
        lwg::fenceRegs(S[0]);
        lwg::fenceRegs(S[1]);
      }
      cpWait<0>();
      // Publish A_seg (status 1), or for segment 0 directly I_0 = U
      // (status 2).
      float *out = slots + (2 * seg + (seg == 0 ? 1 : 0)) * D * D;
#pragma unroll
      for (int mb = 0; mb < 2; ++mb)
#pragma unroll
        for (int nt = 0; nt < 8; ++nt)
#pragma unroll
          for (int hh = 0; hh < 2; ++hh)
            __stcg(reinterpret_cast<float2 *>(
                       out + (64 * mb + 16 * q4 + g + 8 * hh) * D + 64 * wg +
                       8 * nt + 2 * t),
                   make_float2(S[mb][4 * nt + 2 * hh],
                               S[mb][4 * nt + 2 * hh + 1]));
      __threadfence();
      __syncthreads(); // every stage is free for phase B; the slot is written
      if (threadIdx.x == 0)
        asm volatile(
            "st.release.gpu.global.b32 [%0], %1;\n" ::"l"(status + seg),
            "r"(seg == 0 ? 2 : 1)
            : "memory");
    }
    // Phase B's first sub-chunks load during the look-back.
#pragma unroll
    for (int st = 0; st < STAGES - 1; ++st) {
      if (st < nsub) {
        const int m = len - st * C < C ? len - st * C : C;
        lwg::loadSub(base + st * 3 * lwg::TILE, src + st * C * rowIn, rowIn, m,
                     qkv);
      }
      cpCommit();
    }
    if (seg > 0) {
      // Look-back: warp 0 reads the status of 32 predecessors at a time
      // (lane l: segment seg-1-base-l) until the nearest one with I published
      // has only published aggregates between it and seg; then
      // P = Σ_{i<n} λ^{i·L} A_{seg-1-i} + λ^{n·L} I_{seg-1-n}  (L = seg_len).
      // Predecessors hold earlier tickets, so they are resident or done and
      // publish their aggregates without waiting on anything: no deadlock.
      __shared__ int nAgg;
      if (warp == 0) {
        long long off = 0;
        int found = -1;
        for (long long spin = 0; spin < (1ll << 24);) {
          const long long j = seg - 1 - off - lane;
          int v = 2;
          if (j >= 0)
            asm volatile("ld.acquire.gpu.global.b32 %0, [%1];\n"
                         : "=r"(v)
                         : "l"(status + j)
                         : "memory");
          const unsigned inc = __ballot_sync(~0u, v == 2),
                         none = __ballot_sync(~0u, v == 0);
          const unsigned before = inc ? (inc & -inc) - 1 : ~0u;
          if ((none & before) == 0) {
            if (inc) {
              found = static_cast<int>(off) + __ffs(inc) - 1;
              break;
            }
            off += 32; // 32 aggregates: look further back
            continue;
          }
          ++spin;
          __nanosleep(32);
        }
        if (lane == 0) {
          nAgg = found;
          if (found < 0) { // bounded (~1 s): the error word, then a launch
                           // failure instead of a hang or a silent wrong result
            atomicExch(flags + p.batch * H * p.nseg, 1);
            __threadfence();
            __trap();
          }
        }
      }
      __syncthreads();
      const int n = nAgg < 0 ? 0 : nAgg;
      const float lg = -s * static_cast<float>(p.seg_len);
      float P[2][32];
#pragma unroll
      for (int mb = 0; mb < 2; ++mb)
#pragma unroll
        for (int e = 0; e < 32; ++e)
          P[mb][e] = 0.f;
      for (int i = 0; i <= n; ++i) {
        const float w = expf(lg * static_cast<float>(i));
        const float *in =
            slots + (2 * (seg - 1 - i) + (i == n ? 1 : 0)) * D * D;
#pragma unroll
        for (int mb = 0; mb < 2; ++mb)
#pragma unroll
          for (int nt = 0; nt < 8; ++nt)
#pragma unroll
            for (int hh = 0; hh < 2; ++hh) {
              const float2 x = __ldcg(reinterpret_cast<const float2 *>(
                  in + (64 * mb + 16 * q4 + g + 8 * hh) * D + 64 * wg + 8 * nt +
                  2 * t));
              P[mb][4 * nt + 2 * hh] += w * x.x;
              P[mb][4 * nt + 2 * hh + 1] += w * x.y;
            }
      }
      if (full) {
        // Publish I_seg = λ^L P + U (status 2).
        const float decL = expf(lg);
        float *out = slots + (2 * seg + 1) * D * D;
#pragma unroll
        for (int mb = 0; mb < 2; ++mb)
#pragma unroll
          for (int nt = 0; nt < 8; ++nt)
#pragma unroll
            for (int hh = 0; hh < 2; ++hh)
              __stcg(reinterpret_cast<float2 *>(
                         out + (64 * mb + 16 * q4 + g + 8 * hh) * D + 64 * wg +
                         8 * nt + 2 * t),
                     make_float2(decL * P[mb][4 * nt + 2 * hh] +
                                     S[mb][4 * nt + 2 * hh],
                                 decL * P[mb][4 * nt + 2 * hh + 1] +
                                     S[mb][4 * nt + 2 * hh + 1]));
        __threadfence();
        __syncthreads();
        if (threadIdx.x == 0)
          asm volatile(
              "st.release.gpu.global.b32 [%0], %1;\n" ::"l"(status + seg),
              "r"(2)
              : "memory");
      }
#pragma unroll
      for (int mb = 0; mb < 2; ++mb)
#pragma unroll
        for (int e = 0; e < 32; ++e)
          S[mb][e] = P[mb][e];
    } else {
#pragma unroll
      for (int mb = 0; mb < 2; ++mb)
#pragma unroll
        for (int e = 0; e < 32; ++e)
          S[mb][e] = 0.f;
    }
  } else {
    const float *slot =
        seg == 0 ? nullptr
                 : mptr<float>(p.state) + ((b * H + h) * p.nseg + seg) * D * D;
#pragma unroll
    for (int mb = 0; mb < 2; ++mb)
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
          float2 v = make_float2(0.f, 0.f);
          if (slot)
            v = *reinterpret_cast<const float2 *>(
                slot + (64 * mb + 16 * q4 + g + 8 * hh) * D + 64 * wg + 8 * nt +
                2 * t);
          S[mb][4 * nt + 2 * hh] = v.x;
          S[mb][4 * nt + 2 * hh + 1] = v.y;
        }
  }
  // bf16(S) into this warpgroup's half of the state copy ([d_k][d_v], N-major
  // B of Q·S); rows 64mb + 16q4 + g (+8) have r & 7 = g.
  auto stateCopy = [&]() {
#pragma unroll
    for (int mb = 0; mb < 2; ++mb)
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int hh = 0; hh < 2; ++hh)
          *reinterpret_cast<unsigned *>(sb + wg * lwg::SHALF +
                                        (64 * mb + 16 * q4 + g + 8 * hh) * 128 +
                                        ((nt ^ g) << 4) + 4 * t) =
              packBf16(S[mb][4 * nt + 2 * hh], S[mb][4 * nt + 2 * hh + 1]);
    lwg::proxyFence(); // generic writes → the async proxy of wgmma
  };
  stateCopy();

  if constexpr (!FUSED) {
#pragma unroll
    for (int st = 0; st < STAGES - 1; ++st) {
      if (st < nsub) {
        const int m = len - st * C < C ? len - st * C : C;
        lwg::loadSub(base + st * 3 * lwg::TILE, src + st * C * rowIn, rowIn, m,
                     qkv);
      }
      cpCommit();
    }
  }
  const int i0 = 16 * q4 + g; // this thread's output rows i0, i0 + 8
  const float e0 = ex(-s * static_cast<float>(i0));
  const float e1 = ex(-s * static_cast<float>(i0 + 8));
  for (int it = 0; it < nsub; ++it) {
    const int stage = it % STAGES;
    const unsigned qB = base + stage * 3 * lwg::TILE, kB = qB + lwg::TILE,
                   vB = kB + lwg::TILE;
    const int m = len - it * C < C ? len - it * C : C;
    cpWait<STAGES - 2>();
    if (SILU_IN)
      lwg::siluSub(smem + stage * 3 * lwg::TILE, m);
    lwg::proxyFence();
    __syncthreads(); // this stage landed; iteration it-1 is done with its stage
    const int nxt = it + STAGES - 1;
    if (nxt < nsub) {
      const int mn = len - nxt * C < C ? len - nxt * C : C;
      lwg::loadSub(base + (nxt % STAGES) * 3 * lwg::TILE, src + nxt * C * rowIn,
                   rowIn, mn, qkv);
    }
    cpCommit();

    constexpr bool DIRECT_O = VAR & 1, PIPE = VAR & 2, QREG = VAR & 4,
                   VSCALE = VAR & 8, UPD_SS = VAR & 16;
    static_assert(!UPD_SS || VSCALE, "the update from shared memory needs the "
                                     "decay weights on V");
    const float mf = static_cast<float>(m);
    // (descriptor + (bytes >> 4) advances its start address)
    const unsigned long long dS0 = lwg::desc(sbBase + wg * lwg::SHALF,
                                             lwg::SHALF, 1024),
                             dV0 = lwg::desc(vB + wg * lwg::HALF, lwg::HALF,
                                             1024);
    // A = Kᵀ (rows d_k 64mb + 16q4.., keys 16ks..) for the state update from
    // registers: ldmatrix.trans of the swizzled K tile (the mapping of
    // lfast::stateUpdate); without VSCALE the decay weights λ^{m-j} go on
    // these fragments.
    unsigned ka[UPD_SS ? 1 : 2][4][4];
    if constexpr (!UPD_SS) {
      const int r = (lane & 7) + ((lane >> 4) << 3);
      const int c = 2 * q4 + ((lane >> 3) & 1);
#pragma unroll
      for (int mb = 0; mb < 2; ++mb)
#pragma unroll
        for (int ks = 0; ks < 4; ++ks) {
          const unsigned addr = kB + mb * lwg::HALF + (16 * ks + r) * 128 +
                                ((c ^ (lane & 7)) << 4);
          asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 "
                       "{%0,%1,%2,%3}, [%4];\n"
                       : "=r"(ka[mb][ks][0]), "=r"(ka[mb][ks][1]),
                         "=r"(ka[mb][ks][2]), "=r"(ka[mb][ks][3])
                       : "r"(addr)
                       : "memory");
        }
      if constexpr (!VSCALE) {
#pragma unroll
        for (int ks = 0; ks < 4; ++ks) {
          const float j0 = static_cast<float>(16 * ks + 2 * t);
          const float w00 = ex(-s * (mf - j0)), w01 = ex(-s * (mf - j0 - 1.f));
          const float w10 = ex(-s * (mf - j0 - 8.f)),
                      w11 = ex(-s * (mf - j0 - 9.f));
#pragma unroll
          for (int mb = 0; mb < 2; ++mb) {
            ka[mb][ks][0] = scalePair(ka[mb][ks][0], w00, w01);
            ka[mb][ks][1] = scalePair(ka[mb][ks][1], w00, w01);
            ka[mb][ks][2] = scalePair(ka[mb][ks][2], w10, w11);
            ka[mb][ks][3] = scalePair(ka[mb][ks][3], w10, w11);
          }
        }
      }
    }
    {
      const float dec = ex(-s * mf);
#pragma unroll
      for (int mb = 0; mb < 2; ++mb)
#pragma unroll
        for (int e = 0; e < 32; ++e)
          S[mb][e] *= dec;
    }
    unsigned qa[QREG ? 8 : 1][4];
    if constexpr (QREG) {
      // A = Q rows 16q4.. of this warp, all of D (the mma.sync A fragments).
      const int r = 16 * q4 + (lane & 15);
#pragma unroll
      for (int ks = 0; ks < 8; ++ks) {
        const unsigned addr =
            qB + (ks >> 2) * lwg::HALF + r * 128 +
            ((((2 * ks + (lane >> 4)) & 7) ^ (lane & 7)) << 4);
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 "
                     "{%0,%1,%2,%3}, [%4];\n"
                     : "=r"(qa[ks][0]), "=r"(qa[ks][1]), "=r"(qa[ks][2]),
                       "=r"(qa[ks][3])
                     : "r"(addr)
                     : "memory");
      }
    }
    float pacc[32], o[32];
    lwg::fenceRegs(S[0]);
    lwg::fenceRegs(S[1]);
    lwg::fence();
#pragma unroll
    for (int kd = 0; kd < 8; ++kd) {
      if constexpr (QREG)
        lwg::mmaRS<0>(pacc, qa[kd], lwg::descK(kB, kd), kd);
      else
        lwg::mmaSS<0>(pacc, lwg::descK(qB, kd), lwg::descK(kB, kd), kd);
    }
    if constexpr (PIPE)
      lwg::commit();
#pragma unroll
    for (int kd = 0; kd < 8; ++kd) {
      if constexpr (QREG)
        lwg::mmaRS<1>(o, qa[kd], dS0 + ((kd * 2048) >> 4), kd);
      else
        lwg::mmaSS<1>(o, lwg::descK(qB, kd), dS0 + ((kd * 2048) >> 4), kd);
    }
    if constexpr (PIPE)
      lwg::commit();
    if constexpr (VSCALE) {
      // While Q Kᵀ and Q·S run: V ← diag(λ^{m-j}) V on this warpgroup's half
      // (read by this warpgroup only). Then P V needs P only masked, and O =
      // λ^{i-m} (λ^m Q·S + mask(Q Kᵀ) V').
      const int tw = threadIdx.x & 127;
#pragma unroll
      for (int pass = 0; pass < 4; ++pass) {
        const int x = tw + 128 * pass, j = x >> 3, cc = x & 7;
        uint4 *ptr =
            reinterpret_cast<uint4 *>(smem + (vB - base) + wg * lwg::HALF +
                                      j * 128 + ((cc ^ (j & 7)) << 4));
        const float w = ex(-s * (mf - static_cast<float>(j)));
        uint4 v = *ptr;
        v.x = scalePair(v.x, w, w);
        v.y = scalePair(v.y, w, w);
        v.z = scalePair(v.z, w, w);
        v.w = scalePair(v.w, w, w);
        *ptr = v;
      }
      lwg::proxyFence();
      lwg::wgBarrier(wg);
    }
#pragma unroll
    for (int mb = 0; mb < 2; ++mb)
#pragma unroll
      for (int ks = 0; ks < 4; ++ks) {
        if constexpr (UPD_SS)
          lwg::mmaSS<1, 1>(
              S[mb],
              lwg::desc(kB + mb * lwg::HALF + ks * 2048, lwg::HALF, 1024),
              dV0 + ((ks * 2048) >> 4), 1);
        else
          lwg::mmaRS(S[mb], ka[mb][ks], dV0 + ((ks * 2048) >> 4));
      }
    lwg::commit();
    if constexpr (PIPE) {
      lwg::wait<2>(); // Q Kᵀ done; Q·S and the update still run
      lwg::fenceRegs(pacc);
    } else {
      lwg::wait<0>();
      lwg::fenceRegs(pacc);
      lwg::fenceRegs(o);
      lwg::fenceRegs(S[0]);
      lwg::fenceRegs(S[1]);
    }

    // P (⊙ Dm, or only the causal mask with VSCALE) into bf16 A fragments
    // (rows i0, i0+8; keys 8nt + 2t (+1)).
    unsigned pa[4][4];
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        const int i = i0 + 8 * hh, j = 8 * nt + 2 * t;
        float v0, v1;
        if constexpr (VSCALE) {
          v0 = j <= i ? pacc[4 * nt + 2 * hh] : 0.f;
          v1 = j + 1 <= i ? pacc[4 * nt + 2 * hh + 1] : 0.f;
        } else {
          v0 = j <= i
                   ? pacc[4 * nt + 2 * hh] * ex(-s * static_cast<float>(i - j))
                   : 0.f;
          v1 = j + 1 <= i ? pacc[4 * nt + 2 * hh + 1] *
                                ex(-s * static_cast<float>(i - j - 1))
                          : 0.f;
        }
        pa[nt >> 1][(nt & 1) * 2 + hh] = packBf16(v0, v1);
      }
    if constexpr (PIPE) {
      lwg::wait<1>(); // Q·S done; the update may still run
      lwg::fenceRegs(o);
    }
    {
      const float a0 = VSCALE ? ex(-s * mf) : e0, a1 = VSCALE ? a0 : e1;
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        o[4 * nt] *= a0;
        o[4 * nt + 1] *= a0;
        o[4 * nt + 2] *= a1;
        o[4 * nt + 3] *= a1;
      }
    }
    lwg::fenceRegs(o);
    lwg::fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk)
      lwg::mmaRS(o, pa[kk], dV0 + ((kk * 2048) >> 4));
    lwg::commit();
    if constexpr (PIPE) {
      lwg::wait<1>(); // the update is done (groups complete in order)
      lwg::fenceRegs(S[0]);
      lwg::fenceRegs(S[1]);
    }
    // While P V runs: the state copy for the next sub-chunk (this warpgroup's
    // Q·S of this one is complete).
    stateCopy();
    lwg::wait<0>();
    lwg::fenceRegs(o);
    if constexpr (VSCALE) {
      const float f0 = ex(-s * (static_cast<float>(i0) - mf)),
                  f1 = ex(-s * (static_cast<float>(i0 + 8) - mf));
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        o[4 * nt] *= f0;
        o[4 * nt + 1] *= f0;
        o[4 * nt + 2] *= f1;
        o[4 * nt + 3] *= f1;
      }
    }

    if constexpr (DIRECT_O) {
      // Rows i0, i0+8, columns 64wg + 8nt + 2t: 4-byte stores, a warp's 8
      // row pieces of 16 bytes fill 32-byte sectors over nt, nt+1.
      bf16 *op = dst + (it * C + i0) * rowOut + 64 * wg + 2 * t;
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        if (i0 < m)
          *reinterpret_cast<unsigned *>(op + 8 * nt) =
              packBf16(o[4 * nt], o[4 * nt + 1]);
        if (i0 + 8 < m)
          *reinterpret_cast<unsigned *>(op + 8 * rowOut + 8 * nt) =
              packBf16(o[4 * nt + 2], o[4 * nt + 3]);
      }
    } else {
      // O → the padded tile → 16-byte stores of this warpgroup's 64 columns.
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        const int c = 64 * wg + 8 * nt + 2 * t;
        *reinterpret_cast<unsigned *>(Os + i0 * LDO + c) =
            packBf16(o[4 * nt], o[4 * nt + 1]);
        *reinterpret_cast<unsigned *>(Os + (i0 + 8) * LDO + c) =
            packBf16(o[4 * nt + 2], o[4 * nt + 3]);
      }
      lwg::wgBarrier(wg);
      const int tw = threadIdx.x & 127, c = tw & 7, r0 = tw >> 3;
      bf16 *op = dst + (it * C + r0) * rowOut + 64 * wg + c * 8;
#pragma unroll
      for (int pass = 0; pass < 4; ++pass)
        if (r0 + 16 * pass < m)
          *reinterpret_cast<uint4 *>(op + pass * 16 * rowOut) =
              *reinterpret_cast<const uint4 *>(Os + (r0 + 16 * pass) * LDO +
                                               64 * wg + c * 8);
    }
  }
  cpWait<0>();
}
#endif

/// Launch 3 (grid (nseg, H, B), lightningChunkThreads() threads,
/// lightningChunkOutSmem(D, STAGES) bytes): the outputs of segment blockIdx.x
/// from its start state.
/// Fused single launch (sm_90a, D = 128; the runtime's `_fused` entry where
/// lightningFusedSegLen picks it): states, prefixes and outputs in one launch
/// of nseg·H·B blocks (1-D grid), lightningChunkThreads() threads,
/// lightningChunkOutSmem(128, STAGES) bytes; workspace
/// lightningFusedStateFloats floats then lightningFusedFlagInts ints, the ints
/// zeroed before each launch. Block n takes ticket n from a global counter
/// (segment-major: segment s of every (b, h) before segment s+1 of any), so the
/// blocks a block waits on are resident or done. Per block (segment s of one
/// (b, h)):
///   A. (s < nseg-1) U_s = Σ λ^{end-u} k_uᵀ v_u over the segment's k, v
///      (wgmma, sub-chunks last to first); publish U_s in slot A_s, status 1
///      (segment 0: publish it as the inclusive prefix I_0, status 2);
///   look-back: sum λ^{i·L} A_{s-1-i} over the predecessors that have only an
///      aggregate, up to the nearest one with its inclusive prefix I_j
///      published (status 2; waiting while one in between has neither):
///      P = S(start of s); publish I_s = λ^L P + U_s, status 2;
///   B. the output loop of lightningChunkOutWgmma from P (reads q, k, v; k, v
///      of its first sub-chunks, read last by phase A, are still in L2).
/// A block never waits on a chain of predecessors' prefixes, only on
/// aggregates, which need nothing but the block's own k, v
/// (bench/results/llook.md; the look-back-of-one form of lfuse.md waited
/// ~8 µs a link). On other architectures the entry traps: the runtime launches
/// it only from sm_90a artifacts.
template <int STAGES, bool SILU_IN, int VAR = kLightningWgmmaVar>
__device__ void lightningChunkFused(const LightningChunkArgs &p,
                                    unsigned char *smem) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  lightningChunkOutWgmma<STAGES, SILU_IN, VAR, true>(p, smem);
#else
  (void)p;
  (void)smem;
  __trap();
#endif
}

/// Launch 3 (grid (nseg, H, B), lightningChunkThreads() threads,
/// lightningChunkOutSmem(D, STAGES) bytes): the outputs of segment blockIdx.x
/// from its start state.
template <int D, int STAGES, bool SILU_IN, int VAR = kLightningWgmmaVar>
__device__ void lightningChunkOut(const LightningChunkArgs &p,
                                  unsigned char *smem) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  if constexpr (D == 128) {
    lightningChunkOutWgmma<STAGES, SILU_IN, VAR>(p, smem);
    return;
  }
#endif
  using namespace lfast;
  using G = Geom<D>;
  constexpr int LD = G::LD, TILE = G::TILE, HALF = D / 2;
  bf16 *stages = reinterpret_cast<bf16 *>(smem);
  bf16 *Ps = stages + STAGES * 3 * TILE; // [C][LP]
  bf16 *Os = Ps + C * LP;                // [C][LD]
  bf16 *Sb = Os + TILE;                  // [D][LD]
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2,
            t = lane & 3;
  const int rg = warp & 3, half = warp >> 2;
  const long long seg = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const long long H = p.heads, T_ = p.seq, rowIn = H * 3 * D, rowOut = H * D;
  const float s = slope(h, H, p.layer, p.num_layers);
  const long long t0 = seg * p.seg_len;
  const long long rest = T_ - t0;
  const int len = static_cast<int>(rest < p.seg_len ? rest : p.seg_len);
  const int nsub = (len + C - 1) / C;
  const bf16 *qkv = cptr<bf16>(p.qkv);
  const bf16 *src = qkv + (b * T_ + t0) * rowIn + h * 3 * D;
  bf16 *dst = mptr<bf16>(p.out) + (b * T_ + t0) * rowOut + h * D;

  State<D> S;
  if (seg == 0)
    zeroState<D>(S);
  else
    stateIo<D, false>(S, mptr<float>(p.state) +
                             ((b * H + h) * p.nseg + seg) * D * D);
  stateToSmem<D>(S, Sb);
#pragma unroll
  for (int st = 0; st < STAGES - 1; ++st) {
    if (st < nsub) {
      const int m = len - st * C < C ? len - st * C : C;
      loadSub<D, 3>(stages + st * 3 * TILE, src + st * C * rowIn, rowIn, m,
                    qkv);
    }
    cpCommit();
  }
  // Row decays of this thread's output rows, i = 16rg + g (+8).
  const float e0 = ex(-s * static_cast<float>(16 * rg + g));
  const float e1 = ex(-s * static_cast<float>(16 * rg + g + 8));
  for (int it = 0; it < nsub; ++it) {
    bf16 *Qs = stages + (it % STAGES) * 3 * TILE, *Ks = Qs + TILE,
         *Vs = Ks + TILE;
    const int m = len - it * C < C ? len - it * C : C;
    cpWait<STAGES - 2>();
    if (SILU_IN)
      siluSub<D, 3>(Qs, m);
    __syncthreads(); // this stage landed; iteration it-1 is done with Sb, Os
                     // and its stage
    const int nxt = it + STAGES - 1;
    if (nxt < nsub) {
      const int mn = len - nxt * C < C ? len - nxt * C : C;
      loadSub<D, 3>(stages + (nxt % STAGES) * 3 * TILE, src + nxt * C * rowIn,
                    rowIn, mn, qkv);
    }
    cpCommit();

    // Q fragments of rows 16rg..16rg+15, all of D (used by P and by Q·S).
    unsigned qa[G::KS][4];
#pragma unroll
    for (int ks = 0; ks < G::KS; ++ks)
      ldsm4(qa[ks],
            Qs + (16 * rg + (lane & 15)) * LD + 16 * ks + (lane >> 4) * 8);

    // P = (Q Kᵀ) ⊙ Dm for rows 16rg.., keys 32·half..; key tiles past the
    // diagonal are skipped (P V below reads keys < 16(rg+1) only).
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
            unsigned kb[4]; // B = Kᵀ: K stored [key][d]
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
    // O rows 16rg.., columns (D/2)·half..: diag(λ^i) Q bf16(S) + P V. Q·S reads
    // only Q and the state copy, so it runs before the barrier that publishes P
    // (warps with fewer causal P tiles start it early; its independent mma fill
    // the latency of the P chains).
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
            unsigned vb[4]; // B = V: [token][d_v]
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
      constexpr int RPP = THREADS / G::PIECES; // the mapping of loadSub
      const int c = threadIdx.x % G::PIECES, r0 = threadIdx.x / G::PIECES;
      bf16 *o = dst + (it * C + r0) * rowOut + c * 8;
#pragma unroll
      for (int pass = 0; pass < C / RPP; ++pass)
        if (r0 + pass * RPP < m)
          *reinterpret_cast<uint4 *>(o + pass * RPP * rowOut) =
              *reinterpret_cast<const uint4 *>(Os + (r0 + pass * RPP) * LD +
                                               c * 8);
    }
  }
  cpWait<0>();
}

} // namespace k
} // namespace mm
