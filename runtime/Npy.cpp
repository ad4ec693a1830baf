// .npy reader and writer; see Npy.h. Format: "\x93NUMPY", major, minor, header
// length (u16 for v1, u32 for v2/v3), a Python dict literal {'descr': '<i4',
// 'fortran_order': False, 'shape': (2, 3), } padded with spaces and '\n', then
// the raw data.
#include "runtime/Npy.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string_view>

namespace mm {

uint64_t NpyArray::numElements() const {
  uint64_t n = 1;
  for (int64_t d : shape)
    n *= static_cast<uint64_t>(d);
  return n;
}

int64_t NpyArray::intAt(uint64_t i) const {
  if (dtype == NpyDType::I32) {
    int32_t v;
    std::memcpy(&v, data.data() + 4 * i, 4);
    return v;
  }
  int64_t v;
  std::memcpy(&v, data.data() + 8 * i, 8);
  return v;
}

namespace {

// Finds the value text following 'key': in the header dict.
bool findValue(std::string_view header, std::string_view key,
               std::string_view &value) {
  std::string quoted1 = "'" + std::string(key) + "'";
  std::string quoted2 = "\"" + std::string(key) + "\"";
  size_t p = header.find(quoted1);
  size_t keyLen = quoted1.size();
  if (p == std::string_view::npos) {
    p = header.find(quoted2);
    keyLen = quoted2.size();
  }
  if (p == std::string_view::npos)
    return false;
  p += keyLen;
  while (p < header.size() && header[p] == ' ')
    ++p;
  if (p >= header.size() || header[p] != ':')
    return false;
  ++p;
  while (p < header.size() && header[p] == ' ')
    ++p;
  value = header.substr(p);
  return true;
}

} // namespace

StatusOr<NpyArray> parseNpy(const uint8_t *data, size_t size,
                            const std::string &what) {
  auto fail = [&](const std::string &m) {
    return invalidArgument(what + ": " + m);
  };
  static const uint8_t kMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (size < 10 || std::memcmp(data, kMagic, 6) != 0)
    return fail("not a .npy file (bad magic)");
  uint8_t major = data[6];
  size_t headerLen, headerStart;
  if (major == 1) {
    headerLen = data[8] | (data[9] << 8);
    headerStart = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12)
      return fail("truncated .npy header");
    headerLen = static_cast<size_t>(data[8]) | (size_t(data[9]) << 8) |
                (size_t(data[10]) << 16) | (size_t(data[11]) << 24);
    headerStart = 12;
  } else {
    return fail("unsupported .npy version " + std::to_string(major));
  }
  if (headerLen > size - headerStart)
    return fail("header length " + std::to_string(headerLen) +
                " runs past the end of the file");
  std::string_view header(reinterpret_cast<const char *>(data + headerStart),
                          headerLen);

  NpyArray arr;
  std::string_view v;
  if (!findValue(header, "descr", v) || v.empty() ||
      (v[0] != '\'' && v[0] != '"'))
    return fail("header has no 'descr'");
  size_t close = v.find(v[0], 1);
  if (close == std::string_view::npos)
    return fail("header has a malformed 'descr'");
  std::string descr(v.substr(1, close - 1));
  size_t itemSize;
  if (descr == "<i4" || descr == "|i4") {
    arr.dtype = NpyDType::I32;
    itemSize = 4;
  } else if (descr == "<i8" || descr == "|i8") {
    arr.dtype = NpyDType::I64;
    itemSize = 8;
  } else if (descr == "<f4") {
    arr.dtype = NpyDType::F32;
    itemSize = 4;
  } else {
    return fail("unsupported dtype '" + descr +
                "' (expected little-endian int32, int64 or float32)");
  }
  if (!findValue(header, "fortran_order", v))
    return fail("header has no 'fortran_order'");
  if (v.substr(0, 4) == "True")
    return fail("Fortran-order arrays are not supported (save C order)");
  if (v.substr(0, 5) != "False")
    return fail("header has a malformed 'fortran_order'");
  if (!findValue(header, "shape", v) || v.empty() || v[0] != '(')
    return fail("header has no 'shape' tuple");
  size_t end = v.find(')');
  if (end == std::string_view::npos)
    return fail("header has a malformed 'shape'");
  std::string_view dims = v.substr(1, end - 1);
  uint64_t elems = 1;
  size_t p = 0;
  while (p < dims.size()) {
    while (p < dims.size() && (dims[p] == ' ' || dims[p] == ','))
      ++p;
    if (p >= dims.size())
      break;
    uint64_t d = 0;
    size_t digits = 0;
    while (p < dims.size() && dims[p] >= '0' && dims[p] <= '9') {
      d = d * 10 + static_cast<uint64_t>(dims[p] - '0');
      if (d > (uint64_t(1) << 40))
        return fail("shape dimension is too large");
      ++p;
      ++digits;
    }
    if (p < dims.size() && dims[p] == 'L') // Python 2 longs
      ++p;
    if (digits == 0 || (p < dims.size() && dims[p] != ',' && dims[p] != ' '))
      return fail("header has a malformed 'shape'");
    arr.shape.push_back(static_cast<int64_t>(d));
    if (d != 0 && elems > (uint64_t(1) << 40) / d)
      return fail("shape is too large");
    elems *= d;
    if (arr.shape.size() > 16)
      return fail("shape has too many dimensions");
  }
  const size_t dataStart = headerStart + headerLen;
  const uint64_t want = elems * itemSize;
  if (size - dataStart != want)
    return fail("data is " + std::to_string(size - dataStart) +
                " bytes but shape and dtype need " + std::to_string(want));
  arr.data.assign(data + dataStart, data + size);
  return arr;
}

StatusOr<NpyArray> readNpy(const std::string &path) {
  std::FILE *f = std::fopen(path.c_str(), "rb");
  if (!f)
    return notFound(path + ": cannot open: " + std::strerror(errno));
  std::vector<uint8_t> bytes;
  uint8_t chunk[1 << 16];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof(chunk), f)) > 0)
    bytes.insert(bytes.end(), chunk, chunk + n);
  bool readError = std::ferror(f);
  std::fclose(f);
  if (readError)
    return invalidArgument(path + ": read error");
  return parseNpy(bytes.data(), bytes.size(), path);
}

Status writeNpyF32(const std::string &path, const std::vector<int64_t> &shape,
                   const float *data) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  uint64_t elems = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    dict += std::to_string(shape[i]);
    dict += (shape.size() == 1 || i + 1 < shape.size()) ? "," : "";
    if (i + 1 < shape.size())
      dict += " ";
    elems *= static_cast<uint64_t>(shape[i]);
  }
  dict += "), }";
  // numpy pads magic + length + dict + '\n' to a multiple of 64 bytes.
  size_t total = 10 + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict += '\n';
  std::unique_ptr<std::FILE, int (*)(std::FILE *)> f(
      std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!f)
    return invalidArgument(path + ": cannot create: " + std::strerror(errno));
  const uint8_t head[10] = {0x93,
                            'N',
                            'U',
                            'M',
                            'P',
                            'Y',
                            1,
                            0,
                            static_cast<uint8_t>(dict.size() & 0xFF),
                            static_cast<uint8_t>(dict.size() >> 8)};
  bool ok = std::fwrite(head, 1, 10, f.get()) == 10 &&
            std::fwrite(dict.data(), 1, dict.size(), f.get()) == dict.size() &&
            (elems == 0 || std::fwrite(data, 4, elems, f.get()) == elems);
  if (!ok || std::fflush(f.get()) != 0)
    return invalidArgument(path + ": write failed: " + std::strerror(errno));
  return Status::ok();
}

} // namespace mm
