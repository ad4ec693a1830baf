// Environment-variable knobs of the runtime (measurement and test overrides),
// parsed strictly: a malformed value is an error naming the variable, never a
// silent default.
#pragma once

#include "runtime/base/Status.h"

#include <cerrno>
#include <cstdlib>
#include <string>

namespace mm {

/// `name` as an integer ≥ 0, or -1 when it is unset or empty.
inline StatusOr<long long> envNonNegative(const char *name) {
  const char *v = std::getenv(name);
  if (!v || !*v)
    return -1ll;
  errno = 0;
  char *end = nullptr;
  const long long n = std::strtoll(v, &end, 10);
  if (errno != 0 || *end != '\0' || n < 0)
    return invalidArgument(std::string("environment variable ") + name +
                           "='" + v + "' is not a non-negative integer");
  return n;
}

} // namespace mm
