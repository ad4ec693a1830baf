# -*- Python -*-
# lit configuration of the mm test suite (FileCheck tests of the dialects, passes and tools).
import os

import lit.formats

config.name = "mm"
config.test_format = lit.formats.ShTest(not config.is_windows if hasattr(config, "is_windows") else True)
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.mm_obj_root, "test")
config.excludes = ["lit.cfg.py", "lit.site.cfg.py.in", "CMakeLists.txt", "unit", "e2e", "runtime", "golden", "gpu"]

config.environment["FILECHECK_OPTS"] = "--enable-var-scope"
config.environment["PATH"] = os.pathsep.join(
    [config.mm_tools_dir, config.llvm_tools_dir, config.environment.get("PATH", os.environ.get("PATH", ""))])
config.substitutions.append(("%mm_src", config.mm_src_root))
config.substitutions.append(("%python", config.python_executable))

# `REQUIRES: nvrtc`: tests that compile GPU code need NVRTC (the CUDA toolkit), as the compiler
# finds it (compiler/Nvrtc.cpp); without it they show as UNSUPPORTED.
import ctypes


def _nvrtc_loadable():
    names = [os.environ.get("MM_NVRTC", ""), "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so",
             os.path.join(os.environ.get("CUDA_HOME", "/nonexistent"), "lib64", "libnvrtc.so"),
             "/usr/local/cuda/lib64/libnvrtc.so"]
    for n in names:
        if not n:
            continue
        try:
            ctypes.CDLL(n)
            return True
        except OSError:
            pass
    return False


if _nvrtc_loadable():
    config.available_features.add("nvrtc")
for var in ("MM_NVRTC", "CUDA_HOME", "LD_LIBRARY_PATH"):
    if var in os.environ:
        config.environment[var] = os.environ[var]
