// Argument blocks of the small training kernels (docs/kernels.md, "Training
// kernels"): the ABI between the CUDA executor and kernels/train_small.cuh.
// Same conventions as kernels/args.h (8-byte fields, device addresses as dptr).
// T is the step's element type (f32, or bf16 for dtype=bf16 artifacts):
// activations and their gradients are T, weight gradients, optimizer states
// and master weights are f32. Scalars (grad norm, lr, step) live in device
// memory and are read by the kernels (no host round trip).
#pragma once

#include "kernels/args.h"

namespace mm {
namespace k {

/// rms_norm_grad: x, w, dy [rows, n] (w [n]) of T -> dx [rows, n] T and dw
/// [n] f32 (summed over rows).
struct RmsNormGradArgs {
  dptr x, w, dy, dx, dw, workspace;
  long long rows, n;
  double eps;
  // Filled by rmsNormGradPlan: blocks of "_rows" (rows of the dw partials
  // [blocks, n] f32 at `workspace`).
  long long blocks;
};

/// silu_grad / sigmoid_grad: dx = dy * f'(x), elementwise over n (dx may
/// alias dy).
struct ActGradArgs {
  dptr x, dy, dx;
  long long n;
};

/// The backward of an output gate y = sigmoid(x) · b, run as one pass
/// (sigmoid_grad's "_gate" entry; runtime/TrainSchedule.h fusedGate): from dy,
/// a (the gated value), b (the gate, sigmoid(x)) and x, it writes
/// w = sigmoid_grad(x, dy·a) and v = dy·b. All n elements of T.
struct GateGradArgs {
  dptr dy, a, b, x, w, v;
  long long n;
};

/// rope_grad: the inverse rotation of dy (RopeArgs' x = dy, out = dx).
typedef RopeArgs RopeGradArgs;

/// embedding_grad: dtable [vocab, hidden] f32 = Σ_{r: ids[r] = v} dy[r], zero
/// for unused rows; dy [rows, hidden] T; ids [rows] i32 (checked: an id
/// outside [0, vocab) is reported through `error`, an ErrorSlot*).
struct EmbeddingGradArgs {
  dptr ids, dy, dtable, error, workspace;
  long long rows, vocab, hidden;
  // Filled by embeddingGradPlan from `workspace` (i32 arrays): per id the
  // first row of its list head [vocab] and its row count [vocab]; the next
  // row of each row's list next [rows].
  dptr head, count, next;
};

/// grad_norm: phase "_zero" clears the f64 accumulator `acc`, "_sumsq" adds
/// Σ g² of one f32 gradient g [n] into it (launched once per gradient, the
/// executor changing g and n), "_finalize" writes out[0] = sqrt(acc) (f32).
struct GradNormArgs {
  dptr g, acc, out;
  long long n;
  /// Phase "_sumsq_multi" (the executor's multi-tensor form): `table` holds
  /// `count` NormTensor entries; block b adds the squares of chunk b − first
  /// (gradNormChunk() values) of the last entry whose first <= b.
  dptr table;
  long long count;
};

/// adamw (torch.optim.AdamW) in place on f32 p, m, v [n] from the f32
/// gradient g, scaled by the clip factor min(1, max_norm / (norm + 1e-6))
/// (1 when max_norm <= 0). norm, lr, step: device f32 scalars; step is
/// 1-based (bias corrections).
struct AdamWArgs {
  dptr p, g, m, v, norm, lr, step;
  long long n;
  double beta1, beta2, eps, weight_decay, max_norm;
  /// Non-zero: also write the updated p rounded to bf16 (nearest even) here,
  /// the store_param that follows the update in dtype=bf16 training, fused.
  dptr store;
  /// Phase "_multi" (the executor's multi-tensor form): instead of p..store
  /// and n, `table` holds `count` AdamWTensor entries; block b updates chunk
  /// b − first of the last entry whose first <= b.
  dptr table;
  long long count;
};

/// One gradient of a multi-tensor grad_norm: its values, size, first block.
struct NormTensor {
  dptr g;
  long long n, first;
};
/// Values per block of the multi-tensor grad_norm (few blocks: each adds its
/// sum into one f64 with an atomic).
MM_HD constexpr long long gradNormChunk() { return 65536; }

/// One tensor of a multi-tensor adamw: its buffers (store 0 when none), its
/// size and its first block (AdamWArgs::table).
struct AdamWTensor {
  dptr p, g, m, v, store;
  long long n, first;
};
/// Elements per block of the multi-tensor adamw.
MM_HD constexpr long long adamWChunk() { return 8192; }

/// came (factored, runtime/cpu/TrainKernels.h cameFactored) on `count`
/// matrices [rows, cols]: p, g, m [count, rows, cols]; row, res_row [count,
/// rows]; col, res_col [count, cols]; all f32. norm, lr: device scalars.
struct CameArgs {
  dptr p, g, m, row, col, res_row, res_col, norm, lr, workspace;
  long long count, rows, cols;
  double beta1, beta2, beta3, eps1, eps2, clip_threshold, weight_decay,
      max_norm;
  // Filled by camePlan from `workspace`: the f64 Σu² (ss), column sums of the
  // second moment and of the instability [count, cols], row means [count].
  dptr ss, col_sum, res_col_sum, row_mean, res_row_mean;
};

/// came_vector (cameVector): p, g, m, v [n] f32.
struct CameVectorArgs {
  dptr p, g, m, v, norm, lr, workspace;
  long long n;
  double beta1, beta2, beta3, eps1, eps2, clip_threshold, weight_decay,
      max_norm;
};

/// store_param: param [n] T = master [n] f32 (bf16: round to nearest even).
struct StoreParamArgs {
  dptr master, param;
  long long n;
};

/// lm_head_loss / lm_head_loss_grad, one chunk of rows at a time. The
/// executor computes logits = h[row0 : row0+rows] · wᵀ into the f32 workspace
/// `logits` [rows, vocab] (cuBLASLt); phase "_count" (once, over all
/// `total_rows` labels) writes the number of labels != -100 into `count` (f32
/// scalar); "_rows" writes each chunk row's loss (logsumexp − logit[label], or
/// 0 when ignored) into row_loss[row0 + r] and, when `dlogits` is non-zero,
/// dlogits [rows, vocab] T = (softmax − onehot(label)) / count (zero rows for
/// ignored labels); "_reduce" (once, after all chunks) writes loss[0] =
/// Σ row_loss / count (NaN if count is 0). A label outside [0, vocab) that is
/// not -100 is reported through `error` (ErrorSlot*, rows numbered from 0 over
/// all chunks).
struct LmHeadArgs {
  dptr logits, dlogits, labels, row_loss, count, loss, error;
  long long total_rows, row0, rows, vocab;
};

/// finite_check: scans x [n] (T) and, at the first NaN/Inf, records
/// (step, index) into *slot = min(slot, step << 40 | index) (atomicMin on a
/// u64; the executor initialises it to ~0).
struct FiniteCheckArgs {
  dptr x, slot;
  long long n, step;
};

} // namespace k
} // namespace mm
