// mm-run: executes an mm artifact (.mmb) with weights from safetensors files,
// or prints a summary of one (`mm-run inspect`). Every error is one line
// "mm-run: error: ..." and exit 1.
#include "runtime/Artifact.h"
#include "runtime/Checkpoint.h"
#include "runtime/Npy.h"
#include "runtime/Safetensors.h"
#include "runtime/Session.h"
#include "runtime/TrainSchedule.h"
#include "tools/mm-run/Train.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

namespace {

using mm::Status;

const char *kUsage =
    R"(usage: mm-run MODEL.mmb --weights PATH --input-ids IDS.npy [options]
       mm-run inspect MODEL.mmb
       mm-run train TRAIN.mmb --data TOKENS.bin --steps N --batch B --seq T --lr X
                    --checkpoint DIR [--weights INIT.safetensors | --resume] [options]
       mm-run grad GRAD.mmb --weights FILE --input-ids IDS.npy --labels LABELS.npy -o OUT.safetensors
       mm-run --help

Runs the compiled plan MODEL.mmb on the token ids IDS.npy (int32 or int64, shape [B, T] with
B <= max_batch and T <= max_seq of the artifact), with weights bound by name from the
checkpoint's safetensors file(s).

options:
  --weights PATH          a Hugging Face model folder (model.safetensors.index.json with its
                          shards, or model.safetensors), an index .json, or a .safetensors
                          file; repeat to combine files (searched in order)
  --input-ids FILE        .npy token ids for the input "input_ids"
  --input NAME=FILE       .npy for another input of the artifact (e.g. labels=labels.npy)
  --dump-logits OUT.npy   write the output "logits" (f32, [B, T, V], or [B, 1, V] for an artifact
                          compiled with logits=last) of the prompt's forward pass
  --generate N            greedy decoding of N tokens: runs the whole forward pass over the
                          growing sequence for each new token (no KV cache yet, so each token
                          costs a full prefill) and prints "generated[b]: ids" per batch row;
                          T + N must not exceed max_seq
  --repeat N              run the prompt's forward pass N more times and print the median
                          time of those on stderr (steady state: no first-call setup; each
                          pass is timed from input upload to outputs back on the host, the
                          device synchronised; the weight upload is part of load, not of it)
  --profile               (cuda) after the passes above, run 3 more with a CUDA event pair
                          around every step and print the median time per step summed by
                          kernel kind (a cuda run always ends with a line on device memory:
                          the plan's parts against what the device reports used)
  --backend cpu|cuda      execution backend (default cpu). cuda runs the artifact's cubin on
                          GPU 0 (the artifact must be compiled for a GPU target such as
                          sm_90a; such an artifact also runs on cpu)
  --help                  this text

`mm-run inspect MODEL.mmb` verifies the artifact and prints its version, target, limits, arena
size, buffers, bindings and one line per step: "kernel in=[...] out=[...] params [function=entry]";
for a GPU target, then "cuda: ..." lines on how the CUDA backend fuses training steps and groups
optimizer steps into multi-tensor launches.

`mm-run train` trains with an artifact compiled by `--mm-compile="mode=train ..."` (docs/training.md):
  --data FILE             header-less little-endian token ids (the whole file is the corpus)
  --data-dtype uint16|uint32   token width (default uint16)
  --steps N               train up to step N (steps are 1-based)
  --batch B, --seq T      B windows of T+1 tokens per step: window w starts at token w*T and
                          step s reads windows (s-1)*B .. s*B-1, wrapping around the file
  --lr X                  peak learning rate; --warmup W ramps it linearly over steps 1..W
  --checkpoint DIR        DIR/checkpoint.safetensors: weights + optimizer states + step,
                          replaced atomically every --save-every K steps and at step N
  --weights FILE          initial weights (safetensors; repeatable), or
  --resume                continue from DIR/checkpoint.safetensors (bit-identical losses)
  --backend cpu|cuda      as above (cuda: weights, optimizer states and every step on GPU 0;
                          checkpoints copy them back)
  --peak-tflops P         peak used for MFU (default 0.1 on cpu: one core's fp32 FMA; 756 on
                          cuda: the H200's measured bf16 matrix-product peak)
  --profile               (cuda) time every step after the first two with CUDA events and
                          print the median per kernel kind at the end
  One line per step: "step S loss L grad_norm G lr X tok/s R mfu M%".
`mm-run grad` runs a gradient artifact (`mode=train optimizer=none`) once and writes every
output (loss, grad:<weight>) to OUT.safetensors (--backend cpu|cuda as above).

Timing is printed on stderr. Errors: one line "mm-run: error: <message>" and exit status 1.
)";

struct Fatal {
  std::string message;
};

[[noreturn]] void die(const std::string &message) { throw Fatal{message}; }

void printError(const std::string &message) {
  std::fflush(stdout);
  std::fprintf(stderr, "mm-run: error: %s\n", mm::oneLine(message).c_str());
}

void check(const Status &s) {
  if (!s.isOk())
    die(s.message());
}

template <typename T> T take(mm::StatusOr<T> v) {
  check(v.status());
  return std::move(v).value();
}

std::string bufferText(const mm::Plan &plan, uint32_t index) {
  const mm::BufferDesc &b = plan.buffers[index];
  std::string s = "%" + std::to_string(index);
  if (!b.name.empty())
    s += " " + b.name;
  s += std::string(":") + mm::dtypeName(b.dtype) + mm::formatShape(b.shape);
  if (b.sliceAxis >= 0)
    s += "@slice(axis=" + std::to_string(b.sliceAxis) +
         ", offset=" + std::to_string(b.sliceOffset) + ")";
  return s;
}

std::string listText(const mm::Plan &plan, const std::vector<uint32_t> &bufs) {
  std::string s = "[";
  for (size_t i = 0; i < bufs.size(); ++i)
    s += (i ? ", " : "") + bufferText(plan, bufs[i]);
  return s + "]";
}

int inspect(const std::string &path) {
  mm::Plan plan = take(mm::loadArtifact(path));
  size_t counts[4] = {0, 0, 0, 0};
  for (const mm::BufferDesc &b : plan.buffers)
    ++counts[static_cast<int>(b.kind)];
  std::printf("artifact: %s\n", path.c_str());
  std::printf("version: %u\n", plan.version);
  std::printf("model: %s\n", plan.model.c_str());
  std::printf("target: %s\n", plan.target.c_str());
  std::printf("max_batch: %lld\n", static_cast<long long>(plan.maxBatch));
  std::printf("max_seq: %lld\n", static_cast<long long>(plan.maxSeq));
  std::printf("arena_bytes: %llu\n",
              static_cast<unsigned long long>(plan.arenaBytes));
  std::printf("cubin_bytes: %llu\n",
              static_cast<unsigned long long>(plan.cubinBytes));
  std::printf("buffers: %zu (%zu activations, %zu weights, %zu inputs, %zu "
              "states)\n",
              plan.buffers.size(), counts[0], counts[1], counts[2], counts[3]);
  std::printf("steps: %zu\n", plan.steps.size());
  for (const mm::Binding &b : plan.inputs)
    std::printf("input %s = %s\n", b.name.c_str(),
                bufferText(plan, b.buffer).c_str());
  for (const mm::Binding &b : plan.outputs)
    std::printf("output %s = %s\n", b.name.c_str(),
                bufferText(plan, b.buffer).c_str());
  for (size_t i = 0; i < plan.steps.size(); ++i) {
    const mm::StepDesc &s = plan.steps[i];
    std::string params;
    for (const mm::RawParam &p : s.rawParams) {
      char buf[64];
      // A param is integer or real by the catalog; print whichever field is
      // set.
      if (p.f != 0 || p.i == 0)
        std::snprintf(buf, sizeof(buf), "%.9g", p.f);
      else
        std::snprintf(buf, sizeof(buf), "%lld", static_cast<long long>(p.i));
      params += " " + p.name + "=" + buf;
    }
    if (!s.function.empty())
      params += " function=" + s.function;
    std::printf("step %zu: %s in=%s out=%s%s\n", i, s.kernelName.c_str(),
                listText(plan, s.inputs).c_str(),
                listText(plan, s.outputs).c_str(), params.c_str());
  }
  // How the CUDA backend issues a training plan (fusions, multi-tensor
  // launches).
  if (plan.target != "cpu")
    std::fputs(
        mm::describeTrainSchedule(plan, mm::planTrainSchedule(plan)).c_str(),
        stdout);
  return 0;
}

double msSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now() - t0)
      .count();
}

long long parseCount(const std::string &flag, const std::string &text) {
  char *end = nullptr;
  errno = 0;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || v < 0)
    die(flag + " expects a non-negative integer, got '" + text + "'");
  return v;
}

int runModel(int argc, char **argv) {
  std::string artifact, idsPath, dumpPath, backend = "cpu";
  std::vector<std::string> weightPaths;
  std::vector<std::pair<std::string, std::string>> extraInputs;
  long long generate = -1, repeat = 0;
  bool profile = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool hasInlineValue = false;
    if (arg.rfind("--", 0) == 0) {
      size_t eq = arg.find('=');
      if (eq != std::string::npos) {
        value = arg.substr(eq + 1);
        arg = arg.substr(0, eq);
        hasInlineValue = true;
      }
    }
    auto next = [&]() -> std::string {
      if (hasInlineValue)
        return value;
      if (i + 1 >= argc)
        die("option " + arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--weights") {
      weightPaths.push_back(next());
    } else if (arg == "--input-ids") {
      idsPath = next();
    } else if (arg == "--input") {
      std::string v = next();
      size_t eq = v.find('=');
      if (eq == std::string::npos || eq == 0)
        die("--input expects NAME=FILE.npy, got '" + v + "'");
      extraInputs.emplace_back(v.substr(0, eq), v.substr(eq + 1));
    } else if (arg == "--dump-logits") {
      dumpPath = next();
    } else if (arg == "--repeat") {
      repeat = parseCount("--repeat", next());
    } else if (arg == "--profile") {
      profile = true;
    } else if (arg == "--generate") {
      generate = parseCount("--generate", next());
    } else if (arg == "--backend") {
      backend = next();
    } else if (arg.rfind("-", 0) == 0) {
      die("unknown option '" + arg + "' (see --help)");
    } else if (artifact.empty()) {
      artifact = arg;
    } else {
      die("unexpected argument '" + arg + "' (see --help)");
    }
  }
  if (backend != "cpu" && backend != "cuda")
    die("unknown backend '" + backend + "' (expected cpu or cuda)");
  if (artifact.empty())
    die("no artifact given (see --help)");
  if (weightPaths.empty())
    die("no --weights file given");
  if (idsPath.empty())
    die("no --input-ids file given");

  auto t0 = std::chrono::steady_clock::now();
  mm::Plan plan = take(mm::loadArtifact(artifact));
  std::unique_ptr<mm::Checkpoint> checkpoint =
      take(mm::Checkpoint::open(weightPaths));
  std::vector<const mm::SafetensorsFile *> filePtrs = checkpoint->files();
  mm::NpyArray ids = take(mm::readNpy(idsPath));
  if (ids.dtype == mm::NpyDType::F32)
    die(idsPath + ": token ids must be int32 or int64, not float32");
  if (ids.shape.size() != 2)
    die(idsPath + ": token ids must have shape [B, T], got rank " +
        std::to_string(ids.shape.size()));
  std::vector<mm::NpyArray> extras;
  for (const auto &[name, path] : extraInputs)
    extras.push_back(take(mm::readNpy(path)));

  const int64_t batch = ids.shape[0], promptLen = ids.shape[1];
  if (generate > 0 && promptLen + generate > plan.maxSeq)
    die("--generate " + std::to_string(generate) + " with a prompt of " +
        std::to_string(promptLen) + " tokens needs " +
        std::to_string(promptLen + generate) +
        " positions but the artifact's max_seq is " +
        std::to_string(plan.maxSeq));
  if ((generate >= 0 || !dumpPath.empty()) && plan.findOutput("logits") < 0)
    die(artifact + ": the artifact has no output named 'logits'");

  mm::SessionOptions options;
  options.backend = backend == "cuda" ? mm::Backend::Cuda : mm::Backend::Cpu;
  std::unique_ptr<mm::Session> session =
      take(mm::Session::create(std::move(plan), filePtrs, options));
  const double loadMs = msSince(t0);

  // Token ids as int32, [B, T] row-major, growing by one column per generated
  // token.
  std::vector<int32_t> tokens(static_cast<size_t>(batch * promptLen));
  for (uint64_t j = 0; j < ids.numElements(); ++j) {
    int64_t v = ids.intAt(j);
    if (v < INT32_MIN || v > INT32_MAX)
      die(idsPath + ": token id " + std::to_string(v) +
          " does not fit in int32");
    tokens[j] = static_cast<int32_t>(v);
  }

  auto forward = [&](int64_t seq) {
    std::vector<mm::NamedInput> inputs;
    inputs.push_back(
        {"input_ids", mm::NpyDType::I32, {batch, seq}, tokens.data()});
    for (size_t i = 0; i < extras.size(); ++i)
      inputs.push_back({extraInputs[i].first, extras[i].dtype, extras[i].shape,
                        extras[i].data.data()});
    check(session->run(inputs));
  };

  auto t1 = std::chrono::steady_clock::now();
  forward(promptLen);
  int passes = 1;
  if (!dumpPath.empty()) {
    mm::OutputView logits = take(session->output("logits"));
    check(mm::writeNpyF32(dumpPath, logits.shape, logits.data));
  }
  if (repeat > 0) {
    std::vector<double> ms;
    for (long long r = 0; r < repeat; ++r) {
      auto tr = std::chrono::steady_clock::now();
      forward(promptLen);
      ms.push_back(msSince(tr));
    }
    std::sort(ms.begin(), ms.end());
    std::fprintf(
        stderr,
        "mm-run: %lld repeated forward passes, median %.3f ms (min %.3f, "
        "max %.3f)\n",
        repeat, ms[ms.size() / 2], ms.front(), ms.back());
  }
  if (profile) {
    check(session->setProfiling(true));
    const mm::Plan &p = session->plan();
    std::vector<std::vector<float>> perStep(p.steps.size());
    for (int r = 0; r < 3; ++r) {
      forward(promptLen);
      std::vector<float> t = session->stepTimes();
      for (size_t i = 0; i < t.size() && i < perStep.size(); ++i)
        perStep[i].push_back(t[i]);
    }
    check(session->setProfiling(false));
    mmrun::printProfile(p, perStep, 3);
  }
  std::vector<std::vector<int32_t>> generated(static_cast<size_t>(batch));
  for (int64_t step = 0; step < generate; ++step) {
    if (step > 0) {
      forward(promptLen + step);
      ++passes;
    }
    mm::OutputView logits = take(session->output("logits"));
    // [B, T, V], or [B, 1, V] with logits=last: the last row is the next token.
    const int64_t seq = promptLen + step, rows = logits.shape[1],
                  vocab = logits.shape[2];
    std::vector<int32_t> next(static_cast<size_t>(batch * (seq + 1)));
    for (int64_t b = 0; b < batch; ++b) {
      const float *row = logits.data + (b * rows + rows - 1) * vocab;
      int64_t best = 0;
      for (int64_t v = 1; v < vocab; ++v)
        if (row[v] > row[best])
          best = v;
      generated[b].push_back(static_cast<int32_t>(best));
      std::copy(tokens.begin() + b * seq, tokens.begin() + (b + 1) * seq,
                next.begin() + b * (seq + 1));
      next[b * (seq + 1) + seq] = static_cast<int32_t>(best);
    }
    tokens.swap(next);
  }
  const double runMs = msSince(t1);

  for (int64_t b = 0; b < batch && generate >= 0; ++b) {
    std::printf("generated[%lld]:", static_cast<long long>(b));
    for (int32_t t : generated[b])
      std::printf(" %d", t);
    std::printf("\n");
  }
  // Scalar outputs (e.g. a loss) are small enough to print.
  for (const mm::Binding &b : session->plan().outputs) {
    mm::OutputView v = take(session->output(b.name));
    if (v.shape.empty())
      std::printf("%s: %.9g\n", b.name.c_str(), static_cast<double>(v.data[0]));
  }
  std::fflush(stdout);
  std::fprintf(stderr,
               "mm-run: backend %s (%s), B=%lld T=%lld, load %.2f ms, %d "
               "forward pass%s %.2f ms (%.2f ms each)\n",
               backend.c_str(), session->deviceName().c_str(),
               static_cast<long long>(batch), static_cast<long long>(promptLen),
               loadMs, passes, passes == 1 ? "" : "es", runMs, runMs / passes);
  if (session->backend() == mm::Backend::Cuda)
    std::fprintf(stderr, "mm-run: %s\n", session->memoryReport().c_str());
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  try {
    if (argc >= 2 && (std::strcmp(argv[1], "--help") == 0 ||
                      std::strcmp(argv[1], "-h") == 0)) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    for (int i = 1; i < argc; ++i)
      if (std::strcmp(argv[i], "--help") == 0) {
        std::fputs(kUsage, stdout);
        return 0;
      }
    if (argc >= 2 && std::strcmp(argv[1], "train") == 0)
      return mmrun::trainCommand(argc, argv);
    if (argc >= 2 && std::strcmp(argv[1], "grad") == 0)
      return mmrun::gradCommand(argc, argv);
    if (argc >= 2 && std::strcmp(argv[1], "inspect") == 0) {
      if (argc != 3)
        die("usage: mm-run inspect MODEL.mmb");
      return inspect(argv[2]);
    }
    if (argc < 2)
      die("no artifact given (see --help)");
    return runModel(argc, argv);
  } catch (const Fatal &f) {
    printError(f.message);
  } catch (const std::bad_alloc &) {
    printError("out of memory");
  } catch (const std::exception &e) {
    printError(e.what());
  }
  return 1;
}
