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
// (the large presets) and 64 (`small`); Geom<D> refuses others.

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

/// Launch 3 (grid (nseg, H, B), lightningChunkThreads() threads,
/// lightningChunkOutSmem(D, STAGES) bytes): the outputs of segment blockIdx.x
/// from its start state.
template <int D, int STAGES, bool SILU_IN>
__device__ void lightningChunkOut(const LightningChunkArgs &p,
                                  unsigned char *smem) {
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
