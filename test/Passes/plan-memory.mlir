// RUN: mm-opt %s --split-input-file --mm-plan-memory="report=true" 2>%t.err | FileCheck %s
// RUN: FileCheck %s --check-prefix=REPORT < %t.err

// Tests that buffers whose lifetimes do not overlap share arena space, that live buffers never
// overlap, that sizes are taken at max_batch x max_seq and rounded up to 256 bytes, and that the
// program records the peak.
// %a: [B,T,8] f32 at 2x4 = 256 B; %b: [B,T,16] = 512 B; %c reuses %a's slot once %a is dead.

// REPORT: mm-plan-memory: @chain arena 768 bytes at batch 2 x seq 4 (3 buffers, 1024 bytes without reuse)
// CHECK-LABEL: mmx.program @chain
// CHECK-SAME: arena_bytes = 768 : i64
// CHECK: %[[A:.+]] = mmx.alloc {dtype = f32, offset = 512 : i64, shape = ["B", "T", 8]}
// CHECK: %[[B:.+]] = mmx.alloc {dtype = f32, offset = 0 : i64, shape = ["B", "T", 16]}
// CHECK: %[[C:.+]] = mmx.alloc {dtype = f32, offset = 512 : i64, shape = ["B", "T", 8]}
mmx.program @chain attributes {max_batch = 2 : i64, max_seq = 4 : i64, target = "cpu"} {
  %ids = mmx.input "input_ids" {dtype = i32, shape = ["B", "T"]}
  %w = mmx.weight "emb" {dtype = f32, shape = [16, 8]}
  %a = mmx.alloc {dtype = f32, shape = ["B", "T", 8]}
  mmx.launch "embedding"(%ids, %w) -> (%a) {params = {}}
  %b = mmx.alloc {dtype = f32, shape = ["B", "T", 16]}
  mmx.launch "logits"(%a, %w) -> (%b) {params = {}}
  %c = mmx.alloc {dtype = f32, shape = ["B", "T", 8]}
  mmx.launch "silu"(%b) -> (%c) {params = {}}
  mmx.output "logits" %b
}

// -----

// Tests that an output stays live to the end, so later buffers cannot take its space, and that
// odd sizes are aligned to 256 bytes.

// REPORT: mm-plan-memory: @outputs arena 512 bytes
// CHECK-LABEL: mmx.program @outputs
// CHECK-SAME: arena_bytes = 512 : i64
// CHECK: mmx.alloc {dtype = f32, offset = 0 : i64, shape = [3]}
// CHECK: mmx.alloc {dtype = f32, offset = 256 : i64, shape = [5]}
mmx.program @outputs attributes {max_batch = 1 : i64, max_seq = 1 : i64, target = "cpu"} {
  %x = mmx.input "x" {dtype = f32, shape = [3]}
  %a = mmx.alloc {dtype = f32, shape = [3]}
  mmx.launch "silu"(%x) -> (%a) {params = {}}
  %b = mmx.alloc {dtype = f32, shape = [5]}
  mmx.launch "silu"(%x) -> (%b) {params = {}}
  mmx.output "a" %a
  mmx.output "b" %b
}
