//===- Serialize.cpp - mmx program -> flatbuffers artifact ----------------===//

#include "mm/Compiler/Nvrtc.h"
#include "mm/Compiler/Passes.h"

#include "mm/schema/mm_artifact_generated.h"
#include "schema/ArtifactVersion.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#define DEBUG_TYPE "mm-serialize"

namespace mm {
#define GEN_PASS_DEF_SERIALIZEPASS
#include "mm/Compiler/Passes.h.inc"
} // namespace mm

using namespace mlir;
namespace fb = mm::artifact;

namespace {

fb::DType toDType(Type t) {
  if (t.isInteger(32))
    return fb::DType::I32;
  if (t.isBF16())
    return fb::DType::BF16;
  if (t.isF16())
    return fb::DType::F16;
  return fb::DType::F32; // the op verifiers admit nothing else
}

class ArtifactWriter {
public:
  LogicalResult write(mmx::ProgramOp program, StringRef path) {
    if (!program.getArenaBytes())
      return program.emitOpError()
             << "has no arena_bytes: run mm-plan-memory before mm-serialize";
    for (Operation &op : program.getBody().front())
      if (failed(visit(op)))
        return failure();

    flatbuffers::Offset<flatbuffers::Vector<uint8_t>> cubin;
    if (program.getTarget() != "cpu") {
      auto source = program->getAttrOfType<StringAttr>("cuda_source");
      if (!source)
        return program.emitOpError()
               << "targets '" << program.getTarget()
               << "' but has no cuda_source: run mm-codegen-cuda before "
                  "mm-serialize";
      auto result =
          mm::compileCudaToCubin(source.getValue(), program.getTarget());
      if (!result)
        return program.emitOpError() << "cannot build GPU code: "
                                     << llvm::toString(result.takeError());
      llvm::errs() << llvm::format(
          "mm-serialize: NVRTC compiled the %s kernels in %.0f ms (cubin %zu "
          "bytes)\n",
          program.getTarget().str().c_str(), result->compileMs,
          result->cubin.size());
      cubin = fbb.CreateVector(
          reinterpret_cast<const uint8_t *>(result->cubin.data()),
          result->cubin.size());
    }

    auto root = fb::CreateProgram(
        fbb, fb::kSchemaVersion, fbb.CreateString(program.getSymName().str()),
        fbb.CreateString(program.getTarget().str()), program.getMaxBatch(),
        program.getMaxSeq(), *program.getArenaBytes(),
        fbb.CreateVector(buffers), fbb.CreateVector(steps),
        fbb.CreateVector(inputs), fbb.CreateVector(outputs), cubin);
    fb::FinishProgramBuffer(fbb, root);

    std::error_code ec;
    llvm::raw_fd_ostream os(path, ec, llvm::sys::fs::OF_None);
    if (ec)
      return program.emitOpError()
             << "cannot write artifact '" << path << "': " << ec.message();
    os.write(reinterpret_cast<const char *>(fbb.GetBufferPointer()),
             fbb.GetSize());
    os.close();
    if (os.has_error())
      return program.emitOpError() << "failed writing artifact '" << path
                                   << "': " << os.error().message();
    return success();
  }

private:
  flatbuffers::Offset<fb::Buffer>
  buffer(fb::BufferKind kind, StringRef name, Type dtype, ArrayAttr shape,
         uint64_t offset, int32_t sliceAxis = -1, int64_t sliceOffset = 0) {
    std::vector<flatbuffers::Offset<fb::Dim>> dims;
    for (Attribute a : shape) {
      if (auto i = dyn_cast<IntegerAttr>(a))
        dims.push_back(fb::CreateDim(fbb, fb::DimKind::Const, i.getInt()));
      else
        dims.push_back(fb::CreateDim(fbb,
                                     cast<StringAttr>(a).getValue() == "B"
                                         ? fb::DimKind::Batch
                                         : fb::DimKind::Seq,
                                     0));
    }
    return fb::CreateBuffer(fbb, kind, fbb.CreateString(name.str()),
                            toDType(dtype), fbb.CreateVector(dims), offset,
                            sliceAxis, sliceOffset);
  }

  void addBuffer(Value v, flatbuffers::Offset<fb::Buffer> b) {
    index[v] = buffers.size();
    buffers.push_back(b);
  }

  LogicalResult visit(Operation &op) {
    if (auto in = dyn_cast<mmx::InputOp>(op)) {
      inputs.push_back(fb::CreateBinding(
          fbb, fbb.CreateString(in.getName().str()), buffers.size()));
      addBuffer(in, buffer(fb::BufferKind::Input, in.getName(), in.getDtype(),
                           in.getShape(), 0));
    } else if (auto w = dyn_cast<mmx::WeightOp>(op)) {
      addBuffer(
          w, buffer(fb::BufferKind::Weight, w.getName(), w.getDtype(),
                    w.getShape(), 0,
                    w.getSliceAxis() ? static_cast<int32_t>(*w.getSliceAxis())
                                     : -1,
                    static_cast<int64_t>(w.getSliceOffset().value_or(0))));
    } else if (auto st = dyn_cast<mmx::StateOp>(op)) {
      addBuffer(st, buffer(fb::BufferKind::State, st.getName(), st.getDtype(),
                           st.getShape(), 0));
    } else if (auto a = dyn_cast<mmx::AllocOp>(op)) {
      if (!a.getOffset())
        return a.emitOpError()
               << "has no offset: run mm-plan-memory before mm-serialize";
      // The debug name carries the producing op's location, so that run-time
      // messages (e.g. the NaN/Inf check) can name the tensor.
      std::string name = "t" + std::to_string(buffers.size());
      if (auto loc = dyn_cast<NameLoc>(a.getLoc()))
        name += ":" + loc.getName().str();
      addBuffer(a, buffer(fb::BufferKind::Activation, name, a.getDtype(),
                          a.getShape(), *a.getOffset()));
    } else if (auto l = dyn_cast<mmx::LaunchOp>(op)) {
      std::vector<uint32_t> ins, outs;
      for (Value v : l.getIns())
        ins.push_back(index.lookup(v));
      for (Value v : l.getOuts())
        outs.push_back(index.lookup(v));
      std::vector<flatbuffers::Offset<fb::Param>> params;
      for (NamedAttribute p : l.getParams()) {
        auto name = fbb.CreateString(p.getName().str());
        if (auto i = dyn_cast<IntegerAttr>(p.getValue()))
          params.push_back(fb::CreateParam(fbb, name, i.getInt(), 0.0));
        else if (auto f = dyn_cast<FloatAttr>(p.getValue()))
          params.push_back(fb::CreateParam(fbb, name, 0, f.getValueAsDouble()));
        else
          return l.emitOpError() << "expects integer or float params but '"
                                 << p.getName() << "' is " << p.getValue();
      }
      flatbuffers::Offset<flatbuffers::String> function;
      if (auto fn = l->getAttrOfType<StringAttr>("function"))
        function = fbb.CreateString(fn.getValue().str());
      steps.push_back(fb::CreateStep(
          fbb, fb::StepKind::Kernel, fbb.CreateString(l.getKernel().str()),
          fbb.CreateVector(ins), fbb.CreateVector(outs),
          fbb.CreateVectorOfSortedTables(&params), /*stream=*/0, function));
    } else if (auto o = dyn_cast<mmx::OutputOp>(op)) {
      outputs.push_back(fb::CreateBinding(fbb,
                                          fbb.CreateString(o.getName().str()),
                                          index.lookup(o.getBuffer())));
    } else {
      return op.emitOpError() << "cannot be serialized";
    }
    return success();
  }

  flatbuffers::FlatBufferBuilder fbb;
  llvm::DenseMap<Value, uint32_t> index;
  std::vector<flatbuffers::Offset<fb::Buffer>> buffers;
  std::vector<flatbuffers::Offset<fb::Step>> steps;
  std::vector<flatbuffers::Offset<fb::Binding>> inputs, outputs;
};

struct SerializePass : mm::impl::SerializePassBase<SerializePass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto programs = llvm::to_vector(module.getOps<mmx::ProgramOp>());
    if (programs.size() != 1) {
      module.emitError() << "mm-serialize expects exactly one mmx.program but "
                            "found "
                         << programs.size();
      return signalPassFailure();
    }
    if (artifact.empty()) {
      module.emitError()
          << "mm-serialize needs an output path: artifact=<file.mmb>";
      return signalPassFailure();
    }
    ArtifactWriter writer;
    if (failed(writer.write(programs.front(), artifact)))
      return signalPassFailure();
  }
};

} // namespace
