// RUN: mm-opt %s --split-input-file --verify-diagnostics

// Tests that a weight gradient must have the weight's type.
func.func @case0(%x: tensor<?x?x64xf32>, %dy: tensor<?x?x96xf32>) {
  %w = mm.param "w" : tensor<96x64xf32>
  // expected-error @+1 {{expects dw of type 'tensor<96x64xf32>' (as weight) but got 'tensor<64x96xf32>'}}
  %dx, %dw = mm.linear_grad %x, %w, %dy : (tensor<?x?x64xf32>, tensor<96x64xf32>, tensor<?x?x96xf32>) -> (tensor<?x?x64xf32>, tensor<64x96xf32>)
  return
}

// -----

// Tests that the output gradient of a projection must have the projection's width.
func.func @case1(%x: tensor<?x?x64xf32>, %dy: tensor<?x?x32xf32>) {
  %w = mm.param "w" : tensor<96x64xf32>
  // expected-error @+1 {{expects dy last dim 96 (weight dim 0) but got 32}}
  %dx, %dw = mm.linear_grad %x, %w, %dy : (tensor<?x?x64xf32>, tensor<96x64xf32>, tensor<?x?x32xf32>) -> (tensor<?x?x64xf32>, tensor<96x64xf32>)
  return
}

// -----

// Tests that the lightning backward checks its head layout.
func.func @case2(%qkv: tensor<?x?x192xf32>, %do: tensor<?x?x48xf32>) {
  // expected-error @+1 {{expects dout last dim 64 (num_heads * head_dim) but got 48}}
  %d = mm.lightning_attention_grad %qkv, %do {num_heads = 4 : i64, head_dim = 16 : i64, block_size = 16 : i64,
      layer_index = 0 : i64, num_layers = 4 : i64} : (tensor<?x?x192xf32>, tensor<?x?x48xf32>) -> tensor<?x?x192xf32>
  return
}

// -----

// Tests that the lightning backward checks the layer index like the forward.
func.func @case3(%qkv: tensor<?x?x192xf32>, %do: tensor<?x?x64xf32>) {
  // expected-error @+1 {{expects layer_index in [0, 4) but got 4}}
  %d = mm.lightning_attention_grad %qkv, %do {num_heads = 4 : i64, head_dim = 16 : i64, block_size = 16 : i64,
      layer_index = 4 : i64, num_layers = 4 : i64} : (tensor<?x?x192xf32>, tensor<?x?x64xf32>) -> tensor<?x?x192xf32>
  return
}

// -----

// Tests that softmax attention's key gradient has the key's (GQA) width.
func.func @case4(%q: tensor<?x?x64xf32>, %k: tensor<?x?x32xf32>, %v: tensor<?x?x32xf32>, %do: tensor<?x?x64xf32>) {
  // expected-error @+1 {{expects dk of type 'tensor<?x?x32xf32>' (as key) but got 'tensor<?x?x64xf32>'}}
  %dq, %dk, %dv = mm.softmax_attention_grad %q, %k, %v, %do {num_heads = 4 : i64, num_kv_heads = 2 : i64,
      head_dim = 16 : i64, scale = 0.25 : f64}
      : (tensor<?x?x64xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x?x64xf32>)
      -> (tensor<?x?x64xf32>, tensor<?x?x64xf32>, tensor<?x?x32xf32>)
  return
}

// -----

// Tests that moe_grad checks top_k against the experts.
func.func @case5(%x: tensor<?x?x64xf32>) {
  %r = mm.param "router" : tensor<4x64xf32>
  %w1 = mm.param "w1" : tensor<4x96x64xf32>
  %w2 = mm.param "w2" : tensor<4x64x96xf32>
  // expected-error @+1 {{expects top_k in [1, 4] (the number of experts) but got 5}}
  %a, %b, %c, %d, %e = mm.moe_grad %x, %r, %w1, %w2, %w1, %x {top_k = 5 : i64}
      : (tensor<?x?x64xf32>, tensor<4x64xf32>, tensor<4x96x64xf32>, tensor<4x64x96xf32>, tensor<4x96x64xf32>,
         tensor<?x?x64xf32>)
      -> (tensor<?x?x64xf32>, tensor<4x64xf32>, tensor<4x96x64xf32>, tensor<4x64x96xf32>, tensor<4x96x64xf32>)
  return
}

// -----

// Tests that the fused loss needs positive chunks.
func.func @case6(%h: tensor<?x?x64xf32>, %labels: tensor<?x?xi32>) {
  %w = mm.param "lm_head.weight" : tensor<128x64xf32>
  // expected-error @+1 {{expects chunk_rows > 0 but got 0}}
  %l = mm.lm_head_loss %h, %w, %labels {chunk_rows = 0 : i64} : (tensor<?x?x64xf32>, tensor<128x64xf32>, tensor<?x?xi32>) -> tensor<f32>
  return
}

// -----

// Tests that AdamW's betas lie in [0, 1).
func.func @case7(%g: tensor<64xf32>, %n: tensor<f32>) {
  %p = mm.param "p" : tensor<64xf32>
  %m = mm.state "m" : tensor<64xf32>
  // expected-error @+1 {{expects beta2 in [0, 1) but got 1}}
  %a, %b, %c = mm.adamw %p, %g, %m, %m, %n, %n, %n {beta1 = 0.9 : f64, beta2 = 1.0 : f64, eps = 1.0e-8 : f64,
      weight_decay = 0.0 : f64, max_norm = 1.0 : f64}
      : (tensor<64xf32>, tensor<64xf32>, tensor<64xf32>, tensor<64xf32>, tensor<f32>, tensor<f32>, tensor<f32>)
      -> (tensor<64xf32>, tensor<64xf32>, tensor<64xf32>)
  return
}

// -----

// Tests that AdamW's moments have the param's shape.
func.func @case8(%g: tensor<64xf32>, %n: tensor<f32>) {
  %p = mm.param "p" : tensor<64xf32>
  %m = mm.state "m" : tensor<64xf32>
  %v = mm.state "v" : tensor<32xf32>
  // expected-error @+1 {{expects state 1 of type 'tensor<64xf32>' but got 'tensor<32xf32>'}}
  %a, %b, %c = mm.adamw %p, %g, %m, %v, %n, %n, %n {beta1 = 0.9 : f64, beta2 = 0.999 : f64, eps = 1.0e-8 : f64,
      weight_decay = 0.0 : f64, max_norm = 1.0 : f64}
      : (tensor<64xf32>, tensor<64xf32>, tensor<64xf32>, tensor<32xf32>, tensor<f32>, tensor<f32>, tensor<f32>)
      -> (tensor<64xf32>, tensor<64xf32>, tensor<64xf32>)
  return
}

// -----

// Tests that CAME's factored row state drops the last dim.
func.func @case9(%g: tensor<96x64xf32>, %n: tensor<f32>) {
  %p = mm.param "p" : tensor<96x64xf32>
  %m = mm.state "m" : tensor<96x64xf32>
  %r = mm.state "r" : tensor<64xf32>
  %c = mm.state "c" : tensor<64xf32>
  // expected-error @+1 {{expects state 1 of type 'tensor<96xf32>' but got 'tensor<64xf32>'}}
  %q:6 = mm.came %p, %g, %m, %r, %c, %r, %c, %n, %n {beta1 = 0.9 : f64, beta2 = 0.999 : f64,
      beta3 = 0.9999 : f64, eps = 1.0e-30 : f64, eps2 = 1.0e-16 : f64, clip_threshold = 1.0 : f64,
      weight_decay = 0.0 : f64, max_norm = 1.0 : f64}
      : (tensor<96x64xf32>, tensor<96x64xf32>, tensor<96x64xf32>, tensor<64xf32>, tensor<64xf32>, tensor<64xf32>,
         tensor<64xf32>, tensor<f32>, tensor<f32>)
      -> (tensor<96x64xf32>, tensor<96x64xf32>, tensor<64xf32>, tensor<64xf32>, tensor<64xf32>, tensor<64xf32>)
  return
}

// -----

// Tests that an optimizer state is f32 with a static shape.
func.func @case10() {
  // expected-error @+1 {{expects a static f32 state but got 'tensor<64xbf16>'}}
  %m = mm.state "m" : tensor<64xbf16>
  return
}
