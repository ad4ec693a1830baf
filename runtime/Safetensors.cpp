// Safetensors reader; see Safetensors.h. Format: u64 little-endian header
// length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]},
// "__metadata__": {...}}, then the data.
#include "runtime/Safetensors.h"

#include "runtime/base/Json.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace mm {

namespace {
// The format's own limit on the header size.
constexpr uint64_t kMaxHeaderBytes = 100u << 20;

size_t elementSizeOf(const std::string &dtype) {
  static const std::map<std::string, size_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
      {"U32", 4},  {"F32", 4}, {"F64", 8}, {"I64", 8},     {"U64", 8}};
  auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

uint16_t load16(const uint8_t *p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
} // namespace

float bf16ToF32(uint16_t bits) {
  uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

float f16ToF32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  uint32_t u;
  if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else { // subnormal: renormalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400) == 0);
      u = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) |
          ((mant & 0x3FF) << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7F800000u | (mant << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint64_t SafetensorsTensor::numElements() const {
  uint64_t n = 1;
  for (int64_t d : shape)
    n *= static_cast<uint64_t>(d);
  return n;
}

StatusOr<std::unique_ptr<SafetensorsFile>>
SafetensorsFile::open(const std::string &path) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f->fd_ < 0)
    return notFound(path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (fstat(f->fd_, &st) != 0)
    return invalidArgument(path + ": cannot stat: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode))
    return invalidArgument(path + ": not a regular file");
  f->size_ = static_cast<size_t>(st.st_size);
  if (f->size_ < 8)
    return invalidArgument(path + ": file is too short (" +
                           std::to_string(f->size_) +
                           " bytes) to hold a safetensors header");
  void *m = mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, f->fd_, 0);
  if (m == MAP_FAILED)
    return invalidArgument(path + ": mmap failed: " + std::strerror(errno));
  f->map_ = static_cast<const uint8_t *>(m);
  Status s = f->parseHeader();
  if (!s.isOk())
    return s.withPrefix(path + ": ");
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_)
    munmap(const_cast<uint8_t *>(map_), size_);
  if (fd_ >= 0)
    ::close(fd_);
}

Status SafetensorsFile::parseHeader() {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i)
    n = (n << 8) | map_[i];
  if (n > size_ - 8)
    return invalidArgument("header length " + std::to_string(n) +
                           " runs past the end of the file (" +
                           std::to_string(size_) + " bytes)");
  if (n > kMaxHeaderBytes)
    return invalidArgument("header length " + std::to_string(n) +
                           " exceeds the 100 MiB limit");
  std::string_view text(reinterpret_cast<const char *>(map_ + 8), n);
  auto parsed = parseJson(text);
  if (!parsed.isOk())
    return parsed.status().withPrefix("header: ");
  const JsonValue &root = parsed.value();
  if (root.kind != JsonValue::Kind::Object)
    return invalidArgument("header is not a JSON object");

  const uint8_t *dataStart = map_ + 8 + n;
  const uint64_t dataSize = size_ - 8 - n;
  for (const auto &[name, v] : root.object) {
    if (name == "__metadata__") {
      if (v.kind != JsonValue::Kind::Object)
        return invalidArgument("__metadata__ is not an object");
      for (const auto &[k, mv] : v.object)
        if (mv.kind == JsonValue::Kind::String)
          metadata_[k] = mv.string;
      continue;
    }
    auto fail = [&](const std::string &m) {
      return invalidArgument("tensor '" + name + "': " + m);
    };
    if (v.kind != JsonValue::Kind::Object)
      return fail("entry is not an object");
    SafetensorsTensor t;
    t.name = name;
    const JsonValue *dtype = v.get("dtype");
    if (!dtype || dtype->kind != JsonValue::Kind::String)
      return fail("missing string 'dtype'");
    t.dtype = dtype->string;
    t.elementSize = elementSizeOf(t.dtype);
    if (t.elementSize == 0)
      return fail("unknown dtype '" + t.dtype + "'");
    const JsonValue *shape = v.get("shape");
    if (!shape || shape->kind != JsonValue::Kind::Array)
      return fail("missing array 'shape'");
    // Element count with overflow checking: no tensor can exceed the data
    // section.
    uint64_t elems = 1;
    bool tooLarge = false;
    for (const JsonValue &d : shape->array) {
      if (d.kind != JsonValue::Kind::Number || !d.isInteger ||
          !d.isNonNegative || d.unsignedInteger > (uint64_t(1) << 62))
        return fail("shape entries must be non-negative integers");
      t.shape.push_back(static_cast<int64_t>(d.unsignedInteger));
      if (d.unsignedInteger != 0 &&
          elems > (uint64_t(1) << 62) / d.unsignedInteger)
        tooLarge = true;
      else
        elems *= d.unsignedInteger;
    }
    const JsonValue *offs = v.get("data_offsets");
    if (!offs || offs->kind != JsonValue::Kind::Array ||
        offs->array.size() != 2)
      return fail("'data_offsets' must be an array [begin, end]");
    for (const JsonValue &o : offs->array)
      if (o.kind != JsonValue::Kind::Number || !o.isInteger || !o.isNonNegative)
        return fail("'data_offsets' entries must be non-negative integers");
    t.begin = offs->array[0].unsignedInteger;
    t.end = offs->array[1].unsignedInteger;
    if (t.begin > t.end)
      return fail("data_offsets [" + std::to_string(t.begin) + ", " +
                  std::to_string(t.end) + "] are reversed");
    if (t.end > dataSize)
      return fail("data_offsets [" + std::to_string(t.begin) + ", " +
                  std::to_string(t.end) + "] run past the data section (" +
                  std::to_string(dataSize) + " bytes)");
    if (tooLarge || elems > (uint64_t(1) << 62) / t.elementSize ||
        elems * t.elementSize != t.end - t.begin)
      return fail("shape and dtype " + t.dtype + " need " +
                  (tooLarge ? std::string("too many")
                            : std::to_string(elems * t.elementSize)) +
                  " bytes but data_offsets span " +
                  std::to_string(t.end - t.begin));
    t.data = dataStart + t.begin;
    index_[name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }
  // Offsets that lie about the layout: two tensors claiming the same bytes.
  std::vector<const SafetensorsTensor *> byBegin;
  for (const SafetensorsTensor &t : tensors_)
    if (t.end > t.begin)
      byBegin.push_back(&t);
  std::sort(byBegin.begin(), byBegin.end(),
            [](const SafetensorsTensor *a, const SafetensorsTensor *b) {
              return a->begin < b->begin;
            });
  for (size_t i = 1; i < byBegin.size(); ++i)
    if (byBegin[i]->begin < byBegin[i - 1]->end)
      return invalidArgument(
          "tensor '" + byBegin[i]->name + "': data_offsets [" +
          std::to_string(byBegin[i]->begin) + ", " +
          std::to_string(byBegin[i]->end) + "] overlap those of tensor '" +
          byBegin[i - 1]->name + "' [" + std::to_string(byBegin[i - 1]->begin) +
          ", " + std::to_string(byBegin[i - 1]->end) + "]");
  return Status::ok();
}

const SafetensorsTensor *SafetensorsFile::find(const std::string &name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Status SafetensorsFile::readAsF32(const SafetensorsTensor &t,
                                  float *dst) const {
  return readRangeAsF32(t, 0, t.numElements(), dst);
}

Status SafetensorsFile::readRangeAsF32(const SafetensorsTensor &t,
                                       uint64_t first, uint64_t n,
                                       float *dst) const {
  if (first > t.numElements() || n > t.numElements() - first)
    return invalidArgument(path_ + ": tensor '" + t.name + "': elements [" +
                           std::to_string(first) + ", " +
                           std::to_string(first + n) + ") are outside its " +
                           std::to_string(t.numElements()));
  if (t.dtype == "F32") {
    std::memcpy(dst, t.data + 4 * first, n * 4);
  } else if (t.dtype == "BF16") {
    const uint8_t *src = t.data + 2 * first;
    for (uint64_t i = 0; i < n; ++i)
      dst[i] = bf16ToF32(load16(src + 2 * i));
  } else if (t.dtype == "F16") {
    const uint8_t *src = t.data + 2 * first;
    for (uint64_t i = 0; i < n; ++i)
      dst[i] = f16ToF32(load16(src + 2 * i));
  } else {
    return invalidArgument(path_ + ": tensor '" + t.name + "' has dtype " +
                           t.dtype + "; only F32, BF16 and F16 can be read");
  }
  return Status::ok();
}

} // namespace mm
