//===- mm-import.cpp - Hugging Face MiniMax folder -> mm dialect ----------===//
//
// Reads config.json (from a model folder or given directly) and writes the
// whole model as an mm-dialect module whose mm.param names are the checkpoint
// tensor names; mm-run binds them from the safetensors at load time.
//
// When the folder holds weights (model.safetensors.index.json with its shards,
// or model.safetensors), or --weights names them, their safetensors headers
// (not the data) decide how each layer's experts are named (per expert or
// fused, `mlp` or `block_sparse_moe`) and are checked against the config:
// every tensor present, with the right shape and a float dtype, and nothing
// the model does not use.
//
//===----------------------------------------------------------------------===//

#include "mm/Compiler/Import.h"
#include "mm/Compiler/Registration.h"
#include "runtime/Checkpoint.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

using namespace llvm;

static cl::opt<std::string>
    inputPath(cl::Positional, cl::Required,
              cl::desc("<model folder or config.json>"));
static cl::opt<std::string> outputPath("o", cl::desc("Output .mlir file"),
                                       cl::value_desc("file"), cl::init("-"));

static cl::list<std::string>
    weightPaths("weights",
                cl::desc("Checkpoint to check the config against and take "
                         "tensor names from: a folder, an index .json or a "
                         ".safetensors file (default: the model folder's)"),
                cl::value_desc("path"));

static int fail(const Twine &message) {
  errs() << "mm-import: error: " << message << "\n";
  return 1;
}

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  cl::ParseCommandLineOptions(
      argc, argv,
      "mm-import: Hugging Face MiniMax model folder -> mm dialect\n\n"
      "  mm-import models/tiny -o tiny.mlir\n");

  std::string configPath = inputPath;
  if (sys::fs::is_directory(configPath)) {
    SmallString<256> p(configPath);
    sys::path::append(p, "config.json");
    configPath = std::string(p);
  }
  auto buffer = MemoryBuffer::getFile(configPath);
  if (!buffer)
    return fail("cannot read '" + configPath +
                "': " + buffer.getError().message());
  auto json = json::parse((*buffer)->getBuffer());
  if (!json)
    return fail("'" + configPath +
                "' is not valid JSON: " + toString(json.takeError()));
  const json::Object *object = json->getAsObject();
  if (!object)
    return fail("'" + configPath + "' must hold a JSON object");

  mm::ModelConfig config;
  std::string error;
  if (!mm::parseModelConfig(*object, config, error))
    return fail(configPath + ": " + error);

  std::vector<std::string> weights(weightPaths.begin(), weightPaths.end());
  if (weights.empty() && sys::fs::is_directory(inputPath)) {
    for (const char *name :
         {"model.safetensors.index.json", "model.safetensors"}) {
      SmallString<256> p(inputPath);
      sys::path::append(p, name);
      if (sys::fs::exists(p)) {
        weights.push_back(std::string(inputPath));
        break;
      }
    }
  }
  mm::CheckpointHeaders headers;
  if (!weights.empty()) {
    auto checkpoint = mm::Checkpoint::open(weights);
    if (!checkpoint.isOk())
      return fail(checkpoint.status().message());
    headers.description = checkpoint.value()->description();
    for (const auto &[name, file] : checkpoint.value()->tensors()) {
      const mm::SafetensorsTensor *t = file->find(name);
      headers.tensors[name] = {t->shape, t->dtype, file->path()};
    }
    if (!mm::detectMoENaming(headers, config, error))
      return fail(error);
  }

  mlir::DialectRegistry registry;
  mm::registerAllMM(registry);
  mlir::MLIRContext ctx(registry);
  mm::TensorShapes expected;
  auto module = mm::buildModel(&ctx, config, &expected);
  if (failed(mlir::verify(*module)))
    return fail("the generated module does not verify (a bug in mm-import)");
  if (!weights.empty() &&
      !mm::checkCheckpoint(config, expected, headers, error))
    return fail(error);

  std::error_code ec;
  ToolOutputFile out(outputPath, ec, sys::fs::OF_Text);
  if (ec)
    return fail("cannot write '" + outputPath + "': " + ec.message());
  module->print(out.os());
  out.keep();
  return 0;
}
