// mm-write-tiny-model DIR: writes tiny.mmb, tiny.safetensors and ids.npy (see
// TestSupport.h) for the mm-run smoke test and
// test/runtime/corrupt_artifact.py.
#include "TestSupport.h"

#include <cstdio>
#include <exception>
#include <filesystem>

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: mm-write-tiny-model DIR\n");
    return 1;
  }
  try {
    std::filesystem::create_directories(argv[1]);
    mm::test::writeTinyModel(argv[1]);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "mm-write-tiny-model: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
