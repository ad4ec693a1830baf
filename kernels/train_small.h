// Launch plans and workspace sizes of the small training kernels and the
// optimizers (kernels/train_small.cuh; argument blocks in
// kernels/train_args.h; the plan ABI in kernels/launch.h). Host-only
// functions, hidden from NVRTC.
//
// Entry suffixes (prefix mm_<kernel>_<f32|bf16>):
//   rms_norm_grad   _zero, _rows, _reduce    workspace [blocks, n] f32
//   silu_grad, sigmoid_grad, rope_grad, adamw, store_param, finite_check:
//                   "" (the prefix itself)   —
//   sigmoid_grad    also _gate: an output gate's whole backward (gateGradPlan)
//   embedding_grad  _clear, _link, _rows, _heavy
//                   workspace: i32 head [V], count [V], next [rows]
//   grad_norm       _zero | _sumsq | _finalize, one phase per plan call
//                   (acc: an f64 the executor reserves, 8 bytes)
//   came            _zero, _sq, _vfac, _u, _m, _sfac, _p
//                   workspace: ss f64, col sums 2·[count, cols], row means
//                   2·[count] (f32)
//   came_vector     _zero, _v, _p            workspace: ss f64
//   lm_head         _count | _rows (_rows_loss when dlogits = 0) | _reduce,
//                   one phase per plan call
#pragma once

#include "kernels/launch.h"
#include "kernels/train_args.h"

#if !defined(__CUDACC_RTC__)
#include <cstring>

namespace mm {
namespace k {

namespace tsplan {
inline unsigned long long cdiv(unsigned long long a, unsigned long long b) {
  return (a + b - 1) / b;
}
inline unsigned long long align256(unsigned long long x) {
  return (x + 255) & ~255ull;
}
inline Launch launch(const char *suffix, unsigned long long gx,
                     unsigned threads, unsigned smem = 0) {
  if (gx < 1)
    gx = 1;
  return Launch{suffix, static_cast<unsigned>(gx), 1, 1, threads, smem};
}
/// Blocks of a grid-stride launch over `groups` work items, `threads` per
/// block, at most `perSm` blocks a multiprocessor.
inline unsigned long long strideGrid(unsigned long long groups, int threads,
                                     int sms, int perSm) {
  const unsigned long long cap =
      static_cast<unsigned long long>(sms > 0 ? sms : 1) * perSm;
  const unsigned long long need = cdiv(groups, threads);
  return need < cap ? (need ? need : 1) : cap;
}
/// Tiles of CAME_RB (8) rows of the factored CAME passes.
inline unsigned long long cameTiles(const CameArgs &a) {
  return static_cast<unsigned long long>(a.count) * cdiv(a.rows, 8);
}
} // namespace tsplan

// ------------------------------------------------------------ rms_norm_grad

/// Blocks of "_rows": 8 warps (rows) each, at most 2 per multiprocessor.
inline unsigned long long rmsNormGradBlocks(const RmsNormGradArgs &a, int sms) {
  const unsigned long long need = tsplan::cdiv(a.rows, 8);
  const unsigned long long cap = 2ull * (sms > 0 ? sms : 1);
  return need < 1 ? 1 : (need < cap ? need : cap);
}
inline unsigned long long rmsNormGradWorkspaceBytes(const RmsNormGradArgs &a,
                                                    int, int sms) {
  return rmsNormGradBlocks(a, sms) * static_cast<unsigned long long>(a.n) * 4;
}
/// "_zero" (dw = 0), "_rows" (dx, and per-block dw partials [blocks, n] into
/// the workspace; dynamic shared memory n floats), "_reduce" (partials into
/// dw).
inline int rmsNormGradPlan(RmsNormGradArgs &a, int, int sms, Launch *out) {
  a.blocks = static_cast<long long>(rmsNormGradBlocks(a, sms));
  out[0] = tsplan::launch(
      "_zero", tsplan::strideGrid(tsplan::cdiv(a.n, 4), 256, sms, 1), 256);
  out[1] =
      tsplan::launch("_rows", a.blocks, 256, static_cast<unsigned>(a.n * 4));
  out[2] = tsplan::launch("_reduce", tsplan::cdiv(a.n, 32), 256);
  out[2].gy = 8; // RMS_RG row groups
  return 3;
}

// ------------------------------------------------- silu_grad, sigmoid_grad

inline unsigned long long siluGradWorkspaceBytes(const ActGradArgs &, int,
                                                 int) {
  return 0;
}
inline int siluGradPlan(ActGradArgs &a, int, int sms, Launch *out) {
  out[0] = tsplan::launch(
      "", tsplan::strideGrid(tsplan::cdiv(a.n, 4), 256, sms, 16), 256);
  return 1;
}
inline unsigned long long sigmoidGradWorkspaceBytes(const ActGradArgs &, int,
                                                    int) {
  return 0;
}
inline int sigmoidGradPlan(ActGradArgs &a, int D, int sms, Launch *out) {
  return siluGradPlan(a, D, sms, out);
}
/// The output gate's fused backward: sigmoid_grad's "_gate" entry.
inline int gateGradPlan(GateGradArgs &a, int, int sms, Launch *out) {
  out[0] = tsplan::launch(
      "_gate", tsplan::strideGrid(tsplan::cdiv(a.n, 4), 256, sms, 16), 256);
  return 1;
}

// ---------------------------------------------------------------- rope_grad

inline unsigned long long ropeGradWorkspaceBytes(const RopeGradArgs &, int,
                                                 int) {
  return 0;
}
inline int ropeGradPlan(RopeGradArgs &a, int, int sms, Launch *out) {
  const unsigned long long total = static_cast<unsigned long long>(
      a.batch * a.seq * a.heads * (a.head_dim - a.rotary_dim / 2));
  out[0] = tsplan::launch("", tsplan::strideGrid(total, 256, sms, 16), 256);
  return 1;
}

// ----------------------------------------------------------- embedding_grad

inline unsigned long long
embeddingGradWorkspaceBytes(const EmbeddingGradArgs &a, int, int) {
  return 2 * tsplan::align256(a.vocab * 4ull) + tsplan::align256(a.rows * 4ull);
}
/// Per-id lists of token rows, then one write per dtable row
/// (kernels/train_small.cuh).
inline int embeddingGradPlan(EmbeddingGradArgs &a, int, int sms, Launch *out) {
  a.head = a.workspace;
  a.count = a.head + tsplan::align256(a.vocab * 4ull);
  a.next = a.count + tsplan::align256(a.vocab * 4ull);
  out[0] =
      tsplan::launch("_clear", tsplan::strideGrid(a.vocab, 256, sms, 4), 256);
  out[1] = tsplan::launch("_link", tsplan::cdiv(a.rows, 256), 256);
  out[2] = tsplan::launch("_rows", tsplan::cdiv(a.vocab, 8), 256); // warp/id
  out[3] = tsplan::launch("_heavy", tsplan::cdiv(a.rows, 8), 256); // warp/row
  return 4;
}

// ---------------------------------------------------------------- grad_norm

inline unsigned long long gradNormWorkspaceBytes(const GradNormArgs &, int,
                                                 int) {
  return 8; // the f64 accumulator acc
}
/// One phase per call: "_zero", "_sumsq" (for the gradient in a.g, a.n),
/// "_finalize". Returns 0 for an unknown phase.
inline int gradNormPlan(GradNormArgs &a, const char *phase, int sms,
                        Launch *out) {
  if (std::strcmp(phase, "_zero") == 0) {
    out[0] = tsplan::launch("_zero", 1, 32);
    return 1;
  }
  if (std::strcmp(phase, "_sumsq") == 0) {
    out[0] = tsplan::launch(
        "_sumsq", tsplan::strideGrid(tsplan::cdiv(a.n, 4), 256, sms, 8), 256);
    return 1;
  }
  if (std::strcmp(phase, "_sumsq_multi") == 0) { // a.n: the table's blocks
    out[0] = tsplan::launch("_sumsq_multi", a.n, 256);
    return 1;
  }
  if (std::strcmp(phase, "_finalize") == 0) {
    out[0] = tsplan::launch("_finalize", 1, 32);
    return 1;
  }
  return 0;
}

// -------------------------------------------------------------------- adamw

inline unsigned long long adamWWorkspaceBytes(const AdamWArgs &, int, int) {
  return 0;
}
/// The multi-tensor form: one launch of `blocks` blocks (the table's last
/// first + its chunks), phase "_multi".
inline int adamWMultiPlan(AdamWArgs &, unsigned long long blocks, Launch *out) {
  out[0] = tsplan::launch("_multi", blocks, 256);
  return 1;
}
inline int adamWPlan(AdamWArgs &a, int, int sms, Launch *out) {
  out[0] = tsplan::launch(
      "", tsplan::strideGrid(tsplan::cdiv(a.n, 4), 256, sms, 8), 256);
  return 1;
}

// --------------------------------------------------------------------- came

inline unsigned long long cameWorkspaceBytes(const CameArgs &a, int, int) {
  const unsigned long long cols = static_cast<unsigned long long>(a.count) *
                                  static_cast<unsigned long long>(a.cols) * 4;
  const unsigned long long means = static_cast<unsigned long long>(a.count) * 4;
  return 256 + 2 * tsplan::align256(cols) + 2 * tsplan::align256(means);
}
inline int camePlan(CameArgs &a, int, int sms, Launch *out) {
  const unsigned long long cols = static_cast<unsigned long long>(a.count) *
                                  static_cast<unsigned long long>(a.cols) * 4;
  const unsigned long long means = static_cast<unsigned long long>(a.count) * 4;
  a.ss = a.workspace;
  a.col_sum = a.ss + 256;
  a.res_col_sum = a.col_sum + tsplan::align256(cols);
  a.row_mean = a.res_col_sum + tsplan::align256(cols);
  a.res_row_mean = a.row_mean + tsplan::align256(means);
  const unsigned long long tiles = tsplan::cameTiles(a);
  out[0] = tsplan::launch(
      "_zero",
      tsplan::strideGrid(tsplan::cdiv(a.count * a.cols, 4), 256, sms, 4), 256);
  out[1] = tsplan::launch("_sq", tiles, 256);
  out[2] = tsplan::launch("_vfac", a.count, 256);
  out[3] = tsplan::launch("_u", tiles, 256);
  out[4] = tsplan::launch("_m", tiles, 256);
  out[5] = tsplan::launch("_sfac", a.count, 256);
  out[6] = tsplan::launch("_p", tiles, 256);
  return 7;
}

// -------------------------------------------------------------- came_vector

inline unsigned long long cameVectorWorkspaceBytes(const CameVectorArgs &, int,
                                                   int) {
  return 8; // the f64 Σu²
}
inline int cameVectorPlan(CameVectorArgs &a, int, int sms, Launch *out) {
  const unsigned long long grid = tsplan::strideGrid(a.n, 256, sms, 8);
  out[0] = tsplan::launch("_zero", 1, 32);
  out[1] = tsplan::launch("_v", grid, 256);
  out[2] = tsplan::launch("_p", grid, 256);
  return 3;
}

// -------------------------------------------------------------- store_param

inline unsigned long long storeParamWorkspaceBytes(const StoreParamArgs &, int,
                                                   int) {
  return 0;
}
inline int storeParamPlan(StoreParamArgs &a, int, int sms, Launch *out) {
  out[0] = tsplan::launch(
      "", tsplan::strideGrid(tsplan::cdiv(a.n, 4), 256, sms, 8), 256);
  return 1;
}

// ------------------------------------------------------------------ lm_head

/// No workspace of its own: logits, row_loss and count are the executor's.
inline unsigned long long lmHeadWorkspaceBytes(const LmHeadArgs &, int, int) {
  return 0;
}
/// One phase per call: "_count" (once, all labels), "_rows" (per chunk:
/// row0, rows), "_reduce" (once). Returns 0 for an unknown phase.
inline int lmHeadPlan(LmHeadArgs &a, const char *phase, int, Launch *out) {
  if (std::strcmp(phase, "_count") == 0) {
    out[0] = tsplan::launch("_count", 1, 1024);
    return 1;
  }
  if (std::strcmp(phase, "_rows") == 0) {
    // Loss only: the single-pass entry, four 512-thread blocks per SM.
    out[0] = a.dlogits ? tsplan::launch("_rows", a.rows, 1024)
                       : tsplan::launch("_rows_loss", a.rows, 512);
    return 1;
  }
  if (std::strcmp(phase, "_reduce") == 0) {
    out[0] = tsplan::launch("_reduce", 1, 1024);
    return 1;
  }
  return 0;
}

// ------------------------------------------------------------- finite_check

inline unsigned long long finiteCheckWorkspaceBytes(const FiniteCheckArgs &,
                                                    int, int) {
  return 0;
}
inline int finiteCheckPlan(FiniteCheckArgs &a, int, int sms, Launch *out) {
  out[0] = tsplan::launch("", tsplan::strideGrid(a.n, 256, sms, 8), 256);
  return 1;
}

} // namespace k
} // namespace mm
#endif
