// Tests the mm-run command line end to end on the tiny model: run,
// --dump-logits, --generate, inspect, --help, and that every error is one
// "mm-run: error:" line on stderr with exit code 1.
#include "runtime/Npy.h"
#include "runtime/Safetensors.h"
#include "runtime/Session.h"

#include "TestSupport.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <sys/wait.h>

namespace mm {
namespace {

struct Result {
  int exitCode = -1;
  std::string out, err;
};

std::string slurp(const std::string &path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

Result runMmRun(const std::string &args) {
  const std::string &dir = test::tempDir();
  const std::string outPath = dir + "/mm_run_stdout.txt",
                    errPath = dir + "/mm_run_stderr.txt";
  std::string cmd =
      std::string(MM_RUN_PATH) + " " + args + " >" + outPath + " 2>" + errPath;
  int status = std::system(cmd.c_str());
  Result r;
  r.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(outPath);
  r.err = slurp(errPath);
  return r;
}

void expectOneLineError(const Result &r, const std::string &fragment) {
  EXPECT_EQ(r.exitCode, 1) << r.err;
  EXPECT_EQ(r.err.rfind("mm-run: error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(fragment), std::string::npos) << r.err;
}

class MmRun : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    dir_ = test::tempDir() + "/mm_run_tiny";
    ASSERT_EQ(std::system(("mkdir -p " + dir_).c_str()), 0);
    test::writeTinyModel(dir_);
  }
  std::string model() const { return dir_ + "/tiny.mmb"; }
  std::string weights() const { return dir_ + "/tiny.safetensors"; }
  std::string ids() const { return dir_ + "/ids.npy"; }
  std::string base() const {
    return model() + " --weights " + weights() + " --input-ids " + ids();
  }
  static std::string dir_;
};
std::string MmRun::dir_;

TEST_F(MmRun, DumpsLogitsMatchingTheSession) {
  const std::string out = dir_ + "/logits.npy";
  Result r = runMmRun(base() + " --dump-logits " + out);
  ASSERT_EQ(r.exitCode, 0) << r.err;
  EXPECT_NE(r.err.find(" ms"), std::string::npos)
      << "timing on stderr: " << r.err;
  auto logits = readNpy(out);
  ASSERT_TRUE(logits.isOk()) << logits.status().message();
  EXPECT_EQ(logits->shape, (std::vector<int64_t>{2, 5, 32}));

  // The same forward pass in-process gives the same bytes.
  auto plan = loadArtifact(model());
  ASSERT_TRUE(plan.isOk());
  auto w = SafetensorsFile::open(weights());
  ASSERT_TRUE(w.isOk());
  auto s = Session::create(std::move(plan).value(), {w.value().get()});
  ASSERT_TRUE(s.isOk());
  auto idArray = readNpy(ids());
  ASSERT_TRUE(idArray.isOk());
  ASSERT_TRUE(s.value()
                  ->run({{"input_ids", idArray->dtype, idArray->shape,
                          idArray->data.data()}})
                  .isOk());
  auto view = s.value()->output("logits");
  ASSERT_TRUE(view.isOk());
  ASSERT_EQ(logits->data.size(), view->numElements() * 4);
  EXPECT_EQ(std::memcmp(logits->data.data(), view->data, logits->data.size()),
            0);
}

TEST_F(MmRun, GeneratesGreedily) {
  Result r = runMmRun(base() + " --generate 4");
  ASSERT_EQ(r.exitCode, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  int rows = 0;
  while (std::getline(lines, line)) {
    ASSERT_EQ(line.rfind("generated[" + std::to_string(rows) + "]:", 0), 0u)
        << line;
    std::istringstream tokens(line.substr(line.find(':') + 1));
    int tok, count = 0;
    while (tokens >> tok) {
      EXPECT_GE(tok, 0);
      EXPECT_LT(tok, 32);
      ++count;
    }
    EXPECT_EQ(count, 4);
    ++rows;
  }
  EXPECT_EQ(rows, 2);
  // Deterministic.
  EXPECT_EQ(runMmRun(base() + " --generate 4").out, r.out);
  // The first generated token is the argmax of the prompt's last logits.
  const std::string out = dir_ + "/logits_gen.npy";
  ASSERT_EQ(runMmRun(base() + " --dump-logits " + out).exitCode, 0);
  auto logits = readNpy(out);
  ASSERT_TRUE(logits.isOk());
  const float *l = reinterpret_cast<const float *>(logits->data.data());
  int best = 0;
  for (int v = 1; v < 32; ++v)
    if (l[4 * 32 + v] > l[4 * 32 + best])
      best = v;
  EXPECT_EQ(r.out.rfind("generated[0]: " + std::to_string(best) + " ", 0), 0u)
      << r.out;
}

TEST_F(MmRun, Inspect) {
  Result r = runMmRun("inspect " + model());
  ASSERT_EQ(r.exitCode, 0) << r.err;
  for (const char *frag :
       {"version: 1", "target: cpu", "max_batch: 2", "max_seq: 12",
        "arena_bytes: ", "step 0: embedding in=[%0 input_ids:i32[B, T]",
        "lightning_attention in=", "block_size=4", "top_k=2", "theta=10000",
        "output logits = "})
    EXPECT_NE(r.out.find(frag), std::string::npos) << frag << "\n" << r.out;
}

TEST_F(MmRun, Help) {
  Result r = runMmRun("--help");
  EXPECT_EQ(r.exitCode, 0);
  EXPECT_NE(r.out.find("no KV cache"), std::string::npos);
  EXPECT_NE(r.out.find("inspect"), std::string::npos);
}

TEST_F(MmRun, ErrorsAreOneLine) {
  // No driver here, or (on a GPU machine) a cpu artifact without GPU code.
  expectOneLineError(runMmRun(base() + " --backend cuda"), "CUDA backend");
  expectOneLineError(runMmRun(base() + " --backend tpu"),
                     "unknown backend 'tpu'");
  expectOneLineError(runMmRun(base() + " --generate 8"),
                     "needs 13 positions but the artifact's max_seq is 12");
  expectOneLineError(runMmRun(base() + " --generate x"), "--generate expects");
  expectOneLineError(runMmRun(base() + " --frobnicate"),
                     "unknown option '--frobnicate'");
  expectOneLineError(runMmRun(model() + " --input-ids " + ids()),
                     "no --weights");
  expectOneLineError(runMmRun(model() + " --weights " + weights()),
                     "no --input-ids");
  expectOneLineError(runMmRun(""), "no artifact given");
  expectOneLineError(runMmRun("inspect"), "usage: mm-run inspect");
  expectOneLineError(runMmRun(base() + " --weights"),
                     "option --weights needs a value");
  // Files that are missing or not what they claim.
  expectOneLineError(runMmRun(dir_ + "/nope.mmb --weights " + weights() +
                              " --input-ids " + ids()),
                     "nope.mmb: cannot open");
  expectOneLineError(
      runMmRun(weights() + " --weights " + weights() + " --input-ids " + ids()),
      "not an mm artifact");
  expectOneLineError(
      runMmRun(model() + " --weights " + model() + " --input-ids " + ids()),
      "tiny.mmb: header length");
  expectOneLineError(runMmRun(model() + " --weights " + weights() +
                              " --input-ids " + weights()),
                     "not a .npy file");
  expectOneLineError(runMmRun("inspect " + ids()),
                     "ids.npy: not an mm artifact");
  // A token id outside the vocabulary.
  std::vector<uint8_t> bad = test::readFile(ids());
  bad[bad.size() - 8] = 99;
  test::writeFile(dir_ + "/bad_ids.npy", bad);
  expectOneLineError(runMmRun(model() + " --weights " + weights() +
                              " --input-ids " + dir_ + "/bad_ids.npy"),
                     "token id 99 at [1, 4] is outside [0, 32)");
  // A weight of the wrong shape.
  test::TinyModel m = test::buildTinyModel();
  for (auto &t : m.weights)
    if (t.name == "lm_head.weight")
      t.shape = {16, 32};
  test::writeFile(dir_ + "/bad.safetensors", test::safetensorsBytes(m.weights));
  expectOneLineError(
      runMmRun(model() + " --weights " + dir_ + "/bad.safetensors" +
               " --input-ids " + ids()),
      "weight 'lm_head.weight': expected [32, 16] but file has [16, 32]");
}

} // namespace
} // namespace mm
