//===- Nvrtc.cpp - NVRTC through dlopen -----------------------------------===//

#include "mm/Compiler/Nvrtc.h"

#include "llvm/Support/FormatVariadic.h"

#include <chrono>
#include <cstdlib>
#include <dlfcn.h>
#include <mutex>

namespace {

// The few NVRTC declarations used, so no toolkit header is needed to build.
using nvrtcResult = int;
using nvrtcProgram = void *;

struct NvrtcApi {
  const char *(*getErrorString)(nvrtcResult);
  nvrtcResult (*createProgram)(nvrtcProgram *, const char *, const char *, int,
                               const char *const *, const char *const *);
  nvrtcResult (*compileProgram)(nvrtcProgram, int, const char *const *);
  nvrtcResult (*getProgramLogSize)(nvrtcProgram, size_t *);
  nvrtcResult (*getProgramLog)(nvrtcProgram, char *);
  nvrtcResult (*getCUBINSize)(nvrtcProgram, size_t *);
  nvrtcResult (*getCUBIN)(nvrtcProgram, char *);
  nvrtcResult (*destroyProgram)(nvrtcProgram *);
  std::string error; // why loading failed, empty when loaded
};

const NvrtcApi &api() {
  static NvrtcApi a;
  static std::once_flag once;
  std::call_once(once, [] {
    std::vector<std::string> candidates;
    if (const char *env = std::getenv("MM_NVRTC"))
      candidates.push_back(env);
    candidates.insert(candidates.end(),
                      {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"});
    if (const char *home = std::getenv("CUDA_HOME"))
      candidates.push_back(std::string(home) + "/lib64/libnvrtc.so");
    candidates.push_back("/usr/local/cuda/lib64/libnvrtc.so");
    void *lib = nullptr;
    for (const std::string &c : candidates)
      if ((lib = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL)))
        break;
    if (!lib) {
      a.error = "NVRTC (libnvrtc.so from the CUDA toolkit) was not found; "
                "install the toolkit or set MM_NVRTC to the library's path";
      return;
    }
    bool ok = true;
    auto sym = [&](auto &fn, const char *name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(
          dlsym(lib, name));
      ok = ok && fn;
    };
    sym(a.getErrorString, "nvrtcGetErrorString");
    sym(a.createProgram, "nvrtcCreateProgram");
    sym(a.compileProgram, "nvrtcCompileProgram");
    sym(a.getProgramLogSize, "nvrtcGetProgramLogSize");
    sym(a.getProgramLog, "nvrtcGetProgramLog");
    sym(a.getCUBINSize, "nvrtcGetCUBINSize");
    sym(a.getCUBIN, "nvrtcGetCUBIN");
    sym(a.destroyProgram, "nvrtcDestroyProgram");
    if (!ok)
      a.error = "the NVRTC library found lacks nvrtcGetCUBIN (CUDA 11.1 or "
                "newer is needed)";
  });
  return a;
}

struct Header {
  const char *name;
  const char *text;
};
const Header kHeaders[] = {
#include "KernelSources.inc"
};

} // namespace

llvm::Expected<mm::CubinResult> mm::compileCudaToCubin(llvm::StringRef source,
                                                       llvm::StringRef arch) {
  const NvrtcApi &n = api();
  if (!n.error.empty())
    return llvm::createStringError(n.error);
  std::vector<const char *> names, texts;
  for (const Header &h : kHeaders) {
    names.push_back(h.name);
    texts.push_back(h.text);
  }
  nvrtcProgram prog = nullptr;
  std::string src = source.str();
  nvrtcResult r = n.createProgram(&prog, src.c_str(), "mm_program.cu",
                                  static_cast<int>(names.size()), texts.data(),
                                  names.data());
  if (r != 0)
    return llvm::createStringError(
        llvm::formatv("nvrtcCreateProgram failed: {0}", n.getErrorString(r))
            .str());
  std::string archOpt = "--gpu-architecture=" + arch.str();
  const char *opts[] = {archOpt.c_str(), "-std=c++17", "-default-device",
                        "--fmad=true"};
  auto t0 = std::chrono::steady_clock::now();
  r = n.compileProgram(prog, 4, opts);
  CubinResult out;
  out.compileMs = std::chrono::duration<double, std::milli>(
                      std::chrono::steady_clock::now() - t0)
                      .count();
  if (r != 0) {
    size_t size = 0;
    n.getProgramLogSize(prog, &size);
    std::string log(size, '\0');
    n.getProgramLog(prog, log.data());
    n.destroyProgram(&prog);
    return llvm::createStringError(
        llvm::formatv("NVRTC failed to compile the program for {0}: {1}\n{2}",
                      arch, n.getErrorString(r), log)
            .str());
  }
  size_t size = 0;
  n.getCUBINSize(prog, &size);
  out.cubin.resize(size);
  n.getCUBIN(prog, out.cubin.data());
  n.destroyProgram(&prog);
  if (size == 0)
    return llvm::createStringError("NVRTC produced an empty cubin for " +
                                   arch.str());
  return out;
}
