// The weights of a Hugging Face checkpoint, as a set of open safetensors files.
//
// A path names one of:
//   - a folder holding `model.safetensors.index.json` (a sharded checkpoint) or
//     `model.safetensors` (a single file), in that order of preference;
//   - an index file `*.safetensors.index.json`, whose `weight_map` maps every
//     tensor name to a shard file in the index's folder;
//   - a `.safetensors` file.
// Several paths can be combined (tensors are searched in the order given). On
// open, every shard is mapped and its header validated; an index must name only
// shards that exist and tensors that are in the shard it names, and no tensor
// may appear in two files. Errors are one line naming the file and, where one
// is at fault, the tensor. An open Checkpoint is immutable and thread-safe.
#pragma once

#include "runtime/Safetensors.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mm {

class Checkpoint {
public:
  static StatusOr<std::unique_ptr<Checkpoint>>
  open(const std::vector<std::string> &paths);

  /// The open files, in search order.
  std::vector<const SafetensorsFile *> files() const;
  /// The tensor called `name` and the file holding it, or {null, null}.
  std::pair<const SafetensorsFile *, const SafetensorsTensor *>
  find(const std::string &name) const;
  /// Every tensor name with its file, sorted by name.
  const std::map<std::string, const SafetensorsFile *> &tensors() const {
    return where_;
  }
  /// What was opened, for messages: "a.safetensors, b.safetensors".
  std::string description() const;

private:
  Checkpoint() = default;
  Status addFile(const std::string &path, const std::string &listedBy);
  Status addIndex(const std::string &indexPath);

  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile *> where_;
};

} // namespace mm
