// Register-tiled block matrix product on shared-memory operands, used by the
// attention and MoE kernels: C[m][n] += Σ_k A(m,k) B(n,k) for an M×N output
// tile.
//
// Tiling: the M×N tile is cut into (M/TM)×(N/TN) micro-tiles of TM×TN outputs;
// thread t owns micro-tiles t, t+THREADS, ... (PER of them), whose rows are m =
// tm + i·(M/TM) and columns n = tn + j·(N/TN). Consecutive threads take
// consecutive tn, so with B laid out so that consecutive n are consecutive
// words (or a padded odd stride) shared-memory reads are conflict-free, and
// A(m,k) is a broadcast. The accumulators live in registers and are indexed
// only with compile-time constants. Operands are read through accessors
// (lambdas), so the same map serves transposed and strided layouts; every
// caller uses one map for all products that feed the same outputs, so each
// output stays with one thread.
#pragma once

#include "kernels/common.cuh"

namespace mm {
namespace k {

template <int M, int N, int TM, int TN, int THREADS> struct TileMap {
  static_assert(M % TM == 0 && N % TN == 0, "micro-tile must divide the tile");
  static constexpr int GM = M / TM, GN = N / TN;
  static constexpr int PER = (GM * GN + THREADS - 1) / THREADS;

  /// Micro-tile p of this thread exists (the last round may be partial).
  __device__ static bool valid(int p) {
    return threadIdx.x + p * THREADS < GM * GN;
  }
  __device__ static int row(int p, int i) {
    return (static_cast<int>(threadIdx.x) + p * THREADS) / GN + i * GM;
  }
  __device__ static int col(int p, int j) {
    return (static_cast<int>(threadIdx.x) + p * THREADS) % GN + j * GN;
  }

  __device__ static void zero(float (&acc)[PER][TM][TN]) {
#pragma unroll
    for (int p = 0; p < PER; ++p)
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j)
          acc[p][i][j] = 0.f;
  }

  /// acc += Σ_{k<K} a(m,k) b(n,k).
  template <typename FA, typename FB>
  __device__ static void mac(float (&acc)[PER][TM][TN], int K, FA a, FB b) {
#pragma unroll
    for (int p = 0; p < PER; ++p) {
      if (!valid(p))
        continue;
      const int m0 = row(p, 0), n0 = col(p, 0);
#pragma unroll 4
      for (int kk = 0; kk < K; ++kk) {
        float av[TM], bv[TN];
#pragma unroll
        for (int i = 0; i < TM; ++i)
          av[i] = a(m0 + i * GM, kk);
#pragma unroll
        for (int j = 0; j < TN; ++j)
          bv[j] = b(n0 + j * GN, kk);
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
          for (int j = 0; j < TN; ++j)
            acc[p][i][j] = fmaf(av[i], bv[j], acc[p][i][j]);
      }
    }
  }

  /// Calls f(m, n, acc) for every output this thread owns.
  template <typename F>
  __device__ static void each(float (&acc)[PER][TM][TN], F f) {
#pragma unroll
    for (int p = 0; p < PER; ++p) {
      if (!valid(p))
        continue;
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j)
          f(row(p, i), col(p, j), acc[p][i][j]);
    }
  }
};

/// A micro-tile edge of 4, or the whole edge when it is shorter.
template <int E> struct MicroEdge {
  static constexpr int value = E >= 4 ? 4 : E;
};

} // namespace k
} // namespace mm
