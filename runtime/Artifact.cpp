// Artifact loading: file → flatbuffers verifier → Plan → semantic check
// (Verify.cpp).
#include "runtime/Artifact.h"

#include <cmath>

#include <mm/schema/mm_artifact_generated.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>

namespace mm {
namespace fb = mm::artifact;

int Plan::findInput(const std::string &name) const {
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].name == name)
      return static_cast<int>(i);
  return -1;
}

int Plan::findOutput(const std::string &name) const {
  for (size_t i = 0; i < outputs.size(); ++i)
    if (outputs[i].name == name)
      return static_cast<int>(i);
  return -1;
}

const char *dtypeName(DType t) {
  switch (t) {
  case DType::F32:
    return "f32";
  case DType::I32:
    return "i32";
  case DType::BF16:
    return "bf16";
  case DType::F16:
    return "f16";
  }
  return "?";
}

size_t dtypeSize(DType t) {
  switch (t) {
  case DType::F32:
  case DType::I32:
    return 4;
  case DType::BF16:
  case DType::F16:
    return 2;
  }
  return 0;
}

const char *kernelName(Kernel k) {
  switch (k) {
  case Kernel::Embedding:
    return "embedding";
  case Kernel::RmsNorm:
    return "rms_norm";
  case Kernel::Linear:
    return "linear";
  case Kernel::Logits:
    return "logits";
  case Kernel::Silu:
    return "silu";
  case Kernel::Sigmoid:
    return "sigmoid";
  case Kernel::Mul:
    return "mul";
  case Kernel::ScaledAdd:
    return "scaled_add";
  case Kernel::Rope:
    return "rope";
  case Kernel::LightningAttention:
    return "lightning_attention";
  case Kernel::SoftmaxAttention:
    return "softmax_attention";
  case Kernel::Moe:
    return "moe";
  case Kernel::CrossEntropy:
    return "cross_entropy";
  case Kernel::AddRmsNorm:
    return "add_rms_norm";
  case Kernel::SigmoidMul:
    return "sigmoid_mul";
  case Kernel::EmbeddingGrad:
    return "embedding_grad";
  case Kernel::RmsNormGrad:
    return "rms_norm_grad";
  case Kernel::LinearGrad:
    return "linear_grad";
  case Kernel::SiluGrad:
    return "silu_grad";
  case Kernel::SigmoidGrad:
    return "sigmoid_grad";
  case Kernel::RopeGrad:
    return "rope_grad";
  case Kernel::LightningAttentionGrad:
    return "lightning_attention_grad";
  case Kernel::SoftmaxAttentionGrad:
    return "softmax_attention_grad";
  case Kernel::MoeGrad:
    return "moe_grad";
  case Kernel::LmHeadLoss:
    return "lm_head_loss";
  case Kernel::LmHeadLossGrad:
    return "lm_head_loss_grad";
  case Kernel::GradNorm:
    return "grad_norm";
  case Kernel::AdamW:
    return "adamw";
  case Kernel::Came:
    return "came";
  case Kernel::CameVector:
    return "came_vector";
  case Kernel::StoreParam:
    return "store_param";
  }
  return "?";
}

std::string nonFiniteMessage(const Plan &plan, const StepDesc &step,
                             const BufferDesc &tensor, float value,
                             uint64_t index) {
  std::string weights;
  for (uint32_t i : step.inputs)
    if (plan.buffers[i].kind == BufferKind::Weight)
      weights += (weights.empty() ? " reading weight '" : "', '") +
                 plan.buffers[i].name;
  if (!weights.empty())
    weights += "'";
  return std::string("non-finite value ") +
         (std::isnan(value) ? "NaN" : "Inf") + " in tensor '" + tensor.name +
         "' at flat index " + std::to_string(index) + ", written by " +
         step.kernelName + weights;
}

std::string formatShape(const std::vector<Dim> &shape) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i)
      os << ", ";
    switch (shape[i].kind) {
    case DimKind::Const:
      os << shape[i].value;
      break;
    case DimKind::Batch:
      os << 'B';
      break;
    case DimKind::Seq:
      os << 'T';
      break;
    }
  }
  os << ']';
  return os.str();
}

std::vector<int64_t> resolveShape(const std::vector<Dim> &shape, int64_t b,
                                  int64_t t) {
  std::vector<int64_t> out;
  out.reserve(shape.size());
  for (const Dim &d : shape)
    out.push_back(d.kind == DimKind::Const   ? d.value
                  : d.kind == DimKind::Batch ? b
                                             : t);
  return out;
}

namespace {

std::string str(const flatbuffers::String *s) {
  return s ? std::string(s->c_str(), s->size()) : std::string();
}

// The flatbuffers verifier checks offsets, not enum ranges: a flipped byte can
// produce an enum value the runtime has no case for, so every enum is
// range-checked here.
Status convertBuffer(const fb::Buffer *b, size_t index, BufferDesc &out) {
  std::string where = "buffer " + std::to_string(index);
  if (!b)
    return invalidArgument(where + " is null");
  out.name = str(b->name());
  if (!out.name.empty())
    where += " ('" + out.name + "')";
  auto kind = static_cast<int>(b->kind());
  if (kind < 0 || kind > 3)
    return invalidArgument(where + ": unknown buffer kind " +
                           std::to_string(kind));
  out.kind = static_cast<BufferKind>(kind);
  auto dtype = static_cast<int>(b->dtype());
  if (dtype < 0 || dtype > 3)
    return invalidArgument(where + ": unknown dtype " + std::to_string(dtype));
  out.dtype = static_cast<DType>(dtype);
  out.offset = b->offset();
  out.sliceAxis = b->slice_axis();
  out.sliceOffset = b->slice_offset();
  if (const auto *shape = b->shape()) {
    if (shape->size() > static_cast<size_t>(kMaxRank))
      return invalidArgument(where + ": rank " + std::to_string(shape->size()) +
                             " exceeds the limit " + std::to_string(kMaxRank));
    for (flatbuffers::uoffset_t i = 0; i < shape->size(); ++i) {
      const fb::Dim *d = shape->Get(i);
      if (!d)
        return invalidArgument(where + ": dim " + std::to_string(i) +
                               " is null");
      auto dk = static_cast<int>(d->kind());
      if (dk < 0 || dk > 2)
        return invalidArgument(where + ": dim " + std::to_string(i) +
                               " has unknown kind " + std::to_string(dk));
      out.shape.push_back(Dim{static_cast<DimKind>(dk), d->value()});
    }
  }
  return Status::ok();
}

Status
convertBindings(const flatbuffers::Vector<flatbuffers::Offset<fb::Binding>> *v,
                const char *what, std::vector<Binding> &out) {
  if (!v)
    return Status::ok();
  for (flatbuffers::uoffset_t i = 0; i < v->size(); ++i) {
    const fb::Binding *b = v->Get(i);
    if (!b)
      return invalidArgument(std::string(what) + " binding " +
                             std::to_string(i) + " is null");
    out.push_back(Binding{str(b->name()), b->buffer()});
  }
  return Status::ok();
}

Status convertStep(const fb::Step *s, size_t index, StepDesc &out) {
  std::string where = "step " + std::to_string(index);
  if (!s)
    return invalidArgument(where + " is null");
  if (s->kind() != fb::StepKind::Kernel)
    return invalidArgument(where + ": unknown step kind " +
                           std::to_string(static_cast<int>(s->kind())));
  out.kernelName = str(s->kernel());
  if (const auto *in = s->inputs())
    out.inputs.assign(in->begin(), in->end());
  if (const auto *o = s->outputs())
    out.outputs.assign(o->begin(), o->end());
  if (const auto *ps = s->params()) {
    for (flatbuffers::uoffset_t i = 0; i < ps->size(); ++i) {
      const fb::Param *p = ps->Get(i);
      if (!p)
        return invalidArgument(where + ": param " + std::to_string(i) +
                               " is null");
      out.rawParams.push_back(RawParam{str(p->name()), p->i(), p->f()});
    }
  }
  out.stream = s->stream();
  out.function = str(s->function());
  return Status::ok();
}

} // namespace

StatusOr<Plan> parseArtifact(const uint8_t *data, size_t size,
                             const std::string &what) {
  auto fail = [&](const std::string &m) -> Status {
    return invalidArgument(what + ": " + m);
  };
  if (size < 8)
    return fail("file is too short to be an artifact (" + std::to_string(size) +
                " bytes)");
  if (!fb::ProgramBufferHasIdentifier(data))
    return fail("not an mm artifact (file identifier is not \"MMB1\")");
  if (size >= FLATBUFFERS_MAX_BUFFER_SIZE)
    return fail("file is too large for a flatbuffer");
  flatbuffers::Verifier verifier(data, size);
  if (!fb::VerifyProgramBuffer(verifier))
    return fail("corrupt artifact (flatbuffers verification failed)");

  const fb::Program *prog = fb::GetProgram(data);
  Plan plan;
  plan.version = prog->version();
  if (plan.version != kSchemaVersion)
    return fail("unsupported artifact version " + std::to_string(plan.version) +
                " (this runtime reads " + std::to_string(kSchemaVersion) + ")");
  plan.model = str(prog->model());
  plan.target = str(prog->target());
  plan.maxBatch = prog->max_batch();
  plan.maxSeq = prog->max_seq();
  plan.arenaBytes = prog->arena_bytes();
  if (const auto *bufs = prog->buffers()) {
    plan.buffers.resize(bufs->size());
    for (flatbuffers::uoffset_t i = 0; i < bufs->size(); ++i) {
      Status st = convertBuffer(bufs->Get(i), i, plan.buffers[i]);
      if (!st.isOk())
        return st.withPrefix(what + ": ");
    }
  }
  if (const auto *steps = prog->steps()) {
    plan.steps.resize(steps->size());
    for (flatbuffers::uoffset_t i = 0; i < steps->size(); ++i) {
      Status st = convertStep(steps->Get(i), i, plan.steps[i]);
      if (!st.isOk())
        return st.withPrefix(what + ": ");
    }
  }
  Status st = convertBindings(prog->inputs(), "input", plan.inputs);
  if (st.isOk())
    st = convertBindings(prog->outputs(), "output", plan.outputs);
  if (!st.isOk())
    return st.withPrefix(what + ": ");
  plan.cubinBytes = prog->cubin() ? prog->cubin()->size() : 0;
  if (prog->cubin())
    plan.cubin.assign(prog->cubin()->begin(), prog->cubin()->end());

  st = verifyPlan(plan);
  if (!st.isOk())
    return st.withPrefix(what + ": ");
  return plan;
}

StatusOr<Plan> loadArtifact(const std::string &path) {
  std::FILE *f = std::fopen(path.c_str(), "rb");
  if (!f)
    return notFound(path + ": cannot open: " + std::strerror(errno));
  std::vector<uint8_t> bytes;
  uint8_t chunk[1 << 16];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof(chunk), f)) > 0) {
    bytes.insert(bytes.end(), chunk, chunk + n);
    if (bytes.size() >= FLATBUFFERS_MAX_BUFFER_SIZE) {
      std::fclose(f);
      return invalidArgument(path + ": file is too large for an artifact");
    }
  }
  bool readError = std::ferror(f);
  std::fclose(f);
  if (readError)
    return invalidArgument(path + ": read error");
  return parseArtifact(bytes.data(), bytes.size(), path);
}

} // namespace mm
