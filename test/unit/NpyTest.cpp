// Tests the .npy reader (int32/int64/float32, C order) and the float32 writer.
#include "runtime/Npy.h"

#include "TestSupport.h"

#include <gtest/gtest.h>

#include <cstring>

namespace mm {
namespace {

std::vector<uint8_t> npyBytes(const std::string &dict,
                              const std::vector<uint8_t> &data) {
  std::string d = dict;
  while ((10 + d.size() + 1) % 64)
    d += ' ';
  d += '\n';
  std::string bytes = "\x93NUMPY";
  bytes += '\x01';
  bytes += '\0';
  bytes += static_cast<char>(d.size() & 0xff);
  bytes += static_cast<char>(d.size() >> 8);
  bytes += d;
  bytes.append(data.begin(), data.end());
  return std::vector<uint8_t>(bytes.begin(), bytes.end());
}

template <typename T> std::vector<uint8_t> raw(const std::vector<T> &v) {
  std::vector<uint8_t> out(v.size() * sizeof(T));
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

TEST(Npy, ReadsInt32AndInt64) {
  auto bytes =
      npyBytes("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }",
               raw(std::vector<int32_t>{1, -2, 3, 4, 5, 6}));
  auto i32 = parseNpy(bytes.data(), bytes.size(), "i32.npy");
  ASSERT_TRUE(i32.isOk()) << i32.status().message();
  EXPECT_EQ(i32->dtype, NpyDType::I32);
  EXPECT_EQ(i32->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(i32->intAt(1), -2);
  bytes =
      npyBytes("{'descr': '<i8', 'fortran_order': False, 'shape': (1, 2), }",
               raw(std::vector<int64_t>{7, int64_t(1) << 40}));
  auto i64 = parseNpy(bytes.data(), bytes.size(), "i64.npy");
  ASSERT_TRUE(i64.isOk()) << i64.status().message();
  EXPECT_EQ(i64->intAt(1), int64_t(1) << 40);
  bytes = npyBytes("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }",
                   raw(std::vector<int64_t>{1, 2, 3}));
  auto v1 = parseNpy(bytes.data(), bytes.size(), "v.npy");
  ASSERT_TRUE(v1.isOk());
  EXPECT_EQ(v1->shape, (std::vector<int64_t>{3}));
}

TEST(Npy, RejectsBadFiles) {
  auto check = [](const std::vector<uint8_t> &bytes, const std::string &frag) {
    auto r = parseNpy(bytes.data(), bytes.size(), "bad.npy");
    ASSERT_FALSE(r.isOk()) << frag;
    EXPECT_NE(r.status().message().find(frag), std::string::npos)
        << r.status().message();
    EXPECT_EQ(r.status().message().rfind("bad.npy: ", 0), 0u);
  };
  auto ids = raw(std::vector<int32_t>{1, 2, 3, 4});
  check({1, 2, 3}, "bad magic");
  check(npyBytes("{'descr': '>i4', 'fortran_order': False, 'shape': (2, 2), }",
                 ids),
        "unsupported dtype '>i4'");
  check(npyBytes("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }",
                 ids),
        "unsupported dtype '<f8'");
  check(npyBytes("{'descr': '<i4', 'fortran_order': True, 'shape': (2, 2), }",
                 ids),
        "Fortran");
  check(npyBytes("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }",
                 ids),
        "data is 16 bytes but shape and dtype need 24");
  check(npyBytes("{'descr': '<i4', 'fortran_order': False, 'shape': (2, x), }",
                 ids),
        "malformed 'shape'");
  check(npyBytes("{'fortran_order': False, 'shape': (2, 2), }", ids),
        "no 'descr'");
  auto truncated = npyBytes(
      "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 2), }", ids);
  truncated.resize(30);
  check(truncated, "runs past the end");
}

TEST(Npy, WritesFloat32RoundTrip) {
  std::string path = test::tempDir() + "/mm_npy_roundtrip.npy";
  std::vector<float> values = {1.5f, -2.25f, 3.0f, 0.125f, 5.0f, -6.0f};
  ASSERT_TRUE(writeNpyF32(path, {1, 2, 3}, values.data()).isOk());
  auto bytes = test::readFile(path);
  EXPECT_EQ((bytes.size() - values.size() * 4) % 64, 0u); // numpy's alignment
  auto back = readNpy(path);
  ASSERT_TRUE(back.isOk()) << back.status().message();
  EXPECT_EQ(back->dtype, NpyDType::F32);
  EXPECT_EQ(back->shape, (std::vector<int64_t>{1, 2, 3}));
  std::vector<float> got(6);
  std::memcpy(got.data(), back->data.data(), 24);
  EXPECT_EQ(got, values);
  // 1-D and scalar shapes use Python tuple syntax.
  ASSERT_TRUE(writeNpyF32(path, {6}, values.data()).isOk());
  EXPECT_EQ(readNpy(path)->shape, (std::vector<int64_t>{6}));
  ASSERT_TRUE(writeNpyF32(path, {}, values.data()).isOk());
  auto scalar = readNpy(path);
  ASSERT_TRUE(scalar.isOk()) << scalar.status().message();
  EXPECT_TRUE(scalar->shape.empty());
  EXPECT_FALSE(
      writeNpyF32("/nonexistent-dir/x.npy", {1}, values.data()).isOk());
}

} // namespace
} // namespace mm
