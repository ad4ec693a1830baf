// RUN: mm-opt %s --split-input-file --allow-unregistered-dialect --mm-lower-to-mmx="max-batch=2 max-seq=32" --verify-diagnostics | FileCheck %s

// Tests that a model function becomes an mmx program: arguments are inputs, params are weights,
// each op is an alloc plus a launch of the kernel of the same name with its attributes as params,
// and dynamic dims 0/1 become the symbols B/T.

// CHECK-LABEL: mmx.program @forward
// CHECK-SAME: max_batch = 2 : i64, max_seq = 32 : i64, target = "cpu"
// CHECK: %[[IDS:.+]] = mmx.input "input_ids" {dtype = i32, shape = ["B", "T"]}
// CHECK: %[[EMB:.+]] = mmx.weight "emb" {dtype = f32, shape = [16, 8]}
// CHECK: %[[H:.+]] = mmx.alloc {dtype = f32, shape = ["B", "T", 8]}
// CHECK-NEXT: mmx.launch "embedding"(%[[IDS]], %[[EMB]]) -> (%[[H]]) {params = {}}
// CHECK: %[[NW:.+]] = mmx.weight "norm" {dtype = f32, shape = [8]}
// CHECK: %[[N:.+]] = mmx.alloc {dtype = f32, shape = ["B", "T", 8]}
// CHECK-NEXT: mmx.launch "rms_norm"(%[[H]], %[[NW]]) -> (%[[N]]) {params = {eps = 1.000000e-05 : f64}}
// CHECK: %[[L:.+]] = mmx.alloc {dtype = f32, shape = ["B", "T", 16]}
// CHECK-NEXT: mmx.launch "logits"(%[[N]], %[[EMB]]) -> (%[[L]]) {params = {}}
// CHECK-NEXT: mmx.output "logits" %[[L]]
// CHECK-NOT: func.func
func.func @forward(%ids: tensor<?x?xi32>) -> tensor<?x?x16xf32> {
  %emb = mm.param "emb" : tensor<16x8xf32>
  %h = mm.embedding %ids, %emb : (tensor<?x?xi32>, tensor<16x8xf32>) -> tensor<?x?x8xf32>
  %nw = mm.param "norm" : tensor<8xf32>
  %n = mm.rms_norm %h, %nw {eps = 1.0e-5 : f64} : (tensor<?x?x8xf32>, tensor<8xf32>) -> tensor<?x?x8xf32>
  %l = mm.logits %n, %emb : (tensor<?x?x8xf32>, tensor<16x8xf32>) -> tensor<?x?x16xf32>
  return %l : tensor<?x?x16xf32>
}

// -----

// Tests that mm.name attributes rename inputs and outputs, and a scalar result defaults to "loss".

// CHECK-LABEL: mmx.program @train
// CHECK: mmx.input "tokens"
// CHECK: mmx.input "labels"
// CHECK: mmx.launch "cross_entropy"
// CHECK: mmx.output "loss"
func.func @train(%ids: tensor<?x?xi32> {mm.name = "tokens"}, %labels: tensor<?x?xi32>) -> tensor<f32> {
  %emb = mm.param "emb" : tensor<16x8xf32>
  %h = mm.embedding %ids, %emb : (tensor<?x?xi32>, tensor<16x8xf32>) -> tensor<?x?x8xf32>
  %l = mm.logits %h, %emb : (tensor<?x?x8xf32>, tensor<16x8xf32>) -> tensor<?x?x16xf32>
  %loss = mm.cross_entropy %l, %labels : (tensor<?x?x16xf32>, tensor<?x?xi32>) -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// Tests that only mm ops can be lowered.
func.func @forward(%x: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  // expected-error @+1 {{'test.op' op cannot be lowered to mmx}}
  %0 = "test.op"() : () -> tensor<?x?x8xf32>
  return %0 : tensor<?x?x8xf32>
}

// -----

// Tests that a result must be computed, not passed through.
func.func @forward(%x: tensor<?x?x8xf32>) -> tensor<?x?x8xf32> {
  // expected-error @+1 {{expects result 0 to be computed by an mm op, not an input or weight}}
  return %x : tensor<?x?x8xf32>
}

// -----

// Tests that only batch and sequence may be dynamic.
// expected-error @+1 {{expects only dims 0 (batch) and 1 (sequence) to be dynamic but got 'tensor<?x?x?xf32>'}}
func.func @forward(%x: tensor<?x?x?xf32>) -> tensor<?x?x?xf32> {
  %0 = mm.silu %x : tensor<?x?x?xf32>
  return %0 : tensor<?x?x?xf32>
}

// -----

// Tests that a module holds one model function.
// expected-error @+1 {{mm-lower-to-mmx expects exactly one func.func (the model) but found 2}}
module {
  func.func @a() { return }
  func.func @b() { return }
}
