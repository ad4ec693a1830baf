// Test helpers: build Plans by hand, serialize them to .mmb bytes with
// FlatBufferBuilder, write safetensors files, and the tiny hybrid MoE model
// (every catalog kernel) used by the unit tests, the mm-run CLI tests and
// test/runtime/corrupt_artifact.py. Not thread-safe (tests are serial).
#pragma once

#include "runtime/Artifact.h"

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace mm::test {

inline Dim C(int64_t v) { return Dim{DimKind::Const, v}; }
inline const Dim kB{DimKind::Batch, 0};
inline const Dim kT{DimKind::Seq, 0};

/// Appends buffers, steps and bindings to a Plan; finish() lays activations out
/// back to back (64-byte aligned) and sets arena_bytes.
class PlanBuilder {
public:
  PlanBuilder(int64_t maxBatch, int64_t maxSeq, std::string model = "test");
  uint32_t input(const std::string &name, DType dtype, std::vector<Dim> shape);
  uint32_t weight(const std::string &name, std::vector<Dim> shape,
                  DType dtype = DType::F32);
  uint32_t act(const std::string &name, std::vector<Dim> shape,
               DType dtype = DType::F32);
  /// Adds a step; build `params` with pi() (integer) and pf() (real).
  void step(const std::string &kernel, std::vector<uint32_t> ins, uint32_t out,
            std::vector<RawParam> params = {});
  void output(const std::string &name, uint32_t buffer);
  Plan finish();

private:
  Plan plan_;
};

RawParam pi(const std::string &name, int64_t v);
RawParam pf(const std::string &name, double v);

/// The flatbuffer (.mmb) bytes of `plan`, written exactly as the schema
/// prescribes.
std::vector<uint8_t> serializePlan(const Plan &plan);

struct StTensor {
  std::string name;
  std::string dtype; // "F32", "BF16", "F16"
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};
StTensor f32Tensor(const std::string &name, std::vector<int64_t> shape,
                   const std::vector<float> &values);
/// Rounds to bf16 (round to nearest even).
StTensor bf16Tensor(const std::string &name, std::vector<int64_t> shape,
                    const std::vector<float> &values);
/// The bytes of a safetensors file holding `tensors` in order.
std::vector<uint8_t> safetensorsBytes(const std::vector<StTensor> &tensors,
                                      const std::string &extraHeader = "");

/// A scratch directory private to this process (tests run in parallel under
/// ctest -j).
const std::string &tempDir();

void writeFile(const std::string &path, const std::vector<uint8_t> &bytes);
std::vector<uint8_t> readFile(const std::string &path);

/// Uniform in [-scale, -scale/8] ∪ [scale/8, scale]: random, never near zero.
std::vector<float> randomValues(std::mt19937 &rng, size_t n,
                                float scale = 1.0f);

/// A 2-layer hybrid model: embedding, a lightning layer, a softmax layer (GQA,
/// partial RoPE), MoE in both, final norm and logits. Vocab 32, hidden 16,
/// max_batch 2, max_seq 12.
struct TinyModel {
  Plan plan;
  std::vector<StTensor>
      weights; // per-expert tensors are separate, as in HF checkpoints
};
TinyModel buildTinyModel(uint32_t seed = 1);

/// Writes tiny.mmb, tiny.safetensors and ids.npy (int64 [2, 5]) into `dir`.
void writeTinyModel(const std::string &dir);

} // namespace mm::test
