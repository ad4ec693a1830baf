// RUN: mm-opt %s --mm-model-stats="tp=2 ep=4 dp=2 max-batch=1 max-seq=4 dtype=f32" 2>%t.err | FileCheck %s
// RUN: FileCheck %s --check-prefix=REPORT < %t.err
// RUN: not mm-opt %s --mm-model-stats="tp=2 ep=3 dp=1" -o /dev/null 2>&1 | FileCheck %s --check-prefix=BADEP
// RUN: not mm-opt %s --mm-model-stats="tp=2 ep=2 dtype=f64" -o /dev/null 2>&1 | FileCheck %s --check-prefix=BADTYPE

// Tests the parameter counts and the per-GPU memory plan on a hand-sized model (one softmax
// layer, 2 query heads and 1 KV head of width 4, 4 experts with top-1, vocabulary 16):
// - params: emb 128, q 64, k 32, v 32, o 64, router 32, experts 3 x 192, lm 128 = 1056;
//   active = 1056 - 3/4 of 576 = 624; without emb and lm: 368.
// - weights per GPU (tp=2, ep=4): emb 64, q 32 (column-parallel), k 32 and v 32 (one KV head
//   cannot be split: replicated), o 32 (row-parallel), router 32, experts 144, lm 64
//   = 432 floats = 1728 bytes.
// - activations at batch 1 x seq 4 (f32): h 128 B, q 64 (split), k 64, v 64, o 64 (split),
//   a 128, m 128, logits 128 (split); the peak is at the moe: a + m + scratch
//   (1 routed token x 2*6 + 2 x 4 tokens x 8 = 76 floats) = 560 bytes.
// - KV cache: 2 x 1 x 4 x 1 head x 4 x 4 bytes = 128. No lightning layer.

// REPORT: mm-model-stats: @forward params total 1056 (0.00B), active 624 (0.00B), active without embedding and lm_head 368 (0.00B)
// REPORT: mm-model-stats: tp=2 ep=4 dp=2 (4 GPUs), batch 1 x seq 4, f32: per GPU weights 1728 ({{.*}}), activations 560 ({{.*}}), lightning state 0 ({{.*}}), KV cache 128 ({{.*}}), total 2416 ({{.*}})

// CHECK: module attributes {mm.model_stats = {
// CHECK-SAME: activation_bytes_per_gpu = 560 : i64
// CHECK-SAME: active_params = 624 : i64
// CHECK-SAME: active_params_non_embedding = 368 : i64
// CHECK-SAME: dp = 2 : i64, dtype = "f32", ep = 4 : i64
// CHECK-SAME: kv_cache_bytes_per_gpu = 128 : i64
// CHECK-SAME: lightning_state_bytes_per_gpu = 0 : i64
// CHECK-SAME: max_batch = 1 : i64, max_seq = 4 : i64
// CHECK-SAME: total_bytes_per_gpu = 2416 : i64
// CHECK-SAME: total_params = 1056 : i64
// CHECK-SAME: tp = 2 : i64
// CHECK-SAME: weight_bytes_per_gpu = 1728 : i64

// BADEP: error: mm-model-stats expects ep (3) to divide tp*dp (2)
// BADTYPE: error: mm-model-stats expects dtype f32, bf16 or f16 but got 'f64'

func.func @forward(%ids: tensor<?x?xi32>) -> tensor<?x?x16xf32> {
  %emb = mm.param "emb" : tensor<16x8xf32>
  %h = mm.embedding %ids, %emb : (tensor<?x?xi32>, tensor<16x8xf32>) -> tensor<?x?x8xf32>
  %wq = mm.param "q" : tensor<8x8xf32>
  %wk = mm.param "k" : tensor<4x8xf32>
  %wv = mm.param "v" : tensor<4x8xf32>
  %q = mm.linear %h, %wq : (tensor<?x?x8xf32>, tensor<8x8xf32>) -> tensor<?x?x8xf32>
  %k = mm.linear %h, %wk : (tensor<?x?x8xf32>, tensor<4x8xf32>) -> tensor<?x?x4xf32>
  %v = mm.linear %h, %wv : (tensor<?x?x8xf32>, tensor<4x8xf32>) -> tensor<?x?x4xf32>
  %o = mm.softmax_attention %q, %k, %v {num_heads = 2 : i64, num_kv_heads = 1 : i64, head_dim = 4 : i64, scale = 5.0e-01 : f64}
      : (tensor<?x?x8xf32>, tensor<?x?x4xf32>, tensor<?x?x4xf32>) -> tensor<?x?x8xf32>
  %wo = mm.param "o" : tensor<8x8xf32>
  %a = mm.linear %o, %wo : (tensor<?x?x8xf32>, tensor<8x8xf32>) -> tensor<?x?x8xf32>
  %r = mm.param "router" : tensor<4x8xf32>
  %w1 = mm.param "w1" : tensor<4x6x8xf32>
  %w2 = mm.param "w2" : tensor<4x8x6xf32>
  %w3 = mm.param "w3" : tensor<4x6x8xf32>
  %m = mm.moe %a, %r, %w1, %w2, %w3 {top_k = 1 : i64}
      : (tensor<?x?x8xf32>, tensor<4x8xf32>, tensor<4x6x8xf32>, tensor<4x8x6xf32>, tensor<4x6x8xf32>) -> tensor<?x?x8xf32>
  %lm = mm.param "lm" : tensor<16x8xf32>
  %l = mm.logits %m, %lm : (tensor<?x?x8xf32>, tensor<16x8xf32>) -> tensor<?x?x16xf32>
  return %l : tensor<?x?x16xf32>
}
