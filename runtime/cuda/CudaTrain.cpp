// Training steps on the CUDA backend: the backward kernels, the chunked lm
// head with cross-entropy, the gradient norm and the optimizers, and the
// NaN/Inf checks of every step's outputs. See docs/kernels.md ("Training
// kernels") for the semantics and kernels/launch.h for the launch plans.
//
// Dense products (linear_grad, the lm head) go through cuBLASLt; every other
// step issues the plan of its kernel family with one argument block. A
// lm_head_loss step directly followed by the lm_head_loss_grad of the same
// operands is done by the gradient's pass (one logits product per chunk
// instead of two), and an adamw step directly followed by the store_param of
// its master into a bf16 weight writes that weight itself; consecutive adamw
// steps sharing their scalars are one multi-tensor launch (and so are the
// squares of a grad_norm over constant-shaped gradients).
#include "runtime/cuda/ExecutorImpl.h"

#include "kernels/lightning_attention_grad.h"
#include "kernels/moe_grad.h"
#include "kernels/softmax_attention_grad.h"
#include "kernels/train_args.h"
#include "kernels/train_small.h"

#include <cmath>
#include <cstring>

namespace mm::cuda {

bool isTrainKernel(Kernel k) {
  switch (k) {
  case Kernel::EmbeddingGrad:
  case Kernel::RmsNormGrad:
  case Kernel::LinearGrad:
  case Kernel::SiluGrad:
  case Kernel::SigmoidGrad:
  case Kernel::RopeGrad:
  case Kernel::LightningAttentionGrad:
  case Kernel::SoftmaxAttentionGrad:
  case Kernel::MoeGrad:
  case Kernel::LmHeadLoss:
  case Kernel::LmHeadLossGrad:
  case Kernel::GradNorm:
  case Kernel::AdamW:
  case Kernel::Came:
  case Kernel::CameVector:
  case Kernel::StoreParam:
    return true;
  default:
    return false;
  }
}

DType trainKernelDtype(const Plan &plan, const StepDesc &s) {
  const bool second =
      s.kernel == Kernel::EmbeddingGrad || s.kernel == Kernel::StoreParam;
  return plan.buffers[s.inputs[second ? 1 : 0]].dtype;
}

std::string trainFunction(const Plan &plan, const StepDesc &s) {
  if (s.kernel == Kernel::LinearGrad)
    return "";
  const bool lmHead =
      s.kernel == Kernel::LmHeadLoss || s.kernel == Kernel::LmHeadLossGrad;
  std::string name = "mm_" + (lmHead ? std::string("lm_head") : s.kernelName) +
                     "_" + dtypeName(trainKernelDtype(plan, s));
  if (s.kernel == Kernel::LightningAttentionGrad ||
      s.kernel == Kernel::SoftmaxAttentionGrad)
    name += "_d" + std::to_string(s.params.headDim);
  return name;
}

namespace {

/// Bytes of the lm head's workspace for `rows` rows per chunk: f32 logits,
/// the T dlogits, then f32 row losses for all `totalRows` rows.
struct LmHeadWorkspace {
  uint64_t logits = 0, dlogits = 0, rowLoss = 0, bytes = 0;
};
LmHeadWorkspace lmHeadWorkspace(int64_t chunk, int64_t vocab, int64_t totalRows,
                                uint64_t elemBytes) {
  LmHeadWorkspace w;
  w.logits = 0;
  w.dlogits = alignUp(uint64_t(chunk * vocab) * 4, kWorkspaceAlign);
  w.rowLoss =
      w.dlogits + alignUp(uint64_t(chunk * vocab) * elemBytes, kWorkspaceAlign);
  w.bytes = w.rowLoss + alignUp(uint64_t(totalRows) * 4, kWorkspaceAlign);
  return w;
}

int64_t lmHeadChunk(const StepDesc &s, int64_t rows) {
  const int64_t c = s.params.chunkRows > 0 ? s.params.chunkRows : rows;
  return std::max<int64_t>(1, std::min(c, rows));
}

} // namespace

StatusOr<CUfunction> CudaExecutor::Impl::entry(const std::string &name,
                                               uint32_t smem) {
  auto it = fnCache.find(name);
  CUfunction fn = nullptr;
  if (it != fnCache.end()) {
    fn = it->second;
  } else {
    if (drv.moduleGetFunction(&fn, module, name.c_str()) != CUDA_SUCCESS)
      return invalidArgument("the cubin has no entry point '" + name +
                             "'; recompile the artifact");
    fnCache.emplace(name, fn);
  }
  uint32_t &set = fnSmemSet[fn];
  if (smem > 48 * 1024 && smem > set) {
    MM_CU_CALL(drv, funcSetAttribute, fn,
               CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
               static_cast<int>(smem));
    set = smem;
  }
  return fn;
}

Status CudaExecutor::Impl::launchPlan(const std::string &prefix,
                                      const k::Launch *plan, int n,
                                      void *args) {
  if (n < 0 || n > k::kMaxLaunches)
    return internalError(prefix + ": a launch plan of " + std::to_string(n) +
                         " launches");
  for (int i = 0; i < n; ++i) {
    const k::Launch &l = plan[i];
    if (l.gx == 0 || l.gy == 0 || l.gz == 0)
      continue; // nothing to do at this size
    MM_ASSIGN_OR_RETURN(CUfunction fn, entry(prefix + l.suffix, l.smem));
    MM_RETURN_IF_ERROR(launch(fn, l.gx, l.gy, l.gz, l.threads, l.smem, args));
  }
  return Status::ok();
}

Status CudaExecutor::Impl::openTrainStep(size_t index) {
  const StepDesc &s = plan.steps[index];
  const std::string want = trainFunction(plan, s);
  if (s.function != want)
    return invalidArgument("entry point '" + s.function +
                           "' does not match the step (expected '" + want +
                           "'); the artifact is corrupt");
  // Weights are read in the kernel's element type, optimizer params are f32.
  const DType t = trainKernelDtype(plan, s);
  for (size_t j = 0; j < s.inputs.size(); ++j) {
    const BufferDesc &b = plan.buffers[s.inputs[j]];
    if (b.kind != BufferKind::Weight)
      continue;
    const bool optimizerParam =
        (s.kernel == Kernel::AdamW || s.kernel == Kernel::Came ||
         s.kernel == Kernel::CameVector) &&
        j == 0;
    const DType need = optimizerParam ? DType::F32 : t;
    if (deviceDtype(b) != need)
      return invalidArgument("weight '" + b.name + "' is stored as " +
                             dtypeName(b.dtype) + " but the step reads " +
                             dtypeName(need) + "; recompile the artifact");
  }
  if (s.kernel == Kernel::MoeGrad) {
    const int64_t experts = plan.buffers[s.inputs[1]].shape[0].value;
    if (experts > k::moeMaxExperts())
      return Status(StatusCode::kUnimplemented,
                    "has " + std::to_string(experts) +
                        " experts; the kernels support up to " +
                        std::to_string(k::moeMaxExperts()));
  }
  return Status::ok();
}

uint64_t CudaExecutor::Impl::tableBytes() const {
  uint64_t bytes = 0;
  for (const std::vector<size_t> &g : sched.adamGroups)
    bytes += alignUp(g.size() * sizeof(k::AdamWTensor), kWorkspaceAlign);
  for (size_t i : sched.multiNorm)
    bytes += alignUp(plan.steps[i].inputs.size() * sizeof(k::NormTensor),
                     kWorkspaceAlign);
  return bytes;
}

Status CudaExecutor::Impl::uploadTables() {
  uint64_t at = 0;
  auto upload = [&](const void *data, size_t bytes) -> Status {
    MM_CU_CALL(drv, memcpyHtoDAsync, base + tables + at, data, bytes, stream);
    MM_CU_CALL(drv, streamSynchronize, stream);
    at += alignUp(bytes, kWorkspaceAlign);
    return Status::ok();
  };
  adamTables.clear();
  for (const std::vector<size_t> &g : sched.adamGroups) {
    std::vector<k::AdamWTensor> table;
    Table t{at, 0};
    for (size_t i : g) {
      const StepDesc &s = plan.steps[i];
      const long long n =
          static_cast<long long>(plan.buffers[s.inputs[0]].maxBytes / 4);
      table.push_back({dev[s.inputs[0]], dev[s.inputs[1]], dev[s.inputs[2]],
                       dev[s.inputs[3]],
                       sched.fusedStore[i] >= 0 ? dev[sched.fusedStore[i]] : 0,
                       n, static_cast<long long>(t.blocks)});
      t.blocks += (n + k::adamWChunk() - 1) / k::adamWChunk();
    }
    adamTables.push_back(t);
    MM_RETURN_IF_ERROR(
        upload(table.data(), table.size() * sizeof(k::AdamWTensor)));
  }
  for (size_t i : sched.multiNorm) {
    std::vector<k::NormTensor> table;
    Table t{at, 0};
    for (uint32_t g : plan.steps[i].inputs) {
      const long long n = static_cast<long long>(plan.buffers[g].maxBytes / 4);
      table.push_back({dev[g], n, static_cast<long long>(t.blocks)});
      t.blocks += (n + k::gradNormChunk() - 1) / k::gradNormChunk();
    }
    normTables[i] = t;
    MM_RETURN_IF_ERROR(
        upload(table.data(), table.size() * sizeof(k::NormTensor)));
  }
  return Status::ok();
}

Status
CudaExecutor::Impl::checkStepInputs(const std::vector<void *> &hostData) {
  for (const StepDesc &s : plan.steps)
    if (s.kernel == Kernel::AdamW) {
      const float step = *static_cast<const float *>(hostData[s.inputs[6]]);
      if (!(step >= 1))
        return invalidArgument("adamw: input 'step' must be >= 1 but is " +
                               std::to_string(step));
    }
  return Status::ok();
}

std::vector<ResolvedShape> CudaExecutor::Impl::maxShapes() const {
  std::vector<ResolvedShape> shapes(plan.buffers.size());
  for (size_t i = 0; i < plan.buffers.size(); ++i) {
    const std::vector<int64_t> dims =
        resolveShape(plan.buffers[i].shape, plan.maxBatch, plan.maxSeq);
    for (size_t d = 0; d < dims.size(); ++d) {
      shapes[i].dims[d] = dims[d];
      shapes[i].elements *= dims[d];
    }
  }
  return shapes;
}

uint64_t CudaExecutor::Impl::trainWorkspaceBytes(
    size_t index, const std::vector<ResolvedShape> &shapes) {
  // The step's arguments at these shapes (no device memory yet: every address
  // is 0), asked for their workspace instead of launched.
  uint64_t bytes = 0;
  Status st = runTrainStep(index, shapes, &bytes);
  return st.isOk() ? bytes : 0;
}

/// The CAME hyper-parameters, shared by the factored and the vector form.
template <typename A> void setCameParams(A &a, const KernelParams &p) {
  a.beta1 = p.beta1;
  a.beta2 = p.beta2;
  a.beta3 = p.beta3;
  a.eps1 = p.eps;
  a.eps2 = p.eps2;
  a.clip_threshold = p.clipThreshold;
  a.weight_decay = p.weightDecay;
  a.max_norm = p.maxNorm;
}

Status
CudaExecutor::Impl::runTrainStep(size_t index,
                                 const std::vector<ResolvedShape> &shapes,
                                 uint64_t *workspaceBytes) {
  const StepDesc &s = plan.steps[index];
  const KernelParams &p = s.params;
  const auto &in = s.inputs;
  const auto &outs = s.outputs;
  const std::string &fn = s.function;
  const int D = static_cast<int>(p.headDim);
  const int sms = multiprocessors;
  const CUdeviceptr ws = base + workspace;
  auto d = [&](uint32_t buffer) { return static_cast<k::dptr>(dev[buffer]); };
  auto dims = [&](uint32_t buffer) -> const std::array<int64_t, kMaxRank> & {
    return shapes[buffer].dims;
  };
  auto elems = [&](uint32_t buffer) { return shapes[buffer].elements; };
  const std::array<int64_t, kMaxRank> &x = dims(in[0]);
  k::Launch l[k::kMaxLaunches];
  // Launches the family's plan for `a`, or (sizing) reports its workspace.
  auto issue = [&](auto &a, auto workspaceFn, auto planFn) -> Status {
    if (workspaceBytes) {
      *workspaceBytes = workspaceFn(a);
      return Status::ok();
    }
    return launchPlan(fn, l, planFn(a), &a);
  };
  auto none = [](const auto &) { return 0ull; };
  if (workspaceBytes)
    *workspaceBytes = 0;
  switch (s.kernel) {
  case Kernel::EmbeddingGrad: {
    k::EmbeddingGradArgs a{
        d(in[0]), d(in[1]),    d(outs[0]),       base + errorSlot,
        ws,       x[0] * x[1], dims(outs[0])[0], dims(outs[0])[1]};
    return issue(
        a,
        [&](const auto &x) {
          return k::embeddingGradWorkspaceBytes(x, 0, sms);
        },
        [&](auto &x) { return k::embeddingGradPlan(x, 0, sms, l); });
  }
  case Kernel::RmsNormGrad: {
    k::RmsNormGradArgs a{d(in[0]),    d(in[1]),   d(in[2]),
                         d(outs[0]),  d(outs[1]), ws,
                         x[0] * x[1], x[2],       p.eps};
    return issue(
        a,
        [&](const auto &x) { return k::rmsNormGradWorkspaceBytes(x, 0, sms); },
        [&](auto &x) { return k::rmsNormGradPlan(x, 0, sms, l); });
  }
  case Kernel::LinearGrad: {
    // x [rows, K], w [N, K], dy [rows, N]: dx = dy · w, dw = dyᵀ · x.
    const int64_t rows = x[0] * x[1], K = x[2], N = dims(in[1])[0];
    const cudaDataType_t t = cudaType(plan.buffers[in[0]].dtype);
    if (workspaceBytes)
      return Status::ok();
    const cudaDataType_t dxType = cudaType(plan.buffers[outs[0]].dtype);
    if (sched.fusedAdd[index] >= 0) { // dx lands in the scaled_add's sum
      const FusedAdd f = fusedAdd(index);
      MM_RETURN_IF_ERROR(lt->gemmAdd(stream, t, dxType, rows, K, N, dev[in[2]],
                                     false, dev[in[1]], false, f.sum, f.alpha,
                                     f.other, f.beta));
    } else {
      MM_RETURN_IF_ERROR(lt->gemm(stream, t, dxType, rows, K, N, dev[in[2]],
                                  false, dev[in[1]], false, dev[outs[0]], 0.f));
    }
    return lt->gemm(stream, t, CUDA_R_32F, N, K, rows, dev[in[2]], true,
                    dev[in[0]], false, dev[outs[1]], 0.f);
  }
  case Kernel::SiluGrad:
  case Kernel::SigmoidGrad: {
    k::ActGradArgs a{d(in[0]), d(in[1]), d(outs[0]), elems(in[0])};
    return issue(a, none, [&](auto &x) {
      return s.kernel == Kernel::SiluGrad ? k::siluGradPlan(x, 0, sms, l)
                                          : k::sigmoidGradPlan(x, 0, sms, l);
    });
  }
  case Kernel::RopeGrad: {
    k::RopeGradArgs a{d(in[0]),   d(outs[0]), x[0],        x[1],
                      p.numHeads, p.headDim,  p.rotaryDim, p.theta};
    return issue(a, none,
                 [&](auto &x) { return k::ropeGradPlan(x, 0, sms, l); });
  }
  case Kernel::LightningAttentionGrad: {
    k::LightningGradArgs a{d(in[0]), d(in[1]),   d(outs[0]),   ws,         x[0],
                           x[1],     p.numHeads, p.layerIndex, p.numLayers};
    if (workspaceBytes) {
      *workspaceBytes = k::lightningAttentionGradWorkspaceBytes(a, D, sms);
      return Status::ok();
    }
    const int n = k::lightningAttentionGradPlan(a, D, sms, l);
    if (n == 0 && a.batch * a.seq > 0)
      return unimplemented("head_dim " + std::to_string(D) +
                           " exceeds the lightning backward kernels' shared "
                           "memory");
    return launchPlan(fn, l, n, &a);
  }
  case Kernel::SoftmaxAttentionGrad: {
    k::SoftmaxAttentionGradArgs a{
        d(in[0]),   d(in[1]),     d(in[2]), d(in[3]), d(outs[0]),
        d(outs[1]), d(outs[2]),   ws,       x[0],     x[1],
        p.numHeads, p.numKvHeads, p.scale};
    if (sched.savedAttention[index] >= 0 && !workspaceBytes) {
      const size_t f = static_cast<size_t>(sched.savedAttention[index]);
      a.saved_lse = savedLse[f];
      a.saved_out = savedOut[f];
    }
    return issue(
        a,
        [&](const auto &x) {
          return k::softmaxAttentionGradWorkspaceBytes(x, D, sms);
        },
        [&](auto &x) { return k::softmaxAttentionGradPlan(x, D, sms, l); });
  }
  case Kernel::MoeGrad: {
    k::MoeGradArgs a{d(in[0]),    d(in[1]),   d(in[2]),       d(in[3]),
                     d(in[4]),    d(in[5]),   d(outs[0]),     d(outs[1]),
                     d(outs[2]),  d(outs[3]), d(outs[4]),     ws,
                     x[0] * x[1], x[2],       dims(in[2])[0], dims(in[2])[1],
                     p.topK};
    // Only the GEMM form the device will run: wgmma in an sm_90a cubin.
    a.elem_bytes = static_cast<long long>(dtypeSize(plan.buffers[in[0]].dtype));
    a.wgmma = plan.target == "sm_90a" ? 1 : 2;
    return issue(
        a, [&](const auto &x) { return k::moeGradWorkspaceBytes(x, 0, sms); },
        [&](auto &x) { return k::moeGradPlan(x, 0, sms, l); });
  }
  case Kernel::LmHeadLoss:
  case Kernel::LmHeadLossGrad: {
    const bool grad = s.kernel == Kernel::LmHeadLossGrad;
    const int64_t rows = x[0] * x[1], H = x[2], V = dims(in[1])[0];
    const int64_t chunk = lmHeadChunk(s, rows);
    const DType t = plan.buffers[in[0]].dtype;
    const uint64_t tb = dtypeSize(t);
    const LmHeadWorkspace lw = lmHeadWorkspace(chunk, V, rows, tb);
    if (workspaceBytes) {
      *workspaceBytes = lw.bytes;
      return Status::ok();
    }
    k::LmHeadArgs a{};
    a.logits = ws + lw.logits;
    a.labels = d(in[2]);
    a.row_loss = ws + lw.rowLoss;
    a.count = base + scalars + kScalarCount;
    a.loss = grad ? (sched.fusedLoss[index] >= 0 ? d(sched.fusedLoss[index])
                                                 : base + scalars + kScalarLoss)
                  : d(outs[0]);
    a.error = base + errorSlot;
    a.total_rows = rows;
    a.row0 = 0;
    a.rows = rows;
    a.vocab = V;
    MM_RETURN_IF_ERROR(
        launchPlan(fn, l, k::lmHeadPlan(a, "_count", sms, l), &a));
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
      const int64_t r = std::min(chunk, rows - r0);
      const CUdeviceptr h = dev[in[0]] + uint64_t(r0 * H) * tb;
      // logits [r, V] f32 = h_chunk · wᵀ
      MM_RETURN_IF_ERROR(lt->gemm(stream, cudaType(t), CUDA_R_32F, r, V, H, h,
                                  false, dev[in[1]], true, a.logits, 0.f));
      a.row0 = r0;
      a.rows = r;
      a.dlogits = grad ? ws + lw.dlogits : 0;
      MM_RETURN_IF_ERROR(
          launchPlan(fn, l, k::lmHeadPlan(a, "_rows", sms, l), &a));
      if (!grad)
        continue;
      // dh_chunk [r, H] = g · w; dw [V, H] (+)= gᵀ · h_chunk.
      MM_RETURN_IF_ERROR(lt->gemm(stream, cudaType(t),
                                  cudaType(plan.buffers[outs[0]].dtype), r, H,
                                  V, a.dlogits, false, dev[in[1]], false,
                                  dev[outs[0]] + uint64_t(r0 * H) * tb, 0.f));
      MM_RETURN_IF_ERROR(lt->gemm(stream, cudaType(t), CUDA_R_32F, V, H, r,
                                  a.dlogits, true, h, false, dev[outs[1]],
                                  r0 == 0 ? 0.f : 1.f));
    }
    a.row0 = 0;
    a.rows = rows;
    return launchPlan(fn, l, k::lmHeadPlan(a, "_reduce", sms, l), &a);
  }
  case Kernel::GradNorm: {
    if (workspaceBytes)
      return Status::ok();
    k::GradNormArgs a{};
    a.acc = base + scalars + kScalarGradAcc;
    a.out = d(outs[0]);
    MM_RETURN_IF_ERROR(
        launchPlan(fn, l, k::gradNormPlan(a, "_zero", sms, l), &a));
    auto multi = normTables.find(index);
    if (multi != normTables.end()) {
      a.table = base + tables + multi->second.offset;
      a.count = static_cast<long long>(in.size());
      a.n = static_cast<long long>(multi->second.blocks);
      MM_RETURN_IF_ERROR(
          launchPlan(fn, l, k::gradNormPlan(a, "_sumsq_multi", sms, l), &a));
      return launchPlan(fn, l, k::gradNormPlan(a, "_finalize", sms, l), &a);
    }
    for (uint32_t g : in) {
      a.g = d(g);
      a.n = elems(g);
      MM_RETURN_IF_ERROR(
          launchPlan(fn, l, k::gradNormPlan(a, "_sumsq", sms, l), &a));
    }
    return launchPlan(fn, l, k::gradNormPlan(a, "_finalize", sms, l), &a);
  }
  case Kernel::AdamW: {
    k::AdamWArgs a{d(in[0]), d(in[1]),      d(in[2]),     d(in[3]), d(in[4]),
                   d(in[5]), d(in[6]),      elems(in[0]), p.beta1,  p.beta2,
                   p.eps,    p.weightDecay, p.maxNorm};
    a.store = sched.fusedStore[index] >= 0 ? d(sched.fusedStore[index]) : 0;
    if (workspaceBytes)
      return Status::ok();
    if (sched.adamGroupOf[index] >= 0) {
      const size_t g = static_cast<size_t>(sched.adamGroupOf[index]);
      a.table = base + tables + adamTables[g].offset;
      a.count = static_cast<long long>(sched.adamGroups[g].size());
      return launchPlan(fn, l, k::adamWMultiPlan(a, adamTables[g].blocks, l),
                        &a);
    }
    return launchPlan(fn, l, k::adamWPlan(a, 0, sms, l), &a);
  }
  case Kernel::Came: {
    k::CameArgs a{d(in[0]), d(in[1]), d(in[2]), d(in[3]), d(in[4]),
                  d(in[5]), d(in[6]), d(in[7]), d(in[8]), ws};
    const size_t rank = plan.buffers[in[0]].shape.size();
    a.rows = x[rank - 2];
    a.cols = x[rank - 1];
    a.count = elems(in[0]) / (a.rows * a.cols);
    setCameParams(a, p);
    return issue(
        a, [&](const auto &x) { return k::cameWorkspaceBytes(x, 0, sms); },
        [&](auto &x) { return k::camePlan(x, 0, sms, l); });
  }
  case Kernel::CameVector: {
    k::CameVectorArgs a{d(in[0]), d(in[1]), d(in[2]), d(in[3]),
                        d(in[4]), d(in[5]), ws,       elems(in[0])};
    setCameParams(a, p);
    return issue(
        a,
        [&](const auto &x) { return k::cameVectorWorkspaceBytes(x, 0, sms); },
        [&](auto &x) { return k::cameVectorPlan(x, 0, sms, l); });
  }
  case Kernel::StoreParam: {
    k::StoreParamArgs a{d(in[0]), d(in[1]), elems(in[0])};
    return issue(a, none,
                 [&](auto &x) { return k::storeParamPlan(x, 0, sms, l); });
  }
  default:
    return internalError("unhandled training kernel " + s.kernelName);
  }
}

Status
CudaExecutor::Impl::runGateGrad(size_t index,
                                const std::vector<ResolvedShape> &shapes) {
  const StepDesc &g = plan.steps[static_cast<size_t>(sched.fusedGate[index])];
  GateOperands o;
  if (!gateOperands(plan, index, &o))
    return internalError("a fused gate backward without a shared dy");
  k::GateGradArgs a{dev[o.dy],         dev[o.a],
                    dev[o.b],          dev[g.inputs[0]],
                    dev[g.outputs[0]], dev[plan.steps[index + 1].outputs[0]],
                    shapes[g.outputs[0]].elements};
  k::Launch l[k::kMaxLaunches];
  return launchPlan(g.function, l, k::gateGradPlan(a, 0, multiprocessors, l),
                    &a);
}

Status CudaExecutor::Impl::launchFiniteChecks(
    size_t index, const std::vector<ResolvedShape> &shapes) {
  const StepDesc &s = plan.steps[index];
  std::vector<uint32_t> checked = s.outputs;
  if (sched.fusedGate[index] >= 0) // v and w of the gate's backward
    checked = {plan.steps[index + 1].outputs[0],
               plan.steps[static_cast<size_t>(sched.fusedGate[index])]
                   .outputs[0]};
  if (sched.fusedAdd[index] >= 0) // the product is the scaled_add's sum
    checked[0] = plan.steps[static_cast<size_t>(sched.fusedAdd[index])]
                     .outputs[0];
  if (sched.fusedLoss[index] >= 0)
    checked.push_back(static_cast<uint32_t>(sched.fusedLoss[index]));
  k::Launch l[k::kMaxLaunches];
  for (uint32_t o : checked) {
    const DType t = plan.buffers[o].dtype;
    if (t != DType::F32 && t != DType::BF16)
      continue;
    k::FiniteCheckArgs a{};
    a.x = dev[o];
    a.slot = base + scalars + kScalarFinite;
    a.n = shapes[o].elements;
    // The step that wrote it: a fused loss belongs to the step before, a
    // fused sum to the scaled_add after.
    a.step = static_cast<long long>(
        o == static_cast<uint32_t>(sched.fusedLoss[index]) ? index - 1
        : sched.fusedAdd[index] >= 0 && o == checked[0]
            ? static_cast<size_t>(sched.fusedAdd[index])
        : sched.fusedGate[index] >= 0
            ? (o == checked[0] ? index + 1
                               : static_cast<size_t>(sched.fusedGate[index]))
            : index);
    MM_RETURN_IF_ERROR(
        launchPlan(std::string("mm_finite_check_") + dtypeName(t), l,
                   k::finiteCheckPlan(a, 0, multiprocessors, l), &a));
  }
  return Status::ok();
}

Status CudaExecutor::Impl::checkFiniteSlot() {
  uint64_t key = 0;
  MM_CU_CALL(drv, memcpyDtoHAsync, &key, base + scalars + kScalarFinite, 8,
             stream);
  MM_CU_CALL(drv, streamSynchronize, stream);
  if (key == ~0ull)
    return Status::ok();
  const size_t stepIndex = static_cast<size_t>(key >> 40);
  const uint64_t at = key & ((1ull << 40) - 1);
  if (stepIndex >= plan.steps.size())
    return internalError("the finite check reported step " +
                         std::to_string(stepIndex));
  const StepDesc &s = plan.steps[stepIndex];
  // The first output holding the flagged index (outputs are scanned in
  // order; each report is the smallest index of the earliest step).
  for (uint32_t o : s.outputs) {
    const BufferDesc &b = plan.buffers[o];
    if (b.dtype != DType::F32 && b.dtype != DType::BF16)
      continue;
    float v = 0;
    if (b.dtype == DType::F32) {
      MM_CU_CALL(drv, memcpyDtoHAsync, &v, dev[o] + at * 4, 4, stream);
    } else {
      uint16_t h = 0;
      MM_CU_CALL(drv, memcpyDtoHAsync, &h, dev[o] + at * 2, 2, stream);
      MM_CU_CALL(drv, streamSynchronize, stream);
      const uint32_t u = uint32_t(h) << 16;
      std::memcpy(&v, &u, 4);
    }
    MM_CU_CALL(drv, streamSynchronize, stream);
    if (std::isfinite(v))
      continue;
    return outOfRange("step " + std::to_string(stepIndex) + ": " +
                      nonFiniteMessage(plan, s, b, v, at));
  }
  return outOfRange("step " + std::to_string(stepIndex) + " (" + s.kernelName +
                    "): non-finite value at flat index " + std::to_string(at));
}

} // namespace mm::cuda
