// Status and StatusOr<T>: the runtime's error type (a code plus a one-line
// message naming the culprit; control characters are escaped on construction)
// and the MM_RETURN_IF_ERROR / MM_ASSIGN_OR_RETURN helpers. Nothing in the
// runtime throws for bad input; it returns a Status. Values are plain data:
// thread-compatible (no shared state).
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace mm {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,   // bad input file, bad CLI flag, bad tensor contents
  kNotFound,          // a file, weight or binding is missing
  kOutOfRange,        // a size or index past a limit
  kResourceExhausted, // not enough memory
  kUnimplemented, // valid request the build cannot serve (e.g. a backend not
                  // compiled in)
  kInternal,      // a bug in the runtime
};

/// `text` with control characters escaped as \xNN: messages quote names read
/// from files, which may hold any byte, and must still print as one line.
inline std::string oneLine(const std::string &text) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7F) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

class [[nodiscard]] Status {
public:
  Status() = default;
  Status(StatusCode code, const std::string &message)
      : code_(code), message_(oneLine(message)) {}

  static Status ok() { return Status(); }

  bool isOk() const { return code_ == StatusCode::kOk; }
  explicit operator bool() const { return isOk(); }
  StatusCode code() const { return code_; }
  const std::string &message() const { return message_; }

  /// Prepends context ("file.mmb: ") so the message names the outer culprit
  /// too.
  Status withPrefix(const std::string &prefix) const {
    if (isOk())
      return *this;
    return Status(code_, oneLine(prefix) + message_);
  }

private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalidArgument(std::string m) {
  return Status(StatusCode::kInvalidArgument, std::move(m));
}
inline Status notFound(std::string m) {
  return Status(StatusCode::kNotFound, std::move(m));
}
inline Status outOfRange(std::string m) {
  return Status(StatusCode::kOutOfRange, std::move(m));
}
inline Status resourceExhausted(std::string m) {
  return Status(StatusCode::kResourceExhausted, std::move(m));
}
inline Status unimplemented(std::string m) {
  return Status(StatusCode::kUnimplemented, std::move(m));
}
inline Status internalError(std::string m) {
  return Status(StatusCode::kInternal, std::move(m));
}

/// Either a value or a non-OK Status.
template <typename T> class [[nodiscard]] StatusOr {
public:
  StatusOr(Status status) : status_(std::move(status)) {
    assert(!status_.isOk() && "StatusOr needs a value or an error");
    if (status_.isOk())
      status_ = internalError("StatusOr built from an OK status");
  }
  StatusOr(T value) : value_(std::move(value)) {}

  bool isOk() const { return status_.isOk(); }
  const Status &status() const { return status_; }
  T &value() & { return *value_; }
  const T &value() const & { return *value_; }
  T &&value() && { return std::move(*value_); }
  T *operator->() { return &*value_; }
  const T *operator->() const { return &*value_; }
  T &operator*() { return *value_; }

private:
  Status status_;
  std::optional<T> value_;
};

} // namespace mm

#define MM_STATUS_CONCAT_INNER(a, b) a##b
#define MM_STATUS_CONCAT(a, b) MM_STATUS_CONCAT_INNER(a, b)

/// Returns the Status of `expr` from the enclosing function if it is not OK.
#define MM_RETURN_IF_ERROR(expr)                                               \
  do {                                                                         \
    ::mm::Status mm_status_tmp_ = (expr);                                      \
    if (!mm_status_tmp_.isOk())                                                \
      return mm_status_tmp_;                                                   \
  } while (0)

/// `MM_ASSIGN_OR_RETURN(auto x, f())`: binds the value of a StatusOr or returns
/// its error.
#define MM_ASSIGN_OR_RETURN(lhs, expr)                                         \
  MM_ASSIGN_OR_RETURN_IMPL(MM_STATUS_CONCAT(mm_statusor_, __LINE__), lhs, expr)
#define MM_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)                               \
  auto tmp = (expr);                                                           \
  if (!tmp.isOk())                                                             \
    return tmp.status();                                                       \
  lhs = std::move(tmp).value()
