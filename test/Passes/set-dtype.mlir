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
