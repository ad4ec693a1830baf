// mm-run's training subcommands (Train.cpp). Errors are thrown as
// std::runtime_error and printed by mm-run's main as one line.
#pragma once

#include "runtime/Artifact.h"
#include "runtime/base/Status.h"

#include <stdexcept>
#include <string>
#include <vector>

namespace mmrun {

[[noreturn]] inline void die(const std::string &message) {
  throw std::runtime_error(message);
}

inline void check(const mm::Status &s) {
  if (!s.isOk())
    die(s.message());
}

/// Prints (stderr) the median of each step's times over `runs` profiled runs
/// (perStep[i]: step i's times, sorted in place), summed by kernel kind.
void printProfile(const mm::Plan &p, std::vector<std::vector<float>> &perStep,
                  int runs);

/// `mm-run train MODEL.mmb --data ... --steps ... --checkpoint DIR ...`
int trainCommand(int argc, char **argv);

/// `mm-run grad MODEL.mmb --weights W --input-ids I.npy --labels L.npy -o OUT`
int gradCommand(int argc, char **argv);

} // namespace mmrun
