// Checkpoint: folders, index files and safetensors files; see Checkpoint.h.
#include "runtime/Checkpoint.h"

#include "runtime/base/Json.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace mm {

namespace fs = std::filesystem;

namespace {

constexpr const char *kIndexName = "model.safetensors.index.json";
constexpr const char *kSingleName = "model.safetensors";
// An index lists names and file names only; this is far above any real one.
constexpr std::uintmax_t kMaxIndexBytes = 256u << 20;

bool endsWith(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

} // namespace

StatusOr<std::unique_ptr<Checkpoint>>
Checkpoint::open(const std::vector<std::string> &paths) {
  std::unique_ptr<Checkpoint> c(new Checkpoint());
  if (paths.empty())
    return invalidArgument("no weights given");
  for (const std::string &path : paths) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
      const fs::path index = fs::path(path) / kIndexName;
      const fs::path single = fs::path(path) / kSingleName;
      if (fs::exists(index, ec))
        MM_RETURN_IF_ERROR(c->addIndex(index.string()));
      else if (fs::exists(single, ec))
        MM_RETURN_IF_ERROR(c->addFile(single.string(), ""));
      else
        return notFound(path + ": folder has neither " + kIndexName + " nor " +
                        kSingleName);
    } else if (endsWith(path, ".index.json")) {
      MM_RETURN_IF_ERROR(c->addIndex(path));
    } else {
      MM_RETURN_IF_ERROR(c->addFile(path, ""));
    }
  }
  return c;
}

Status Checkpoint::addFile(const std::string &path,
                           const std::string &listedBy) {
  auto file = SafetensorsFile::open(path);
  if (!file.isOk())
    return listedBy.empty()
               ? file.status()
               : Status(file.status().code(),
                        file.status().message() + " (" + listedBy + ")");
  std::unique_ptr<SafetensorsFile> f = std::move(file).value();
  for (const SafetensorsTensor &t : f->tensors()) {
    auto [it, inserted] = where_.emplace(t.name, f.get());
    if (!inserted)
      return invalidArgument(path + ": tensor '" + t.name + "' is also in " +
                             it->second->path());
  }
  files_.push_back(std::move(f));
  return Status::ok();
}

Status Checkpoint::addIndex(const std::string &indexPath) {
  std::error_code ec;
  const std::uintmax_t size = fs::file_size(indexPath, ec);
  if (ec)
    return notFound(indexPath + ": cannot open: " + ec.message());
  if (size > kMaxIndexBytes)
    return invalidArgument(indexPath + ": " + std::to_string(size) +
                           " bytes is too large for an index");
  std::ifstream in(indexPath, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in)
    return notFound(indexPath + ": cannot read");
  auto parsed = parseJson(text.str());
  if (!parsed.isOk())
    return parsed.status().withPrefix(indexPath + ": ");
  const JsonValue *map = parsed.value().get("weight_map");
  if (!map || map->kind != JsonValue::Kind::Object)
    return invalidArgument(indexPath + ": has no object 'weight_map'");

  // Shards in first-listed order, each with the first tensor it holds (for
  // messages about a missing shard).
  std::vector<std::pair<std::string, std::string>> shards;
  std::set<std::string> seen;
  for (const auto &[name, file] : map->object) {
    if (file.kind != JsonValue::Kind::String || file.string.empty() ||
        file.string.find('/') != std::string::npos || file.string == "..")
      return invalidArgument(indexPath + ": tensor '" + name +
                             "' maps to something that is not a file name in "
                             "the index's folder");
    if (seen.insert(file.string).second)
      shards.emplace_back(file.string, name);
  }
  const fs::path dir = fs::path(indexPath).parent_path();
  const size_t firstFile = files_.size();
  for (const auto &[shard, firstTensor] : shards)
    MM_RETURN_IF_ERROR(addFile((dir / shard).string(),
                               "a shard listed in " + indexPath +
                                   ", e.g. for tensor '" + firstTensor + "'"));

  // The index and the shards must agree tensor by tensor.
  std::map<std::string, const SafetensorsFile *> byShard;
  for (size_t i = firstFile; i < files_.size(); ++i)
    byShard[fs::path(files_[i]->path()).filename().string()] = files_[i].get();
  std::set<std::string> listed;
  for (const auto &[name, file] : map->object) {
    listed.insert(name);
    const SafetensorsFile *f = byShard.at(file.string);
    if (!f->find(name))
      return notFound(indexPath + ": tensor '" + name + "' is mapped to " +
                      f->path() + ", which does not hold it");
  }
  for (size_t i = firstFile; i < files_.size(); ++i)
    for (const SafetensorsTensor &t : files_[i]->tensors())
      if (!listed.count(t.name))
        return invalidArgument(files_[i]->path() + ": tensor '" + t.name +
                               "' is not in the weight_map of " + indexPath);
  return Status::ok();
}

std::vector<const SafetensorsFile *> Checkpoint::files() const {
  std::vector<const SafetensorsFile *> out;
  for (const auto &f : files_)
    out.push_back(f.get());
  return out;
}

std::pair<const SafetensorsFile *, const SafetensorsTensor *>
Checkpoint::find(const std::string &name) const {
  auto it = where_.find(name);
  if (it == where_.end())
    return {nullptr, nullptr};
  return {it->second, it->second->find(name)};
}

std::string Checkpoint::description() const {
  std::string s;
  for (const auto &f : files_)
    s += (s.empty() ? "" : ", ") + f->path();
  return s;
}

} // namespace mm
