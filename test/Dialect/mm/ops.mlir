// RUN: mm-opt %s --split-input-file | mm-opt --split-input-file | FileCheck %s

// Tests that every mm op round-trips through the printer and parser.

// CHECK-LABEL: func.func @decoder_ops
func.func @decoder_ops(%ids: tensor<?x?xi32>, %labels: tensor<?x?xi64>) -> (tensor<?x?x128xf32>, tensor<f32>) {
  // CHECK: %[[EMB:.+]] = mm.param "model.embed_tokens.weight" : tensor<128x64xf32>
  %emb = mm.param "model.embed_tokens.weight" : tensor<128x64xf32>
  // CHECK: %[[H:.+]] = mm.embedding %{{.+}}, %[[EMB]] : (tensor<?x?xi32>, tensor<128x64xf32>) -> tensor<?x?x64xf32>
  %h = mm.embedding %ids, %emb : (tensor<?x?xi32>, tensor<128x64xf32>) -> tensor<?x?x64xf32>
  %nw = mm.param "norm.weight" : tensor<64xf32>
  // CHECK: mm.param "experts.gate_up_proj" {slice_axis = 1 : i64, slice_offset = 96 : i64} : tensor<4x96x64xf32>
  %up = mm.param "experts.gate_up_proj" {slice_axis = 1 : i64, slice_offset = 96 : i64} : tensor<4x96x64xf32>
  // CHECK: mm.rms_norm %[[H]], %{{.+}} {eps = 1.000000e-05 : f64}
  %n = mm.rms_norm %h, %nw {eps = 1.0e-5 : f64} : (tensor<?x?x64xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
  %wqkv = mm.param "qkv.weight" : tensor<192x64xf32>
  // CHECK: mm.linear
  %qkv = mm.linear %n, %wqkv : (tensor<?x?x64xf32>, tensor<192x64xf32>) -> tensor<?x?x192xf32>
  // CHECK: mm.silu %{{.+}} : tensor<?x?x192xf32>
  %qkv_act = mm.silu %qkv : tensor<?x?x192xf32>
  // CHECK: mm.lightning_attention %{{.+}} {block_size = 16 : i64, head_dim = 16 : i64, layer_index = 1 : i64, num_heads = 4 : i64, num_layers = 4 : i64}
  %lo = mm.lightning_attention %qkv_act {num_heads = 4 : i64, head_dim = 16 : i64, block_size = 16 : i64, layer_index = 1 : i64, num_layers = 4 : i64} : (tensor<?x?x192xf32>) -> tensor<?x?x64xf32>
  // CHECK: mm.sigmoid
  %g = mm.sigmoid %n : tensor<?x?x64xf32>
  // CHECK: mm.mul
  %gated = mm.mul %g, %lo : tensor<?x?x64xf32>
  // CHECK: mm.scaled_add %{{.+}}, %{{.+}} {alpha = 1.300000e+00 : f64, beta = 9.000000e-01 : f64}
  %r = mm.scaled_add %n, %gated {alpha = 1.3 : f64, beta = 0.9 : f64} : tensor<?x?x64xf32>
  %wq = mm.param "q.weight" : tensor<64x64xf32>
  %wk = mm.param "k.weight" : tensor<32x64xf32>
  %q = mm.linear %r, %wq : (tensor<?x?x64xf32>, tensor<64x64xf32>) -> tensor<?x?x64xf32>
  %k = mm.linear %r, %wk : (tensor<?x?x64xf32>, tensor<32x64xf32>) -> tensor<?x?x32xf32>
  // CHECK: mm.rope %{{.+}} {head_dim = 16 : i64, num_heads = 4 : i64, rotary_dim = 16 : i64, theta = 1.000000e+04 : f64}
  %qr = mm.rope %q {num_heads = 4 : i64, head_dim = 16 : i64, rotary_dim = 16 : i64, theta = 10000.0 : f64} : (tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
  // CHECK: mm.rope %{{.+}} {head_dim = 16 : i64, num_heads = 2 : i64, rotary_dim = 8 : i64
  %kr = mm.rope %k {num_heads = 2 : i64, head_dim = 16 : i64, rotary_dim = 8 : i64, theta = 10000.0 : f64} : (tensor<?x?x32xf32>) -> tensor<?x?x32xf32>
  // CHECK: mm.softmax_attention %{{.+}}, %{{.+}}, %{{.+}} {head_dim = 16 : i64, num_heads = 4 : i64, num_kv_heads = 2 : i64, scale = 2.500000e-01 : f64}
  %so = mm.softmax_attention %qr, %kr, %k {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f64} : (tensor<?x?x64xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>) -> tensor<?x?x64xf32>
  %router = mm.param "gate.weight" : tensor<4x64xf32>
  %w1 = mm.param "experts.{e}.w1.weight" : tensor<4x96x64xf32>
  %w2 = mm.param "experts.{e}.w2.weight" : tensor<4x64x96xf32>
  %w3 = mm.param "experts.{e}.w3.weight" : tensor<4x96x64xf32>
  // CHECK: mm.moe %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}}, %{{.+}} {top_k = 2 : i64}
  %m = mm.moe %so, %router, %w1, %w2, %w3 {top_k = 2 : i64} : (tensor<?x?x64xf32>, tensor<4x64xf32>, tensor<4x96x64xf32>, tensor<4x64x96xf32>, tensor<4x96x64xf32>) -> tensor<?x?x64xf32>
  %head = mm.param "lm_head.weight" : tensor<128x64xf32>
  // CHECK: %[[L:.+]] = mm.logits
  %logits = mm.logits %m, %head : (tensor<?x?x64xf32>, tensor<128x64xf32>) -> tensor<?x?x128xf32>
  // CHECK: mm.cross_entropy %[[L]], %{{.+}} : (tensor<?x?x128xf32>, tensor<?x?xi64>) -> tensor<f32>
  %loss = mm.cross_entropy %logits, %labels : (tensor<?x?x128xf32>, tensor<?x?xi64>) -> tensor<f32>
  return %logits, %loss : tensor<?x?x128xf32>, tensor<f32>
}

// -----

// Tests that bf16 and static batch/sequence shapes are accepted.

// CHECK-LABEL: func.func @bf16_static
func.func @bf16_static(%x: tensor<2x8x64xbf16>) -> tensor<2x8x64xbf16> {
  %w = mm.param "w" : tensor<64xbf16>
  // CHECK: mm.rms_norm {{.+}} : (tensor<2x8x64xbf16>, tensor<64xbf16>) -> tensor<2x8x64xbf16>
  %y = mm.rms_norm %x, %w {eps = 1.0e-6 : f64} : (tensor<2x8x64xbf16>, tensor<64xbf16>) -> tensor<2x8x64xbf16>
  return %y : tensor<2x8x64xbf16>
}
