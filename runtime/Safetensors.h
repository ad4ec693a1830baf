// Read-only access to a .safetensors file through mmap: the header is parsed
// and validated once on open (header length, JSON, dtype, shape × dtype size ==
// data_offsets span, offsets inside the file, no two tensors sharing bytes),
// after which tensor bytes are read straight from the mapping. An open file is
// immutable and safe to read from several threads.
#pragma once

#include "runtime/base/Status.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mm {

struct SafetensorsTensor {
  std::string name;
  std::string dtype; // as written in the header: "F32", "BF16", ...
  size_t elementSize = 0;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;   // byte offsets relative to the data section
  const uint8_t *data = nullptr; // into the mapping; `end - begin` bytes

  uint64_t numElements() const;
};

class SafetensorsFile {
public:
  /// Maps and validates `path`. Every error names the file and, where one is at
  /// fault, the tensor.
  static StatusOr<std::unique_ptr<SafetensorsFile>>
  open(const std::string &path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile &) = delete;
  SafetensorsFile &operator=(const SafetensorsFile &) = delete;

  const std::string &path() const { return path_; }
  /// The tensor called `name`, or null.
  const SafetensorsTensor *find(const std::string &name) const;
  /// All tensors, in header order.
  const std::vector<SafetensorsTensor> &tensors() const { return tensors_; }
  /// `__metadata__` string entries.
  const std::map<std::string, std::string> &metadata() const {
    return metadata_;
  }

  /// Converts the tensor (F32, BF16 or F16) to f32 into `dst`, which holds
  /// numElements() floats.
  Status readAsF32(const SafetensorsTensor &t, float *dst) const;
  /// As readAsF32, for the `count` elements from flat index `first`
  /// (row-major); `first + count` must not exceed numElements().
  Status readRangeAsF32(const SafetensorsTensor &t, uint64_t first,
                        uint64_t count, float *dst) const;

private:
  SafetensorsFile() = default;
  Status parseHeader();

  std::string path_;
  int fd_ = -1;
  const uint8_t *map_ = nullptr;
  size_t size_ = 0;
  std::vector<SafetensorsTensor> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

/// bf16 / f16 bit patterns to float (exact).
float bf16ToF32(uint16_t bits);
float f16ToF32(uint16_t bits);

} // namespace mm
