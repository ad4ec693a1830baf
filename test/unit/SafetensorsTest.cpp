// Tests that the safetensors reader accepts good files and rejects every kind
// of broken one with a message naming the file and tensor.
#include "runtime/Safetensors.h"
#include "runtime/base/Json.h"

#include "TestSupport.h"

#include <gtest/gtest.h>

#include <cstring>

namespace mm {
namespace {

using test::f32Tensor;
using test::safetensorsBytes;

std::string tempPath(const std::string &name) {
  return test::tempDir() + "/mm_st_" + name;
}

StatusOr<std::unique_ptr<SafetensorsFile>>
openBytes(const std::string &name, const std::vector<uint8_t> &bytes) {
  std::string path = tempPath(name);
  test::writeFile(path, bytes);
  return SafetensorsFile::open(path);
}

std::vector<uint8_t> withHeader(const std::string &header,
                                size_t dataBytes = 0) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i)
    bytes[i] = static_cast<char>(uint64_t(header.size()) >> (8 * i));
  bytes += header;
  bytes.append(dataBytes, '\x3f');
  return std::vector<uint8_t>(bytes.begin(), bytes.end());
}

void expectError(const std::string &name, const std::vector<uint8_t> &bytes,
                 const std::string &fragment) {
  auto f = openBytes(name, bytes);
  ASSERT_FALSE(f.isOk()) << name;
  EXPECT_NE(f.status().message().find(fragment), std::string::npos)
      << f.status().message();
  EXPECT_NE(f.status().message().find(tempPath(name)), std::string::npos)
      << "message must name the file: " << f.status().message();
}

TEST(Safetensors, ReadsGoodFile) {
  std::vector<float> a = {1.5f, -2.0f, 3.25f, 4.0f, 5.0f, -6.5f};
  std::vector<float> b = {0.5f, 1.0f, -1.0f, 2.0f};
  auto bytes = safetensorsBytes(
      {f32Tensor("a", {2, 3}, a), test::bf16Tensor("b", {4}, b)},
      ",\"__metadata__\":{\"format\":\"pt\"}");
  auto f = openBytes("good", bytes);
  ASSERT_TRUE(f.isOk()) << f.status().message();
  ASSERT_EQ(f.value()->tensors().size(), 2u);
  EXPECT_EQ(f.value()->metadata().at("format"), "pt");
  const SafetensorsTensor *ta = f.value()->find("a");
  ASSERT_NE(ta, nullptr);
  EXPECT_EQ(ta->shape, (std::vector<int64_t>{2, 3}));
  std::vector<float> out(6, NAN);
  ASSERT_TRUE(f.value()->readAsF32(*ta, out.data()).isOk());
  EXPECT_EQ(out, a);
  const SafetensorsTensor *tb = f.value()->find("b");
  ASSERT_NE(tb, nullptr);
  std::vector<float> outB(4, NAN);
  ASSERT_TRUE(f.value()->readAsF32(*tb, outB.data()).isOk());
  EXPECT_EQ(outB, b); // exactly representable in bf16
  EXPECT_EQ(f.value()->find("missing"), nullptr);
}

TEST(Safetensors, ConvertsF16) {
  // 1.0, -2.0, 65504 (max), a subnormal 2^-24, +inf
  const uint16_t h[5] = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x7C00};
  test::StTensor t{"h", "F16", {5}, {}};
  t.bytes.resize(10);
  std::memcpy(t.bytes.data(), h, 10);
  auto f = openBytes("f16", safetensorsBytes({t}));
  ASSERT_TRUE(f.isOk()) << f.status().message();
  float out[5];
  ASSERT_TRUE(f.value()->readAsF32(*f.value()->find("h"), out).isOk());
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -2.0f);
  EXPECT_EQ(out[2], 65504.0f);
  EXPECT_EQ(out[3], std::ldexp(1.0f, -24));
  EXPECT_TRUE(std::isinf(out[4]));
}

TEST(Safetensors, RejectsTruncatedFiles) {
  auto good =
      safetensorsBytes({f32Tensor("a", {2, 3}, std::vector<float>(6, 1))});
  expectError("empty", {}, "too short");
  expectError("short", {1, 2, 3}, "too short");
  // Cut inside the header, then inside the data.
  expectError("cut_header",
              std::vector<uint8_t>(good.begin(), good.begin() + 20),
              "runs past the end");
  expectError("cut_data", std::vector<uint8_t>(good.begin(), good.end() - 4),
              "tensor 'a'");
}

TEST(Safetensors, RejectsLyingOffsets) {
  expectError(
      "past_end",
      withHeader(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})",
                 8),
      "run past the data section");
  expectError(
      "reversed",
      withHeader(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})",
                 8),
      "reversed");
  expectError(
      "span_mismatch",
      withHeader(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
                 8),
      "need 12 bytes but data_offsets span 8");
  expectError(
      "negative",
      withHeader(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})",
                 8),
      "non-negative");
  expectError(
      "huge_shape",
      withHeader(
          R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
          8),
      "tensor 'a'");
  std::vector<uint8_t> bigLen = withHeader("{}", 8);
  bigLen[7] = 0x7f; // header length ~ 2^62
  expectError("big_header_len", bigLen, "runs past the end");
}

TEST(Safetensors, RejectsBadJson) {
  expectError("not_json", withHeader("hello"), "JSON error");
  expectError("unterminated", withHeader(R"({"a":{"dtype":"F32")"),
              "JSON error");
  expectError("trailing", withHeader(R"({} x)"), "trailing");
  expectError("not_object", withHeader("[1,2]"), "not a JSON object");
  expectError(
      "dup_key",
      withHeader(
          R"({"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"a":{}})", 4),
      "duplicate key");
  expectError("deep", withHeader(std::string(200, '[') + std::string(200, ']')),
              "nesting");
}

TEST(Safetensors, RejectsWrongDtypeOrShape) {
  expectError(
      "unknown_dtype",
      withHeader(R"({"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})",
                 8),
      "unknown dtype 'F33'");
  expectError("no_shape",
              withHeader(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", 8),
              "missing array 'shape'");
  expectError(
      "float_shape",
      withHeader(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})",
                 8),
      "shape entries");
  // A valid file whose dtype the CPU backend cannot convert.
  auto f = openBytes(
      "i64",
      withHeader(R"({"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})",
                 8));
  ASSERT_TRUE(f.isOk()) << f.status().message();
  float out[2];
  Status s = f.value()->readAsF32(*f.value()->find("a"), out);
  EXPECT_FALSE(s.isOk());
  EXPECT_NE(s.message().find("tensor 'a' has dtype I64"), std::string::npos);
}

TEST(Safetensors, MissingFile) {
  auto f = SafetensorsFile::open(tempPath("does_not_exist"));
  ASSERT_FALSE(f.isOk());
  EXPECT_EQ(f.status().code(), StatusCode::kNotFound);
}

TEST(Json, ParsesValues) {
  auto v = parseJson(
      R"( {"s":"a\"b\u00e9\ud83d\ude00","n":-12,"f":1.5e3,"t":true,"z":null,"a":[1,[]]} )");
  ASSERT_TRUE(v.isOk()) << v.status().message();
  EXPECT_EQ(v->get("s")->string, "a\"b\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_TRUE(v->get("n")->isInteger);
  EXPECT_EQ(v->get("n")->integer, -12);
  EXPECT_FALSE(v->get("f")->isInteger);
  EXPECT_EQ(v->get("f")->number, 1500.0);
  EXPECT_TRUE(v->get("t")->boolean);
  EXPECT_EQ(v->get("a")->array.size(), 2u);
  EXPECT_EQ(parseJson("18446744073709551615")->unsignedInteger, UINT64_MAX);
  EXPECT_FALSE(parseJson("18446744073709551616")->isInteger);
  for (const char *bad : {"", "01", "1.", "-", "\"\\x\"", "\"\\ud800\"", "[1,]",
                          "{\"a\" 1}", "tru", "\"a\nb\""})
    EXPECT_FALSE(parseJson(bad).isOk()) << bad;
}

} // namespace
} // namespace mm

namespace mm {
namespace {

// Every single-byte corruption of a small file's length prefix and header
// either opens with offsets still inside the file, or is refused with a
// message; none crashes.
TEST(Safetensors, SurvivesHeaderByteFlips) {
  std::vector<float> a(6, 1.5f), b(4, -2.0f);
  const std::vector<uint8_t> good = test::safetensorsBytes(
      {test::f32Tensor("a", {2, 3}, a), test::f32Tensor("b", {4}, b)});
  const std::string path = tempPath("flip");
  const size_t headerEnd = good.size() - 40;
  size_t refused = 0;
  for (size_t i = 0; i < headerEnd; ++i)
    for (uint8_t x : {uint8_t(0x01), uint8_t(0x10), uint8_t(0xff)}) {
      std::vector<uint8_t> bytes = good;
      bytes[i] ^= x;
      test::writeFile(path, bytes);
      auto f = SafetensorsFile::open(path);
      if (!f.isOk()) {
        ++refused;
        EXPECT_EQ(f.status().message().find('\n'), std::string::npos);
        continue;
      }
      std::vector<float> out;
      for (const SafetensorsTensor &t : f.value()->tensors()) {
        ASSERT_LE(t.begin, t.end);
        ASSERT_LE(t.end, bytes.size());
        ASSERT_EQ(t.numElements() * t.elementSize, t.end - t.begin);
        out.assign(t.numElements(), 0.0f);
        (void)f.value()->readAsF32(t, out.data());
      }
    }
  EXPECT_GT(refused, 0u);
}

} // namespace
} // namespace mm
