// NumPy .npy files: reading little-endian C-order int32 / int64 / float32
// arrays (token ids, labels) and writing float32 arrays (logits). Stateless
// functions: thread-safe.
#pragma once

#include "runtime/base/Status.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mm {

enum class NpyDType { I32, I64, F32 };

struct NpyArray {
  NpyDType dtype = NpyDType::I32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data; // raw little-endian elements, C order

  uint64_t numElements() const;
  /// Element `i` as int64 (integer arrays only).
  int64_t intAt(uint64_t i) const;
};

/// Reads `path`. Errors name the file: bad magic, unsupported dtype ('descr'),
/// Fortran order, malformed header, or a data size that does not match the
/// shape.
StatusOr<NpyArray> readNpy(const std::string &path);
/// As readNpy, from bytes in memory; `what` names the source in messages.
StatusOr<NpyArray> parseNpy(const uint8_t *data, size_t size,
                            const std::string &what);

/// Writes a float32 array of `shape` (C order) as an .npy version 1.0 file.
Status writeNpyF32(const std::string &path, const std::vector<int64_t> &shape,
                   const float *data);

} // namespace mm
