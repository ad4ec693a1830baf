// Dense projections through cuBLASLt: out[M, N] = x[M, K] · w[N, K]ᵀ, all
// row-major (PyTorch nn.Linear layout), f32 or bf16 storage with fp32
// accumulation (CUBLAS_COMPUTE_32F, so f32 stays true fp32, no TF32).
//
// Descriptors and the heuristic's algorithm are cached per (types, M, N, K,
// row stride):
// the first call at a shape allocates, later calls do not. Not thread-safe;
// one LtGemm per executor. The workspace is device memory owned by the caller.
#pragma once

#include "runtime/cuda/CudaDriver.h"

#include <map>
#include <memory>
#include <tuple>

namespace mm::cuda {

class LtGemm {
public:
  static StatusOr<std::unique_ptr<LtGemm>> create(CUdeviceptr workspace,
                                                  size_t workspaceBytes);
  ~LtGemm();
  LtGemm(const LtGemm &) = delete;
  LtGemm &operator=(const LtGemm &) = delete;

  Status run(CUstream stream, cudaDataType_t type, int64_t m, int64_t n,
             int64_t k, CUdeviceptr x, CUdeviceptr w, CUdeviceptr out) {
    return run(stream, type, type, m, n, k, x, k, w, out);
  }
  /// The general form: x and w of `inType`, out of `outType` (bf16 inputs may
  /// write f32), and row i of x at x + i·ldx elements (ldx >= k; a larger ldx
  /// picks every (ldx/k)-th row, e.g. the last position of each sequence).
  Status run(CUstream stream, cudaDataType_t inType, cudaDataType_t outType,
             int64_t m, int64_t n, int64_t k, CUdeviceptr x, int64_t ldx,
             CUdeviceptr w, CUdeviceptr out);
  /// out = alpha · x · wᵀ + beta · c (c of out's type and shape; c == out
  /// runs in place, else they must not overlap): a residual sum folded into
  /// the product's epilogue.
  Status runAdd(CUstream stream, cudaDataType_t type, int64_t m, int64_t n,
                int64_t k, CUdeviceptr x, CUdeviceptr w, CUdeviceptr out,
                float alpha, CUdeviceptr c, float beta) {
    return matmul(stream, type, type, m, n, k, x, k, false, w, true, out, alpha,
                  c, beta);
  }

  /// Any transposition (the training products), row-major throughout:
  /// c[m, n] = op(a) · op(b) + beta · c, op(a) [m, k] (a stored [k, m] when
  /// `transA`), op(b) [k, n] (b stored [n, k] when `transB`). a and b of
  /// `inType`, c of `outType`; beta is 0 (overwrite) or 1 (accumulate).
  Status gemm(CUstream stream, cudaDataType_t inType, cudaDataType_t outType,
              int64_t m, int64_t n, int64_t k, CUdeviceptr a, bool transA,
              CUdeviceptr b, bool transB, CUdeviceptr c, float beta);
  /// d = alpha · op(a) · op(b) + beta · c, d and c of `outType` (c == d in
  /// place, else apart).
  Status gemmAdd(CUstream stream, cudaDataType_t inType,
                 cudaDataType_t outType, int64_t m, int64_t n, int64_t k,
                 CUdeviceptr a, bool transA, CUdeviceptr b, bool transB,
                 CUdeviceptr d, float alpha, CUdeviceptr c, float beta) {
    return matmul(stream, inType, outType, m, n, k, a, transA ? m : k, transA,
                  b, transB, d, alpha, c, beta);
  }

private:
  struct Shape {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  LtGemm(const CublasLt &lt, cublasLtHandle_t h, CUdeviceptr ws, size_t wsBytes)
      : lt_(lt), handle_(h), workspace_(ws), workspaceBytes_(wsBytes) {}
  // Every public form: d = alpha · op(a) · op(b) + beta · c, a's rows lda
  // apart.
  Status matmul(CUstream stream, cudaDataType_t inType, cudaDataType_t outType,
                int64_t m, int64_t n, int64_t k, CUdeviceptr a, int64_t lda,
                bool transA, CUdeviceptr b, bool transB, CUdeviceptr d,
                float alpha, CUdeviceptr c, float beta);
  StatusOr<Shape *> shape(cudaDataType_t inType, cudaDataType_t outType,
                          int64_t m, int64_t n, int64_t k, int64_t ldx,
                          bool transA, bool transB);

  const CublasLt &lt_;
  cublasLtHandle_t handle_;
  CUdeviceptr workspace_;
  size_t workspaceBytes_;
  std::map<std::tuple<int, int, int64_t, int64_t, int64_t, int64_t, int>, Shape>
      shapes_;
};

} // namespace mm::cuda
