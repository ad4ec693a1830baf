// Tests the Hugging Face checkpoint reader (folders, index files, shards),
// range reads and overlapping offsets in safetensors files, and the binding
// of a weight that is a slice of a checkpoint tensor.
#include "runtime/Checkpoint.h"
#include "runtime/Session.h"

#include "TestSupport.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace mm {
namespace {

using test::C;
using test::f32Tensor;
using test::safetensorsBytes;

std::string freshDir(const std::string &name) {
  std::string dir = test::tempDir() + "/mm_ckpt_" + name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

void writeText(const std::string &path, const std::string &text) {
  test::writeFile(path, std::vector<uint8_t>(text.begin(), text.end()));
}

// Two shards and their index: "a" [2] in shard 1, "b" [3] in shard 2.
std::string writeSharded(const std::string &name) {
  std::string dir = freshDir(name);
  test::writeFile(dir + "/s1.safetensors",
                  safetensorsBytes({f32Tensor("a", {2}, {1, 2})}));
  test::writeFile(dir + "/s2.safetensors",
                  safetensorsBytes({f32Tensor("b", {3}, {3, 4, 5})}));
  writeText(dir + "/model.safetensors.index.json",
            R"({"metadata": {"total_size": 20}, "weight_map": )"
            R"({"a": "s1.safetensors", "b": "s2.safetensors"}})");
  return dir;
}

void expectError(const std::vector<std::string> &paths,
                 const std::string &fragment) {
  auto c = Checkpoint::open(paths);
  ASSERT_FALSE(c.isOk()) << fragment;
  EXPECT_NE(c.status().message().find(fragment), std::string::npos)
      << c.status().message();
}

TEST(Checkpoint, OpensFolderIndexAndFiles) {
  std::string dir = writeSharded("good");
  for (const std::string &path : {dir, dir + "/model.safetensors.index.json"}) {
    auto c = Checkpoint::open({path});
    ASSERT_TRUE(c.isOk()) << c.status().message();
    auto [file, tensor] = c.value()->find("b");
    ASSERT_NE(tensor, nullptr);
    EXPECT_EQ(file->path(), dir + "/s2.safetensors");
    EXPECT_EQ(c.value()->files().size(), 2u);
    EXPECT_EQ(c.value()->tensors().size(), 2u);
    EXPECT_EQ(c.value()->find("c").second, nullptr);
  }
  auto single = Checkpoint::open({dir + "/s1.safetensors"});
  ASSERT_TRUE(single.isOk());
  EXPECT_EQ(single.value()->tensors().size(), 1u);

  std::string plain = freshDir("plain");
  test::writeFile(plain + "/model.safetensors",
                  safetensorsBytes({f32Tensor("a", {2}, {1, 2})}));
  auto folder = Checkpoint::open({plain});
  ASSERT_TRUE(folder.isOk()) << folder.status().message();
  EXPECT_NE(folder.value()->find("a").second, nullptr);
}

TEST(Checkpoint, RejectsBrokenIndexes) {
  std::string dir = writeSharded("missing");
  std::filesystem::remove(dir + "/s2.safetensors");
  expectError({dir}, "s2.safetensors: cannot open");
  expectError({dir}, "e.g. for tensor 'b'");

  dir = writeSharded("wrong_shard");
  writeText(
      dir + "/model.safetensors.index.json",
      R"({"weight_map": {"a": "s1.safetensors", "b": "s1.safetensors"}})");
  expectError({dir}, "tensor 'b' is mapped to " + dir +
                         "/s1.safetensors, which does not hold it");

  dir = writeSharded("unlisted");
  writeText(dir + "/model.safetensors.index.json",
            R"({"weight_map": {"a": "s1.safetensors"}})");
  // Only s1 is opened, and it holds nothing unlisted: fine.
  EXPECT_TRUE(Checkpoint::open({dir}).isOk());
  test::writeFile(dir + "/s1.safetensors",
                  safetensorsBytes(
                      {f32Tensor("a", {2}, {1, 2}), f32Tensor("z", {1}, {1})}));
  expectError({dir}, "tensor 'z' is not in the weight_map");

  dir = writeSharded("escape");
  writeText(dir + "/model.safetensors.index.json",
            R"({"weight_map": {"a": "../s1.safetensors"}})");
  expectError({dir}, "not a file name in the index's folder");

  dir = writeSharded("no_map");
  writeText(dir + "/model.safetensors.index.json", R"({"metadata": {}})");
  expectError({dir}, "has no object 'weight_map'");

  expectError({freshDir("empty")}, "folder has neither");
  dir = writeSharded("twice");
  expectError({dir + "/s1.safetensors", dir + "/s1.safetensors"},
              "tensor 'a' is also in");
}

TEST(Safetensors, ReadsRangesAndRejectsOverlaps) {
  std::string dir = freshDir("range");
  test::writeFile(
      dir + "/r.safetensors",
      safetensorsBytes({f32Tensor("a", {2, 3}, {1, 2, 3, 4, 5, 6})}));
  auto f = SafetensorsFile::open(dir + "/r.safetensors");
  ASSERT_TRUE(f.isOk());
  const SafetensorsTensor *a = f.value()->find("a");
  float out[2] = {0, 0};
  ASSERT_TRUE(f.value()->readRangeAsF32(*a, 4, 2, out).isOk());
  EXPECT_EQ(out[0], 5);
  EXPECT_EQ(out[1], 6);
  EXPECT_FALSE(f.value()->readRangeAsF32(*a, 5, 2, out).isOk());

  std::string header =
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i)
    bytes[i] = static_cast<char>(uint64_t(header.size()) >> (8 * i));
  bytes += header + std::string(12, '\0');
  writeText(dir + "/overlap.safetensors", bytes);
  auto bad = SafetensorsFile::open(dir + "/overlap.safetensors");
  ASSERT_FALSE(bad.isOk());
  EXPECT_NE(bad.status().message().find(
                "tensor 'b': data_offsets [4, 12] overlap those of tensor 'a'"),
            std::string::npos)
      << bad.status().message();
}

// A fused tensor [4, 6] bound as halves along either axis, read back through
// `embedding` (out[0, t] = table[ids[0, t]]), after a round trip through the
// artifact bytes.
TEST(Session, BindsSlicedWeights) {
  std::vector<float> fused(24);
  for (size_t i = 0; i < fused.size(); ++i)
    fused[i] = float(i);
  std::string dir = freshDir("slices");
  test::writeFile(dir + "/model.safetensors",
                  safetensorsBytes({f32Tensor("gate_up", {4, 6}, fused)}));
  auto c = Checkpoint::open({dir});
  ASSERT_TRUE(c.isOk());

  struct Case {
    int32_t axis;
    int64_t offset;
    std::vector<Dim> shape;
    std::vector<float> want; // table rows 0 and 1
  };
  const std::vector<Case> cases = {
      {0, 2, {C(2), C(6)}, {12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23}},
      {1, 3, {C(4), C(3)}, {3, 4, 5, 9, 10, 11}},
  };
  for (const Case &k : cases) {
    test::PlanBuilder pb(1, 2);
    uint32_t ids = pb.input("input_ids", DType::I32, {test::kB, test::kT});
    uint32_t table = pb.weight("gate_up", k.shape);
    int64_t width = k.shape[1].value;
    uint32_t out = pb.act("out", {test::kB, test::kT, C(width)});
    pb.step("embedding", {ids, table}, out);
    pb.output("out", out);
    Plan plan = pb.finish();
    plan.buffers[table].sliceAxis = k.axis;
    plan.buffers[table].sliceOffset = k.offset;
    std::vector<uint8_t> bytes = test::serializePlan(plan);
    auto loaded = parseArtifact(bytes.data(), bytes.size(), "slice.mmb");
    ASSERT_TRUE(loaded.isOk()) << loaded.status().message();
    EXPECT_EQ(loaded.value().buffers[table].sliceAxis, k.axis);
    auto s = Session::create(std::move(loaded).value(), c.value()->files());
    ASSERT_TRUE(s.isOk()) << s.status().message();
    int32_t idData[2] = {0, 1};
    ASSERT_TRUE(
        s.value()->run({{"input_ids", NpyDType::I32, {1, 2}, idData}}).isOk());
    auto view = s.value()->output("out");
    ASSERT_TRUE(view.isOk());
    std::vector<float> got(view.value().data,
                           view.value().data + view.value().numElements());
    EXPECT_EQ(got, k.want) << "axis " << k.axis;
  }

  // A slice the tensor cannot hold is refused, naming the weight and file.
  test::PlanBuilder pb(1, 1);
  uint32_t ids = pb.input("input_ids", DType::I32, {test::kB, test::kT});
  uint32_t table = pb.weight("gate_up", {C(4), C(4)});
  uint32_t out = pb.act("out", {test::kB, test::kT, C(4)});
  pb.step("embedding", {ids, table}, out);
  pb.output("out", out);
  Plan plan = pb.finish();
  plan.buffers[table].sliceAxis = 1;
  plan.buffers[table].sliceOffset = 3;
  std::vector<uint8_t> bytes = test::serializePlan(plan);
  auto loaded = parseArtifact(bytes.data(), bytes.size(), "slice.mmb");
  ASSERT_TRUE(loaded.isOk());
  auto s = Session::create(std::move(loaded).value(), c.value()->files());
  ASSERT_FALSE(s.isOk());
  EXPECT_NE(s.status().message().find(
                "weight 'gate_up': expected a tensor holding rows [3, 7) of "
                "dim 1 with the other dims of [4, 4] but file has [4, 6]"),
            std::string::npos)
      << s.status().message();

  // The verifier refuses a slice axis outside the rank.
  plan.buffers[table].sliceAxis = 2;
  bytes = test::serializePlan(plan);
  auto bad = parseArtifact(bytes.data(), bytes.size(), "slice.mmb");
  ASSERT_FALSE(bad.isOk());
  EXPECT_NE(bad.status().message().find("slice_axis 2 is outside"),
            std::string::npos)
      << bad.status().message();
}

} // namespace
} // namespace mm
