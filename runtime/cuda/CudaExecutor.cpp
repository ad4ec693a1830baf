// The CUDA backend; see CudaExecutor.h.
#include "runtime/cuda/CudaExecutor.h"
#include "runtime/cuda/ExecutorImpl.h"

#include "kernels/args.h"
#include "kernels/softmax_attention_grad.h"
#include "kernels/softmax_attention_tma.h"
#include "runtime/base/Env.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/KernelLaunch.h"
#include "runtime/cuda/LtGemm.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>

namespace mm::cuda {

namespace {

constexpr uint64_t kLtWorkspaceBytes = 32ull << 20;
constexpr uint64_t kSharedStatic = 48 * 1024; // beyond this, opt in per kernel

// Sub-kernels of the multi-kernel steps, in launch order (see kernels/moe.cuh,
// kernels/cross_entropy.cuh).
const std::vector<std::string> &entrySuffixes(const StepDesc &s) {
  static const std::vector<std::string> one = {""};
  static const std::vector<std::string> chunk = {"_states", "_scan", "_out"};
  static const std::vector<std::string> chunk128 = {"_states", "_scan", "_out",
                                                    "_fused"};
  if (s.kernel == Kernel::LightningAttention && s.params.tileChunk == 1)
    return s.params.headDim == 128 ? chunk128 : chunk;
  const Kernel k = s.kernel;
  static const std::vector<std::string> moe = {"_route", "_dispatch",
                                               "_gate_up", "_down", "_combine"};
  static const std::vector<std::string> ce = {"_rows", "_reduce"};
  return k == Kernel::Moe ? moe : k == Kernel::CrossEntropy ? ce : one;
}

bool usesLt(Kernel k) { return k == Kernel::Linear || k == Kernel::Logits; }

/// The inference kernels, which this backend runs; training steps (gradients,
/// optimizer updates) run on the CPU backend only for now.
bool isInferenceKernel(Kernel k) {
  switch (k) {
  case Kernel::Embedding:
  case Kernel::RmsNorm:
  case Kernel::Linear:
  case Kernel::Logits:
  case Kernel::Silu:
  case Kernel::Sigmoid:
  case Kernel::Mul:
  case Kernel::ScaledAdd:
  case Kernel::Rope:
  case Kernel::LightningAttention:
  case Kernel::SoftmaxAttention:
  case Kernel::Moe:
  case Kernel::CrossEntropy:
  case Kernel::AddRmsNorm:
  case Kernel::SigmoidMul:
    return true;
  default:
    return false;
  }
}

/// Compute capability the artifact's cubin was built for, or {0,0}.
std::pair<int, int> targetCapability(const std::string &target) {
  if (target == "sm_90a")
    return {9, 0};
  if (target == "sm_80")
    return {8, 0};
  if (target == "sm_89")
    return {8, 9};
  return {0, 0};
}

/// The element type T a step's kernel is instantiated with (CodegenCuda's
/// choice): its output's, or its logits input's for cross_entropy.
DType kernelDtype(const Plan &plan, const StepDesc &s) {
  const uint32_t typed =
      s.kernel == Kernel::CrossEntropy ? s.inputs[0] : s.outputs[0];
  return plan.buffers[typed].dtype;
}

/// The entry point mm-codegen-cuda names for a step with these params (see
/// compiler/CodegenCuda.cpp). The runtime sizes grids and shared memory from
/// the params, so a cubin entry instantiated with other tiles would be run out
/// of bounds: a step whose function disagrees is refused as corrupt.
std::string expectedFunction(const Plan &plan, const StepDesc &s) {
  const KernelParams &p = s.params;
  const std::string t = std::string("_") + dtypeName(kernelDtype(plan, s)) +
                        "_",
                    th = "_t" + std::to_string(p.tileThreads);
  auto n = [](int64_t v) { return std::to_string(v); };
  switch (s.kernel) {
  case Kernel::LightningAttention:
    if (p.tileChunk == 1)
      return "mm_lightning_chunk" + t + "d" + n(p.headDim) + th +
             (p.siluInput ? "_silu" : "");
    return "mm_lightning_attention" + t + "d" + n(p.headDim) + "_b" +
           n(p.tileBlock) + "_dv" + n(p.tileDv) + th +
           (p.siluInput ? "_silu" : "");
  case Kernel::SoftmaxAttention:
    return "mm_softmax_attention" + t + "d" + n(p.headDim) + "_q" + n(p.tileQ) +
           "_k" + n(p.tileK) + th;
  case Kernel::Moe:
    return "mm_moe" + t + "m" + n(p.tileM) + "_n" + n(p.tileN) + "_k" +
           n(p.tileK) + th;
  default:
    return "mm_" + s.kernelName + t.substr(0, t.size() - 1) + th;
  }
}

/// Device bytes of a weight (see deviceDtype).
uint64_t deviceBytes(const BufferDesc &b) {
  return b.maxBytes / dtypeSize(b.dtype) * dtypeSize(deviceDtype(b));
}

/// Segments of a chunk-parallel lightning step: the kernel's own choice
/// (lightningChunkSegLen), lengthened when it would need more state slots than
/// the workspace holds (kLightningMaxSegments per sequence and head).
constexpr long long kLightningMaxSegments = 256;
std::pair<long long, long long> lightningSegments(long long T, long long bh,
                                                  long long sms, int D) {
  long long len = k::lightningChunkSegLen(T, bh, sms, D);
  if ((T + len - 1) / len > kLightningMaxSegments)
    len = ((T + kLightningMaxSegments - 1) / kLightningMaxSegments + 63) / 64 *
          64;
  return {len, (T + len - 1) / len};
}

} // namespace

Status CudaExecutor::Impl::open() {
  int count = 0;
  MM_CU_CALL(drv, deviceGetCount, &count);
  if (count < 1)
    return Status(StatusCode::kUnimplemented, "no CUDA device is visible");
  MM_CU_CALL(drv, deviceGet, &device, 0);
  char buf[256] = {0};
  MM_CU_CALL(drv, deviceGetName, buf, sizeof(buf) - 1, device);
  int major = 0, minor = 0, optin = 0;
  MM_CU_CALL(drv, deviceGetAttribute, &major,
             CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device);
  MM_CU_CALL(drv, deviceGetAttribute, &minor,
             CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device);
  MM_CU_CALL(drv, deviceGetAttribute, &optin,
             CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, device);
  MM_CU_CALL(drv, deviceGetAttribute, &multiprocessors,
             CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, device);
  name = std::string(buf) + " (sm_" + std::to_string(major) +
         std::to_string(minor) + ")";

  // MM_LIGHTNING_FUSED: a test and measurement knob of the fused lightning
  // launch (kernels/args.h lightningFusedSegLen): unset = the default
  // policy, 0 = always the three launches, N > 0 = fused with N-token
  // segments.
  MM_ASSIGN_OR_RETURN(lightningFused, envNonNegative("MM_LIGHTNING_FUSED"));

  auto [tMajor, tMinor] = targetCapability(plan.target);
  if (tMajor == 0 || plan.cubin.empty())
    return invalidArgument(
        "the artifact was compiled for target '" + plan.target +
        "' and holds no GPU code; compile it with target=sm_90a (or sm_80, "
        "sm_89) to run it on the CUDA backend");
  // An sm_80 cubin runs on any 8.x device; sm_89 and sm_90a need their own.
  const bool fits =
      major == tMajor && (tMinor == 0 && tMajor == 8 ? true : minor == tMinor);
  if (!fits)
    return invalidArgument("the artifact's GPU code is for " + plan.target +
                           " but device 0 is " + name +
                           "; recompile the model for this GPU");

  MM_CU_CALL(drv, primaryCtxRetain, &ctx, device);
  MM_CU_CALL(drv, ctxSetCurrent, ctx);
  MM_CU_CALL(drv, moduleLoadData, &module, plan.cubin.data());
  MM_CU_CALL(drv, streamCreate, &stream, CU_STREAM_NON_BLOCKING);

  launches.resize(plan.steps.size());
  sched = planTrainSchedule(plan);
  // An artifact compiled before sigmoid_grad had its "_gate" entry runs the
  // output gate's backward as three steps.
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    if (sched.fusedGate[i] < 0)
      continue;
    const size_t g = static_cast<size_t>(sched.fusedGate[i]);
    CUfunction fn = nullptr;
    if (drv.moduleGetFunction(&fn, module,
                              (plan.steps[g].function + "_gate").c_str()) !=
        CUDA_SUCCESS) {
      sched.fusedGate[i] = -1;
      sched.skip[i + 1] = sched.skip[g] = false;
    }
  }
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const StepDesc &s = plan.steps[i];
    auto where = [&] {
      return "step " + std::to_string(i) + " (" + s.kernelName + "): ";
    };
    if (s.stream != 0)
      return Status(StatusCode::kUnimplemented,
                    where() + "runs on stream " + std::to_string(s.stream) +
                        "; this backend has no cross-stream events yet");
    if (isTrainKernel(s.kernel)) {
      MM_RETURN_IF_ERROR(openTrainStep(i).withPrefix(where()));
      continue;
    }
    if (!isInferenceKernel(s.kernel))
      return internalError(where() + "has no CUDA implementation");
    // A kernel reads its weights in its own element type (cuBLASLt: in the
    // type of x), so each weight must live on the device in that type.
    const DType want = usesLt(s.kernel) ? plan.buffers[s.inputs[0]].dtype
                                        : kernelDtype(plan, s);
    for (uint32_t in : s.inputs) {
      const BufferDesc &b = plan.buffers[in];
      if (b.kind == BufferKind::Weight && deviceDtype(b) != want)
        return invalidArgument(where() + "weight '" + b.name +
                               "' is stored as " + dtypeName(b.dtype) +
                               " but the step computes in " + dtypeName(want) +
                               "; recompile the artifact (dtype=f32 or bf16)");
    }
    if (usesLt(s.kernel))
      continue;
    if (s.function.empty() || s.params.tileThreads <= 0)
      return invalidArgument(where() + "has no GPU entry point or tile "
                                       "params; recompile the artifact");
    if (s.function != expectedFunction(plan, s))
      return invalidArgument(where() + "entry point '" + s.function +
                             "' does not match the step's params (expected '" +
                             expectedFunction(plan, s) +
                             "'); the artifact is corrupt");
    const KernelParams &p = s.params;
    StepLaunch &L = launches[i];
    if (s.kernel == Kernel::LightningAttention && p.tileChunk == 1) {
      if (kernelDtype(plan, s) != DType::BF16 ||
          !k::lightningChunkHeadDim(p.headDim))
        return invalidArgument(where() + "tile_chunk needs bf16 and head_dim "
                                         "64 or 128; the artifact is corrupt");
      const int D = static_cast<int>(p.headDim);
      L.fnSmem = {static_cast<uint32_t>(k::lightningChunkStatesSmem(D, 3)), 0,
                  static_cast<uint32_t>(k::lightningChunkOutSmem(D, 3))};
      if (D == 128) // the fused single launch: the output launch's layout
        L.fnSmem.push_back(L.fnSmem[2]);
      L.smemBytes = std::max(L.fnSmem[0], L.fnSmem[2]);
    } else if (s.kernel == Kernel::LightningAttention)
      L.smemBytes = static_cast<uint32_t>(
          4 * k::lightningSmemFloats(static_cast<int>(p.headDim),
                                     static_cast<int>(p.tileBlock),
                                     static_cast<int>(p.tileDv)));
    else if (s.kernel == Kernel::SoftmaxAttention)
      L.smemBytes = static_cast<uint32_t>(
          plan.buffers[s.outputs[0]].dtype == DType::BF16 && p.headDim % 16 == 0
              ? k::attentionBf16SmemBytes(
                    static_cast<int>(p.headDim), static_cast<int>(p.tileK),
                    static_cast<int>(p.tileQ), static_cast<int>(p.tileThreads))
              : 4 * k::attentionSmemFloats(static_cast<int>(p.headDim),
                                           static_cast<int>(p.tileQ),
                                           static_cast<int>(p.tileK)));
    else if (s.kernel == Kernel::Moe &&
             k::moeWgmmaTiles(p.tileM, p.tileN, p.tileK))
      L.smemBytes = static_cast<uint32_t>(k::moeWgmmaSmemBytes());
    if (L.smemBytes > static_cast<uint32_t>(optin))
      return invalidArgument(where() + "needs " + std::to_string(L.smemBytes) +
                             " bytes of shared memory but " + name +
                             " allows " + std::to_string(optin));
    if (s.kernel == Kernel::Moe) {
      int64_t experts = plan.buffers[s.inputs[1]].shape[0].value;
      if (experts > k::moeMaxExperts())
        return Status(StatusCode::kUnimplemented,
                      where() + "has " + std::to_string(experts) +
                          " experts; the kernels support up to " +
                          std::to_string(k::moeMaxExperts()));
    }
    const auto &suffixes = entrySuffixes(s);
    for (size_t e = 0; e < suffixes.size(); ++e) {
      const std::string &suffix = suffixes[e];
      const uint32_t smem = L.fnSmem.empty() ? L.smemBytes : L.fnSmem[e];
      CUfunction fn = nullptr;
      const std::string entry = s.function + suffix;
      CUresult r = drv.moduleGetFunction(&fn, module, entry.c_str());
      if (r != CUDA_SUCCESS && suffix == "_fused") {
        // An artifact compiled before the fused lightning launch existed:
        // it runs the three launches.
        L.fns.push_back(nullptr);
        continue;
      }
      if (r != CUDA_SUCCESS)
        return invalidArgument(where() + "the cubin has no entry point '" +
                               entry + "'");
      if (smem > kSharedStatic)
        MM_CU_CALL(drv, funcSetAttribute, fn,
                   CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                   static_cast<int>(smem));
      L.fns.push_back(fn);
    }
  }
  return Status::ok();
}

Status CudaExecutor::Impl::allocate(const std::vector<void *> &hostData) {
  // Layout: weights and optimizer states | arena | workspace | cuBLASLt
  // workspace | inputs | error slot | training scalars.
  uint64_t at = 0;
  dev.assign(plan.buffers.size(), 0);
  std::vector<uint64_t> offset(plan.buffers.size(), 0);
  std::map<const void *, uint64_t> weightAt; // shared host storage -> offset
  for (size_t i = 0; i < plan.buffers.size(); ++i) {
    const BufferDesc &b = plan.buffers[i];
    if (!isPersistent(b))
      continue;
    auto [it, fresh] = weightAt.emplace(hostData[i], at);
    offset[i] = it->second;
    if (fresh)
      at = alignUp(at + deviceBytes(b), kWorkspaceAlign);
  }
  weightBytes = at;
  const uint64_t arena = at;
  at = alignUp(at + plan.arenaBytes, kWorkspaceAlign);
  uint64_t wsBytes = 0;
  const std::vector<ResolvedShape> atMax = maxShapes();
  for (size_t si = 0; si < plan.steps.size(); ++si) {
    const StepDesc &s = plan.steps[si];
    const auto &x = plan.buffers[s.inputs[0]];
    const int64_t rows = plan.maxBatch * plan.maxSeq;
    if (s.kernel == Kernel::Moe) {
      const auto &w1 = plan.buffers[s.inputs[2]].shape;
      wsBytes = std::max(
          wsBytes, moeWorkspace(rows, x.shape[2].value, w1[0].value,
                                w1[1].value, s.params.topK, dtypeSize(x.dtype))
                       .bytes);
    } else if (s.kernel == Kernel::CrossEntropy) {
      wsBytes = std::max(wsBytes, crossEntropyWorkspaceBytes(rows));
    } else if (isTrainKernel(s.kernel)) {
      wsBytes = std::max(wsBytes, trainWorkspaceBytes(si, atMax));
    } else if (s.kernel == Kernel::LightningAttention &&
               s.params.tileChunk == 1) {
      // fp32 [D, D] states of every segment but the last, per sequence and
      // head.
      const long long nseg = kLightningMaxSegments;
      wsBytes = std::max<uint64_t>(
          wsBytes, 4ull * k::lightningChunkStateFloats(
                              static_cast<int>(s.params.headDim), plan.maxBatch,
                              s.params.numHeads, nseg));
      // The fused launch (D = 128): two slots a segment, then its status
      // words and ticket.
      if (s.params.headDim == 128) {
        const long long bh = plan.maxBatch * s.params.numHeads,
                        fseg = k::lightningFusedMaxSegments();
        wsBytes = std::max<uint64_t>(
            wsBytes, 4ull * (k::lightningFusedStateFloats(128, bh, fseg) +
                             k::lightningFusedFlagInts(bh, fseg)));
      }
    }
  }
  workspace = at;
  workspaceBytes = wsBytes;
  at = alignUp(at + wsBytes, kWorkspaceAlign);
  ltWorkspace = at;
  at += kLtWorkspaceBytes;
  for (size_t i = 0; i < plan.buffers.size(); ++i)
    if (plan.buffers[i].kind == BufferKind::Input) {
      offset[i] = at;
      at = alignUp(at + plan.buffers[i].maxBytes, kWorkspaceAlign);
    }
  errorSlot = at;
  at = alignUp(at + sizeof(k::ErrorSlot), kWorkspaceAlign);
  scalars = at;
  at += kScalarBytes;
  tables = at;
  at += tableBytes();
  // The forward statistics softmax_attention_grad steps reuse.
  std::vector<uint64_t> lseAt(plan.steps.size(), 0), outAt(lseAt);
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const StepDesc &s = plan.steps[i];
    if (sched.savedFor[i] < 0)
      continue;
    at = alignUp(at, kWorkspaceAlign);
    lseAt[i] = at;
    at += static_cast<uint64_t>(plan.maxBatch) * s.params.numHeads *
          k::sagPad(plan.maxSeq) * 4;
    at = alignUp(at, kWorkspaceAlign);
    outAt[i] = at;
    at += plan.buffers[s.outputs[0]].maxBytes;
  }
  totalBytes = at;

  size_t freeBytes = 0, deviceTotal = 0;
  MM_CU_CALL(drv, memGetInfo, &freeBytes, &deviceTotal);
  if (at > freeBytes)
    return resourceExhausted("the plan needs " + std::to_string(at) +
                             " bytes of GPU memory but " + name + " has " +
                             std::to_string(freeBytes) + " free");
  MM_CU_CALL(drv, memAlloc, &base, at);
  for (size_t i = 0; i < plan.buffers.size(); ++i) {
    const BufferDesc &b = plan.buffers[i];
    dev[i] = base +
             (b.kind == BufferKind::Activation ? arena + b.offset : offset[i]);
  }
  savedLse.assign(plan.steps.size(), 0);
  savedOut.assign(plan.steps.size(), 0);
  for (size_t i = 0; i < plan.steps.size(); ++i)
    if (lseAt[i]) {
      savedLse[i] = base + lseAt[i];
      savedOut[i] = base + outAt[i];
    }
  MM_RETURN_IF_ERROR(uploadPersistent(hostData));
  MM_RETURN_IF_ERROR(uploadTables());
  MM_ASSIGN_OR_RETURN(lt,
                      LtGemm::create(base + ltWorkspace, kLtWorkspaceBytes));
  return Status::ok();
}

template <typename F> Status CudaExecutor::Impl::eachPersistent(F f) {
  // Buffers sharing storage share a device address and travel once.
  std::map<CUdeviceptr, bool> done;
  for (size_t i = 0; i < plan.buffers.size(); ++i)
    if (isPersistent(plan.buffers[i]) && done.emplace(dev[i], true).second)
      MM_RETURN_IF_ERROR(f(i, plan.buffers[i]));
  MM_CU_CALL(drv, streamSynchronize, stream);
  return Status::ok();
}

Status
CudaExecutor::Impl::uploadPersistent(const std::vector<void *> &hostData) {
  // Host weights are f32 (bf16 ones already rounded by the Session); bf16
  // ones are narrowed here, one tensor at a time.
  std::vector<uint16_t> narrow;
  return eachPersistent([&](size_t i, const BufferDesc &b) -> Status {
    if (deviceDtype(b) == DType::F32) {
      MM_CU_CALL(drv, memcpyHtoDAsync, dev[i], hostData[i], deviceBytes(b),
                 stream);
      return Status::ok();
    }
    const uint64_t n = b.maxBytes / dtypeSize(b.dtype);
    const float *src = static_cast<const float *>(hostData[i]);
    MM_CU_CALL(drv, streamSynchronize, stream); // `narrow` is reused
    narrow.resize(n);
    for (uint64_t j = 0; j < n; ++j) {
      uint32_t u;
      std::memcpy(&u, &src[j], 4);
      narrow[j] = static_cast<uint16_t>(u >> 16); // exact: rounded at bind
    }
    MM_CU_CALL(drv, memcpyHtoDAsync, dev[i], narrow.data(), n * 2, stream);
    return Status::ok();
  });
}

Status
CudaExecutor::Impl::downloadPersistent(const std::vector<void *> &hostData) {
  std::vector<uint16_t> wide;
  return eachPersistent([&](size_t i, const BufferDesc &b) -> Status {
    if (deviceDtype(b) == DType::F32) {
      MM_CU_CALL(drv, memcpyDtoHAsync, hostData[i], dev[i], deviceBytes(b),
                 stream);
      return Status::ok();
    }
    const uint64_t n = b.maxBytes / dtypeSize(b.dtype);
    wide.resize(n);
    MM_CU_CALL(drv, memcpyDtoHAsync, wide.data(), dev[i], n * 2, stream);
    MM_CU_CALL(drv, streamSynchronize, stream);
    float *dst = static_cast<float *>(hostData[i]);
    for (uint64_t j = 0; j < n; ++j) {
      const uint32_t u = static_cast<uint32_t>(wide[j]) << 16;
      std::memcpy(&dst[j], &u, 4);
    }
    return Status::ok();
  });
}

CudaExecutor::Impl::FusedAdd CudaExecutor::Impl::fusedAdd(size_t index) const {
  const StepDesc &add = plan.steps[static_cast<size_t>(sched.fusedAdd[index])];
  const bool first = add.inputs[0] == plan.steps[index].outputs[0];
  const float a = static_cast<float>(add.params.alpha),
              b = static_cast<float>(add.params.beta);
  return {dev[add.outputs[0]], dev[add.inputs[first ? 1 : 0]], first ? a : b,
          first ? b : a};
}

Status CudaExecutor::Impl::runStep(size_t index,
                                   const std::vector<ResolvedShape> &shapes) {
  const StepDesc &s = plan.steps[index];
  const KernelParams &p = s.params;
  const StepLaunch &L = launches[index];
  const auto &in = s.inputs;
  const CUdeviceptr out = dev[s.outputs[0]];
  const auto &x = shapes[in[0]].dims;
  const unsigned threads = static_cast<unsigned>(p.tileThreads);
  auto d = [&](size_t i) { return static_cast<k::dptr>(dev[in[i]]); };
  switch (s.kernel) {
  case Kernel::Embedding: {
    k::EmbeddingArgs a{d(0),
                       d(1),
                       out,
                       base + errorSlot,
                       x[0] * x[1],
                       shapes[in[1]].dims[0],
                       shapes[in[1]].dims[1]};
    return launch(L.fns[0], static_cast<unsigned>(a.rows), 1, 1, threads, 0,
                  &a);
  }
  case Kernel::RmsNorm:
  case Kernel::AddRmsNorm: {
    const bool add = s.kernel == Kernel::AddRmsNorm;
    k::RmsNormArgs a{d(0),  add ? d(1) : 0, add ? d(2) : d(1),
                     out,   x[0] * x[1],    x[2],
                     p.eps, p.alpha,        p.beta};
    return launch(L.fns[0], static_cast<unsigned>(a.rows), 1, 1, threads, 0,
                  &a);
  }
  case Kernel::Linear:
  case Kernel::Logits: {
    const DType xt = plan.buffers[in[0]].dtype;
    const cudaDataType_t inType = cudaType(xt),
                         outType = cudaType(plan.buffers[s.outputs[0]].dtype);
    if (p.lastPosition) // row T-1 of each sequence: m = B rows T·K apart
      return lt->run(stream, inType, outType, x[0], shapes[in[1]].dims[0], x[2],
                     dev[in[0]] + (x[1] - 1) * x[2] * dtypeSize(xt),
                     x[1] * x[2], dev[in[1]], out);
    if (sched.fusedAdd[index] >= 0) { // + the residual of the scaled_add
      const FusedAdd f = fusedAdd(index);
      return lt->runAdd(stream, inType, x[0] * x[1], shapes[in[1]].dims[0],
                        x[2], dev[in[0]], dev[in[1]], f.sum, f.alpha, f.other,
                        f.beta);
    }
    return lt->run(stream, inType, outType, x[0] * x[1], shapes[in[1]].dims[0],
                   x[2], dev[in[0]], x[2], dev[in[1]], out);
  }
  case Kernel::Silu:
  case Kernel::Sigmoid:
  case Kernel::Mul:
  case Kernel::ScaledAdd:
  case Kernel::SigmoidMul: {
    const bool binary = in.size() > 1;
    k::ElementwiseArgs a{
        d(0), binary ? d(1) : 0, out, shapes[in[0]].elements, p.alpha, p.beta};
    // Up to 8 elements per thread and grid-stride step
    // (kernels/elementwise.cuh).
    return launch(L.fns[0], gridStride((a.n + 7) / 8, threads), 1, 1, threads,
                  0, &a);
  }
  case Kernel::Rope: {
    k::RopeArgs a{d(0),       out,       x[0],        x[1],
                  p.numHeads, p.headDim, p.rotaryDim, p.theta};
    const int64_t items =
        x[0] * x[1] * p.numHeads * (p.headDim - p.rotaryDim / 2);
    return launch(L.fns[0], gridStride(items, threads), 1, 1, threads, 0, &a);
  }
  case Kernel::LightningAttention: {
    if (p.tileChunk == 1) {
      const int D = static_cast<int>(p.headDim);
      // sm_90a, D = 128, long T: one fused launch (decoupled look-back,
      // kernels/lightning_attention.cuh lightningChunkFused); its status
      // words and ticket are zeroed first.
      const long long fusedSeg =
          D == 128 && plan.target == "sm_90a" && L.fns.size() > 3 && L.fns[3]
              ? k::lightningFusedSegLen(x[1], x[0] * p.numHeads,
                                        multiprocessors, lightningFused)
              : 0;
      if (fusedSeg > 0) {
        const long long nsegF = (x[1] + fusedSeg - 1) / fusedSeg,
                        bh = x[0] * p.numHeads;
        k::LightningChunkArgs a{
            d(0),       out,          base + workspace, x[0],     x[1],
            p.numHeads, p.layerIndex, p.numLayers,      fusedSeg, nsegF};
        MM_CU_CALL(drv, memsetD8Async,
                   base + workspace +
                       4ull * k::lightningFusedStateFloats(D, bh, nsegF),
                   0, 4ull * k::lightningFusedFlagInts(bh, nsegF), stream);
        return launch(L.fns[3], static_cast<unsigned>(nsegF * bh), 1, 1,
                      threads, L.fnSmem[3], &a);
      }
      const auto [segLen, nseg] =
          lightningSegments(x[1], x[0] * p.numHeads, multiprocessors, D);
      k::LightningChunkArgs a{d(0),   out,        base + workspace, x[0],
                              x[1],   p.numHeads, p.layerIndex,     p.numLayers,
                              segLen, nseg};
      const unsigned H = static_cast<unsigned>(p.numHeads),
                     B = static_cast<unsigned>(x[0]);
      if (nseg > 1) {
        MM_RETURN_IF_ERROR(launch(L.fns[0], static_cast<unsigned>(nseg - 1), H,
                                  B, threads, L.fnSmem[0], &a));
        MM_RETURN_IF_ERROR(launch(L.fns[1], k::lightningChunkScanBlocks(D), H,
                                  B, threads, 0, &a));
      }
      return launch(L.fns[2], static_cast<unsigned>(nseg), H, B, threads,
                    L.fnSmem[2], &a);
    }
    k::LightningArgs a{d(0),       out,          x[0],       x[1],
                       p.numHeads, p.layerIndex, p.numLayers};
    return launch(L.fns[0], static_cast<unsigned>(p.headDim / p.tileDv),
                  static_cast<unsigned>(p.numHeads),
                  static_cast<unsigned>(x[0]), threads, L.smemBytes, &a);
  }
  case Kernel::SoftmaxAttention: {
    k::SoftmaxAttentionArgs a{};
    a.q = d(0);
    a.k = d(1);
    a.v = d(2);
    a.out = out;
    a.batch = x[0];
    a.seq = x[1];
    a.heads = p.numHeads;
    a.kv_heads = p.numKvHeads;
    a.scale = p.scale;
    if (savedLse[index]) { // kept for the backward (sched.savedFor)
      a.lse = savedLse[index];
      a.out_copy = savedOut[index];
      a.lse_stride = k::sagPad(x[1]);
    }
    // The FA3 form (bf16 only: the tile implies tensor cores) loads through
    // TMA tensor maps built here, per launch (shapes vary per call).
    if (k::attentionFa3Tile(
            static_cast<int>(p.headDim), static_cast<int>(p.tileQ),
            static_cast<int>(p.tileK), static_cast<int>(p.tileThreads))) {
      const CUresult r =
          k::softmaxAttentionTmaMaps(a, drv.tensorMapEncodeTiled);
      if (r != CUDA_SUCCESS)
        return drv.error(r, "cuTensorMapEncodeTiled (softmax attention)");
    }
    return launch(L.fns[0],
                  static_cast<unsigned>((x[1] + p.tileQ - 1) / p.tileQ),
                  static_cast<unsigned>(p.numHeads),
                  static_cast<unsigned>(x[0]), threads, L.smemBytes, &a);
  }
  case Kernel::Moe: {
    const auto &w1 = shapes[in[2]].dims;
    k::MoeArgs a{};
    a.x = d(0);
    a.router = d(1);
    a.w1 = d(2);
    a.w2 = d(3);
    a.w3 = d(4);
    a.out = out;
    a.rows = x[0] * x[1];
    a.hidden = x[2];
    a.experts = w1[0];
    a.inter = w1[1];
    a.top_k = p.topK;
    if (sched.fusedAdd[index] >= 0) { // the residual sum in the combine
      const FusedAdd f = fusedAdd(index);
      a.out = f.sum;
      a.add = f.other;
      a.out_scale = f.alpha;
      a.add_scale = f.beta;
    }
    bindMoeWorkspace(a, base + workspace,
                     moeWorkspace(a.rows, a.hidden, a.experts, a.inter, a.top_k,
                                  dtypeSize(plan.buffers[in[0]].dtype)));
    const unsigned tiles =
        moeGemmTiles(a.rows, a.top_k, a.experts, static_cast<int>(p.tileM));
    const unsigned warps = threads / 32;
    MM_RETURN_IF_ERROR(
        launch(L.fns[0], static_cast<unsigned>((a.rows + warps - 1) / warps), 1,
               1, threads, 0, &a));
    MM_RETURN_IF_ERROR(launch(L.fns[1], 1, 1, 1, 1024, 0, &a));
    if (k::moeWgmmaTiles(p.tileM, p.tileN, p.tileK)) {
      // sm_90a wgmma form: persistent CTAs walk the (M-tile, N-tile) work
      // items.
      MM_RETURN_IF_ERROR(launch(L.fns[2],
                                static_cast<unsigned>(k::moeWgmmaGrid(
                                    multiprocessors, tiles, a.inter, true)),
                                1, 1, k::moeWgmmaThreads(), L.smemBytes, &a));
      MM_RETURN_IF_ERROR(launch(L.fns[3],
                                static_cast<unsigned>(k::moeWgmmaGrid(
                                    multiprocessors, tiles, a.hidden, false)),
                                1, 1, k::moeWgmmaThreads(), L.smemBytes, &a));
    } else {
      MM_RETURN_IF_ERROR(
          launch(L.fns[2], tiles,
                 static_cast<unsigned>((a.inter + p.tileN - 1) / p.tileN), 1,
                 threads, 0, &a));
      MM_RETURN_IF_ERROR(
          launch(L.fns[3], tiles,
                 static_cast<unsigned>((a.hidden + p.tileN - 1) / p.tileN), 1,
                 threads, 0, &a));
    }
    return launch(L.fns[4], static_cast<unsigned>(a.rows), 1, 1, threads, 0,
                  &a);
  }
  case Kernel::CrossEntropy: {
    k::CrossEntropyArgs a{
        d(0), d(1), out, base + workspace, base + errorSlot, x[0] * x[1], x[2]};
    MM_RETURN_IF_ERROR(
        launch(L.fns[0], static_cast<unsigned>(a.rows), 1, 1, threads, 0, &a));
    return launch(L.fns[1], 1, 1, 1, threads, 0, &a);
  }
  default: // refused by open()
    return internalError("unhandled kernel " + s.kernelName);
  }
}

Status CudaExecutor::Impl::checkErrorSlot(int64_t seq) {
  k::ErrorSlot e{};
  MM_CU_CALL(drv, memcpyDtoHAsync, &e, base + errorSlot, sizeof(e), stream);
  MM_CU_CALL(drv, streamSynchronize, stream);
  if (e.row == 0)
    return Status::ok();
  const int64_t row = static_cast<int64_t>(e.row) - 1;
  const std::string at = " at [" + std::to_string(row / seq) + ", " +
                         std::to_string(row % seq) + "]";
  for (const StepDesc &s : plan.steps) {
    if (e.kind == k::kErrorTokenId && s.kernel == Kernel::Embedding)
      return outOfRange(
          "embedding: token id " + std::to_string(e.value) + at +
          " is outside [0, " +
          std::to_string(plan.buffers[s.inputs[1]].shape[0].value) + ")");
    if (e.kind == k::kErrorLabel && s.kernel == Kernel::CrossEntropy)
      return outOfRange(
          "cross_entropy: label " + std::to_string(e.value) + at +
          " is outside [0, " +
          std::to_string(plan.buffers[s.inputs[0]].shape[2].value) +
          ") and is not -100");
  }
  return internalError("a kernel reported an unknown error kind " +
                       std::to_string(e.kind));
}

CudaExecutor::CudaExecutor(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
CudaExecutor::~CudaExecutor() = default;

const std::string &CudaExecutor::deviceName() const { return impl_->name; }

StatusOr<std::unique_ptr<CudaExecutor>>
CudaExecutor::create(const Plan &plan, const std::vector<void *> &hostData,
                     bool checkFinite) {
  MM_ASSIGN_OR_RETURN(const Driver *drv, driver());
  auto impl = std::make_unique<Impl>(plan, *drv);
  impl->checkFinite = checkFinite;
  MM_RETURN_IF_ERROR(impl->open());
  MM_RETURN_IF_ERROR(impl->allocate(hostData));
  return std::unique_ptr<CudaExecutor>(new CudaExecutor(std::move(impl)));
}

Status CudaExecutor::Impl::pass(const std::vector<void *> &hostData,
                                const std::vector<ResolvedShape> &shapes,
                                int64_t seq, bool scan) {
  MM_CU_CALL(drv, memsetD8Async, base + errorSlot, 0, sizeof(k::ErrorSlot),
             stream);
  if (scan) // no non-finite value seen: the slot holds ~0
    MM_CU_CALL(drv, memsetD8Async, base + scalars + kScalarFinite, 0xff, 8,
               stream);
  for (const Binding &b : plan.inputs)
    MM_CU_CALL(drv, memcpyHtoDAsync, dev[b.buffer], hostData[b.buffer],
               shapes[b.buffer].elements *
                   dtypeSize(plan.buffers[b.buffer].dtype),
               stream);
  const size_t n = plan.steps.size();
  for (size_t i = 0; i < n; ++i) {
    if (profiling)
      MM_CU_CALL(drv, eventRecord, events[i], stream);
    if (sched.skip[i])
      continue;
    Status st = sched.fusedGate[i] >= 0 ? runGateGrad(i, shapes)
                : isTrainKernel(plan.steps[i].kernel) ? runTrainStep(i, shapes)
                                                      : runStep(i, shapes);
    if (st.isOk() && scan)
      st = launchFiniteChecks(i, shapes);
    if (!st.isOk())
      return st.withPrefix("step " + std::to_string(i) + " (" +
                           plan.steps[i].kernelName + "): ");
  }
  if (profiling)
    MM_CU_CALL(drv, eventRecord, events[n], stream);
  for (const Binding &b : plan.outputs)
    MM_CU_CALL(drv, memcpyDtoHAsync, hostData[b.buffer], dev[b.buffer],
               shapes[b.buffer].elements * 4, stream);
  MM_RETURN_IF_ERROR(checkErrorSlot(seq));
  if (scan)
    MM_RETURN_IF_ERROR(checkFiniteSlot());
  stepMs.assign(profiling ? n : 0, 0.f);
  for (size_t i = 0; i < stepMs.size(); ++i)
    MM_CU_CALL(drv, eventElapsedTime, &stepMs[i], events[i], events[i + 1]);
  return Status::ok();
}

Status CudaExecutor::run(const std::vector<void *> &hostData,
                         const std::vector<ResolvedShape> &shapes,
                         int64_t /*batch*/, int64_t seq) {
  Impl &m = *impl_;
  MM_CU_CALL(m.drv, ctxSetCurrent, m.ctx);
  MM_RETURN_IF_ERROR(m.checkStepInputs(hostData));
  MM_RETURN_IF_ERROR(m.pass(hostData, shapes, seq, /*scan=*/false));
  if (!m.checkFinite)
    return Status::ok();
  // NaN/Inf checks cost a pass over every step's outputs, so they run only
  // when an output (the loss, the gradient norm, returned gradients) is not
  // finite, which any non-finite value of the step reaches. The optimizer
  // kernels skip the update on a non-finite gradient norm, so the replay with
  // per-step scans sees the same weights and names the first bad tensor.
  for (const Binding &b : m.plan.outputs) {
    const float *v = static_cast<const float *>(hostData[b.buffer]);
    for (int64_t j = 0; j < shapes[b.buffer].elements; ++j)
      if (!std::isfinite(v[j])) {
        MM_RETURN_IF_ERROR(m.pass(hostData, shapes, seq, /*scan=*/true));
        return outOfRange("non-finite value in output '" + b.name +
                          "' (a replay with per-step checks found no "
                          "non-finite tensor)");
      }
  }
  return Status::ok();
}

Status CudaExecutor::setProfiling(bool on) {
  Impl &m = *impl_;
  MM_CU_CALL(m.drv, ctxSetCurrent, m.ctx);
  while (on && m.events.size() < m.plan.steps.size() + 1) {
    CUevent e = nullptr;
    MM_CU_CALL(m.drv, eventCreate, &e, CU_EVENT_DEFAULT);
    m.events.push_back(e);
  }
  m.profiling = on;
  return Status::ok();
}

Status CudaExecutor::downloadPersistent(const std::vector<void *> &hostData) {
  MM_CU_CALL(impl_->drv, ctxSetCurrent, impl_->ctx);
  return impl_->downloadPersistent(hostData);
}

Status CudaExecutor::uploadPersistent(const std::vector<void *> &hostData) {
  MM_CU_CALL(impl_->drv, ctxSetCurrent, impl_->ctx);
  return impl_->uploadPersistent(hostData);
}

const std::vector<float> &CudaExecutor::stepTimes() const {
  return impl_->stepMs;
}

StatusOr<CudaExecutor::MemoryUse> CudaExecutor::memoryUse() const {
  const Impl &m = *impl_;
  MM_CU_CALL(m.drv, ctxSetCurrent, m.ctx);
  size_t freeBytes = 0, total = 0;
  MM_CU_CALL(m.drv, memGetInfo, &freeBytes, &total);
  MemoryUse u;
  u.weights = m.weightBytes;
  u.arena = m.plan.arenaBytes;
  u.workspace = m.workspaceBytes;
  u.ltWorkspace = kLtWorkspaceBytes;
  u.allocated = m.totalBytes;
  u.deviceUsed = total - freeBytes;
  u.deviceTotal = total;
  return u;
}

} // namespace mm::cuda
