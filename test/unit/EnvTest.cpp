// runtime/base/Env.h: environment knobs are parsed strictly.
#include "runtime/base/Env.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace mm {
namespace {

constexpr const char *kVar = "MM_ENV_TEST_KNOB";

TEST(Env, UnsetOrEmptyIsMinusOne) {
  unsetenv(kVar);
  ASSERT_TRUE(envNonNegative(kVar).isOk());
  EXPECT_EQ(envNonNegative(kVar).value(), -1);
  setenv(kVar, "", 1);
  EXPECT_EQ(envNonNegative(kVar).value(), -1);
}

TEST(Env, NonNegativeIntegers) {
  setenv(kVar, "0", 1);
  EXPECT_EQ(envNonNegative(kVar).value(), 0);
  setenv(kVar, "8192", 1);
  EXPECT_EQ(envNonNegative(kVar).value(), 8192);
  unsetenv(kVar);
}

TEST(Env, MalformedIsAnErrorNamingTheVariable) {
  for (const char *bad : {"abc", "12x", "-5", "1.5", "99999999999999999999"}) {
    setenv(kVar, bad, 1);
    const auto r = envNonNegative(kVar);
    ASSERT_FALSE(r.isOk()) << bad;
    EXPECT_EQ(r.status().message(),
              std::string("environment variable MM_ENV_TEST_KNOB='") + bad +
                  "' is not a non-negative integer");
  }
  unsetenv(kVar);
}

} // namespace
} // namespace mm
