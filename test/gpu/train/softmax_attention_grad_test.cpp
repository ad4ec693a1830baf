// GPU test of softmax_attention_grad (kernels/softmax_attention_grad.cuh)
// against the CPU reference (runtime/cpu/TrainKernels.h): random q, k, v, dout
// (bf16-rounded for bf16 so that the reference sees the GPU's inputs), the
// family's plan launched as the executor does, dq, dk, dv compared by relative
// L2 norm (f32 1e-4, bf16 2e-2). Shapes: ragged T, B = 1 and 2, GQA ratios 1,
// 2, 3, head dims 8..128 (SIMT and tensor-core forms).
//
//   softmax_attention_grad_test <cubin> [--bench]
//
// --bench times the bf16 preset shapes (median of 10, CUDA events) per phase
// and in all, and prints TFLOP/s counting the backward as 2.5× the causal
// forward's 2·T²·D·H.
#include "kernels/softmax_attention_grad.h"
#include "kernels/softmax_attention_tma.h"
#include "runtime/cpu/TrainKernels.h"
#include "test/gpu/train/TrainTest.h"

using namespace mm;
using namespace mm::test;

namespace {

struct Shape {
  bool bf16;
  int D;
  long long B, T, Hq, Hkv;
};

std::string prefixOf(const Shape &s) {
  return std::string("mm_softmax_attention_grad_") + (s.bf16 ? "bf16" : "f32") +
         "_d" + std::to_string(s.D);
}

std::string nameOf(const Shape &s) {
  char buf[128];
  std::snprintf(buf, sizeof(buf), "%s D=%d B=%lld T=%lld Hq=%lld Hkv=%lld",
                s.bf16 ? "bf16" : "f32", s.D, s.B, s.T, s.Hq, s.Hkv);
  return buf;
}

struct Run {
  k::SoftmaxAttentionGradArgs args{}; // first: ws's initializer fills it
  DevBuf q, k, v, dout, dq, dk, dv, ws;
  k::Launch plan[k::kMaxLaunches];
  int n = 0;
  Run(Gpu &gpu, const Shape &s)
      : q(s.B * s.T * s.Hq * s.D, s.bf16), k(s.B * s.T * s.Hkv * s.D, s.bf16),
        v(s.B * s.T * s.Hkv * s.D, s.bf16),
        dout(s.B * s.T * s.Hq * s.D, s.bf16),
        dq(s.B * s.T * s.Hq * s.D, s.bf16), dk(s.B * s.T * s.Hkv * s.D, s.bf16),
        dv(s.B * s.T * s.Hkv * s.D, s.bf16),
        ws((makeArgs(s),
            k::softmaxAttentionGradWorkspaceBytes(args, s.D, gpu.sms()) + 3) /
               4,
           false) {
    args.q = q.ptr;
    args.k = k.ptr;
    args.v = v.ptr;
    args.dout = dout.ptr;
    args.dq = dq.ptr;
    args.dk = dk.ptr;
    args.dv = dv.ptr;
    args.workspace = ws.ptr;
    n = k::softmaxAttentionGradPlan(args, s.D, gpu.sms(), plan);
  }
  int makeArgs(const Shape &s) {
    args.batch = s.B;
    args.seq = s.T;
    args.heads = s.Hq;
    args.kv_heads = s.Hkv;
    args.scale = 1.0 / std::sqrt(static_cast<double>(s.D));
    return 0;
  }
};

/// A launch of the plan replaced by another entry (tuning variants).
struct Override {
  int phase = -1;
  std::string entry; // full name minus the suffix
  k::Launch launch{};
};

void runPlan(Gpu &gpu, const Shape &s, const Run &r, const Override &ov) {
  for (int i = 0; i < r.n; ++i) {
    if (i == ov.phase)
      gpu.run(ov.entry, &ov.launch, 1, r.args);
    else
      gpu.run(prefixOf(s), r.plan + i, 1, r.args);
  }
}

/// Random q, k, v, dout (bf16-rounded for bf16) uploaded into a Run.
struct Inputs {
  std::vector<float> q, k, v, dout;
  Inputs(const Shape &s, uint64_t seed, Run &r) {
    std::mt19937_64 rng(seed);
    const size_t nq = s.B * s.T * s.Hq * s.D, nkv = s.B * s.T * s.Hkv * s.D;
    q = randomVec(rng, nq, 3.f, s.bf16);
    k = randomVec(rng, nkv, 1.f, s.bf16);
    v = randomVec(rng, nkv, 1.f, s.bf16);
    dout = randomVec(rng, nq, 1.f, s.bf16);
    r.q.upload(q);
    r.k.upload(k);
    r.v.upload(v);
    r.dout.upload(dout);
  }
};

/// Runs the plan twice (the second run sees the first's workspace, its
/// accumulators re-zeroed) and compares dq, dk, dv with the CPU reference.
void checkGrads(Gpu &gpu, Report &rep, const Shape &s, Run &r,
                const Inputs &in, const std::string &name,
                const Override &ov = Override()) {
  runPlan(gpu, s, r, ov);
  runPlan(gpu, s, r, ov);
  std::vector<float> dq(in.q.size()), dk(in.k.size()), dv(in.v.size());
  cpu::Scratch scratch;
  cpu::softmaxAttentionGrad(in.q.data(), in.k.data(), in.v.data(),
                            in.dout.data(), dq.data(), dk.data(), dv.data(),
                            s.B, s.T, s.Hq, s.Hkv, s.D, r.args.scale, scratch);
  const double tol = s.bf16 ? 2e-2 : 1e-4;
  rep.check(name + " dq", relErr(r.dq.download(), dq), tol);
  rep.check(name + " dk", relErr(r.dk.download(), dk), tol);
  rep.check(name + " dv", relErr(r.dv.download(), dv), tol);
}

void check(Gpu &gpu, Report &rep, const Shape &s, uint64_t seed,
           const Override &ov = Override()) {
  Run r(gpu, s);
  const Inputs in(s, seed, r);
  checkGrads(gpu, rep, s, r, in,
             nameOf(s) + (ov.phase >= 0 ? " [" + ov.entry + "]" : ""), ov);
}

void bench(Gpu &gpu, const Shape &s, Report *rep = nullptr,
           const std::vector<Override> &variants = {}) {
  Run r(gpu, s);
  const Inputs in(s, 7, r);
  const std::string prefix = prefixOf(s);
  const float all = gpu.time(prefix, r.plan, r.n, r.args);
  const double flops = 2.5 * 2.0 * double(s.T) * s.T * s.D * s.Hq * s.B;
  std::printf("bench %-50s %8.3f ms  %6.1f TFLOP/s (2.5x causal fwd)\n",
              nameOf(s).c_str(), all, flops / (all * 1e-3) / 1e12);
  for (int i = 0; i < r.n; ++i) {
    const float ms = gpu.time(prefix, r.plan + i, 1, r.args);
    std::printf("      phase %-8s grid (%u,%u,%u) x %u, smem %u: %8.3f ms\n",
                r.plan[i].suffix, r.plan[i].gx, r.plan[i].gy, r.plan[i].gz,
                r.plan[i].threads, r.plan[i].smem, ms);
  }
  for (Override ov : variants) {
    ov.launch.gy = ov.phase == 0 ? s.Hq : s.Hkv;
    ov.launch.gz = s.B;
    const unsigned rows = ov.launch.gx; // rows per block (set by the caller)
    ov.launch.gx = static_cast<unsigned>(r.args.tpad / rows);
    const float ms = gpu.time(ov.entry, &ov.launch, 1, r.args);
    std::printf("      variant %-28s grid (%u,%u,%u) x %u, smem %u: %8.3f ms\n",
                ov.entry.c_str(), ov.launch.gx, ov.launch.gy, ov.launch.gz,
                ov.launch.threads, ov.launch.smem, ms);
    if (rep) {
      // Correctness on a ragged GQA shape of the same head dim.
      Shape c{true, s.D, 2, 1000, 6, 2};
      Run cr(gpu, c);
      ov.launch.gy = ov.phase == 0 ? c.Hq : c.Hkv;
      ov.launch.gz = c.B;
      ov.launch.gx = static_cast<unsigned>(cr.args.tpad / rows);
      check(gpu, *rep, c, 99, ov);
    }
  }
}

/// The forward (test entry mm_sax_<t>_d<D>, tile BQ×BK as mm-tile picks)
/// keeps its row log-sum-exp and output; the backward's plan then runs
/// "_delta" on them instead of "_stats". Checks: the kept output equals the
/// output bit for bit, the kept lse matches the one "_stats" recomputes, and
/// the gradients match the CPU reference as in check().
void checkSaved(Gpu &gpu, Report &rep, const Shape &s, int BQ, int BK,
                uint64_t seed, int threads = 256) {
  const size_t nq = s.B * s.T * s.Hq * s.D;
  Run r(gpu, s);
  const Inputs in(s, seed, r);
  const long long tpad = k::sagPad(s.T);
  DevBuf out(nq, s.bf16), copy(nq, s.bf16), lse(s.B * s.Hq * tpad, false);
  k::SoftmaxAttentionArgs f{};
  f.q = r.q.ptr;
  f.k = r.k.ptr;
  f.v = r.v.ptr;
  f.out = out.ptr;
  f.batch = s.B;
  f.seq = s.T;
  f.heads = s.Hq;
  f.kv_heads = s.Hkv;
  f.scale = r.args.scale;
  f.lse = lse.ptr;
  f.out_copy = copy.ptr;
  f.lse_stride = tpad;
  if (k::attentionFa3Tile(s.D, BQ, BK, threads) &&
      k::softmaxAttentionTmaMaps(f, &cuTensorMapEncodeTiled) != CUDA_SUCCESS)
    rep.check(nameOf(s) + " cuTensorMapEncodeTiled", 1.0, 0.0);
  const long long smem =
      s.bf16 && s.D % 16 == 0
          ? k::attentionBf16SmemBytes(s.D, BK, BQ, threads)
          : 4 * k::attentionSmemFloats(s.D, BQ, BK);
  const k::Launch fwd = {"", static_cast<unsigned>((s.T + BQ - 1) / BQ),
                         static_cast<unsigned>(s.Hq),
                         static_cast<unsigned>(s.B),
                         static_cast<unsigned>(threads),
                         static_cast<unsigned>(smem)};
  const std::string fname = std::string("mm_sax_") +
                            (s.bf16 ? "bf16" : "f32") + "_d" +
                            std::to_string(s.D) + "_t" +
                            std::to_string(threads);
  gpu.run(fname, &fwd, 1, f);
  const std::string name =
      nameOf(s) + " [saved lse, O; forward " + fname + "]";
  rep.check(name + " O copy", relErr(copy.download(), out.download()), 0.0);
  // The lse "_stats" computes (workspace head), rows < T.
  runPlan(gpu, s, r, Override());
  const std::vector<float> ws = r.ws.download(), kept = lse.download();
  std::vector<float> a, b;
  for (long long bh = 0; bh < s.B * s.Hq; ++bh)
    for (long long t = 0; t < s.T; ++t) {
      a.push_back(kept[bh * tpad + t]);
      b.push_back(ws[bh * tpad + t]);
    }
  rep.check(name + " lse", relErr(a, b), s.bf16 ? 1e-3 : 1e-5);
  // The backward on the kept statistics.
  r.args.saved_lse = lse.ptr;
  r.args.saved_out = copy.ptr;
  r.n = k::softmaxAttentionGradPlan(r.args, s.D, gpu.sms(), r.plan);
  if (std::string(r.plan[0].suffix) != "_delta")
    rep.check(name + " plan runs _delta", 1.0, 0.0);
  checkGrads(gpu, rep, s, r, in, name);
}

/// The plan on kept forward statistics (as the executor runs it after a
/// forward step): "_delta" instead of "_stats".
void benchSaved(Gpu &gpu, const Shape &s) {
  Run r(gpu, s);
  const Inputs in(s, 7, r);
  runPlan(gpu, s, r, Override()); // lse in the workspace: reuse it
  DevBuf lse(s.B * s.Hq * k::sagPad(s.T), false);
  std::vector<float> ws = r.ws.download();
  ws.resize(lse.count);
  lse.upload(ws);
  r.args.saved_lse = lse.ptr;
  r.args.saved_out = r.dout.ptr; // any O: timing only
  r.n = k::softmaxAttentionGradPlan(r.args, s.D, gpu.sms(), r.plan);
  const std::string prefix = prefixOf(s);
  const float all = gpu.time(prefix, r.plan, r.n, r.args);
  std::printf("bench %-50s %8.3f ms  (kept lse and O: %s)\n",
              nameOf(s).c_str(), all, r.plan[0].suffix);
  for (int i = 0; i < r.n; ++i)
    std::printf("      phase %-8s %8.3f ms\n", r.plan[i].suffix,
                gpu.time(prefix, r.plan + i, 1, r.args));
}

Override variant(int phase, const char *entry, unsigned rows, unsigned threads,
                 unsigned smem) {
  Override o;
  o.phase = phase;
  o.entry = entry;
  o.launch = {phase == 0 ? "_stats" : "_dkdv", rows, 1, 1, threads, smem};
  return o;
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <cubin> [--bench]\n", argv[0]);
    return 2;
  }
  const bool doBench = argc > 2 && std::string(argv[2]) == "--bench";
  Gpu gpu;
  if (!gpu.open(argv[1]))
    return 0;
  std::printf("device %s, %d SMs\n", gpu.name().c_str(), gpu.sms());
  if (doBench) {
    Report rep;
    using k::sagFastDkdvSmem;
    using k::sagFastStatsSmem;
    // The plan's forms, then tuning variants (checked on a ragged shape).
    bench(
        gpu, {true, 64, 1, 8192, 16, 8}, &rep,
        {variant(1, "mm_sagx_d64_k64q64", 64, 128, sagFastDkdvSmem(64, 64, 64)),
         variant(1, "mm_sagx_d64_k64q32", 64, 128, sagFastDkdvSmem(64, 32, 64)),
         variant(0, "mm_sagx_d64_s64", 128, 256, sagFastStatsSmem(64, 64))});
    bench(
        gpu, {true, 128, 1, 16384, 16, 16}, &rep,
        {variant(1, "mm_sagx_d128_k128q32", 128, 256,
                 sagFastDkdvSmem(128, 32, 128)),
         variant(0, "mm_sagx_d128_s64", 128, 256, sagFastStatsSmem(128, 64))});
    bench(gpu, {true, 128, 1, 8192, 16, 8});
    bench(gpu, {false, 64, 1, 2048, 16, 8});
    benchSaved(gpu, {true, 64, 1, 8192, 16, 8});
    benchSaved(gpu, {true, 128, 1, 16384, 16, 16});
    return rep.finish();
  }
  Report rep;
  const Shape shapes[] = {
      // SIMT form (f32, and bf16 head dims off the tensor-core path).
      {false, 8, 2, 37, 3, 1},
      {false, 16, 1, 257, 4, 2},
      {false, 32, 2, 100, 2, 2},
      {false, 64, 1, 1000, 4, 2},
      {false, 64, 1, 1, 2, 1},
      {false, 128, 2, 257, 3, 1},
      {true, 8, 2, 37, 2, 1},
      {true, 32, 1, 257, 3, 1},
      // Tensor-core form (bf16, D = 64, 128).
      {true, 64, 2, 37, 2, 2},
      {true, 64, 1, 1, 2, 1},
      {true, 64, 2, 257, 4, 2},
      {true, 64, 1, 1000, 6, 2},
      {true, 64, 1, 2048, 4, 2},
      {true, 128, 2, 257, 2, 1},
      {true, 128, 1, 1000, 3, 3},
      {true, 128, 1, 2048, 2, 1},
  };
  uint64_t seed = 1;
  for (const Shape &s : shapes)
    check(gpu, rep, s, seed++);
  // The backward on the forward's kept statistics (every forward form).
  checkSaved(gpu, rep, {false, 16, 2, 37, 3, 1}, 64, 64, seed++);
  checkSaved(gpu, rep, {false, 64, 1, 300, 4, 2}, 32, 32, seed++);
  checkSaved(gpu, rep, {true, 8, 2, 200, 2, 1}, 64, 64, seed++);
  checkSaved(gpu, rep, {true, 64, 2, 257, 4, 2}, 128, 64, seed++);
  checkSaved(gpu, rep, {true, 64, 1, 2048, 16, 8}, 128, 64, seed++);
  checkSaved(gpu, rep, {true, 128, 1, 1000, 3, 3}, 128, 128, seed++);
  checkSaved(gpu, rep, {true, 128, 2, 300, 4, 2}, 128, 128, seed++, 384);
  checkSaved(gpu, rep, {true, 128, 1, 37, 2, 1}, 128, 128, seed++, 384);
  return rep.finish();
}
