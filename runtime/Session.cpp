// Session: allocation, weight/input binding and step execution; see Session.h.
#include "runtime/Session.h"

#ifdef MM_HAVE_CUDA
#include "runtime/cuda/CudaExecutor.h"
#endif

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <unistd.h>

namespace mm {

uint64_t OutputView::numElements() const {
  uint64_t n = 1;
  for (int64_t d : shape)
    n *= static_cast<uint64_t>(d);
  return n;
}

uint64_t physicalMemoryBytes() {
  long pages = sysconf(_SC_PHYS_PAGES), pageSize = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || pageSize <= 0)
    return 0;
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(pageSize);
}

namespace {

std::string formatDims(const std::vector<int64_t> &dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i)
    s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

std::string replaceAll(std::string s, const std::string &from,
                       const std::string &to) {
  for (size_t p = s.find(from); p != std::string::npos;
       p = s.find(from, p + to.size()))
    s.replace(p, from.size(), to);
  return s;
}

int64_t product(const std::vector<int64_t> &dims, size_t from = 0,
                size_t to = SIZE_MAX) {
  int64_t n = 1;
  for (size_t i = from; i < dims.size() && i < to; ++i)
    n *= dims[i];
  return n;
}

constexpr uint64_t kArenaAlign = 64;

/// Rounds f32 values to the nearest bf16 (ties to even), in place: the values
/// a bf16 buffer can hold, as kernels/common.cuh's fromF32<bf16> stores them.
void roundToBf16(float *v, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, &v[i], 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
      continue; // NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    std::memcpy(&v[i], &u, 4);
  }
}

/// The CPU kernels compute in f32 and read f32 buffers, so a bf16 activation
/// is held as f32 (rounded to bf16 after each step): every arena offset and
/// size doubles, which keeps the plan's reuse intact.
uint64_t hostArenaScale(const Plan &plan) {
  for (const BufferDesc &b : plan.buffers)
    if (b.kind == BufferKind::Activation && b.dtype == DType::BF16)
      return 2;
  return 1;
}

} // namespace

Session::Session(Plan plan, const SessionOptions &options)
    : plan_(std::move(plan)), options_(options) {}
Session::~Session() { std::free(arena_); }

std::string Session::deviceName() const {
#ifdef MM_HAVE_CUDA
  if (cuda_)
    return cuda_->deviceName();
#endif
  return "cpu";
}

StatusOr<std::unique_ptr<Session>>
Session::create(Plan plan, const std::vector<const SafetensorsFile *> &weights,
                const SessionOptions &options) {
  std::unique_ptr<Session> s(new Session(std::move(plan), options));
  const Plan &p = s->plan_;
  try {
    // Check the total before allocating anything: a plan sized for a bigger
    // machine should get a clear message, not the OOM killer.
    uint64_t weightBytes = 0, inputBytes = 0;
    for (const BufferDesc &b : p.buffers) {
      if (b.kind == BufferKind::Weight || b.kind == BufferKind::State)
        weightBytes += b.maxBytes / dtypeSize(b.dtype) * sizeof(float);
      else if (b.kind == BufferKind::Input)
        inputBytes += b.maxBytes;
    }
    const uint64_t physical = physicalMemoryBytes();
    const uint64_t limit =
        options.memoryLimitBytes ? options.memoryLimitBytes : physical;
    const bool onGpu = options.backend == Backend::Cuda;
#ifndef MM_HAVE_CUDA
    if (onGpu)
      return unimplemented("this build of mm has no CUDA backend (the CUDA "
                           "toolkit headers were not found when it was "
                           "configured)");
#endif
    const uint64_t arenaScale = hostArenaScale(p);
    const uint64_t hostArena = onGpu ? 0 : p.arenaBytes * arenaScale;
    const uint64_t need = hostArena + weightBytes + inputBytes;
    if (limit && (hostArena > limit || need > limit))
      return resourceExhausted(
          "the plan needs " + std::to_string(need) + " bytes (arena " +
          std::to_string(hostArena) + ", weights as f32 " +
          std::to_string(weightBytes) + ", inputs " +
          std::to_string(inputBytes) + ") but only " + std::to_string(limit) +
          " bytes of " +
          (options.memoryLimitBytes ? "memory are allowed"
                                    : "physical memory exist"));

    const uint64_t arenaAlloc =
        (std::max<uint64_t>(hostArena, 1) + kArenaAlign - 1) / kArenaAlign *
        kArenaAlign;
    s->arena_ =
        static_cast<uint8_t *>(std::aligned_alloc(kArenaAlign, arenaAlloc));
    if (!s->arena_)
      return resourceExhausted("cannot allocate the " +
                               std::to_string(p.arenaBytes) + "-byte arena");
    s->bufferData_.assign(p.buffers.size(), nullptr);
    s->shapes_.resize(p.buffers.size());
    s->given_.resize(p.inputs.size());
    s->inputStorage_.resize(p.buffers.size());
    for (size_t i = 0; i < p.buffers.size(); ++i) {
      const BufferDesc &b = p.buffers[i];
      if (b.kind == BufferKind::Activation) {
        s->bufferData_[i] = onGpu ? nullptr : s->arena_ + b.offset * arenaScale;
      } else if (b.kind == BufferKind::Input) {
        s->inputStorage_[i].reset(new uint8_t[b.maxBytes]);
        s->bufferData_[i] = s->inputStorage_[i].get();
      }
    }
    MM_RETURN_IF_ERROR(s->bindWeights(weights));
    // Master weights start as the loaded values, before those are rounded.
    MM_RETURN_IF_ERROR(s->allocateStates());
    s->roundBf16Weights();
#ifdef MM_HAVE_CUDA
    if (onGpu) {
      // The device gets its own copy of the weights; the host copy stays for
      // persistentTensors(). Outputs come back to host copies after each run.
      MM_ASSIGN_OR_RETURN(s->cuda_,
                          cuda::CudaExecutor::create(s->plan_, s->bufferData_,
                                                     options.checkFinite));
      s->outputStorage_.resize(p.buffers.size());
      for (const Binding &b : p.outputs) {
        s->outputStorage_[b.buffer].assign(p.buffers[b.buffer].maxBytes / 4, 0);
        s->bufferData_[b.buffer] = s->outputStorage_[b.buffer].data();
      }
    }
#endif
  } catch (const std::bad_alloc &) {
    return resourceExhausted("out of memory while allocating the session");
  }
  return s;
}

Status Session::bindWeights(const std::vector<const SafetensorsFile *> &files) {
  std::string searched;
  for (const SafetensorsFile *f : files)
    searched += (searched.empty() ? "" : ", ") + f->path();
  if (searched.empty())
    searched = "no weights file";

  // Every tensor is found and checked before anything is allocated, so a wrong
  // file costs no memory and fails at its first bad tensor.
  struct Slice {
    const SafetensorsFile *file;
    const SafetensorsTensor *tensor;
    size_t offset; // in floats, into weightStorage_
    // A sliced weight copies `rows` runs of `run` elements, one every
    // `stride` elements of the tensor from element `first`.
    uint64_t first = 0, run = 0, stride = 0, rows = 0;
  };
  std::vector<Slice> slices;
  // Weight buffers that share a name and shape share storage.
  std::map<std::string, size_t> offsets;
  std::vector<size_t> bufferOffset(plan_.buffers.size(), 0);
  size_t total = 0;
  for (size_t i = 0; i < plan_.buffers.size(); ++i) {
    const BufferDesc &b = plan_.buffers[i];
    if (b.kind != BufferKind::Weight)
      continue;
    auto [it, inserted] = offsets.emplace(
        b.name + formatShape(b.shape) + "@" + std::to_string(b.sliceAxis) +
            ":" + std::to_string(b.sliceOffset) + ":" + dtypeName(b.dtype),
        total);
    bufferOffset[i] = it->second;
    if (!inserted)
      continue;
    const std::vector<int64_t> dims = resolveShape(b.shape, 1, 1);
    const bool stacked = b.name.find("{e}") != std::string::npos;
    if (stacked && dims.empty())
      return invalidArgument("weight '" + b.name +
                             "': a stacked weight needs at least one dim");
    const int64_t count = stacked ? dims[0] : 1;
    const std::vector<int64_t> want =
        stacked ? std::vector<int64_t>(dims.begin() + 1, dims.end()) : dims;
    const size_t sliceElems = static_cast<size_t>(product(want));
    for (int64_t e = 0; e < count; ++e) {
      const std::string name =
          stacked ? replaceAll(b.name, "{e}", std::to_string(e)) : b.name;
      Slice slice{nullptr, nullptr, total};
      for (const SafetensorsFile *f : files)
        if ((slice.tensor = f->find(name))) {
          slice.file = f;
          break;
        }
      if (!slice.tensor)
        return notFound("weight '" + name + "' is not in " + searched);
      const SafetensorsTensor &t = *slice.tensor;
      if (b.sliceAxis >= 0) {
        // The tensor must have the buffer's shape except along the slice
        // axis, where it must hold [sliceOffset, sliceOffset + size).
        const size_t axis = static_cast<size_t>(b.sliceAxis);
        std::vector<int64_t> need = want;
        bool fits = t.shape.size() == want.size();
        if (fits) {
          need[axis] = t.shape[axis];
          fits = need == t.shape && b.sliceOffset + want[axis] <= t.shape[axis];
        }
        if (!fits)
          return invalidArgument(
              "weight '" + name + "': expected a tensor holding rows [" +
              std::to_string(b.sliceOffset) + ", " +
              std::to_string(b.sliceOffset + want[axis]) + ") of dim " +
              std::to_string(axis) + " with the other dims of " +
              formatDims(want) + " but file has " + formatDims(t.shape) +
              " (in " + slice.file->path() + ")");
        const uint64_t inner =
            static_cast<uint64_t>(product(want, axis + 1, want.size()));
        slice.first = static_cast<uint64_t>(b.sliceOffset) * inner;
        slice.run = static_cast<uint64_t>(want[axis]) * inner;
        slice.stride = static_cast<uint64_t>(t.shape[axis]) * inner;
        slice.rows = static_cast<uint64_t>(product(want, 0, axis));
      } else if (t.shape != want) {
        return invalidArgument("weight '" + name + "': expected " +
                               formatDims(want) + " but file has " +
                               formatDims(t.shape) + " (in " +
                               slice.file->path() + ")");
      }
      if (t.dtype != "F32" && t.dtype != "BF16" && t.dtype != "F16")
        return invalidArgument("weight '" + name + "' in " +
                               slice.file->path() + " has dtype " + t.dtype +
                               "; only F32, BF16 and F16 can be read");
      slices.push_back(slice);
      total += sliceElems;
    }
  }
  weightStorage_.reset(new float[std::max<size_t>(total, 1)]);
  for (size_t i = 0; i < plan_.buffers.size(); ++i)
    if (plan_.buffers[i].kind == BufferKind::Weight)
      bufferData_[i] = weightStorage_.get() + bufferOffset[i];
  for (const Slice &s : slices) {
    float *dst = weightStorage_.get() + s.offset;
    if (s.run == 0) {
      MM_RETURN_IF_ERROR(s.file->readAsF32(*s.tensor, dst));
      continue;
    }
    for (uint64_t r = 0; r < s.rows; ++r)
      MM_RETURN_IF_ERROR(s.file->readRangeAsF32(
          *s.tensor, s.first + r * s.stride, s.run, dst + r * s.run));
  }
  return Status::ok();
}

void Session::roundBf16Weights() {
  // A weight stored as bf16 holds what the GPU will hold: the checkpoint's
  // values rounded to bf16 (exact for BF16 checkpoints).
  std::vector<const void *> rounded; // storage already rounded
  for (size_t i = 0; i < plan_.buffers.size(); ++i) {
    const BufferDesc &b = plan_.buffers[i];
    if (b.kind == BufferKind::Weight && b.dtype == DType::BF16 &&
        std::find(rounded.begin(), rounded.end(), bufferData_[i]) ==
            rounded.end()) {
      roundToBf16(static_cast<float *>(bufferData_[i]),
                  b.maxBytes / dtypeSize(b.dtype));
      rounded.push_back(bufferData_[i]);
    }
  }
}

Status Session::bindInputs(const std::vector<NamedInput> &inputs) {
  std::vector<const NamedInput *> &given = given_;
  std::fill(given.begin(), given.end(), nullptr);
  for (const NamedInput &in : inputs) {
    int idx = plan_.findInput(in.name);
    if (idx < 0) {
      std::string names;
      for (const Binding &b : plan_.inputs)
        names += (names.empty() ? "" : ", ") + b.name;
      return invalidArgument("the artifact has no input '" + in.name +
                             "' (inputs: " + (names.empty() ? "none" : names) +
                             ")");
    }
    if (given[idx])
      return invalidArgument("input '" + in.name + "' is given twice");
    given[idx] = &in;
  }
  // Resolve B and T from the symbolic dims of every input; symbols no input
  // fixes default to 1.
  int64_t batch = 0, seq = 0;
  for (size_t i = 0; i < plan_.inputs.size(); ++i) {
    const Binding &bind = plan_.inputs[i];
    const BufferDesc &b = plan_.buffers[bind.buffer];
    const NamedInput *in = given[i];
    if (!in)
      return invalidArgument("input '" + bind.name + "' was not given");
    auto fail = [&](const std::string &m) {
      return invalidArgument("input '" + bind.name + "': " + m);
    };
    if (in->shape.size() != b.shape.size())
      return fail("expected shape " + formatShape(b.shape) + " but got " +
                  formatDims(in->shape));
    for (size_t d = 0; d < b.shape.size(); ++d) {
      const Dim &dim = b.shape[d];
      const int64_t got = in->shape[d];
      if (dim.kind == DimKind::Const) {
        if (got != dim.value)
          return fail("expected shape " + formatShape(b.shape) + " but got " +
                      formatDims(in->shape));
        continue;
      }
      const bool isBatch = dim.kind == DimKind::Batch;
      int64_t &sym = isBatch ? batch : seq;
      const int64_t limit = isBatch ? plan_.maxBatch : plan_.maxSeq;
      const char *what = isBatch ? "batch" : "sequence length";
      if (got < 1 || got > limit)
        return fail(std::string(what) + " " + std::to_string(got) +
                    " is outside [1, " + std::to_string(limit) +
                    "] (the artifact's max_" + (isBatch ? "batch" : "seq") +
                    ")");
      if (sym && sym != got)
        return fail(std::string(what) + " " + std::to_string(got) +
                    " disagrees with " + std::to_string(sym) +
                    " from another input");
      sym = got;
    }
    const bool wantInt = b.dtype == DType::I32;
    if (wantInt ? in->dtype == NpyDType::F32 : in->dtype != NpyDType::F32)
      return fail(std::string("expected ") + dtypeName(b.dtype) +
                  " data but got " +
                  (in->dtype == NpyDType::F32 ? "float32" : "integer"));
  }
  batch_ = batch ? batch : 1;
  seq_ = seq ? seq : 1;
  for (size_t i = 0; i < plan_.inputs.size(); ++i) {
    const Binding &bind = plan_.inputs[i];
    const NamedInput *in = given[i];
    const uint64_t n = product(in->shape);
    uint8_t *dst = inputStorage_[bind.buffer].get();
    if (in->dtype == NpyDType::I64) {
      int32_t *d32 = reinterpret_cast<int32_t *>(dst);
      for (uint64_t j = 0; j < n; ++j) {
        int64_t v;
        std::memcpy(&v, static_cast<const uint8_t *>(in->data) + 8 * j, 8);
        if (v < INT32_MIN || v > INT32_MAX)
          return invalidArgument("input '" + bind.name + "': value " +
                                 std::to_string(v) + " at index " +
                                 std::to_string(j) + " does not fit in int32");
        d32[j] = static_cast<int32_t>(v);
      }
    } else {
      std::memcpy(dst, in->data, n * 4);
    }
  }
  return Status::ok();
}

void Session::resolveShapes() {
  for (size_t i = 0; i < plan_.buffers.size(); ++i) {
    const std::vector<Dim> &shape = plan_.buffers[i].shape;
    ResolvedShape &r = shapes_[i];
    r.elements = 1;
    for (size_t d = 0; d < shape.size(); ++d) {
      r.dims[d] = shape[d].kind == DimKind::Const   ? shape[d].value
                  : shape[d].kind == DimKind::Batch ? batch_
                                                    : seq_;
      r.elements *= r.dims[d];
    }
  }
}

Status Session::run(const std::vector<NamedInput> &inputs) {
  hasRun_ = false;
  MM_RETURN_IF_ERROR(bindInputs(inputs));
  resolveShapes();
#ifdef MM_HAVE_CUDA
  if (cuda_) {
    MM_RETURN_IF_ERROR(cuda_->run(bufferData_, shapes_, batch_, seq_));
    hasRun_ = true;
    return Status::ok();
  }
#endif
  for (size_t i = 0; i < plan_.steps.size(); ++i) {
    Status st = runStep(i);
    if (st.isOk())
      for (uint32_t o : plan_.steps[i].outputs)
        if (plan_.buffers[o].dtype == DType::BF16)
          roundToBf16(static_cast<float *>(bufferData_[o]),
                      shapes_[o].elements);
    if (st.isOk() && options_.checkFinite)
      st = checkStepFinite(i);
    if (!st.isOk())
      return st.withPrefix("step " + std::to_string(i) + ": ");
  }
  hasRun_ = true;
  return Status::ok();
}

Status Session::runStep(size_t index) {
  const StepDesc &step = plan_.steps[index];
  const KernelParams &p = step.params;
  auto dims = [&](uint32_t buffer) -> const std::array<int64_t, kMaxRank> & {
    return shapes_[buffer].dims;
  };
  auto f = [&](uint32_t buffer) {
    return static_cast<const float *>(bufferData_[buffer]);
  };
  auto i32 = [&](uint32_t buffer) {
    return static_cast<const int32_t *>(bufferData_[buffer]);
  };
  const auto &in = step.inputs;
  float *out = static_cast<float *>(bufferData_[step.outputs[0]]);
  const std::array<int64_t, kMaxRank> &x = dims(in[0]);
  const int64_t xElements = shapes_[in[0]].elements;
  switch (step.kernel) {
  case Kernel::Embedding: {
    const std::array<int64_t, kMaxRank> &table = dims(in[1]);
    return cpu::embedding(i32(in[0]), f(in[1]), out, x[0] * x[1], table[0],
                          table[1], x[1]);
  }
  case Kernel::RmsNorm:
    cpu::rmsNorm(f(in[0]), f(in[1]), out, x[0] * x[1], x[2], p.eps);
    return Status::ok();
  case Kernel::Linear:
  case Kernel::Logits:
    if (p.lastPosition) {
      const int64_t vocab = dims(in[1])[0];
      for (int64_t b = 0; b < x[0]; ++b)
        cpu::linear(f(in[0]) + (b * x[1] + x[1] - 1) * x[2], f(in[1]),
                    out + b * vocab, 1, x[2], vocab);
      return Status::ok();
    }
    cpu::linear(f(in[0]), f(in[1]), out, x[0] * x[1], x[2], dims(in[1])[0]);
    return Status::ok();
  case Kernel::Silu:
    cpu::silu(f(in[0]), out, xElements);
    return Status::ok();
  case Kernel::Sigmoid:
    cpu::sigmoid(f(in[0]), out, xElements);
    return Status::ok();
  case Kernel::Mul:
    cpu::mul(f(in[0]), f(in[1]), out, xElements);
    return Status::ok();
  case Kernel::ScaledAdd:
    cpu::scaledAdd(f(in[0]), f(in[1]), out, xElements, p.alpha, p.beta);
    return Status::ok();
  case Kernel::Rope:
    cpu::rope(f(in[0]), out, x[0], x[1], p.numHeads, p.headDim, p.rotaryDim,
              p.theta, scratch_);
    return Status::ok();
  case Kernel::LightningAttention:
    cpu::lightningAttention(f(in[0]), out, x[0], x[1], p.numHeads, p.headDim,
                            p.blockSize, p.layerIndex, p.numLayers, scratch_,
                            p.siluInput);
    return Status::ok();
  case Kernel::SoftmaxAttention:
    cpu::softmaxAttention(f(in[0]), f(in[1]), f(in[2]), out, x[0], x[1],
                          p.numHeads, p.numKvHeads, p.headDim, p.scale,
                          scratch_);
    return Status::ok();
  case Kernel::Moe: {
    const std::array<int64_t, kMaxRank> &w1 = dims(in[2]);
    cpu::moe(f(in[0]), f(in[1]), f(in[2]), f(in[3]), f(in[4]), out, x[0] * x[1],
             x[2], w1[0], w1[1], p.topK, scratch_);
    return Status::ok();
  }
  case Kernel::AddRmsNorm:
    cpu::addRmsNorm(f(in[0]), f(in[1]), f(in[2]), out, x[0] * x[1], x[2],
                    p.alpha, p.beta, p.eps);
    return Status::ok();
  case Kernel::SigmoidMul:
    cpu::sigmoidMul(f(in[0]), f(in[1]), out, xElements);
    return Status::ok();
  case Kernel::CrossEntropy:
    return cpu::crossEntropy(f(in[0]), i32(in[1]), out, x[0] * x[1], x[2],
                             x[1]);
  default:
    return runTrainStep(index);
  }
  return internalError("unhandled kernel " + step.kernelName);
}

Status Session::pullPersistent() {
#ifdef MM_HAVE_CUDA
  if (cuda_)
    return cuda_->downloadPersistent(bufferData_);
#endif
  return Status::ok();
}

Status Session::pushPersistent() {
#ifdef MM_HAVE_CUDA
  if (cuda_)
    return cuda_->uploadPersistent(bufferData_);
#endif
  return Status::ok();
}

Status Session::setProfiling(bool on) {
#ifdef MM_HAVE_CUDA
  if (cuda_)
    return cuda_->setProfiling(on);
#endif
  if (!on)
    return Status::ok();
  return unimplemented("profiling times CUDA steps; use --backend cuda");
}

std::vector<float> Session::stepTimes() const {
#ifdef MM_HAVE_CUDA
  if (cuda_)
    return cuda_->stepTimes();
#endif
  return {};
}

std::string Session::memoryReport() const {
#ifdef MM_HAVE_CUDA
  if (cuda_) {
    auto use = cuda_->memoryUse();
    if (!use.isOk())
      return use.status().message();
    const cuda::CudaExecutor::MemoryUse &u = use.value();
    auto mib = [](uint64_t b) {
      return std::to_string((b + (1 << 19)) >> 20) + " MiB";
    };
    return "device memory: planned " + mib(u.allocated) + " = weights " +
           mib(u.weights) + " + arena " + mib(u.arena) +
           " (compile-time plan) + "
           "kernel workspace " +
           mib(u.workspace) + " + cuBLASLt " + mib(u.ltWorkspace) +
           " + inputs; device reports " + mib(u.deviceUsed) + " used of " +
           mib(u.deviceTotal) + " (CUDA context and libraries included)";
  }
#endif
  return "";
}

StatusOr<OutputView> Session::output(const std::string &name) const {
  int idx = plan_.findOutput(name);
  if (idx < 0)
    return notFound("the artifact has no output '" + name + "'");
  if (!hasRun_)
    return invalidArgument("output '" + name +
                           "' read before a successful run");
  const uint32_t buffer = plan_.outputs[idx].buffer;
  OutputView v;
  v.shape = resolveShape(plan_.buffers[buffer].shape, batch_, seq_);
  v.data = static_cast<const float *>(bufferData_[buffer]);
  return v;
}

} // namespace mm
