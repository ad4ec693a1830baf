// RUN: mm-opt %s --split-input-file --mm-fuse | FileCheck %s

// Tests that a residual scaled_add whose only reader is the next rms_norm becomes add_rms_norm,
// with the params of both and the intermediate buffer gone.
// CHECK-LABEL: mmx.program @residual
// CHECK: %[[A:.+]] = mmx.input "a"
// CHECK: %[[B:.+]] = mmx.input "b"
// CHECK: %[[W:.+]] = mmx.weight "norm"
// CHECK-NOT: scaled_add
// CHECK: %[[O:.+]] = mmx.alloc
// CHECK-NEXT: mmx.launch "add_rms_norm"(%[[A]], %[[B]], %[[W]]) -> (%[[O]]) {params = {alpha = 1.100000e+00 : f64, beta = 1.200000e+00 : f64, eps = 1.000000e-05 : f64}}
// CHECK-NEXT: mmx.output "out" %[[O]]
mmx.program @residual attributes {max_batch = 1 : i64, max_seq = 8 : i64, target = "cpu"} {
  %a = mmx.input "a" {dtype = f32, shape = ["B", "T", 8]}
  %b = mmx.input "b" {dtype = f32, shape = ["B", "T", 8]}
  %w = mmx.weight "norm" {dtype = f32, shape = [8]}
  %h = mmx.alloc {dtype = f32, shape = ["B", "T", 8]}
  mmx.launch "scaled_add"(%a, %b) -> (%h) {params = {alpha = 1.1 : f64, beta = 1.2 : f64}}
  %o = mmx.alloc {dtype = f32, shape = ["B", "T", 8]}
  mmx.launch "rms_norm"(%h, %w) -> (%o) {params = {eps = 1.0e-5 : f64}}
  mmx.output "out" %o
}

// -----

// Tests that the output gate sigmoid(g) * o fuses into sigmoid_mul with the gate first, whichever
// operand of mul the gate is.
// CHECK-LABEL: mmx.program @gate
// CHECK: %[[G:.+]] = mmx.input "g"
// CHECK: %[[X:.+]] = mmx.input "x"
// CHECK-NOT: "sigmoid"
// CHECK: mmx.launch "sigmoid_mul"(%[[G]], %[[X]])
// CHECK: mmx.launch "sigmoid_mul"(%[[G]], %[[X]])
// CHECK-NOT: "mul"
mmx.program @gate attributes {max_batch = 1 : i64, max_seq = 8 : i64, target = "cpu"} {
  %g = mmx.input "g" {dtype = f32, shape = ["B", "T", 8]}
  %x = mmx.input "x" {dtype = f32, shape = ["B", "T", 8]}
  %s = mmx.alloc {dtype = f32, shape = ["B", "T", 8]}
  mmx.launch "sigmoid"(%g) -> (%s) {params = {}}
  %m = mmx.alloc {dtype = f32, shape = ["B", "T", 8]}
  mmx.launch "mul"(%s, %x) -> (%m) {params = {}}
  %s2 = mmx.alloc {dtype = f32, shape = ["B", "T", 8]}
  mmx.launch "sigmoid"(%g) -> (%s2) {params = {}}
  %m2 = mmx.alloc {dtype = f32, shape = ["B", "T", 8]}
  mmx.launch "mul"(%x, %s2) -> (%m2) {params = {}}
  mmx.output "m" %m
  mmx.output "m2" %m2
}

// -----

// Tests that silu feeding lightning attention is applied as the attention loads qkv.
// CHECK-LABEL: mmx.program @lightning
// CHECK: %[[QKV:.+]] = mmx.input "qkv"
// CHECK-NOT: "silu"
// CHECK: mmx.launch "lightning_attention"(%[[QKV]]) -> ({{.*}}) {params = {block_size = 4 : i64, head_dim = 2 : i64, layer_index = 0 : i64, num_heads = 1 : i64, num_layers = 1 : i64, silu_input = 1 : i64}}
mmx.program @lightning attributes {max_batch = 1 : i64, max_seq = 8 : i64, target = "cpu"} {
  %qkv = mmx.input "qkv" {dtype = f32, shape = ["B", "T", 6]}
  %a = mmx.alloc {dtype = f32, shape = ["B", "T", 6]}
  mmx.launch "silu"(%qkv) -> (%a) {params = {}}
  %o = mmx.alloc {dtype = f32, shape = ["B", "T", 2]}
  mmx.launch "lightning_attention"(%a) -> (%o) {params = {block_size = 4 : i64, head_dim = 2 : i64, layer_index = 0 : i64, num_heads = 1 : i64, num_layers = 1 : i64}}
  mmx.output "o" %o
}

// -----

// Tests that an intermediate with a second reader, or that is a program output, is kept.
// CHECK-LABEL: mmx.program @shared
// CHECK: mmx.launch "scaled_add"
// CHECK: mmx.launch "rms_norm"
// CHECK: mmx.launch "sigmoid"
// CHECK: mmx.launch "mul"
// CHECK-NOT: add_rms_norm
// CHECK-NOT: sigmoid_mul
mmx.program @shared attributes {max_batch = 1 : i64, max_seq = 8 : i64, target = "cpu"} {
  %a = mmx.input "a" {dtype = f32, shape = ["B", "T", 8]}
  %w = mmx.weight "norm" {dtype = f32, shape = [8]}
  %h = mmx.alloc {dtype = f32, shape = ["B", "T", 8]}
  mmx.launch "scaled_add"(%a, %a) -> (%h) {params = {alpha = 1.0 : f64, beta = 1.0 : f64}}
  %o = mmx.alloc {dtype = f32, shape = ["B", "T", 8]}
  mmx.launch "rms_norm"(%h, %w) -> (%o) {params = {eps = 1.0e-5 : f64}}
  %s = mmx.alloc {dtype = f32, shape = ["B", "T", 8]}
  mmx.launch "sigmoid"(%a) -> (%s) {params = {}}
  %m = mmx.alloc {dtype = f32, shape = ["B", "T", 8]}
  mmx.launch "mul"(%s, %o) -> (%m) {params = {}}
  mmx.output "h" %h
  mmx.output "s" %s
  mmx.output "m" %m
}
