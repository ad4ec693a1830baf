// Host-side launch arithmetic shared by the CUDA executor and the GPU kernel
// tests: workspace layouts of the multi-kernel ops and grid sizes. Plain C++
// (no CUDA header), so the tests built with nvcc and the runtime built with
// the host compiler use the very same numbers.
#pragma once

#include "kernels/args.h"

#include <algorithm>
#include <cstdint>

namespace mm::cuda {

inline constexpr uint64_t kWorkspaceAlign = 256;

inline uint64_t alignUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

/// Grid of a grid-stride kernel over n items.
inline unsigned gridStride(int64_t n, int threads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(
      std::clamp<int64_t>(blocks, 1, int64_t(1) << 20));
}

/// Byte offsets (from the workspace base) of the arrays of MoeArgs.
struct MoeWorkspace {
  uint64_t topkExpert, topkWeight, slotPos, permSlot, offsets, tileOffsets, h,
      y;
  uint64_t bytes; // total
};

inline MoeWorkspace moeWorkspace(int64_t rows, int64_t hidden, int64_t experts,
                                 int64_t inter, int64_t topK,
                                 uint64_t elemBytes) {
  const uint64_t slots = static_cast<uint64_t>(rows * topK);
  MoeWorkspace w{};
  uint64_t at = 0;
  auto take = [&](uint64_t bytes) {
    const uint64_t off = at;
    at = alignUp(at + bytes, kWorkspaceAlign);
    return off;
  };
  w.topkExpert = take(slots * 4);
  w.topkWeight = take(slots * 4);
  w.slotPos = take(slots * 4);
  w.permSlot = take(slots * 4);
  w.offsets = take(static_cast<uint64_t>(experts + 1) * 4);
  w.tileOffsets = take(static_cast<uint64_t>(experts + 1) * 4);
  w.h = take(slots * static_cast<uint64_t>(inter) * elemBytes);
  w.y = take(slots * static_cast<uint64_t>(hidden) * 4);
  w.bytes = at;
  return w;
}

inline void bindMoeWorkspace(k::MoeArgs &a, uint64_t base,
                             const MoeWorkspace &w) {
  a.topk_expert = base + w.topkExpert;
  a.topk_weight = base + w.topkWeight;
  a.slot_pos = base + w.slotPos;
  a.perm_slot = base + w.permSlot;
  a.offsets = base + w.offsets;
  a.tile_offsets = base + w.tileOffsets;
  a.h = base + w.h;
  a.y = base + w.y;
}

/// Upper bound on the M-tiles of the grouped GEMMs: Σ_e ceil(count_e / BM) ≤
/// ceil(rows·k / BM) + E.
inline unsigned moeGemmTiles(int64_t rows, int64_t topK, int64_t experts,
                             int tileM) {
  return static_cast<unsigned>((rows * topK + tileM - 1) / tileM + experts);
}

inline uint64_t crossEntropyWorkspaceBytes(int64_t rows) {
  return alignUp(static_cast<uint64_t>(rows) * 4, kWorkspaceAlign);
}

} // namespace mm::cuda
