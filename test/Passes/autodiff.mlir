// RUN: mm-opt %s --split-input-file --mm-autodiff="optimizer=none chunk-rows=64" --verify-diagnostics | FileCheck %s
// RUN: mm-opt %s --split-input-file --mm-autodiff="optimizer=adamw weight-decay=0.1 max-norm=0.5" --verify-diagnostics | FileCheck %s --check-prefix=ADAMW
// RUN: mm-opt %s --split-input-file --mm-autodiff="optimizer=came" --verify-diagnostics | FileCheck %s --check-prefix=CAME
// RUN: mm-opt %s --split-input-file --mm-autodiff="optimizer=none recompute=true" --verify-diagnostics | FileCheck %s --check-prefix=RECOMPUTE

// Tests that the logits become the fused loss, each op emits its backward in reverse order, the
// gradient of the tied embedding (used by mm.embedding and the lm_head) is summed, and the
// function returns the loss and each weight's gradient by name.

// CHECK-LABEL: func.func @tied
// CHECK-SAME: (%[[IDS:.+]]: tensor<?x?xi32> {mm.name = "input_ids"}, %[[LABELS:.+]]: tensor<?x?xi32> {mm.name = "labels"})
// CHECK-SAME: -> (tensor<f32> {mm.name = "loss"}, tensor<16x8xf32> {mm.name = "grad:emb"}, tensor<8xf32> {mm.name = "grad:model.layers.0.norm"}, tensor<8x8xf32> {mm.name = "grad:model.layers.0.proj"})
// CHECK: %[[EMB:.+]] = mm.param "emb"
// CHECK: %[[H:.+]] = mm.embedding %[[IDS]], %[[EMB]]
// CHECK: %[[N:.+]] = mm.rms_norm %[[H]]
// CHECK: %[[P:.+]] = mm.linear %[[N]]
// CHECK: %[[S:.+]] = mm.silu %[[P]]
// CHECK: %[[R:.+]] = mm.scaled_add %[[N]], %[[S]]
// CHECK-NOT: mm.logits
// CHECK: %[[LOSS:.+]] = mm.lm_head_loss %[[R]], %[[EMB]], %[[LABELS]] {chunk_rows = 64 : i64}
// CHECK: %[[DR:.+]], %[[DHEAD:.+]] = mm.lm_head_loss_grad %[[R]], %[[EMB]], %[[LABELS]] {chunk_rows = 64 : i64}
// The residual's factors stay pending: the silu branch reads its gradient as a scaled copy, the
// norm branch folds 1.3 into its sum (no scaled copy of dR for it).
// CHECK-NOT: mm.scaled_add %[[DR]], %[[DR]] {alpha = 1.300000e+00
// CHECK: %[[DS:.+]] = mm.scaled_add %[[DR]], %[[DR]] {alpha = 9.000000e-01 : f64, beta = 0.000000e+00 : f64}
// CHECK: %[[DP:.+]] = mm.silu_grad %[[P]], %[[DS]]
// CHECK: %[[DN2:.+]], %[[DW:.+]] = mm.linear_grad %[[N]], %{{.+}}, %[[DP]]
// CHECK: %[[DN:.+]] = mm.scaled_add %[[DR]], %[[DN2]] {alpha = 1.300000e+00 : f64, beta = 1.000000e+00 : f64}
// CHECK: %[[DH:.+]], %[[DNW:.+]] = mm.rms_norm_grad %[[H]], %{{.+}}, %[[DN]]
// CHECK: %[[DT:.+]] = mm.embedding_grad %[[IDS]], %[[DH]]
// CHECK: %[[DEMB:.+]] = mm.scaled_add %[[DHEAD]], %[[DT]] {alpha = 1.000000e+00 : f64, beta = 1.000000e+00 : f64}
// CHECK: return %[[LOSS]], %[[DEMB]], %[[DNW]], %[[DW]]

// Tests that with an optimizer every weight is updated in place through zero-initialised states,
// after the global gradient norm, and the function returns (loss, grad_norm).

// ADAMW-LABEL: func.func @tied
// ADAMW-SAME: %{{.+}}: tensor<f32> {mm.name = "lr"}, %{{.+}}: tensor<f32> {mm.name = "step"})
// ADAMW-SAME: -> (tensor<f32> {mm.name = "loss"}, tensor<f32> {mm.name = "grad_norm"})
// ADAMW: %[[NORM:.+]] = mm.grad_norm
// ADAMW: mm.state "adamw.m:emb" : tensor<16x8xf32>
// ADAMW: mm.state "adamw.v:emb" : tensor<16x8xf32>
// ADAMW: mm.adamw {{.+}}, %[[NORM]], {{.+}} {beta1 = 9.000000e-01 : f64, beta2 = 0.99899999999999999 : f64, eps = 1.000000e-08 : f64, max_norm = 5.000000e-01 : f64, weight_decay = 1.000000e-01 : f64}
// ADAMW-COUNT-2: mm.adamw
// ADAMW: return %{{.+}}, %[[NORM]]

// CAME factors matrices and keeps an unfactored second moment for vectors.
// CAME: mm.state "came.row:emb" : tensor<16xf32>
// CAME: mm.state "came.col:emb" : tensor<8xf32>
// CAME: mm.came %
// CAME: mm.state "came.v:model.layers.0.norm" : tensor<8xf32>
// CAME: mm.came_vector

// Tests that recomputation clones the layer's forward ops before its backward, and the backward
// reads the clones.
// RECOMPUTE: %[[P:.+]] = mm.linear
// RECOMPUTE: mm.lm_head_loss_grad
// RECOMPUTE: %[[N2:.+]] = mm.rms_norm
// RECOMPUTE: %[[P2:.+]] = mm.linear %[[N2]]
// RECOMPUTE: mm.silu_grad %[[P2]]
// RECOMPUTE: mm.linear_grad %[[N2]]
func.func @tied(%ids: tensor<?x?xi32>) -> tensor<?x?x16xf32> {
  %emb = mm.param "emb" : tensor<16x8xf32>
  %h = mm.embedding %ids, %emb : (tensor<?x?xi32>, tensor<16x8xf32>) -> tensor<?x?x8xf32> loc("model.embed_tokens")
  %nw = mm.param "model.layers.0.norm" : tensor<8xf32> loc("model.layers.0.norm")
  %n = mm.rms_norm %h, %nw {eps = 1.0e-5 : f64} : (tensor<?x?x8xf32>, tensor<8xf32>) -> tensor<?x?x8xf32> loc("model.layers.0.norm")
  %w = mm.param "model.layers.0.proj" : tensor<8x8xf32> loc("model.layers.0.proj")
  %p = mm.linear %n, %w : (tensor<?x?x8xf32>, tensor<8x8xf32>) -> tensor<?x?x8xf32> loc("model.layers.0.proj")
  %s = mm.silu %p : tensor<?x?x8xf32> loc("model.layers.0.act")
  %r = mm.scaled_add %n, %s {alpha = 1.3 : f64, beta = 0.9 : f64} : tensor<?x?x8xf32> loc("model.layers.0.residual")
  %l = mm.logits %r, %emb : (tensor<?x?x8xf32>, tensor<16x8xf32>) -> tensor<?x?x16xf32> loc("lm_head")
  return %l : tensor<?x?x16xf32>
}

// -----

// Tests that the model must return its logits.
func.func @no_logits(%ids: tensor<?x?xi32>) -> tensor<?x?x8xf32> {
  %emb = mm.param "emb" : tensor<16x8xf32>
  %h = mm.embedding %ids, %emb : (tensor<?x?xi32>, tensor<16x8xf32>) -> tensor<?x?x8xf32>
  // expected-error @+1 {{mm-autodiff expects the returned value to be an mm.logits used only by the return}}
  return %h : tensor<?x?x8xf32>
}
