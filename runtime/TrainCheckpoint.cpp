// Training checkpoints; see TrainCheckpoint.h.
#include "runtime/TrainCheckpoint.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace mm {
namespace {

std::string jsonEscape(const std::string &s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

Status writeAll(int fd, const void *data, size_t n, const std::string &path) {
  const uint8_t *p = static_cast<const uint8_t *>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return internalError("cannot write '" + path +
                           "': " + std::strerror(errno));
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::ok();
}

std::string dirOf(const std::string &path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos)
    return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string replaceAll(std::string s, const std::string &from,
                       const std::string &to) {
  for (size_t p = s.find(from); p != std::string::npos;
       p = s.find(from, p + to.size()))
    s.replace(p, from.size(), to);
  return s;
}

} // namespace

Status
writeSafetensorsAtomic(const std::string &path,
                       const std::vector<TensorToWrite> &tensors,
                       const std::map<std::string, std::string> &metadata) {
  std::string header = "{\"__metadata__\":{";
  bool first = true;
  for (const auto &[k, v] : metadata) {
    header +=
        (first ? "\"" : ",\"") + jsonEscape(k) + "\":\"" + jsonEscape(v) + "\"";
    first = false;
  }
  header += "}";
  uint64_t offset = 0;
  for (const TensorToWrite &t : tensors) {
    uint64_t n = 1;
    std::string shape;
    for (size_t i = 0; i < t.shape.size(); ++i) {
      n *= static_cast<uint64_t>(t.shape[i]);
      shape += (i ? "," : "") + std::to_string(t.shape[i]);
    }
    header += ",\"" + jsonEscape(t.name) + "\":{\"dtype\":\"F32\",\"shape\":[" +
              shape + "],\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(offset + 4 * n) + "]}";
    offset += 4 * n;
  }
  header += "}";
  while (header.size() % 8 != 0)
    header += ' ';

  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return internalError("cannot create '" + tmp +
                         "': " + std::strerror(errno));
  uint64_t len = header.size();
  uint8_t lenBytes[8];
  for (int i = 0; i < 8; ++i)
    lenBytes[i] = static_cast<uint8_t>(len >> (8 * i));
  Status st = writeAll(fd, lenBytes, 8, tmp);
  if (st.isOk())
    st = writeAll(fd, header.data(), header.size(), tmp);
  for (const TensorToWrite &t : tensors) {
    if (!st.isOk())
      break;
    uint64_t n = 1;
    for (int64_t d : t.shape)
      n *= static_cast<uint64_t>(d);
    st = writeAll(fd, t.data, 4 * n, tmp); // little-endian hosts only
  }
  if (st.isOk() && ::fsync(fd) != 0)
    st = internalError("cannot fsync '" + tmp + "': " + std::strerror(errno));
  if (::close(fd) != 0 && st.isOk())
    st = internalError("cannot close '" + tmp + "': " + std::strerror(errno));
  if (!st.isOk()) {
    ::unlink(tmp.c_str());
    return st;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return internalError("cannot rename '" + tmp + "' to '" + path +
                         "': " + std::strerror(errno));
  const std::string dir = dirOf(path);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Status::ok();
}

std::vector<TensorToWrite> checkpointTensors(Session &session) {
  std::vector<TensorToWrite> out;
  for (const PersistentTensor &t : session.persistentTensors()) {
    const bool stacked =
        t.kind == BufferKind::Weight && t.name.find("{e}") != std::string::npos;
    if (!stacked) {
      out.push_back({t.name, t.shape, t.data});
      continue;
    }
    std::vector<int64_t> slice(t.shape.begin() + 1, t.shape.end());
    uint64_t per = 1;
    for (int64_t d : slice)
      per *= static_cast<uint64_t>(d);
    for (int64_t e = 0; e < t.shape[0]; ++e)
      out.push_back({replaceAll(t.name, "{e}", std::to_string(e)), slice,
                     t.data + e * per});
  }
  return out;
}

Status saveCheckpoint(Session &session, const std::string &path,
                      const std::map<std::string, std::string> &metadata) {
  MM_RETURN_IF_ERROR(session.pullPersistent());
  return writeSafetensorsAtomic(path, checkpointTensors(session), metadata);
}

Status restoreStates(Session &session, const SafetensorsFile &file) {
  for (const PersistentTensor &t : session.persistentTensors()) {
    if (t.kind != BufferKind::State)
      continue;
    const SafetensorsTensor *src = file.find(t.name);
    if (!src)
      return notFound("checkpoint '" + file.path() + "' has no state '" +
                      t.name + "'");
    if (src->shape != t.shape)
      return invalidArgument("checkpoint '" + file.path() + "': state '" +
                             t.name + "' has the wrong shape");
    MM_RETURN_IF_ERROR(file.readAsF32(*src, t.data));
  }
  return session.pushPersistent();
}

} // namespace mm
