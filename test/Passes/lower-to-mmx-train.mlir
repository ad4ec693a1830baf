// RUN: mm-opt %s --mm-lower-to-mmx="max-batch=2 max-seq=32" | FileCheck %s

// Tests that optimizer states become mmx.state buffers and that an optimizer update is one launch
// whose outputs are its param and state operands (updated in place, no alloc), while backward ops
// with several results get one alloc per result.

// CHECK-LABEL: mmx.program @step
// CHECK: %[[LR:.+]] = mmx.input "lr" {dtype = f32, shape = []}
// CHECK: %[[STEP:.+]] = mmx.input "step" {dtype = f32, shape = []}
// CHECK: %[[W:.+]] = mmx.weight "w" {dtype = f32, shape = [8, 8]}
// CHECK: %[[DX:.+]] = mmx.alloc {dtype = f32, shape = ["B", "T", 8]}
// CHECK-NEXT: %[[DW:.+]] = mmx.alloc {dtype = f32, shape = [8, 8]}
// CHECK-NEXT: mmx.launch "linear_grad"(%{{.+}}, %[[W]], %{{.+}}) -> (%[[DX]], %[[DW]])
// CHECK: %[[N:.+]] = mmx.alloc {dtype = f32, shape = []}
// CHECK-NEXT: mmx.launch "grad_norm"(%[[DW]]) -> (%[[N]])
// CHECK: %[[M:.+]] = mmx.state "adamw.m:w" {dtype = f32, shape = [8, 8]}
// CHECK: %[[V:.+]] = mmx.state "adamw.v:w" {dtype = f32, shape = [8, 8]}
// CHECK-NOT: mmx.alloc
// CHECK: mmx.launch "adamw"(%[[W]], %[[DW]], %[[M]], %[[V]], %[[N]], %[[LR]], %[[STEP]]) -> (%[[W]], %[[M]], %[[V]])
// CHECK-SAME: params = {beta1 = 9.000000e-01 : f64, beta2 = 0.99899999999999999 : f64, eps = 1.000000e-08 : f64, max_norm = 1.000000e+00 : f64, weight_decay = 0.000000e+00 : f64}
// CHECK: mmx.output "grad_norm" %[[N]]
func.func @step(%x: tensor<?x?x8xf32> {mm.name = "x"}, %dy: tensor<?x?x8xf32> {mm.name = "dy"},
                %lr: tensor<f32> {mm.name = "lr"}, %step: tensor<f32> {mm.name = "step"})
    -> (tensor<f32> {mm.name = "grad_norm"}) {
  %w = mm.param "w" : tensor<8x8xf32>
  %dx, %dw = mm.linear_grad %x, %w, %dy : (tensor<?x?x8xf32>, tensor<8x8xf32>, tensor<?x?x8xf32>) -> (tensor<?x?x8xf32>, tensor<8x8xf32>)
  %n = mm.grad_norm %dw : (tensor<8x8xf32>) -> tensor<f32>
  %m = mm.state "adamw.m:w" : tensor<8x8xf32>
  %v = mm.state "adamw.v:w" : tensor<8x8xf32>
  %p2, %m2, %v2 = mm.adamw %w, %dw, %m, %v, %n, %lr, %step {beta1 = 0.9 : f64, beta2 = 0.999 : f64,
      eps = 1.0e-8 : f64, weight_decay = 0.0 : f64, max_norm = 1.0 : f64}
      : (tensor<8x8xf32>, tensor<8x8xf32>, tensor<8x8xf32>, tensor<8x8xf32>, tensor<f32>, tensor<f32>, tensor<f32>)
      -> (tensor<8x8xf32>, tensor<8x8xf32>, tensor<8x8xf32>)
  return %n : tensor<f32>
}
