// A small strict JSON parser (RFC 8259) for safetensors headers, so the runtime
// needs no JSON library. Nesting depth and input size are bounded so hostile
// input cannot exhaust the stack. Values are plain data: thread-compatible.
#pragma once

#include "runtime/base/Status.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mm {

struct JsonValue {
  enum class Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  double number = 0;
  bool isInteger =
      false; // written without fraction or exponent, fits in int64 / uint64
  int64_t integer =
      0; // valid when isInteger and the literal is not negative-overflowing
  uint64_t unsignedInteger = 0; // valid when isInteger and the literal is >= 0
  bool isNonNegative = false;
  std::string string;
  std::vector<JsonValue> array;
  // Keys in file order, so that messages and iteration are deterministic.
  std::vector<std::pair<std::string, JsonValue>> object;

  const JsonValue *get(const std::string &key) const;
};

/// Parses exactly one JSON value spanning all of `text` (surrounding whitespace
/// allowed). Duplicate object keys are an error. Errors give the byte offset.
StatusOr<JsonValue> parseJson(std::string_view text);

} // namespace mm
