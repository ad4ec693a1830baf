// cuBLASLt projections; see LtGemm.h.
#include "runtime/cuda/LtGemm.h"

namespace mm::cuda {

StatusOr<std::unique_ptr<LtGemm>> LtGemm::create(CUdeviceptr workspace,
                                                 size_t workspaceBytes) {
  MM_ASSIGN_OR_RETURN(const CublasLt *lt, cublasLt());
  cublasLtHandle_t h = nullptr;
  MM_LT_CALL(*lt, create, &h);
  return std::unique_ptr<LtGemm>(new LtGemm(*lt, h, workspace, workspaceBytes));
}

LtGemm::~LtGemm() {
  for (auto &[key, s] : shapes_) {
    lt_.matrixLayoutDestroy(s.a);
    lt_.matrixLayoutDestroy(s.b);
    lt_.matrixLayoutDestroy(s.c);
    lt_.matmulDescDestroy(s.desc);
  }
  lt_.destroy(handle_);
}

StatusOr<LtGemm::Shape *> LtGemm::shape(cudaDataType_t inType,
                                        cudaDataType_t outType, int64_t m,
                                        int64_t n, int64_t k, int64_t ldx,
                                        bool transA, bool transB) {
  auto key =
      std::make_tuple(static_cast<int>(inType), static_cast<int>(outType), m, n,
                      k, ldx, int(transA) * 2 + int(transB));
  auto it = shapes_.find(key);
  if (it != shapes_.end())
    return &it->second;
  Shape s;
  // cuBLASLt is column-major: the row-major c[m, n] is the column-major
  // [n, m] = op(b)ᶜ · op(a)ᶜ, so cuBLAS's first operand is b and its second
  // a. A row-major [r, c] matrix is the column-major [c, r] one.
  MM_LT_CALL(lt_, matmulDescCreate, &s.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  cublasOperation_t opB = transB ? CUBLAS_OP_T : CUBLAS_OP_N,
                    opA = transA ? CUBLAS_OP_T : CUBLAS_OP_N;
  MM_LT_CALL(lt_, matmulDescSetAttribute, s.desc, CUBLASLT_MATMUL_DESC_TRANSA,
             &opB, sizeof(opB));
  MM_LT_CALL(lt_, matmulDescSetAttribute, s.desc, CUBLASLT_MATMUL_DESC_TRANSB,
             &opA, sizeof(opA));
  if (transB)
    MM_LT_CALL(lt_, matrixLayoutCreate, &s.a, inType, k, n, k);
  else
    MM_LT_CALL(lt_, matrixLayoutCreate, &s.a, inType, n, k, n);
  if (transA)
    MM_LT_CALL(lt_, matrixLayoutCreate, &s.b, inType, m, k, m);
  else
    MM_LT_CALL(lt_, matrixLayoutCreate, &s.b, inType, k, m, ldx);
  MM_LT_CALL(lt_, matrixLayoutCreate, &s.c, outType, n, m, n);
  cublasLtMatmulPreference_t pref = nullptr;
  MM_LT_CALL(lt_, preferenceCreate, &pref);
  uint64_t wsBytes = workspaceBytes_;
  MM_LT_CALL(lt_, preferenceSetAttribute, pref,
             CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsBytes,
             sizeof(wsBytes));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  cublasStatus_t st = lt_.algoGetHeuristic(handle_, s.desc, s.a, s.b, s.c, s.c,
                                           pref, 1, &result, &found);
  lt_.preferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
    lt_.matrixLayoutDestroy(s.a);
    lt_.matrixLayoutDestroy(s.b);
    lt_.matrixLayoutDestroy(s.c);
    lt_.matmulDescDestroy(s.desc);
    return Status(StatusCode::kInternal,
                  "cuBLASLt has no algorithm for a [" + std::to_string(m) +
                      ", " + std::to_string(k) + "]" + (transA ? "^T" : "") +
                      " x [" + std::to_string(k) + ", " + std::to_string(n) +
                      "]" + (transB ? "^T" : "") + " product");
  }
  s.algo = result.algo;
  return &shapes_.emplace(key, s).first->second;
}

Status LtGemm::run(CUstream stream, cudaDataType_t inType,
                   cudaDataType_t outType, int64_t m, int64_t n, int64_t k,
                   CUdeviceptr x, int64_t ldx, CUdeviceptr w, CUdeviceptr out) {
  return matmul(stream, inType, outType, m, n, k, x, ldx, false, w, true, out,
                1.f, out, 0.f);
}

Status LtGemm::gemm(CUstream stream, cudaDataType_t inType,
                    cudaDataType_t outType, int64_t m, int64_t n, int64_t k,
                    CUdeviceptr a, bool transA, CUdeviceptr b, bool transB,
                    CUdeviceptr c, float beta) {
  return matmul(stream, inType, outType, m, n, k, a, transA ? m : k, transA, b,
                transB, c, 1.f, c, beta);
}

Status LtGemm::matmul(CUstream stream, cudaDataType_t inType,
                      cudaDataType_t outType, int64_t m, int64_t n, int64_t k,
                      CUdeviceptr a, int64_t lda, bool transA, CUdeviceptr b,
                      bool transB, CUdeviceptr d, float alpha, CUdeviceptr c,
                      float beta) {
  MM_ASSIGN_OR_RETURN(Shape * s,
                      shape(inType, outType, m, n, k, lda, transA, transB));
  // cuBLAS's first operand is b, its second a (see shape()).
  MM_LT_CALL(
      lt_, matmul, handle_, s->desc, &alpha, reinterpret_cast<const void *>(b),
      s->a, reinterpret_cast<const void *>(a), s->b, &beta,
      reinterpret_cast<const void *>(c), s->c, reinterpret_cast<void *>(d),
      s->c, &s->algo, reinterpret_cast<void *>(workspace_), workspaceBytes_,
      reinterpret_cast<cudaStream_t>(stream));
  return Status::ok();
}

} // namespace mm::cuda
