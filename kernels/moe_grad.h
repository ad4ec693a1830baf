// moe_grad (docs/kernels.md): backward of the MoE block, as a launch plan of
// kernels/moe_grad.cuh. Argument block, workspace layout and plan; compiled
// by NVRTC (device side) and by the host compilers (plan functions).
//
// Workspace (one 256-byte-aligned array after the other; S = rows·top_k
// slots, element arrays sized for 4-byte elements since the plan does not know
// T):
//   topk_expert, topk_weight, slot_pos, perm_slot [S] i32/f32, offsets and
//   tile_offsets [E+1] i32 (as the forward's MoeArgs);
//   dot [S] f32       dy_t · y_s (the un-weighted expert output of slot s);
//   hb [S, I] T       w_s·h, h = silu(a)·c (the B operand of dw2);
//   acf [S, 2I] f32   a | c, the gate and up pre-activations;
//   dac [S, 2I] T     da | dc;
//   dxs [S, H] T      each slot's da·w1 + dc·w3;
//   z [rows, E] f32   the router-logit gradient of each token;
//   part [RS, E, H] f32  drouter partial sums over RS row splits.
#pragma once

#include "kernels/args.h"
#include "kernels/launch.h"

namespace mm {
namespace k {

struct MoeGradArgs {
  dptr x, router, w1, w2, w3, dy, dx, drouter, dw1, dw2, dw3, workspace;
  long long rows, hidden, experts, inter, top_k;
  // Filled by moeGradPlan from `workspace`:
  dptr topk_expert, topk_weight, slot_pos, perm_slot, offsets, tile_offsets,
      dot, hb, acf, dac, dxs, z, part;
  long long rsplit; // RS: row splits of the drouter reduction
  // Filled by the executor before moeGradPlan (0 = unknown): the element size
  // of T (2 bf16, 4 f32), and wgmma = 1 when the unit is compiled for sm_90a
  // (the wgmma forms exist), 2 when it is not (or to ask for the mma.sync
  // forms: the device honours it too). With both known the plan launches
  // only the GEMM form that does the work; else it launches both and the
  // device picks (moeGradUseWgmma; the other form returns at once).
  long long elem_bytes, wgmma;
};

/// Tiles of the grouped GEMMs (both the tensor-core and the SIMT form):
/// 128×128 outputs, 256 threads; the gate/up GEMM's N-tile is 64 columns of
/// w1 next to the same 64 of w3. Dynamic shared memory of the tensor-core
/// form: moeGradStages() stages of an A and a B tile of moeGradBK() columns,
/// moeGradTileBytes() each ([128][BK+8] or [BK][128+8] bf16); the SIMT form
/// uses 8 KB of it.
MM_HD constexpr int moeGradTile() { return 128; }
MM_HD constexpr int moeGradBK() { return 64; }
MM_HD constexpr int moeGradStages() { return 3; }
MM_HD constexpr int moeGradTileBytes() {
  return 128 * (moeGradBK() + 8) * 2 > moeGradBK() * 136 * 2
             ? 128 * (moeGradBK() + 8) * 2
             : moeGradBK() * 136 * 2;
}
MM_HD constexpr int moeGradSmemBytes() {
  return moeGradStages() * 2 * moeGradTileBytes();
}
/// Whether the dh/dw2 pair takes its wgmma form where wgmma is used (on an
/// H200 at the preset the mma.sync form is faster: 0.343 vs 0.381 ms; the
/// dx/dw13 pair is faster on wgmma: 0.548 vs 0.572 ms). Building with
/// MM_MOE_GRAD_DH_WG=1 (device and host code alike) picks the wgmma form.
#ifndef MM_MOE_GRAD_DH_WG
#define MM_MOE_GRAD_DH_WG 0
#endif
MM_HD constexpr bool moeGradDhWgmma() { return MM_MOE_GRAD_DH_WG != 0; }
/// ceil(a / b), and the bound on the 128-row M-tiles of the expert groups
/// (Σ_e ceil(count_e / 128) ≤ ceil(rows·k / 128) + E); the plan and the
/// paired launches (moeGradPair) decode their grids with these.
MM_HD constexpr long long moeGradDivUp(long long a, long long b) {
  return (a + b - 1) / b;
}
MM_HD constexpr long long moeGradMTiles(long long rows, long long k,
                                        long long experts) {
  return moeGradDivUp(rows * k, moeGradTile()) + experts;
}
/// Row splits of the drouter reduction (monotone in rows, at most 128).
MM_HD constexpr long long moeGradRowSplits(long long rows) {
  return rows <= 64 ? 1 : ((rows + 63) / 64 < 128 ? (rows + 63) / 64 : 128);
}

#if !defined(__CUDACC_RTC__)
namespace detail {
struct MoeGradLayout {
  unsigned long long off[13];
  unsigned long long bytes;
};
inline MoeGradLayout moeGradLayout(const MoeGradArgs &a) {
  const unsigned long long S = static_cast<unsigned long long>(a.rows) *
                               static_cast<unsigned long long>(a.top_k);
  const unsigned long long H = a.hidden, I = a.inter, E = a.experts;
  const unsigned long long sizes[13] = {
      S * 4,
      S * 4,
      S * 4,
      S * 4,
      (E + 1) * 4,
      (E + 1) * 4,
      S * 4,
      S * I * 4,
      S * 2 * I * 4,
      S * 2 * I * 4,
      S * H * 4,
      static_cast<unsigned long long>(a.rows) * E * 4,
      static_cast<unsigned long long>(moeGradRowSplits(a.rows)) * E * H * 4};
  MoeGradLayout l{};
  unsigned long long at = 0;
  for (int i = 0; i < 13; ++i) {
    l.off[i] = at;
    at = (at + sizes[i] + 255) / 256 * 256;
  }
  l.bytes = at;
  return l;
}
inline unsigned moeGradCeil(long long a, long long b) {
  const long long v = (a + b - 1) / b;
  return static_cast<unsigned>(v < 1 ? 1 : v);
}
} // namespace detail

inline unsigned long long moeGradWorkspaceBytes(const MoeGradArgs &a, int D,
                                                int sms) {
  (void)D;
  (void)sms;
  return detail::moeGradLayout(a).bytes;
}

/// Launches, in order: _route, _dispatch, _gateup | _gateup_wg, _dh_dw2 |
/// _dh_dw2_wg (the _dh and _dw2 GEMMs), _dw13_dx | _dw13_dx_wg (_dw13 and
/// _dx), _router, _drouter, _drouter_sum. Of each pair "X | X_wg" the wgmma
/// form X_wg does the work for bf16 with H and I multiples of 8 on sm_90a
/// (kernels/moe_grad.cuh); when elem_bytes and wgmma are filled only the
/// working one is launched, else both (the other returns at once).
inline int moeGradPlan(MoeGradArgs &a, int D, int sms, Launch *out) {
  (void)D;
  const detail::MoeGradLayout l = detail::moeGradLayout(a);
  dptr *fields[13] = {
      &a.topk_expert,  &a.topk_weight, &a.slot_pos, &a.perm_slot, &a.offsets,
      &a.tile_offsets, &a.dot,         &a.hb,       &a.acf,       &a.dac,
      &a.dxs,          &a.z,           &a.part};
  for (int i = 0; i < 13; ++i)
    *fields[i] = a.workspace + l.off[i];
  a.rsplit = moeGradRowSplits(a.rows);
  using detail::moeGradCeil;
  const int TB = moeGradTile();
  const unsigned mt =
      static_cast<unsigned>(moeGradMTiles(a.rows, a.top_k, a.experts));
  const unsigned sm = moeGradSmemBytes();
  // which GEMM forms to launch (see elem_bytes, wgmma)
  const bool shapeOk = a.hidden % 8 == 0 && a.inter % 8 == 0;
  const bool known = a.elem_bytes == 4 ||
                     (a.elem_bytes == 2 && (a.wgmma == 1 || a.wgmma == 2));
  const bool useWg = a.elem_bytes == 2 && a.wgmma == 1 && shapeOk;
  const bool launchWg = !known || useWg, launchMma = !known || !useWg;
  const long long nsm = sms > 0 ? sms : 1;
  auto wgGrid = [&](long long items) {
    return static_cast<unsigned>(items < nsm ? (items < 1 ? 1 : items) : nsm);
  };
  const unsigned wgT = static_cast<unsigned>(moeWgmmaThreads()),
                 wgS = static_cast<unsigned>(moeWgmmaSmemBytes());
  int n = 0;
  out[n++] = {"_route", moeGradCeil(a.rows, 8), 1, 1, 256, 0};
  out[n++] = {"_dispatch", 1, 1, 1, 1024, 0};
  if (launchMma)
    out[n++] = {"_gateup", mt, moeGradCeil(a.inter, TB / 2), 1, 256, sm};
  if (launchWg)
    out[n++] = {"_gateup_wg",
                static_cast<unsigned>(moeWgmmaGrid(nsm, mt, a.inter, true)),
                1,
                1,
                wgT,
                wgS};
  // weight-gradient CTAs first, then the slot-M GEMM's (moeGradPair)
  const long long nDw2 = moeGradDivUp(a.hidden, TB) *
                         moeGradDivUp(a.inter, TB) * a.experts,
                  nDh = static_cast<long long>(mt) * moeGradDivUp(a.inter, TB);
  const long long nDw13 = moeGradDivUp(2 * a.inter, TB) *
                          moeGradDivUp(a.hidden, TB) * a.experts,
                  nDx = static_cast<long long>(mt) * moeGradDivUp(a.hidden, TB);
  if (launchMma || moeGradDhWgmma() == false)
    out[n++] = {"_dh_dw2", static_cast<unsigned>(nDw2 + nDh), 1, 1, 256, sm};
  if (launchWg && moeGradDhWgmma()) // 128 × 256 items (moeGradWgPair)
    out[n++] = {"_dh_dw2_wg",
                wgGrid(a.experts * moeGradDivUp(a.hidden, 128) *
                           moeGradDivUp(a.inter, 256) +
                       mt * moeGradDivUp(a.inter, 256)),
                1,
                1,
                wgT,
                wgS};
  if (launchMma)
    out[n++] = {"_dw13_dx", static_cast<unsigned>(nDw13 + nDx), 1, 1, 256, sm};
  if (launchWg)
    out[n++] = {"_dw13_dx_wg",
                wgGrid(a.experts * moeGradDivUp(2 * a.inter, 128) *
                           moeGradDivUp(a.hidden, 256) +
                       mt * moeGradDivUp(a.hidden, 256)),
                1,
                1,
                wgT,
                wgS};
  out[n++] = {"_router", moeGradCeil(a.rows, 8), 1, 1, 256, 0};
  out[n++] = {"_drouter",
              moeGradCeil(a.hidden, 256),
              static_cast<unsigned>(a.rsplit),
              1,
              256,
              0};
  out[n++] = {
      "_drouter_sum", moeGradCeil(a.experts * a.hidden, 256), 1, 1, 256, 0};
  return n;
}
#endif

} // namespace k
} // namespace mm
