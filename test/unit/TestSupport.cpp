// Test helpers; see TestSupport.h.
#include "TestSupport.h"

#include "runtime/Npy.h"

#include <mm/schema/mm_artifact_generated.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <unistd.h>

namespace mm::test {
namespace fb = mm::artifact;

PlanBuilder::PlanBuilder(int64_t maxBatch, int64_t maxSeq, std::string model) {
  plan_.version = kSchemaVersion;
  plan_.model = std::move(model);
  plan_.target = "cpu";
  plan_.maxBatch = maxBatch;
  plan_.maxSeq = maxSeq;
}

uint32_t PlanBuilder::input(const std::string &name, DType dtype,
                            std::vector<Dim> shape) {
  plan_.buffers.push_back({BufferKind::Input, name, dtype, std::move(shape)});
  uint32_t index = static_cast<uint32_t>(plan_.buffers.size() - 1);
  plan_.inputs.push_back({name, index});
  return index;
}

uint32_t PlanBuilder::weight(const std::string &name, std::vector<Dim> shape,
                             DType dtype) {
  plan_.buffers.push_back({BufferKind::Weight, name, dtype, std::move(shape)});
  return static_cast<uint32_t>(plan_.buffers.size() - 1);
}

uint32_t PlanBuilder::act(const std::string &name, std::vector<Dim> shape,
                          DType dtype) {
  plan_.buffers.push_back(
      {BufferKind::Activation, name, dtype, std::move(shape)});
  return static_cast<uint32_t>(plan_.buffers.size() - 1);
}

void PlanBuilder::step(const std::string &kernel, std::vector<uint32_t> ins,
                       uint32_t out, std::vector<RawParam> params) {
  StepDesc s;
  s.kernelName = kernel;
  s.inputs = std::move(ins);
  s.outputs = {out};
  s.rawParams = std::move(params);
  plan_.steps.push_back(std::move(s));
}

void PlanBuilder::output(const std::string &name, uint32_t buffer) {
  plan_.outputs.push_back({name, buffer});
}

Plan PlanBuilder::finish() {
  uint64_t offset = 0;
  for (BufferDesc &b : plan_.buffers) {
    if (b.kind != BufferKind::Activation)
      continue;
    uint64_t bytes = dtypeSize(b.dtype);
    for (const Dim &d : b.shape)
      bytes *= static_cast<uint64_t>(d.kind == DimKind::Const   ? d.value
                                     : d.kind == DimKind::Batch ? plan_.maxBatch
                                                                : plan_.maxSeq);
    b.offset = offset;
    offset += (bytes + 63) / 64 * 64;
  }
  plan_.arenaBytes = offset;
  return plan_;
}

RawParam pi(const std::string &name, int64_t v) { return {name, v, 0.0}; }
RawParam pf(const std::string &name, double v) { return {name, 0, v}; }

std::vector<uint8_t> serializePlan(const Plan &plan) {
  flatbuffers::FlatBufferBuilder fbb;
  std::vector<flatbuffers::Offset<fb::Buffer>> buffers;
  for (const BufferDesc &b : plan.buffers) {
    std::vector<flatbuffers::Offset<fb::Dim>> dims;
    for (const Dim &d : b.shape)
      dims.push_back(
          fb::CreateDim(fbb, static_cast<fb::DimKind>(d.kind), d.value));
    buffers.push_back(fb::CreateBuffer(
        fbb, static_cast<fb::BufferKind>(b.kind), fbb.CreateString(b.name),
        static_cast<fb::DType>(b.dtype), fbb.CreateVector(dims), b.offset,
        b.sliceAxis, b.sliceOffset));
  }
  std::vector<flatbuffers::Offset<fb::Step>> steps;
  for (const StepDesc &s : plan.steps) {
    std::vector<flatbuffers::Offset<fb::Param>> params;
    for (const RawParam &p : s.rawParams)
      params.push_back(
          fb::CreateParam(fbb, fbb.CreateString(p.name), p.i, p.f));
    steps.push_back(fb::CreateStep(
        fbb, fb::StepKind::Kernel, fbb.CreateString(s.kernelName),
        fbb.CreateVector(s.inputs), fbb.CreateVector(s.outputs),
        fbb.CreateVectorOfSortedTables(&params), s.stream));
  }
  auto bindings = [&](const std::vector<Binding> &v) {
    std::vector<flatbuffers::Offset<fb::Binding>> out;
    for (const Binding &b : v)
      out.push_back(fb::CreateBinding(fbb, fbb.CreateString(b.name), b.buffer));
    return fbb.CreateVector(out);
  };
  auto inputs = bindings(plan.inputs);
  auto outputs = bindings(plan.outputs);
  auto root =
      fb::CreateProgram(fbb, plan.version, fbb.CreateString(plan.model),
                        fbb.CreateString(plan.target), plan.maxBatch,
                        plan.maxSeq, plan.arenaBytes, fbb.CreateVector(buffers),
                        fbb.CreateVector(steps), inputs, outputs);
  fb::FinishProgramBuffer(fbb, root);
  return std::vector<uint8_t>(fbb.GetBufferPointer(),
                              fbb.GetBufferPointer() + fbb.GetSize());
}

StTensor f32Tensor(const std::string &name, std::vector<int64_t> shape,
                   const std::vector<float> &values) {
  StTensor t{name, "F32", std::move(shape), {}};
  t.bytes.resize(values.size() * 4);
  std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

StTensor bf16Tensor(const std::string &name, std::vector<int64_t> shape,
                    const std::vector<float> &values) {
  StTensor t{name, "BF16", std::move(shape), {}};
  for (float v : values) {
    uint32_t u;
    std::memcpy(&u, &v, 4);
    u += 0x7FFF + ((u >> 16) & 1);
    t.bytes.push_back(static_cast<uint8_t>((u >> 16) & 0xFF));
    t.bytes.push_back(static_cast<uint8_t>(u >> 24));
  }
  return t;
}

std::vector<uint8_t> safetensorsBytes(const std::vector<StTensor> &tensors,
                                      const std::string &extraHeader) {
  std::string header = "{";
  uint64_t offset = 0;
  for (const StTensor &t : tensors) {
    if (header.size() > 1)
      header += ",";
    header += "\"" + t.name + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i)
      header += (i ? "," : "") + std::to_string(t.shape[i]);
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(offset + t.bytes.size()) + "]}";
    offset += t.bytes.size();
  }
  header += extraHeader + "}";
  while (header.size() % 8)
    header += ' ';
  std::vector<uint8_t> out(8);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i)
    out[i] = static_cast<uint8_t>(n >> (8 * i));
  out.insert(out.end(), header.begin(), header.end());
  for (const StTensor &t : tensors)
    out.insert(out.end(), t.bytes.begin(), t.bytes.end());
  return out;
}

const std::string &tempDir() {
  // Removed again when the process exits.
  static const struct Dir {
    std::string path;
    Dir() {
      const char *base = std::getenv("TMPDIR");
      path = std::string(base && *base ? base : "/tmp") + "/mm-unit-" +
             std::to_string(getpid());
      std::filesystem::create_directories(path);
    }
    ~Dir() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  } dir;
  return dir.path;
}

void writeFile(const std::string &path, const std::vector<uint8_t> &bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char *>(bytes.data()),
          static_cast<std::streamsize>(bytes.size()));
  if (!f)
    throw std::runtime_error("cannot write " + path);
}

std::vector<uint8_t> readFile(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

std::vector<float> randomValues(std::mt19937 &rng, size_t n, float scale) {
  std::uniform_real_distribution<float> mag(scale / 8, scale);
  std::bernoulli_distribution sign(0.5);
  std::vector<float> v(n);
  for (float &x : v)
    x = sign(rng) ? mag(rng) : -mag(rng);
  return v;
}

TinyModel buildTinyModel(uint32_t seed) {
  const int64_t V = 32, H = 16, heads = 2, D = 8, kvHeads = 1, E = 4, I = 8,
                L = 2;
  PlanBuilder pb(2, 12, "tiny");
  std::map<std::string, std::vector<int64_t>> weightShapes;
  auto w = [&](const std::string &name, std::vector<int64_t> shape) {
    std::vector<Dim> dims;
    for (int64_t d : shape)
      dims.push_back(C(d));
    weightShapes[name] = shape;
    return pb.weight(name, dims);
  };
  auto bth = [&](int64_t n) { return std::vector<Dim>{kB, kT, C(n)}; };

  uint32_t ids = pb.input("input_ids", DType::I32, {kB, kT});
  uint32_t x = pb.act("x0", bth(H));
  pb.step("embedding", {ids, w("embed.weight", {V, H})}, x);

  auto moeBlock = [&](const std::string &pre, uint32_t h) {
    uint32_t m = pb.act(pre + "moe", bth(H));
    pb.step("moe",
            {h, w(pre + "gate.weight", {E, H}),
             w(pre + "experts.{e}.w1.weight", {E, I, H}),
             w(pre + "experts.{e}.w2.weight", {E, H, I}),
             w(pre + "experts.{e}.w3.weight", {E, I, H})},
            m, {pi("top_k", 2)});
    return m;
  };
  auto residual = [&](const std::string &name, uint32_t a, uint32_t b) {
    uint32_t o = pb.act(name, bth(H));
    pb.step("scaled_add", {a, b}, o, {pf("alpha", 1.5), pf("beta", 0.75)});
    return o;
  };
  auto norm = [&](const std::string &name, uint32_t in,
                  const std::string &weight, int64_t n) {
    uint32_t o = pb.act(name, bth(n));
    pb.step("rms_norm", {in, w(weight, {n})}, o, {pf("eps", 1e-6)});
    return o;
  };
  auto lin = [&](const std::string &name, uint32_t in,
                 const std::string &weight, int64_t n, int64_t k) {
    uint32_t o = pb.act(name, bth(n));
    pb.step("linear", {in, w(weight, {n, k})}, o);
    return o;
  };

  // Layer 0: lightning attention.
  {
    const std::string p = "layers.0.";
    uint32_t h = norm(p + "h", x, p + "input_layernorm.weight", H);
    uint32_t qkv = lin(p + "qkv", h, p + "attn.qkv.weight", heads * 3 * D, H);
    uint32_t qkvAct = pb.act(p + "qkv_silu", bth(heads * 3 * D));
    pb.step("silu", {qkv}, qkvAct);
    uint32_t o = pb.act(p + "attn_o", bth(heads * D));
    pb.step("lightning_attention", {qkvAct}, o,
            {pi("block_size", 4), pi("head_dim", D), pi("layer_index", 0),
             pi("num_heads", heads), pi("num_layers", L)});
    uint32_t on = norm(p + "attn_norm", o, p + "attn.norm.weight", heads * D);
    uint32_t g = lin(p + "gate", h, p + "attn.gate.weight", heads * D, H);
    uint32_t gs = pb.act(p + "gate_sigmoid", bth(heads * D));
    pb.step("sigmoid", {g}, gs);
    uint32_t og = pb.act(p + "gated", bth(heads * D));
    pb.step("mul", {on, gs}, og);
    uint32_t a = lin(p + "attn_out", og, p + "attn.out.weight", H, heads * D);
    uint32_t h1 = residual(p + "h1", h, a);
    uint32_t h2 = norm(p + "h2", h1, p + "post_attention_layernorm.weight", H);
    x = residual(p + "out", h2, moeBlock(p + "block_sparse_moe.", h2));
  }
  // Layer 1: softmax attention, GQA, RoPE on half of each head.
  {
    const std::string p = "layers.1.";
    uint32_t h = norm(p + "h", x, p + "input_layernorm.weight", H);
    uint32_t q = lin(p + "q", h, p + "attn.q_proj.weight", heads * D, H);
    uint32_t k = lin(p + "k", h, p + "attn.k_proj.weight", kvHeads * D, H);
    uint32_t v = lin(p + "v", h, p + "attn.v_proj.weight", kvHeads * D, H);
    uint32_t qr = pb.act(p + "q_rope", bth(heads * D));
    pb.step("rope", {q}, qr,
            {pi("head_dim", D), pi("num_heads", heads), pi("rotary_dim", 4),
             pf("theta", 10000.0)});
    uint32_t kr = pb.act(p + "k_rope", bth(kvHeads * D));
    pb.step("rope", {k}, kr,
            {pi("head_dim", D), pi("num_heads", kvHeads), pi("rotary_dim", 4),
             pf("theta", 10000.0)});
    uint32_t att = pb.act(p + "attn", bth(heads * D));
    pb.step("softmax_attention", {qr, kr, v}, att,
            {pi("head_dim", D), pi("num_heads", heads),
             pi("num_kv_heads", kvHeads), pf("scale", 1.0 / std::sqrt(8.0))});
    uint32_t a =
        lin(p + "attn_out", att, p + "attn.o_proj.weight", H, heads * D);
    uint32_t h1 = residual(p + "h1", h, a);
    uint32_t h2 = norm(p + "h2", h1, p + "post_attention_layernorm.weight", H);
    x = residual(p + "out", h2, moeBlock(p + "block_sparse_moe.", h2));
  }
  uint32_t n = norm("final_norm", x, "norm.weight", H);
  uint32_t logits = pb.act("logits", bth(V));
  pb.step("logits", {n, w("lm_head.weight", {V, H})}, logits);
  pb.output("logits", logits);

  TinyModel model;
  model.plan = pb.finish();
  std::mt19937 rng(seed);
  for (const auto &[name, shape] : weightShapes) {
    const bool stacked = name.find("{e}") != std::string::npos;
    std::vector<int64_t> slice =
        stacked ? std::vector<int64_t>(shape.begin() + 1, shape.end()) : shape;
    size_t count = 1;
    for (int64_t d : slice)
      count *= static_cast<size_t>(d);
    // Scale matrices by 1/sqrt(fan-in) so activations stay O(1) through the
    // layers.
    float scale =
        slice.size() >= 2 ? 1.0f / std::sqrt(float(slice.back())) * 2 : 1.0f;
    for (int64_t e = 0; e < (stacked ? shape[0] : 1); ++e) {
      std::string tensorName = name;
      if (stacked)
        tensorName.replace(name.find("{e}"), 3, std::to_string(e));
      std::vector<float> values = randomValues(rng, count, scale);
      // A few bf16 tensors exercise conversion on load.
      if (name.find("w3") != std::string::npos)
        model.weights.push_back(bf16Tensor(tensorName, slice, values));
      else
        model.weights.push_back(f32Tensor(tensorName, slice, values));
    }
  }
  return model;
}

void writeTinyModel(const std::string &dir) {
  TinyModel model = buildTinyModel();
  writeFile(dir + "/tiny.mmb", serializePlan(model.plan));
  writeFile(dir + "/tiny.safetensors", safetensorsBytes(model.weights));
  // int64 ids, as numpy writes by default.
  std::string dict =
      "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 5), }";
  while ((10 + dict.size() + 1) % 64)
    dict += ' ';
  dict += '\n';
  std::vector<uint8_t> npy = {
      0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, static_cast<uint8_t>(dict.size()),
      0};
  npy.insert(npy.end(), dict.begin(), dict.end());
  const int64_t ids[10] = {1, 5, 9, 30, 2, 7, 7, 0, 31, 4};
  const uint8_t *p = reinterpret_cast<const uint8_t *>(ids);
  npy.insert(npy.end(), p, p + sizeof(ids));
  writeFile(dir + "/ids.npy", npy);
}

} // namespace mm::test
