// RUN: mm-opt %s | mm-opt | FileCheck %s

// Tests that every mmx op round-trips through the printer and parser.

// CHECK-LABEL: mmx.program @forward
// CHECK-SAME: arena_bytes = 4096 : i64, max_batch = 2 : i64, max_seq = 8 : i64, target = "cpu"
mmx.program @forward attributes {max_batch = 2 : i64, max_seq = 8 : i64, target = "cpu", arena_bytes = 4096 : i64} {
  // CHECK: %[[IDS:.+]] = mmx.input "input_ids" {dtype = i32, shape = ["B", "T"]}
  %ids = mmx.input "input_ids" {dtype = i32, shape = ["B", "T"]}
  // CHECK: %[[W:.+]] = mmx.weight "emb" {dtype = f32, shape = [16, 4]}
  %w = mmx.weight "emb" {dtype = f32, shape = [16, 4]}
  // CHECK: mmx.weight "experts.gate_up_proj" {dtype = bf16, shape = [2, 8, 4], slice_axis = 1 : i64, slice_offset = 8 : i64}
  %up = mmx.weight "experts.gate_up_proj" {dtype = bf16, shape = [2, 8, 4], slice_axis = 1 : i64, slice_offset = 8 : i64}
  // CHECK: %[[H:.+]] = mmx.alloc {dtype = f32, offset = 0 : i64, shape = ["B", "T", 4]}
  %h = mmx.alloc {dtype = f32, offset = 0 : i64, shape = ["B", "T", 4]}
  // CHECK: mmx.launch "embedding"(%[[IDS]], %[[W]]) -> (%[[H]]) {params = {}}
  mmx.launch "embedding"(%ids, %w) -> (%h) {params = {}}
  // CHECK: mmx.output "logits" %[[H]]
  mmx.output "logits" %h
}
