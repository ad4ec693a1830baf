// RUN: mm-opt %s --split-input-file --verify-diagnostics | FileCheck %s

// Tests that an optimizer state buffer round-trips and an update launch may write it.
// CHECK-LABEL: mmx.program @train
// CHECK: %[[M:.+]] = mmx.state "adamw.m:w" {dtype = f32, shape = [4]}
// CHECK: mmx.launch "adamw"({{.+}}, %[[M]], {{.+}}) -> ({{.+}}, %[[M]], {{.+}})
mmx.program @train attributes {max_batch = 1 : i64, max_seq = 4 : i64, target = "cpu", arena_bytes = 256 : i64} {
  %lr = mmx.input "lr" {dtype = f32, shape = []}
  %step = mmx.input "step" {dtype = f32, shape = []}
  %w = mmx.weight "w" {dtype = f32, shape = [4]}
  %g = mmx.alloc {dtype = f32, shape = [4], offset = 0 : i64}
  %n = mmx.alloc {dtype = f32, shape = [], offset = 0 : i64}
  %m = mmx.state "adamw.m:w" {dtype = f32, shape = [4]}
  %v = mmx.state "adamw.v:w" {dtype = f32, shape = [4]}
  mmx.launch "adamw" (%w, %g, %m, %v, %n, %lr, %step) -> (%w, %m, %v) {params = {}}
}

// -----

mmx.program @bad attributes {max_batch = 1 : i64, max_seq = 4 : i64, target = "cpu"} {
  // expected-error @+1 {{expects dtype f32 but got 'bf16'}}
  %m = mmx.state "m" {dtype = bf16, shape = [4]}
}

// -----

mmx.program @bad attributes {max_batch = 1 : i64, max_seq = 4 : i64, target = "cpu"} {
  // expected-error @+1 {{expects a static shape but got ["B", 4]}}
  %m = mmx.state "m" {dtype = f32, shape = ["B", 4]}
}
