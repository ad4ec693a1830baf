// RUN: mm-opt %s --split-input-file --verify-diagnostics

// Tests that a weight needs a static shape.
func.func @case0(%x: tensor<?x?x64xf32>) {
  // expected-error @+1 {{expects a static shape for weight 'w' but got [?, 64]}}
  %w = mm.param "w" : tensor<?x64xf32>
  return
}

// -----

// Tests that a weight needs a name.
func.func @case1(%x: tensor<?x?x64xf32>) {
  // expected-error @+1 {{expects a non-empty weight name}}
  %w = mm.param "" : tensor<64xf32>
  return
}

// -----

// Tests that operands must be f32/bf16/f16 tensors.
func.func @case2(%x: tensor<?x?x64xf32>, %w: tensor<64xf64>) {
  // expected-error @+1 {{must be ranked tensor of 32-bit float or bfloat16 type or 16-bit float values}}
  %y = mm.rms_norm %x, %w {eps = 1.0e-5 : f64} : (tensor<?x?x64xf32>, tensor<64xf64>) -> tensor<?x?x64xf32>
  return
}

// -----

// Tests that embedding ids are rank 2.
func.func @case3(%ids: tensor<?xi32>) {
  %t = mm.param "t" : tensor<128x64xf32>
  // expected-error @+1 {{expects ids of rank 2 but got rank 1 [?]}}
  %y = mm.embedding %ids, %t : (tensor<?xi32>, tensor<128x64xf32>) -> tensor<?x?x64xf32>
  return
}

// -----

// Tests that the embedding table is rank 2.
func.func @case4(%ids: tensor<?x?xi32>) {
  %t = mm.param "t" : tensor<128xf32>
  // expected-error @+1 {{expects table of rank 2 but got rank 1 [128]}}
  %y = mm.embedding %ids, %t : (tensor<?x?xi32>, tensor<128xf32>) -> tensor<?x?x64xf32>
  return
}

// -----

// Tests that the embedding width is the table width.
func.func @case5(%ids: tensor<?x?xi32>) {
  %t = mm.param "t" : tensor<128x64xf32>
  // expected-error @+1 {{expects result dim 2 to be 64 (table width) but got 32 in [?, ?, 32]}}
  %y = mm.embedding %ids, %t : (tensor<?x?xi32>, tensor<128x64xf32>) -> tensor<?x?x32xf32>
  return
}

// -----

// Tests that the embedding keeps the batch of the ids.
func.func @case6(%ids: tensor<2x5xi32>) {
  %t = mm.param "t" : tensor<128x64xf32>
  // expected-error @+1 {{expects result dim 0 to be 2 (batch of ids) but got 3 in [3, 5, 64]}}
  %y = mm.embedding %ids, %t : (tensor<2x5xi32>, tensor<128x64xf32>) -> tensor<3x5x64xf32>
  return
}

// -----

// Tests that the embedding result has the table's dtype.
func.func @case7(%ids: tensor<?x?xi32>) {
  %t = mm.param "t" : tensor<128x64xf32>
  // expected-error @+1 {{expects result element type 'f32' (as table) but got 'bf16'}}
  %y = mm.embedding %ids, %t : (tensor<?x?xi32>, tensor<128x64xf32>) -> tensor<?x?x64xbf16>
  return
}

// -----

// Tests that the norm weight is rank 1.
func.func @case8(%x: tensor<?x?x64xf32>) {
  %w = mm.param "w" : tensor<1x64xf32>
  // expected-error @+1 {{expects weight of rank 1 but got rank 2 [1, 64]}}
  %y = mm.rms_norm %x, %w {eps = 1.0e-5 : f64} : (tensor<?x?x64xf32>, tensor<1x64xf32>) -> tensor<?x?x64xf32>
  return
}

// -----

// Tests that the norm weight matches the features.
func.func @case9(%x: tensor<?x?x64xf32>) {
  %w = mm.param "w" : tensor<32xf32>
  // expected-error @+1 {{expects weight dim 0 to be 64 (input features) but got 32 in [32]}}
  %y = mm.rms_norm %x, %w {eps = 1.0e-5 : f64} : (tensor<?x?x64xf32>, tensor<32xf32>) -> tensor<?x?x64xf32>
  return
}

// -----

// Tests that the norm eps is positive.
func.func @case10(%x: tensor<?x?x64xf32>) {
  %w = mm.param "w" : tensor<64xf32>
  // expected-error @+1 {{expects eps > 0 but got 0}}
  %y = mm.rms_norm %x, %w {eps = 0.0 : f64} : (tensor<?x?x64xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
  return
}

// -----

// Tests that activations are rank 3.
func.func @case11(%x: tensor<?x64xf32>) {
  %w = mm.param "w" : tensor<64xf32>
  // expected-error @+1 {{expects input of rank 3 but got rank 2 [?, 64]}}
  %y = mm.rms_norm %x, %w {eps = 1.0e-5 : f64} : (tensor<?x64xf32>, tensor<64xf32>) -> tensor<?x64xf32>
  return
}

// -----

// Tests that feature dims are static.
func.func @case12(%x: tensor<?x?x?xf32>) {
  %w = mm.param "w" : tensor<64xf32>
  // expected-error @+1 {{expects input dim 2 to be static but got [?, ?, ?]}}
  %y = mm.rms_norm %x, %w {eps = 1.0e-5 : f64} : (tensor<?x?x?xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
  return
}

// -----

// Tests that the result keeps the sequence of the input.
func.func @case13(%x: tensor<2x7x64xf32>) {
  %w = mm.param "w" : tensor<64xf32>
  // expected-error @+1 {{expects result dim 1 to be 7 (sequence of input) but got 8 in [2, 8, 64]}}
  %y = mm.rms_norm %x, %w {eps = 1.0e-5 : f64} : (tensor<2x7x64xf32>, tensor<64xf32>) -> tensor<2x8x64xf32>
  return
}

// -----

// Tests that a projection's weight matches the input features.
func.func @case14(%x: tensor<?x?x64xf32>) {
  %w = mm.param "w" : tensor<96x32xf32>
  // expected-error @+1 {{expects weight dim 1 to be 64 (input features) but got 32 in [96, 32]}}
  %y = mm.linear %x, %w : (tensor<?x?x64xf32>, tensor<96x32xf32>) -> tensor<?x?x96xf32>
  return
}

// -----

// Tests that a projection's result has the weight's output features.
func.func @case15(%x: tensor<?x?x64xf32>) {
  %w = mm.param "w" : tensor<96x64xf32>
  // expected-error @+1 {{expects result dim 2 to be 96 but got 95 in [?, ?, 95]}}
  %y = mm.linear %x, %w : (tensor<?x?x64xf32>, tensor<96x64xf32>) -> tensor<?x?x95xf32>
  return
}

// -----

// Tests that a projection's weight is rank 2.
func.func @case16(%x: tensor<?x?x64xf32>) {
  %w = mm.param "w" : tensor<96xf32>
  // expected-error @+1 {{expects weight of rank 2 but got rank 1 [96]}}
  %y = mm.linear %x, %w : (tensor<?x?x64xf32>, tensor<96xf32>) -> tensor<?x?x96xf32>
  return
}

// -----

// Tests that a projection's weight has the input's dtype.
func.func @case17(%x: tensor<?x?x64xf32>) {
  %w = mm.param "w" : tensor<96x64xbf16>
  // expected-error @+1 {{expects weight element type 'f32' (as input) but got 'bf16'}}
  %y = mm.linear %x, %w : (tensor<?x?x64xf32>, tensor<96x64xbf16>) -> tensor<?x?x96xf32>
  return
}

// -----

// Tests that the logits width is the vocabulary.
func.func @case18(%x: tensor<?x?x64xf32>) {
  %w = mm.param "w" : tensor<128x64xf32>
  // expected-error @+1 {{expects result dim 2 to be 128 but got 64 in [?, ?, 64]}}
  %y = mm.logits %x, %w : (tensor<?x?x64xf32>, tensor<128x64xf32>) -> tensor<?x?x64xf32>
  return
}

// -----

// Tests that rotary_dim is even.
func.func @case19(%x: tensor<?x?x64xf32>) {
  // expected-error @+1 {{expects an even rotary_dim <= head_dim (16) but got 7}}
  %y = mm.rope %x {num_heads = 4 : i64, head_dim = 16 : i64, rotary_dim = 7 : i64, theta = 1.0e4 : f64} : (tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
  return
}

// -----

// Tests that rotary_dim fits the head.
func.func @case20(%x: tensor<?x?x64xf32>) {
  // expected-error @+1 {{expects an even rotary_dim <= head_dim (16) but got 32}}
  %y = mm.rope %x {num_heads = 4 : i64, head_dim = 16 : i64, rotary_dim = 32 : i64, theta = 1.0e4 : f64} : (tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
  return
}

// -----

// Tests that rope heads tile the features.
func.func @case21(%x: tensor<?x?x64xf32>) {
  // expected-error @+1 {{expects result dim 2 to be 48 but got 64 in [?, ?, 64]}}
  %y = mm.rope %x {num_heads = 3 : i64, head_dim = 16 : i64, rotary_dim = 16 : i64, theta = 1.0e4 : f64} : (tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
  return
}

// -----

// Tests that rope theta is positive.
func.func @case22(%x: tensor<?x?x64xf32>) {
  // expected-error @+1 {{expects theta > 0 but got -1}}
  %y = mm.rope %x {num_heads = 4 : i64, head_dim = 16 : i64, rotary_dim = 16 : i64, theta = -1.0 : f64} : (tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
  return
}

// -----

// Tests that head counts are positive.
func.func @case23(%x: tensor<?x?x64xf32>) {
  // expected-error @+1 {{expects num_heads > 0 but got 0}}
  %y = mm.rope %x {num_heads = 0 : i64, head_dim = 16 : i64, rotary_dim = 16 : i64, theta = 1.0e4 : f64} : (tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
  return
}

// -----

// Tests that lightning qkv packs three tensors per head.
func.func @case24(%x: tensor<?x?x64xf32>) {
  // expected-error @+1 {{expects qkv dim 2 to be 192 (3 * num_heads * head_dim) but got 64 in [?, ?, 64]}}
  %y = mm.lightning_attention %x {num_heads = 4 : i64, head_dim = 16 : i64, block_size = 16 : i64, layer_index = 0 : i64, num_layers = 2 : i64} : (tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
  return
}

// -----

// Tests that the lightning layer index is within the model.
func.func @case25(%x: tensor<?x?x48xf32>) {
  // expected-error @+1 {{expects layer_index in [0, 2) but got 2}}
  %y = mm.lightning_attention %x {num_heads = 1 : i64, head_dim = 16 : i64, block_size = 16 : i64, layer_index = 2 : i64, num_layers = 2 : i64} : (tensor<?x?x48xf32>) -> tensor<?x?x16xf32>
  return
}

// -----

// Tests that the lightning block size is positive.
func.func @case26(%x: tensor<?x?x48xf32>) {
  // expected-error @+1 {{expects block_size > 0 but got 0}}
  %y = mm.lightning_attention %x {num_heads = 1 : i64, head_dim = 16 : i64, block_size = 0 : i64, layer_index = 0 : i64, num_layers = 2 : i64} : (tensor<?x?x48xf32>) -> tensor<?x?x16xf32>
  return
}

// -----

// Tests that kv heads divide query heads.
func.func @case27(%x: tensor<?x?x64xf32>) {
  // expected-error @+1 {{expects num_kv_heads to divide num_heads (4) but got 3}}
  %y = mm.softmax_attention %x, %x, %x {num_heads = 4 : i64, num_kv_heads = 3 : i64, head_dim = 16 : i64, scale = 0.25 : f64} : (tensor<?x?x64xf32>, tensor<?x?x64xf32>, tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
  return
}

// -----

// Tests that keys have num_kv_heads heads.
func.func @case28(%x: tensor<?x?x64xf32>) {
  // expected-error @+1 {{expects key dim 2 to be 32 (num_kv_heads * head_dim) but got 64 in [?, ?, 64]}}
  %y = mm.softmax_attention %x, %x, %x {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 0.25 : f64} : (tensor<?x?x64xf32>, tensor<?x?x64xf32>, tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
  return
}

// -----

// Tests that values share the batch of the queries.
func.func @case29(%q: tensor<2x5x64xf32>, %v: tensor<3x5x64xf32>) {
  // expected-error @+1 {{expects value dim 0 to be 2 (batch of query) but got 3 in [3, 5, 64]}}
  %y = mm.softmax_attention %q, %q, %v {num_heads = 4 : i64, num_kv_heads = 4 : i64, head_dim = 16 : i64, scale = 0.25 : f64} : (tensor<2x5x64xf32>, tensor<2x5x64xf32>, tensor<3x5x64xf32>) -> tensor<2x5x64xf32>
  return
}

// -----

// Tests that the attention scale is positive.
func.func @case30(%x: tensor<?x?x64xf32>) {
  // expected-error @+1 {{expects scale > 0 but got 0}}
  %y = mm.softmax_attention %x, %x, %x {num_heads = 4 : i64, num_kv_heads = 4 : i64, head_dim = 16 : i64, scale = 0.0 : f64} : (tensor<?x?x64xf32>, tensor<?x?x64xf32>, tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
  return
}

// -----

// Tests that keys have the dtype of the queries.
func.func @case31(%x: tensor<?x?x64xf32>, %k: tensor<?x?x64xbf16>) {
  // expected-error @+1 {{expects key element type 'f32' (as query) but got 'bf16'}}
  %y = mm.softmax_attention %x, %k, %x {num_heads = 4 : i64, num_kv_heads = 4 : i64, head_dim = 16 : i64, scale = 0.25 : f64} : (tensor<?x?x64xf32>, tensor<?x?x64xbf16>, tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
  return
}

// -----

// Tests that top_k does not exceed the experts.
func.func @case32(%x: tensor<?x?x64xf32>) {
  %r = mm.param "r" : tensor<4x64xf32>
  %w1 = mm.param "w1" : tensor<4x96x64xf32>
  %w2 = mm.param "w2" : tensor<4x64x96xf32>
  %w3 = mm.param "w3" : tensor<4x96x64xf32>
  // expected-error @+1 {{expects top_k in [1, 4] (the number of experts) but got 5}}
  %y = mm.moe %x, %r, %w1, %w2, %w3 {top_k = 5 : i64} : (tensor<?x?x64xf32>, tensor<4x64xf32>, tensor<4x96x64xf32>, tensor<4x64x96xf32>, tensor<4x96x64xf32>) -> tensor<?x?x64xf32>
  return
}

// -----

// Tests that top_k is at least 1.
func.func @case33(%x: tensor<?x?x64xf32>) {
  %r = mm.param "r" : tensor<4x64xf32>
  %w1 = mm.param "w1" : tensor<4x96x64xf32>
  %w2 = mm.param "w2" : tensor<4x64x96xf32>
  %w3 = mm.param "w3" : tensor<4x96x64xf32>
  // expected-error @+1 {{expects top_k in [1, 4] (the number of experts) but got 0}}
  %y = mm.moe %x, %r, %w1, %w2, %w3 {top_k = 0 : i64} : (tensor<?x?x64xf32>, tensor<4x64xf32>, tensor<4x96x64xf32>, tensor<4x64x96xf32>, tensor<4x96x64xf32>) -> tensor<?x?x64xf32>
  return
}

// -----

// Tests that w1 has one matrix per expert.
func.func @case34(%x: tensor<?x?x64xf32>) {
  %r = mm.param "r" : tensor<4x64xf32>
  %w1 = mm.param "w1" : tensor<3x96x64xf32>
  %w2 = mm.param "w2" : tensor<4x64x96xf32>
  %w3 = mm.param "w3" : tensor<4x96x64xf32>
  // expected-error @+1 {{expects w1 dim 0 to be 4 (experts of router) but got 3 in [3, 96, 64]}}
  %y = mm.moe %x, %r, %w1, %w2, %w3 {top_k = 2 : i64} : (tensor<?x?x64xf32>, tensor<4x64xf32>, tensor<3x96x64xf32>, tensor<4x64x96xf32>, tensor<4x96x64xf32>) -> tensor<?x?x64xf32>
  return
}

// -----

// Tests that w2 maps the ffn back to hidden.
func.func @case35(%x: tensor<?x?x64xf32>) {
  %r = mm.param "r" : tensor<4x64xf32>
  %w1 = mm.param "w1" : tensor<4x96x64xf32>
  %w2 = mm.param "w2" : tensor<4x32x96xf32>
  %w3 = mm.param "w3" : tensor<4x96x64xf32>
  // expected-error @+1 {{expects w2 dim 1 to be 64 (hidden size) but got 32 in [4, 32, 96]}}
  %y = mm.moe %x, %r, %w1, %w2, %w3 {top_k = 2 : i64} : (tensor<?x?x64xf32>, tensor<4x64xf32>, tensor<4x96x64xf32>, tensor<4x32x96xf32>, tensor<4x96x64xf32>) -> tensor<?x?x64xf32>
  return
}

// -----

// Tests that the router is rank 2.
func.func @case36(%x: tensor<?x?x64xf32>) {
  %r = mm.param "r" : tensor<4xf32>
  %w = mm.param "w" : tensor<4x96x64xf32>
  %w2 = mm.param "w2" : tensor<4x64x96xf32>
  // expected-error @+1 {{expects router of rank 2 but got rank 1 [4]}}
  %y = mm.moe %x, %r, %w, %w2, %w {top_k = 2 : i64} : (tensor<?x?x64xf32>, tensor<4xf32>, tensor<4x96x64xf32>, tensor<4x64x96xf32>, tensor<4x96x64xf32>) -> tensor<?x?x64xf32>
  return
}

// -----

// Tests that labels are rank 2.
func.func @case37(%x: tensor<?x?x64xf32>, %l: tensor<?xi32>) {
  // expected-error @+1 {{expects labels of rank 2 but got rank 1 [?]}}
  %y = mm.cross_entropy %x, %l : (tensor<?x?x64xf32>, tensor<?xi32>) -> tensor<f32>
  return
}

// -----

// Tests that labels share the batch of the logits.
func.func @case38(%x: tensor<2x5x64xf32>, %l: tensor<1x5xi32>) {
  // expected-error @+1 {{expects labels dim 0 to be 2 (batch of logits) but got 1 in [1, 5]}}
  %y = mm.cross_entropy %x, %l : (tensor<2x5x64xf32>, tensor<1x5xi32>) -> tensor<f32>
  return
}

// -----

// Tests that elementwise ops keep their operand types.
func.func @case39(%x: tensor<?x?x64xf32>, %z: tensor<?x?x32xf32>) {
  // expected-error @+1 {{requires the same type for all operands and results}}
  %y = "mm.mul"(%x, %z) : (tensor<?x?x64xf32>, tensor<?x?x32xf32>) -> tensor<?x?x64xf32>
  return
}

// -----

// Tests that a sliced weight gives both slice attributes.
func.func @slice_half(%x: tensor<?x?x64xf32>) {
  // expected-error @+1 {{expects slice_axis and slice_offset together but got only slice_axis}}
  %w = mm.param "gate_up" {slice_axis = 1 : i64} : tensor<4x8x64xf32>
  return
}

// -----

// Tests that the slice axis is a dim of the weight.
func.func @slice_axis(%x: tensor<?x?x64xf32>) {
  // expected-error @+1 {{expects slice_axis in [0, 3) but got 3}}
  %w = mm.param "gate_up" {slice_axis = 3 : i64, slice_offset = 0 : i64} : tensor<4x8x64xf32>
  return
}

// -----

// Tests that the slice offset is not negative.
func.func @slice_offset(%x: tensor<?x?x64xf32>) {
  // expected-error @+1 {{expects a non-negative slice_offset but got -8}}
  %w = mm.param "gate_up" {slice_axis = 1 : i64, slice_offset = -8 : i64} : tensor<4x8x64xf32>
  return
}

// -----

// Tests that a slice is not also stacked over experts.
func.func @slice_stacked(%x: tensor<?x?x64xf32>) {
  // expected-error @+1 {{expects a sliced weight not to be stacked over {e} but got 'experts.{e}.w'}}
  %w = mm.param "experts.{e}.w" {slice_axis = 1 : i64, slice_offset = 0 : i64} : tensor<4x8x64xf32>
  return
}
