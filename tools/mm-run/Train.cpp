// mm-run train / mm-run grad: training on a token file with periodic atomic
// checkpoints, and one gradient evaluation (for parity tests). See
// docs/training.md for the data and checkpoint formats and the FLOP model.
#include "tools/mm-run/Train.h"

#include "runtime/TrainCheckpoint.h"
#include "runtime/Npy.h"
#include "runtime/Safetensors.h"
#include "runtime/Session.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace mmrun {
namespace {

using mm::Status;

template <typename T> T take(mm::StatusOr<T> v) {
  check(v.status());
  return std::move(v).value();
}

/// Command-line reader shared by both commands: "--flag value" or
/// "--flag=value", one positional artifact.
class Args {
public:
  Args(int argc, char **argv) {
    for (int i = 2; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg.rfind("--", 0) != 0 && arg != "-o") {
        if (!artifact.empty())
          die("unexpected argument '" + arg + "' (see --help)");
        artifact = arg;
        continue;
      }
      size_t eq = arg.find('=');
      if (eq != std::string::npos) {
        values.push_back({arg.substr(0, eq), arg.substr(eq + 1)});
      } else if (arg == "--resume" || arg == "--profile") {
        values.push_back({arg, "1"});
      } else {
        if (i + 1 >= argc)
          die("option " + arg + " needs a value");
        values.push_back({arg, argv[++i]});
      }
    }
    if (artifact.empty())
      die("no artifact given (see --help)");
  }

  /// Marks `flag` known; returns its last value or "".
  std::string get(const std::string &flag) {
    known.push_back(flag);
    std::string v;
    for (const auto &[k, val] : values)
      if (k == flag)
        v = val;
    return v;
  }
  std::vector<std::string> all(const std::string &flag) {
    known.push_back(flag);
    std::vector<std::string> v;
    for (const auto &[k, val] : values)
      if (k == flag)
        v.push_back(val);
    return v;
  }
  void checkUnknown() const {
    for (const auto &[k, v] : values)
      if (std::find(known.begin(), known.end(), k) == known.end())
        die("unknown option '" + k + "' (see --help)");
  }

  std::string artifact;

private:
  std::vector<std::pair<std::string, std::string>> values;
  std::vector<std::string> known;
};

long long toInt(const std::string &flag, const std::string &text,
                long long lo) {
  char *end = nullptr;
  errno = 0;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || v < lo)
    die(flag + " expects an integer >= " + std::to_string(lo) + ", got '" +
        text + "'");
  return v;
}

double toReal(const std::string &flag, const std::string &text) {
  char *end = nullptr;
  errno = 0;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno != 0 || !std::isfinite(v) || v < 0)
    die(flag + " expects a non-negative number, got '" + text + "'");
  return v;
}

/// A read-only mapping of the token file.
class TokenFile {
public:
  TokenFile(const std::string &path, const std::string &dtype) : path_(path) {
    if (dtype == "uint16")
      width_ = 2;
    else if (dtype == "uint32")
      width_ = 4;
    else
      die("--data-dtype must be uint16 or uint32, got '" + dtype + "'");
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0)
      die("cannot open data file '" + path + "': " + std::strerror(errno));
    struct stat st;
    if (::fstat(fd_, &st) != 0)
      die("cannot stat '" + path + "': " + std::strerror(errno));
    bytes_ = static_cast<size_t>(st.st_size);
    if (bytes_ % width_ != 0)
      die("data file '" + path + "' has " + std::to_string(bytes_) +
          " bytes, not a multiple of " + std::to_string(width_) + " (" + dtype +
          " tokens)");
    if (bytes_ > 0) {
      map_ = static_cast<const uint8_t *>(
          ::mmap(nullptr, bytes_, PROT_READ, MAP_PRIVATE, fd_, 0));
      if (map_ == MAP_FAILED)
        die("cannot map '" + path + "': " + std::strerror(errno));
    }
  }
  ~TokenFile() {
    if (map_ && map_ != MAP_FAILED)
      ::munmap(const_cast<uint8_t *>(map_), bytes_);
    if (fd_ >= 0)
      ::close(fd_);
  }
  uint64_t size() const { return bytes_ / width_; }
  uint32_t at(uint64_t i) const {
    if (width_ == 2)
      return uint32_t(map_[2 * i]) | uint32_t(map_[2 * i + 1]) << 8;
    return uint32_t(map_[4 * i]) | uint32_t(map_[4 * i + 1]) << 8 |
           uint32_t(map_[4 * i + 2]) << 16 | uint32_t(map_[4 * i + 3]) << 24;
  }
  const std::string &path() const { return path_; }

private:
  std::string path_;
  size_t width_ = 2, bytes_ = 0;
  int fd_ = -1;
  const uint8_t *map_ = nullptr;
};

/// Forward FLOPs per token of the plan's model at sequence length `seq`
/// (docs/training.md): 2 per multiply-add of every forward matrix product, with
/// MoE experts counted top_k of E and causal attention at its average context.
double forwardFlopsPerToken(const mm::Plan &plan, int64_t seq) {
  auto dim = [&](uint32_t buffer, size_t d) {
    return static_cast<double>(plan.buffers[buffer].shape[d].value);
  };
  double f = 0;
  for (const mm::StepDesc &s : plan.steps) {
    const mm::KernelParams &p = s.params;
    switch (s.kernel) {
    case mm::Kernel::Linear:
    case mm::Kernel::Logits:
    case mm::Kernel::LmHeadLoss:
      f += 2 * dim(s.inputs[1], 0) * dim(s.inputs[1], 1);
      break;
    case mm::Kernel::Moe: {
      const double e = dim(s.inputs[1], 0), h = dim(s.inputs[1], 1),
                   inter = dim(s.inputs[2], 1);
      f += 2 * e * h + 2 * double(p.topK) * 3 * inter * h;
      break;
    }
    case mm::Kernel::LightningAttention: {
      const double heads = double(p.numHeads), d = double(p.headDim);
      const double block = double(std::min(p.blockSize, seq));
      f += heads * (2 * d * block + 4 * d * d);
      break;
    }
    case mm::Kernel::SoftmaxAttention:
      f += double(p.numHeads) * 2 * double(seq) * double(p.headDim);
      break;
    default:
      break;
    }
  }
  return f;
}

mm::Backend parseBackend(const std::string &name) {
  if (name.empty() || name == "cpu")
    return mm::Backend::Cpu;
  if (name == "cuda")
    return mm::Backend::Cuda;
  die("unknown backend '" + name + "' (expected cpu or cuda)");
}

struct Weights {
  std::vector<std::unique_ptr<mm::SafetensorsFile>> files;
  std::vector<const mm::SafetensorsFile *> ptrs;
  void open(const std::string &path) {
    files.push_back(take(mm::SafetensorsFile::open(path)));
    ptrs.push_back(files.back().get());
  }
};

} // namespace

int gradCommand(int argc, char **argv) {
  Args args(argc, argv);
  std::vector<std::string> weightPaths = args.all("--weights");
  std::string idsPath = args.get("--input-ids"),
              labelsPath = args.get("--labels"), outPath = args.get("-o");
  const mm::Backend backend = parseBackend(args.get("--backend"));
  args.checkUnknown();
  if (weightPaths.empty() || idsPath.empty() || labelsPath.empty() ||
      outPath.empty())
    die("mm-run grad needs --weights, --input-ids, --labels and -o");
  mm::Plan plan = take(mm::loadArtifact(args.artifact));
  if (plan.findInput("labels") < 0 || plan.findOutput("loss") < 0)
    die(args.artifact + ": not a training artifact (compile with "
                        "--mm-compile=mode=train optimizer=none)");
  Weights w;
  for (const std::string &p : weightPaths)
    w.open(p);
  mm::NpyArray ids = take(mm::readNpy(idsPath));
  mm::NpyArray labels = take(mm::readNpy(labelsPath));
  mm::SessionOptions options;
  options.checkFinite = true;
  options.backend = backend;
  auto session = take(mm::Session::create(std::move(plan), w.ptrs, options));
  std::vector<mm::NamedInput> inputs = {
      {"input_ids", ids.dtype, ids.shape, ids.data.data()},
      {"labels", labels.dtype, labels.shape, labels.data.data()}};
  check(session->run(inputs));
  std::vector<mm::TensorToWrite> tensors;
  for (const mm::Binding &b : session->plan().outputs) {
    mm::OutputView v = take(session->output(b.name));
    tensors.push_back({b.name, v.shape, v.data});
    if (v.shape.empty())
      std::printf("%s: %.9g\n", b.name.c_str(), double(v.data[0]));
  }
  check(mm::writeSafetensorsAtomic(outPath, tensors, {}));
  return 0;
}

int trainCommand(int argc, char **argv) {
  Args args(argc, argv);
  const std::string dataPath = args.get("--data");
  std::string dataDtype = args.get("--data-dtype");
  const std::string stepsText = args.get("--steps"),
                    batchText = args.get("--batch"),
                    seqText = args.get("--seq"), lrText = args.get("--lr"),
                    warmupText = args.get("--warmup"),
                    ckptDir = args.get("--checkpoint"),
                    saveEveryText = args.get("--save-every"),
                    peakText = args.get("--peak-tflops");
  const bool resume = !args.get("--resume").empty();
  const bool profile = !args.get("--profile").empty();
  const mm::Backend backend = parseBackend(args.get("--backend"));
  const std::vector<std::string> weightPaths = args.all("--weights");
  args.checkUnknown();
  if (dataPath.empty() || stepsText.empty() || batchText.empty() ||
      seqText.empty() || lrText.empty() || ckptDir.empty())
    die("mm-run train needs --data, --steps, --batch, --seq, --lr and "
        "--checkpoint (see --help)");
  if (dataDtype.empty())
    dataDtype = "uint16";
  const long long steps = toInt("--steps", stepsText, 1);
  const int64_t batch = toInt("--batch", batchText, 1);
  const int64_t seq = toInt("--seq", seqText, 1);
  const double lr = toReal("--lr", lrText);
  const long long warmup =
      warmupText.empty() ? 0 : toInt("--warmup", warmupText, 0);
  const long long saveEvery =
      saveEveryText.empty() ? 0 : toInt("--save-every", saveEveryText, 0);
  // cpu: one core of fp32 FMA at ~3 GHz (2 x 8-wide FMA units), the CPU
  // backend being single-threaded; cuda: the H200's measured bf16 dense
  // matrix-product peak (cuBLAS 8192³, ../shared/TARGETS.md).
  const double defaultPeak = backend == mm::Backend::Cuda ? 756 : 0.1;
  const double peakFlops =
      (peakText.empty() ? defaultPeak : toReal("--peak-tflops", peakText)) *
      1e12;

  mm::Plan plan = take(mm::loadArtifact(args.artifact));
  for (const char *name : {"input_ids", "labels", "lr", "step"})
    if (plan.findInput(name) < 0)
      die(args.artifact + ": not a training artifact (no input '" + name +
          "'; compile with --mm-compile=mode=train)");
  if (plan.findOutput("loss") < 0 || plan.findOutput("grad_norm") < 0)
    die(args.artifact + ": a training artifact needs outputs 'loss' and "
                        "'grad_norm'");
  if (batch > plan.maxBatch || seq > plan.maxSeq)
    die("--batch " + std::to_string(batch) + " / --seq " + std::to_string(seq) +
        " exceed the artifact's max_batch " + std::to_string(plan.maxBatch) +
        " / max_seq " + std::to_string(plan.maxSeq));

  TokenFile data(dataPath, dataDtype);
  if (data.size() < static_cast<uint64_t>(seq) + 1)
    die("data file '" + dataPath + "' has " + std::to_string(data.size()) +
        " tokens; --seq " + std::to_string(seq) + " needs at least " +
        std::to_string(seq + 1));
  const uint64_t windows = (data.size() - 1) / static_cast<uint64_t>(seq);

  if (::mkdir(ckptDir.c_str(), 0755) != 0 && errno != EEXIST)
    die("cannot create checkpoint directory '" + ckptDir +
        "': " + std::strerror(errno));
  const std::string ckptPath = ckptDir + "/checkpoint.safetensors";

  Weights w;
  long long startStep = 1;
  if (resume) {
    if (!weightPaths.empty())
      die("--resume takes the weights from the checkpoint; drop --weights");
    w.open(ckptPath);
    auto it = w.files[0]->metadata().find("step");
    if (it == w.files[0]->metadata().end())
      die(ckptPath + ": no 'step' in the checkpoint metadata");
    startStep = toInt("checkpoint step", it->second, 0) + 1;
  } else {
    if (weightPaths.empty())
      die("mm-run train needs --weights (initial weights) or --resume");
    for (const std::string &p : weightPaths)
      w.open(p);
  }
  const double fwdFlops = forwardFlopsPerToken(plan, seq);
  mm::SessionOptions options;
  options.checkFinite = true;
  options.backend = backend;
  auto session = take(mm::Session::create(std::move(plan), w.ptrs, options));
  if (profile && backend != mm::Backend::Cuda)
    die("--profile times CUDA steps; use --backend cuda");
  std::vector<std::vector<float>> perStep(session->plan().steps.size());
  int profiled = 0;
  if (resume)
    check(mm::restoreStates(*session, *w.files[0]));
  w.files.clear(); // the session holds its own copy of everything
  w.ptrs.clear();

  std::printf("train: %s on %s, data %s (%llu tokens, %llu windows of %lld), "
              "B=%lld T=%lld, steps %lld..%lld, %.3g GFLOP per token "
              "(fwd+bwd)\n",
              args.artifact.c_str(), session->deviceName().c_str(),
              dataPath.c_str(), static_cast<unsigned long long>(data.size()),
              static_cast<unsigned long long>(windows),
              static_cast<long long>(seq), static_cast<long long>(batch),
              static_cast<long long>(seq), startStep, steps,
              3 * fwdFlops / 1e9);
  std::fflush(stdout);

  std::vector<int32_t> ids(static_cast<size_t>(batch * seq)),
      labels(ids.size());
  auto save = [&](long long step) {
    check(mm::saveCheckpoint(*session, ckptPath,
                             {{"format", "mm-train-checkpoint-1"},
                              {"step", std::to_string(step)},
                              {"data", dataPath},
                              {"batch", std::to_string(batch)},
                              {"seq", std::to_string(seq)}}));
    std::printf("checkpoint: step %lld -> %s\n", step, ckptPath.c_str());
    std::fflush(stdout);
  };
  for (long long step = startStep; step <= steps; ++step) {
    // Window (step-1)*B + b of the file, in order, wrapping around: the batch
    // is a function of the step alone, so a resumed run sees the same data.
    for (int64_t b = 0; b < batch; ++b) {
      const uint64_t win =
          (static_cast<uint64_t>(step - 1) * batch + b) % windows;
      const uint64_t off = win * static_cast<uint64_t>(seq);
      for (int64_t t = 0; t < seq; ++t) {
        ids[b * seq + t] = static_cast<int32_t>(data.at(off + t));
        labels[b * seq + t] = static_cast<int32_t>(data.at(off + t + 1));
      }
    }
    const float stepLr = static_cast<float>(
        warmup > 0 && step <= warmup ? lr * double(step) / double(warmup) : lr);
    const float stepIndex = static_cast<float>(step);
    // --profile: every step after the first two (warm-up) is timed per step.
    const bool timed = profile && step >= startStep + 2;
    if (timed)
      check(session->setProfiling(true));
    auto t0 = std::chrono::steady_clock::now();
    Status st = session->run(
        {{"input_ids", mm::NpyDType::I32, {batch, seq}, ids.data()},
         {"labels", mm::NpyDType::I32, {batch, seq}, labels.data()},
         {"lr", mm::NpyDType::F32, {}, &stepLr},
         {"step", mm::NpyDType::F32, {}, &stepIndex}});
    if (!st.isOk())
      die("step " + std::to_string(step) + ": " + st.message());
    const double sec =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
            .count();
    if (timed) {
      std::vector<float> t = session->stepTimes();
      for (size_t i = 0; i < t.size() && i < perStep.size(); ++i)
        perStep[i].push_back(t[i]);
      ++profiled;
    }
    const float loss = take(session->output("loss")).data[0];
    const float norm = take(session->output("grad_norm")).data[0];
    const double tokens = double(batch * seq);
    const double flops = 3 * fwdFlops * tokens / sec;
    std::printf("step %lld loss %.9g grad_norm %.6g lr %.6g tok/s %.1f mfu "
                "%.3f%%\n",
                step, double(loss), double(norm), double(stepLr), tokens / sec,
                100.0 * flops / peakFlops);
    std::fflush(stdout);
    if ((saveEvery > 0 && step % saveEvery == 0) || step == steps)
      save(step);
  }
  if (profiled > 0)
    printProfile(session->plan(), perStep, profiled);
  return 0;
}

} // namespace mmrun
