// RUN: mm-opt %s | mm-opt | FileCheck %s

// Tests that every mm training op (backward, loss, optimizer) round-trips through the printer and
// parser.

// CHECK-LABEL: func.func @backward_ops
func.func @backward_ops(%ids: tensor<?x?xi32>, %x: tensor<?x?x64xf32>, %dy: tensor<?x?x64xf32>,
                        %qkv: tensor<?x?x192xf32>, %q: tensor<?x?x64xf32>, %k: tensor<?x?x32xf32>,
                        %v: tensor<?x?x32xf32>, %labels: tensor<?x?xi32>) {
  %nw = mm.param "norm.weight" : tensor<64xf32>
  %w = mm.param "w" : tensor<96x64xf32>
  %dyw = mm.param "unused" : tensor<128x64xf32>
  // CHECK: mm.embedding_grad %{{.+}}, %{{.+}} : (tensor<?x?xi32>, tensor<?x?x64xf32>) -> tensor<128x64xf32>
  %dt = mm.embedding_grad %ids, %dy : (tensor<?x?xi32>, tensor<?x?x64xf32>) -> tensor<128x64xf32>
  // CHECK: %[[DX:.+]], %[[DW:.+]] = mm.rms_norm_grad %{{.+}}, %{{.+}}, %{{.+}} {eps = 1.000000e-05 : f64}
  %dx, %dnw = mm.rms_norm_grad %x, %nw, %dy {eps = 1.0e-5 : f64}
      : (tensor<?x?x64xf32>, tensor<64xf32>, tensor<?x?x64xf32>) -> (tensor<?x?x64xf32>, tensor<64xf32>)
  %y = mm.linear %x, %w : (tensor<?x?x64xf32>, tensor<96x64xf32>) -> tensor<?x?x96xf32>
  // CHECK: = mm.linear_grad
  %ldx, %ldw = mm.linear_grad %x, %w, %y
      : (tensor<?x?x64xf32>, tensor<96x64xf32>, tensor<?x?x96xf32>) -> (tensor<?x?x64xf32>, tensor<96x64xf32>)
  // CHECK: mm.silu_grad
  %s = mm.silu_grad %x, %dy : (tensor<?x?x64xf32>, tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
  // CHECK: mm.sigmoid_grad
  %g = mm.sigmoid_grad %x, %dy : (tensor<?x?x64xf32>, tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
  // CHECK: mm.rope_grad %{{.+}} {head_dim = 16 : i64, num_heads = 4 : i64, rotary_dim = 8 : i64, theta = 1.000000e+04 : f64}
  %r = mm.rope_grad %dy {num_heads = 4 : i64, head_dim = 16 : i64, rotary_dim = 8 : i64, theta = 1.0e4 : f64}
      : (tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
  // CHECK: mm.lightning_attention_grad %{{.+}}, %{{.+}} {block_size = 16 : i64, head_dim = 16 : i64, layer_index = 0 : i64, num_heads = 4 : i64, num_layers = 4 : i64}
  %dqkv = mm.lightning_attention_grad %qkv, %dy {num_heads = 4 : i64, head_dim = 16 : i64, block_size = 16 : i64,
      layer_index = 0 : i64, num_layers = 4 : i64} : (tensor<?x?x192xf32>, tensor<?x?x64xf32>) -> tensor<?x?x192xf32>
  // CHECK: %[[DQ:.+]], %[[DK:.+]], %[[DV:.+]] = mm.softmax_attention_grad
  %dq, %dk, %dv = mm.softmax_attention_grad %q, %k, %v, %dy {num_heads = 4 : i64, num_kv_heads = 2 : i64,
      head_dim = 16 : i64, scale = 0.25 : f64}
      : (tensor<?x?x64xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x?x64xf32>)
      -> (tensor<?x?x64xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>)
  %router = mm.param "router" : tensor<4x64xf32>
  %w1 = mm.param "w1" : tensor<4x96x64xf32>
  %w2 = mm.param "w2" : tensor<4x64x96xf32>
  %w3 = mm.param "w3" : tensor<4x96x64xf32>
  // CHECK: = mm.moe_grad {{.+}} {top_k = 2 : i64}
  %mx, %mr, %m1, %m2, %m3 = mm.moe_grad %x, %router, %w1, %w2, %w3, %dy {top_k = 2 : i64}
      : (tensor<?x?x64xf32>, tensor<4x64xf32>, tensor<4x96x64xf32>, tensor<4x64x96xf32>, tensor<4x96x64xf32>,
         tensor<?x?x64xf32>)
      -> (tensor<?x?x64xf32>, tensor<4x64xf32>, tensor<4x96x64xf32>, tensor<4x64x96xf32>, tensor<4x96x64xf32>)
  // CHECK: mm.lm_head_loss %{{.+}}, %{{.+}}, %{{.+}} {chunk_rows = 8 : i64} : (tensor<?x?x64xf32>, tensor<128x64xf32>, tensor<?x?xi32>) -> tensor<f32>
  %loss = mm.lm_head_loss %x, %dyw, %labels {chunk_rows = 8 : i64}
      : (tensor<?x?x64xf32>, tensor<128x64xf32>, tensor<?x?xi32>) -> tensor<f32>
  // CHECK: = mm.lm_head_loss_grad
  %dh, %dwh = mm.lm_head_loss_grad %x, %dyw, %labels {chunk_rows = 8 : i64}
      : (tensor<?x?x64xf32>, tensor<128x64xf32>, tensor<?x?xi32>) -> (tensor<?x?x64xf32>, tensor<128x64xf32>)
  return
}

// CHECK-LABEL: func.func @optimizer_ops
func.func @optimizer_ops(%lr: tensor<f32>, %step: tensor<f32>, %gv: tensor<64xf32>, %gm: tensor<96x64xf32>) {
  %pv = mm.param "norm.weight" : tensor<64xf32>
  %pm = mm.param "w" : tensor<96x64xf32>
  // CHECK: mm.grad_norm %{{.+}}, %{{.+}} : (tensor<64xf32>, tensor<96x64xf32>) -> tensor<f32>
  %n = mm.grad_norm %gv, %gm : (tensor<64xf32>, tensor<96x64xf32>) -> tensor<f32>
  // CHECK: mm.state "adamw.m:norm.weight" : tensor<64xf32>
  %m = mm.state "adamw.m:norm.weight" : tensor<64xf32>
  %v = mm.state "adamw.v:norm.weight" : tensor<64xf32>
  // CHECK: %[[P:.+]], %[[M:.+]], %[[V:.+]] = mm.adamw {{.+}} {beta1 = 9.000000e-01 : f64, beta2 = 0.99899999999999999 : f64, eps = 1.000000e-08 : f64, max_norm = 1.000000e+00 : f64, weight_decay = 1.000000e-01 : f64}
  %p2, %m2, %v2 = mm.adamw %pv, %gv, %m, %v, %n, %lr, %step {beta1 = 0.9 : f64, beta2 = 0.999 : f64,
      eps = 1.0e-8 : f64, weight_decay = 0.1 : f64, max_norm = 1.0 : f64}
      : (tensor<64xf32>, tensor<64xf32>, tensor<64xf32>, tensor<64xf32>, tensor<f32>, tensor<f32>, tensor<f32>)
      -> (tensor<64xf32>, tensor<64xf32>, tensor<64xf32>)
  %cm = mm.state "came.m:w" : tensor<96x64xf32>
  %cr = mm.state "came.row:w" : tensor<96xf32>
  %cc = mm.state "came.col:w" : tensor<64xf32>
  %crr = mm.state "came.res_row:w" : tensor<96xf32>
  %crc = mm.state "came.res_col:w" : tensor<64xf32>
  // CHECK: = mm.came %
  %q:6 = mm.came %pm, %gm, %cm, %cr, %cc, %crr, %crc, %n, %lr {beta1 = 0.9 : f64, beta2 = 0.999 : f64,
      beta3 = 0.9999 : f64, eps = 1.0e-30 : f64, eps2 = 1.0e-16 : f64, clip_threshold = 1.0 : f64,
      weight_decay = 0.0 : f64, max_norm = 1.0 : f64}
      : (tensor<96x64xf32>, tensor<96x64xf32>, tensor<96x64xf32>, tensor<96xf32>, tensor<64xf32>, tensor<96xf32>,
         tensor<64xf32>, tensor<f32>, tensor<f32>)
      -> (tensor<96x64xf32>, tensor<96x64xf32>, tensor<96xf32>, tensor<64xf32>, tensor<96xf32>, tensor<64xf32>)
  %vm = mm.state "came.m:norm.weight" : tensor<64xf32>
  %vv = mm.state "came.v:norm.weight" : tensor<64xf32>
  // CHECK: = mm.came_vector
  %r:3 = mm.came_vector %pv, %gv, %vm, %vv, %n, %lr {beta1 = 0.9 : f64, beta2 = 0.999 : f64,
      beta3 = 0.9999 : f64, eps = 1.0e-30 : f64, eps2 = 1.0e-16 : f64, clip_threshold = 1.0 : f64,
      weight_decay = 0.0 : f64, max_norm = 1.0 : f64}
      : (tensor<64xf32>, tensor<64xf32>, tensor<64xf32>, tensor<64xf32>, tensor<f32>, tensor<f32>)
      -> (tensor<64xf32>, tensor<64xf32>, tensor<64xf32>)
  return
}
