// RUN: mm-opt %s --split-input-file --verify-diagnostics --mm-set-dtype="dtype=bf16" | FileCheck %s

// Tests that dtype=bf16 makes weights and activations bf16 and keeps the logits f32.
// CHECK-LABEL: mmx.program @model
// CHECK: mmx.input "input_ids" {dtype = i32
// CHECK: mmx.weight "emb" {dtype = bf16
// CHECK: mmx.weight "lm_head" {dtype = bf16
// CHECK: mmx.alloc {dtype = bf16, shape = ["B", "T", 4]}
// CHECK: mmx.alloc {dtype = f32, shape = ["B", "T", 8]}
mmx.program @model attributes {max_batch = 1 : i64, max_seq = 8 : i64, target = "cpu"} {
  %ids = mmx.input "input_ids" {dtype = i32, shape = ["B", "T"]}
  %emb = mmx.weight "emb" {dtype = f32, shape = [8, 4]}
  %lm = mmx.weight "lm_head" {dtype = f32, shape = [8, 4]}
  %h = mmx.alloc {dtype = f32, shape = ["B", "T", 4]}
  mmx.launch "embedding"(%ids, %emb) -> (%h) {params = {}}
  %l = mmx.alloc {dtype = f32, shape = ["B", "T", 8]}
  mmx.launch "logits"(%h, %lm) -> (%l) {params = {}}
  mmx.output "logits" %l
}

// -----

// Tests that an output that would become bf16 is refused.
mmx.program @hidden attributes {max_batch = 1 : i64, max_seq = 8 : i64, target = "cpu"} {
  %ids = mmx.input "input_ids" {dtype = i32, shape = ["B", "T"]}
  %emb = mmx.weight "emb" {dtype = f32, shape = [8, 4]}
  %h = mmx.alloc {dtype = f32, shape = ["B", "T", 4]}
  mmx.launch "embedding"(%ids, %emb) -> (%h) {params = {}}
  // expected-error @+1 {{expects a program output computed by logits or cross_entropy with dtype=bf16 but 'hidden' would be bf16}}
  mmx.output "hidden" %h
}

// -----

// Tests that a training program gets bf16 weights and activations, f32 weight
// gradients (including their scaled_add sums), and an fp32 master state that
// the optimizer updates and store_param writes back into the bf16 weight.
// CHECK-LABEL: mmx.program @train
// CHECK: %[[W:.+]] = mmx.weight "w" {dtype = bf16
// CHECK: %[[DX:.+]] = mmx.alloc {dtype = bf16, shape = ["B", "T", 8]}
// CHECK: %[[DW:.+]] = mmx.alloc {dtype = f32, shape = [8, 8]}
// CHECK: %[[DW2:.+]] = mmx.alloc {dtype = f32, shape = [8, 8]}
// CHECK: %[[SUM:.+]] = mmx.alloc {dtype = f32, shape = [8, 8]}
// CHECK: mmx.launch "scaled_add"(%[[DW]], %[[DW2]]) -> (%[[SUM]])
// CHECK: %[[N:.+]] = mmx.alloc {dtype = f32, shape = []}
// CHECK: %[[MASTER:.+]] = mmx.state "master:w" {dtype = f32, shape = [8, 8]}
// CHECK-NEXT: mmx.launch "adamw"(%[[MASTER]], %[[SUM]], %{{.+}}) -> (%[[MASTER]], %{{.+}}, %{{.+}})
// CHECK-NEXT: mmx.launch "store_param"(%[[MASTER]], %[[W]]) -> (%[[W]])
// CHECK: mmx.output "grad_norm" %[[N]]
mmx.program @train attributes {max_batch = 1 : i64, max_seq = 8 : i64, target = "cpu"} {
  %x = mmx.input "x" {dtype = f32, shape = ["B", "T", 8]}
  %dy = mmx.input "dy" {dtype = f32, shape = ["B", "T", 8]}
  %lr = mmx.input "lr" {dtype = f32, shape = []}
  %step = mmx.input "step" {dtype = f32, shape = []}
  %w = mmx.weight "w" {dtype = f32, shape = [8, 8]}
  %dx = mmx.alloc {dtype = f32, shape = ["B", "T", 8]}
  %dw = mmx.alloc {dtype = f32, shape = [8, 8]}
  mmx.launch "linear_grad"(%x, %w, %dy) -> (%dx, %dw) {params = {}}
  %dx2 = mmx.alloc {dtype = f32, shape = ["B", "T", 8]}
  %dw2 = mmx.alloc {dtype = f32, shape = [8, 8]}
  mmx.launch "linear_grad"(%x, %w, %dy) -> (%dx2, %dw2) {params = {}}
  %sum = mmx.alloc {dtype = f32, shape = [8, 8]}
  mmx.launch "scaled_add"(%dw, %dw2) -> (%sum) {params = {alpha = 1.0 : f64, beta = 1.0 : f64}}
  %n = mmx.alloc {dtype = f32, shape = []}
  mmx.launch "grad_norm"(%sum) -> (%n) {params = {}}
  %m = mmx.state "adamw.m:w" {dtype = f32, shape = [8, 8]}
  %v = mmx.state "adamw.v:w" {dtype = f32, shape = [8, 8]}
  mmx.launch "adamw"(%w, %sum, %m, %v, %n, %lr, %step) -> (%w, %m, %v) {params = {beta1 = 9.000000e-01 : f64, beta2 = 0.999 : f64, eps = 1.000000e-08 : f64, max_norm = 1.000000e+00 : f64, weight_decay = 0.000000e+00 : f64}}
  mmx.output "grad_norm" %n
}
