// RUN: mm-opt %s --split-input-file --mm-tile --verify-diagnostics | FileCheck %s

// Tests that on sm_90a every templated launch gets tile_threads, lightning attention a 64-token
// block and 32 value columns, softmax attention 64x64 tiles and moe its GEMM tiles, while
// cuBLASLt projections get no tile params.
// CHECK-LABEL: mmx.program @hopper
// CHECK: "rms_norm"{{.*}}tile_threads = 256
// CHECK: "linear"{{.*}}{params = {}}
// CHECK: "lightning_attention"{{.*}}tile_block = 64 : i64, tile_dv = 32 : i64, tile_threads = 256 : i64
// CHECK: "softmax_attention"{{.*}}tile_k = 64 : i64, tile_q = 64 : i64, tile_threads = 256 : i64
// CHECK: "moe"{{.*}}tile_k = 32 : i64, tile_m = 64 : i64, tile_n = 64 : i64, tile_threads = 256 : i64
mmx.program @hopper attributes {max_batch = 1 : i64, max_seq = 8 : i64, target = "sm_90a"} {
  %x = mmx.input "x" {dtype = f32, shape = ["B", "T", 128]}
  %w = mmx.weight "norm" {dtype = f32, shape = [128]}
  %n = mmx.alloc {dtype = f32, shape = ["B", "T", 128]}
  mmx.launch "rms_norm"(%x, %w) -> (%n) {params = {eps = 1.0e-5 : f64}}
  %wq = mmx.weight "wqkv" {dtype = f32, shape = [384, 128]}
  %qkv = mmx.alloc {dtype = f32, shape = ["B", "T", 384]}
  mmx.launch "linear"(%n, %wq) -> (%qkv) {params = {}}
  %o = mmx.alloc {dtype = f32, shape = ["B", "T", 128]}
  mmx.launch "lightning_attention"(%qkv) -> (%o) {params = {block_size = 256 : i64, head_dim = 128 : i64, layer_index = 0 : i64, num_heads = 1 : i64, num_layers = 2 : i64}}
  %a = mmx.alloc {dtype = f32, shape = ["B", "T", 128]}
  mmx.launch "softmax_attention"(%o, %o, %o) -> (%a) {params = {head_dim = 128 : i64, num_heads = 1 : i64, num_kv_heads = 1 : i64, scale = 0.088 : f64}}
  %r = mmx.weight "router" {dtype = f32, shape = [4, 128]}
  %w1 = mmx.weight "w1" {dtype = f32, shape = [4, 64, 128]}
  %w2 = mmx.weight "w2" {dtype = f32, shape = [4, 128, 64]}
  %m = mmx.alloc {dtype = f32, shape = ["B", "T", 128]}
  mmx.launch "moe"(%a, %r, %w1, %w2, %w1) -> (%m) {params = {top_k = 2 : i64}}
  mmx.output "m" %m
}

// -----

// Tests that sm_89's 99 KB of shared memory halves the tiles of head_dim 128 (at 64 both need
// 116 KB), and that head_dim 48 gets 16 value columns (the largest power of two dividing it).
// CHECK-LABEL: mmx.program @ada
// CHECK: "lightning_attention"{{.*}}tile_block = 32 : i64, tile_dv = 32 : i64
// CHECK: "softmax_attention"{{.*}}tile_k = 32 : i64, tile_q = 32 : i64
// CHECK: "lightning_attention"{{.*}}head_dim = 48{{.*}}tile_block = 64 : i64, tile_dv = 16 : i64
mmx.program @ada attributes {max_batch = 1 : i64, max_seq = 8 : i64, target = "sm_89"} {
  %qkv = mmx.input "qkv" {dtype = f32, shape = ["B", "T", 384]}
  %o = mmx.alloc {dtype = f32, shape = ["B", "T", 128]}
  mmx.launch "lightning_attention"(%qkv) -> (%o) {params = {block_size = 256 : i64, head_dim = 128 : i64, layer_index = 0 : i64, num_heads = 1 : i64, num_layers = 2 : i64}}
  %a = mmx.alloc {dtype = f32, shape = ["B", "T", 128]}
  mmx.launch "softmax_attention"(%o, %o, %o) -> (%a) {params = {head_dim = 128 : i64, num_heads = 1 : i64, num_kv_heads = 1 : i64, scale = 0.088 : f64}}
  %q2 = mmx.input "qkv2" {dtype = f32, shape = ["B", "T", 144]}
  %o2 = mmx.alloc {dtype = f32, shape = ["B", "T", 48]}
  mmx.launch "lightning_attention"(%q2) -> (%o2) {params = {block_size = 256 : i64, head_dim = 48 : i64, layer_index = 0 : i64, num_heads = 1 : i64, num_layers = 2 : i64}}
  mmx.output "a" %a
  mmx.output "o2" %o2
}

// -----

// Tests that the cpu target is left alone.
// CHECK-LABEL: mmx.program @host
// CHECK: "rms_norm"(%{{.*}}) -> (%{{.*}}) {params = {eps = 1.000000e-05 : f64}}
mmx.program @host attributes {max_batch = 1 : i64, max_seq = 8 : i64, target = "cpu"} {
  %x = mmx.input "x" {dtype = f32, shape = ["B", "T", 8]}
  %w = mmx.weight "norm" {dtype = f32, shape = [8]}
  %n = mmx.alloc {dtype = f32, shape = ["B", "T", 8]}
  mmx.launch "rms_norm"(%x, %w) -> (%n) {params = {eps = 1.0e-5 : f64}}
  mmx.output "n" %n
}

// -----

// Tests that a head_dim whose smallest tile overflows shared memory is an error.
mmx.program @huge attributes {max_batch = 1 : i64, max_seq = 8 : i64, target = "sm_89"} {
  %qkv = mmx.input "qkv" {dtype = f32, shape = ["B", "T", 3072]}
  %o = mmx.alloc {dtype = f32, shape = ["B", "T", 1024]}
  // expected-error @+1 {{expects a head_dim whose lightning tile fits 101376 bytes of shared memory but got 1024}}
  mmx.launch "lightning_attention"(%qkv) -> (%o) {params = {block_size = 256 : i64, head_dim = 1024 : i64, layer_index = 0 : i64, num_heads = 1 : i64, num_layers = 2 : i64}}
  mmx.output "o" %o
}

// -----

// Tests that bf16 softmax attention gets the tensor-core tiles: 128 query rows, 128 keys on 384
// threads for the FA3 form (sm_90a, head_dim 128), 64 keys on 256 threads for mma.sync otherwise.
// CHECK-LABEL: mmx.program @bf16
// CHECK: "softmax_attention"{{.*}}tile_k = 128 : i64, tile_q = 128 : i64, tile_threads = 384 : i64
mmx.program @bf16 attributes {max_batch = 1 : i64, max_seq = 8 : i64, target = "sm_90a"} {
  %q = mmx.input "q" {dtype = bf16, shape = ["B", "T", 128]}
  %a = mmx.alloc {dtype = bf16, shape = ["B", "T", 128]}
  mmx.launch "softmax_attention"(%q, %q, %q) -> (%a) {params = {head_dim = 128 : i64, num_heads = 1 : i64, num_kv_heads = 1 : i64, scale = 0.088 : f64}}
  mmx.output "a" %a
}

// -----

// Tests that a bf16 moe on sm_90a gets the wgmma tiles (128x128x64) when H and I are multiples
// of 8, the mma.sync tiles (64x64x32) otherwise, and on sm_80 always.
// CHECK-LABEL: mmx.program @moe_bf16_hopper
// CHECK: "moe"{{.*}}tile_k = 64 : i64, tile_m = 128 : i64, tile_n = 128 : i64, tile_threads = 256 : i64
// CHECK: "moe"{{.*}}tile_k = 32 : i64, tile_m = 64 : i64, tile_n = 64 : i64, tile_threads = 256 : i64
mmx.program @moe_bf16_hopper attributes {max_batch = 1 : i64, max_seq = 8 : i64, target = "sm_90a"} {
  %x = mmx.input "x" {dtype = bf16, shape = ["B", "T", 128]}
  %r = mmx.weight "router" {dtype = bf16, shape = [4, 128]}
  %w1 = mmx.weight "w1" {dtype = bf16, shape = [4, 64, 128]}
  %w2 = mmx.weight "w2" {dtype = bf16, shape = [4, 128, 64]}
  %m = mmx.alloc {dtype = bf16, shape = ["B", "T", 128]}
  mmx.launch "moe"(%x, %r, %w1, %w2, %w1) -> (%m) {params = {top_k = 2 : i64}}
  %x2 = mmx.input "x2" {dtype = bf16, shape = ["B", "T", 60]}
  %r2 = mmx.weight "router2" {dtype = bf16, shape = [4, 60]}
  %v1 = mmx.weight "v1" {dtype = bf16, shape = [4, 100, 60]}
  %v2 = mmx.weight "v2" {dtype = bf16, shape = [4, 60, 100]}
  %m2 = mmx.alloc {dtype = bf16, shape = ["B", "T", 60]}
  mmx.launch "moe"(%x2, %r2, %v1, %v2, %v1) -> (%m2) {params = {top_k = 2 : i64}}
  mmx.output "m" %m
  mmx.output "m2" %m2
}

// -----

// CHECK-LABEL: mmx.program @moe_bf16_ampere
// CHECK: "moe"{{.*}}tile_k = 32 : i64, tile_m = 64 : i64, tile_n = 64 : i64, tile_threads = 256 : i64
mmx.program @moe_bf16_ampere attributes {max_batch = 1 : i64, max_seq = 8 : i64, target = "sm_80"} {
  %x = mmx.input "x" {dtype = bf16, shape = ["B", "T", 128]}
  %r = mmx.weight "router" {dtype = bf16, shape = [4, 128]}
  %w1 = mmx.weight "w1" {dtype = bf16, shape = [4, 64, 128]}
  %w2 = mmx.weight "w2" {dtype = bf16, shape = [4, 128, 64]}
  %m = mmx.alloc {dtype = bf16, shape = ["B", "T", 128]}
  mmx.launch "moe"(%x, %r, %w1, %w2, %w1) -> (%m) {params = {top_k = 2 : i64}}
  mmx.output "m" %m
}

// -----

// Tests that a bf16 softmax attention with D=64 on sm_90a keeps the mma.sync tiles (the wgmma form needs D=128).
// CHECK-LABEL: mmx.program @bf16_d64
// CHECK: "softmax_attention"{{.*}}tile_k = 64 : i64, tile_q = 128 : i64, tile_threads = 256 : i64
mmx.program @bf16_d64 attributes {max_batch = 1 : i64, max_seq = 8 : i64, target = "sm_90a"} {
  %q = mmx.input "q" {dtype = bf16, shape = ["B", "T", 64]}
  %a = mmx.alloc {dtype = bf16, shape = ["B", "T", 64]}
  mmx.launch "softmax_attention"(%q, %q, %q) -> (%a) {params = {head_dim = 64 : i64, num_heads = 1 : i64, num_kv_heads = 1 : i64, scale = 0.125 : f64}}
  mmx.output "a" %a
}

// -----

// Tests that a bf16 lightning attention with head_dim 128 on sm_90a takes the chunk-parallel
// form (tile_chunk = 1, no sequential-kernel tiles), and f32 keeps the sequential kernel.
// CHECK-LABEL: mmx.program @lightning_chunk
// CHECK: "lightning_attention"{{.*}}tile_chunk = 1 : i64, tile_threads = 256 : i64
// CHECK-NOT: tile_block
// CHECK: "lightning_attention"{{.*}}tile_block = {{[0-9]+}} : i64, tile_dv = 32 : i64
mmx.program @lightning_chunk attributes {max_batch = 1 : i64, max_seq = 8 : i64, target = "sm_90a"} {
  %x = mmx.input "x" {dtype = bf16, shape = ["B", "T", 384]}
  %a = mmx.alloc {dtype = bf16, shape = ["B", "T", 128]}
  mmx.launch "lightning_attention"(%x) -> (%a) {params = {block_size = 64 : i64, head_dim = 128 : i64, layer_index = 0 : i64, num_heads = 1 : i64, num_layers = 2 : i64}}
  %y = mmx.input "y" {dtype = f32, shape = ["B", "T", 384]}
  %b = mmx.alloc {dtype = f32, shape = ["B", "T", 128]}
  mmx.launch "lightning_attention"(%y) -> (%b) {params = {block_size = 64 : i64, head_dim = 128 : i64, layer_index = 0 : i64, num_heads = 1 : i64, num_layers = 2 : i64}}
  mmx.output "a" %a
  mmx.output "b" %b
}

// -----

// Tests that a bf16 lightning attention with head_dim 64 (the `small` preset) also takes the
// chunk-parallel form on sm_90a, while head_dim 32 (no chunk-parallel instantiation) keeps the
// sequential kernel.
// CHECK-LABEL: mmx.program @lightning_chunk_d64
// CHECK: "lightning_attention"{{.*}}head_dim = 64 : i64{{.*}}tile_chunk = 1 : i64, tile_threads = 256 : i64
// CHECK-NOT: tile_block
// CHECK: "lightning_attention"{{.*}}head_dim = 32 : i64{{.*}}tile_block = {{[0-9]+}} : i64, tile_dv = 32 : i64
mmx.program @lightning_chunk_d64 attributes {max_batch = 1 : i64, max_seq = 8 : i64, target = "sm_90a"} {
  %x = mmx.input "x" {dtype = bf16, shape = ["B", "T", 3072]}
  %a = mmx.alloc {dtype = bf16, shape = ["B", "T", 1024]}
  mmx.launch "lightning_attention"(%x) -> (%a) {params = {block_size = 256 : i64, head_dim = 64 : i64, layer_index = 0 : i64, num_heads = 16 : i64, num_layers = 8 : i64, silu_input = 1 : i64}}
  %y = mmx.input "y" {dtype = bf16, shape = ["B", "T", 96]}
  %b = mmx.alloc {dtype = bf16, shape = ["B", "T", 32]}
  mmx.launch "lightning_attention"(%y) -> (%b) {params = {block_size = 64 : i64, head_dim = 32 : i64, layer_index = 0 : i64, num_heads = 1 : i64, num_layers = 2 : i64}}
  mmx.output "a" %a
  mmx.output "b" %b
}

// -----

// Tests that the head_dim 64 chunk-parallel form needs more shared memory than sm_89 has (~108 KB
// against 99 KB), so there it keeps the sequential kernel.
// CHECK-LABEL: mmx.program @lightning_chunk_d64_sm89
// CHECK: "lightning_attention"{{.*}}tile_block = {{[0-9]+}} : i64, tile_dv = 32 : i64
mmx.program @lightning_chunk_d64_sm89 attributes {max_batch = 1 : i64, max_seq = 8 : i64, target = "sm_89"} {
  %x = mmx.input "x" {dtype = bf16, shape = ["B", "T", 192]}
  %a = mmx.alloc {dtype = bf16, shape = ["B", "T", 64]}
  mmx.launch "lightning_attention"(%x) -> (%a) {params = {block_size = 64 : i64, head_dim = 64 : i64, layer_index = 0 : i64, num_heads = 1 : i64, num_layers = 2 : i64}}
  mmx.output "a" %a
}

// -----

// Tests that a bf16 softmax attention whose head_dim is not a multiple of 16 (no tensor-core
// k-steps) takes the SIMT form's tiles instead of being refused.
// CHECK-LABEL: mmx.program @bf16_d12
// CHECK: "softmax_attention"{{.*}}tile_k = 64 : i64, tile_q = 64 : i64, tile_threads = 256 : i64
mmx.program @bf16_d12 attributes {max_batch = 1 : i64, max_seq = 8 : i64, target = "sm_90a"} {
  %q = mmx.input "q" {dtype = bf16, shape = ["B", "T", 12]}
  %a = mmx.alloc {dtype = bf16, shape = ["B", "T", 12]}
  mmx.launch "softmax_attention"(%q, %q, %q) -> (%a) {params = {head_dim = 12 : i64, num_heads = 1 : i64, num_kv_heads = 1 : i64, scale = 0.3 : f64}}
  mmx.output "a" %a
}
