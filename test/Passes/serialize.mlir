// RUN: mm-opt %s --split-input-file --mm-serialize="artifact=%t.mmb" --verify-diagnostics -o /dev/null
// RUN: mm-run inspect %t.mmb | FileCheck %s

// Tests that a planned program is written as an artifact that the runtime loads and verifies,
// with its limits, buffers (kinds, dtypes, symbolic shapes, offsets), bindings and steps.

// CHECK: version: 1
// CHECK: model: forward
// CHECK: target: cpu
// CHECK: max_batch: 2
// CHECK: max_seq: 8
// CHECK: arena_bytes: 1024
// CHECK: steps: 2
// CHECK: input input_ids = %0 input_ids:i32[B, T]
// CHECK: output logits = %{{[0-9]+}} {{.*}}:f32[B, T, 8]
// CHECK: step 0: embedding in=[%0 input_ids:i32[B, T], %1 emb:f32[16, 8]] out=[%3 {{.*}}:f32[B, T, 8]]
// CHECK: step 1: rms_norm {{.*}} eps=1e-05
mmx.program @forward attributes {arena_bytes = 1024 : i64, max_batch = 2 : i64, max_seq = 8 : i64, target = "cpu"} {
  %ids = mmx.input "input_ids" {dtype = i32, shape = ["B", "T"]}
  %w = mmx.weight "emb" {dtype = f32, shape = [16, 8]}
  %nw = mmx.weight "norm" {dtype = f32, shape = [8]}
  %h = mmx.alloc {dtype = f32, offset = 0 : i64, shape = ["B", "T", 8]}
  mmx.launch "embedding"(%ids, %w) -> (%h) {params = {}}
  %n = mmx.alloc {dtype = f32, offset = 512 : i64, shape = ["B", "T", 8]}
  mmx.launch "rms_norm"(%h, %nw) -> (%n) {params = {eps = 1.0e-5 : f64}}
  mmx.output "logits" %n
}

// -----

// Tests that an unplanned program is refused.
// expected-error @+1 {{has no arena_bytes: run mm-plan-memory before mm-serialize}}
mmx.program @forward attributes {max_batch = 1 : i64, max_seq = 8 : i64, target = "cpu"} {
}

// -----

// Tests that a GPU target needs the CUDA source of mm-codegen-cuda.
// expected-error @+1 {{targets 'sm_90a' but has no cuda_source: run mm-codegen-cuda before mm-serialize}}
mmx.program @forward attributes {arena_bytes = 0 : i64, max_batch = 1 : i64, max_seq = 8 : i64, target = "sm_90a"} {
}
