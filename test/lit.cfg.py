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
