// RUN: mm-opt %s --split-input-file --verify-diagnostics --mm-last-logits | FileCheck %s

// Tests that the output logits become [B, 1, V] computed at the last position only.
// CHECK-LABEL: mmx.program @model
// CHECK: %[[L:.+]] = mmx.alloc {dtype = f32, shape = ["B", 1, 8]}
// CHECK-NEXT: mmx.launch "logits"(%{{.+}}, %{{.+}}) -> (%[[L]]) {params = {last_position = 1 : i64}}
// CHECK-NEXT: mmx.output "logits" %[[L]]
mmx.program @model attributes {max_batch = 2 : i64, max_seq = 8 : i64, target = "cpu"} {
  %h = mmx.input "h" {dtype = f32, shape = ["B", "T", 4]}
  %lm = mmx.weight "lm_head" {dtype = f32, shape = [8, 4]}
  %l = mmx.alloc {dtype = f32, shape = ["B", "T", 8]}
  mmx.launch "logits"(%h, %lm) -> (%l) {params = {}}
  mmx.output "logits" %l
}

// -----

// Tests that a program without output logits is refused.
// expected-error @+1 {{expects a logits launch whose result is a program output for logits=last but found none}}
mmx.program @nologits attributes {max_batch = 1 : i64, max_seq = 8 : i64, target = "cpu"} {
  %h = mmx.input "h" {dtype = f32, shape = ["B", "T", 4]}
  %o = mmx.alloc {dtype = f32, shape = ["B", "T", 4]}
  mmx.launch "silu"(%h) -> (%o) {params = {}}
  mmx.output "out" %o
}
