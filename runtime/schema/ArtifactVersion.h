//===- ArtifactVersion.h - the artifact schema version ----------*- C++ -*-===//
//
// Shared by the writer (compiler/Serialize.cpp) and the reader (runtime). Bump
// it with every incompatible change of mm_artifact.fbs.
//
//===----------------------------------------------------------------------===//
#ifndef MM_SCHEMA_ARTIFACTVERSION_H
#define MM_SCHEMA_ARTIFACTVERSION_H

#include <cstdint>

namespace mm::artifact {
constexpr uint32_t kSchemaVersion = 1;
} // namespace mm::artifact

#endif // MM_SCHEMA_ARTIFACTVERSION_H
