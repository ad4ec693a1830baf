// Training checkpoints: one safetensors file holding every weight (stacked
// "{e}" weights split back into their per-expert checkpoint names, so the file
// is also a valid --weights file for inference) and every optimizer state
// under its artifact name, plus string metadata (the step, ...).
//
// Files are written atomically: the bytes go to "<path>.tmp", which is fsynced
// and renamed over <path>, then the directory is fsynced. A process killed at
// any moment leaves either the previous complete file or the new one.
#pragma once

#include "runtime/Safetensors.h"
#include "runtime/Session.h"

#include <map>
#include <string>
#include <vector>

namespace mm {

/// One f32 tensor to write.
struct TensorToWrite {
  std::string name;
  std::vector<int64_t> shape;
  const float *data = nullptr;
};

/// Writes `tensors` (F32, in the given order) and `metadata` as a safetensors
/// file at `path`, atomically (temp file + fsync + rename + directory fsync).
Status
writeSafetensorsAtomic(const std::string &path,
                       const std::vector<TensorToWrite> &tensors,
                       const std::map<std::string, std::string> &metadata);

/// The session's weights (per-expert names) and states, as tensors to write.
std::vector<TensorToWrite> checkpointTensors(Session &session);

/// Saves the session's weights and states with `metadata` to `path`.
Status saveCheckpoint(Session &session, const std::string &path,
                      const std::map<std::string, std::string> &metadata);

/// Restores every state of the session from `file` (weights are bound when the
/// session is created from the same file). A missing state or a shape
/// mismatch is an error naming it.
Status restoreStates(Session &session, const SafetensorsFile &file);

} // namespace mm
