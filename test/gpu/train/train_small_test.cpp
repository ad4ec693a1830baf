// GPU tests of kernels/train_small.cuh against the CPU references
// (runtime/cpu/TrainKernels.h): rms_norm_grad, silu_grad, sigmoid_grad,
// rope_grad, embedding_grad, grad_norm, adamw, came, came_vector, store_param,
// lm_head (against a double-precision softmax-CE on the host), finite_check.
//
// Usage: train_small_test CUBIN [--bench | --quick] (--quick: small shapes
// only, for compute-sanitizer). Inputs are random; bf16 inputs are
// rounded to bf16 first so that the reference sees the GPU's values. --bench
// times the preset shapes (median of 10, CUDA events around the launches of
// one plan run) and prints ms and GB/s (bytes each kernel must move).
#include "kernels/train_small.h"
#include "runtime/cpu/TrainKernels.h"
#include "test/gpu/train/TrainTest.h"

#include <memory>

using namespace mm;
using namespace mm::test;

namespace {

Gpu gpu;
Report rep;
CUmodule mod = nullptr;
std::mt19937_64 rng(1234);

const char *tname(bool bf) { return bf ? "bf16" : "f32"; }
std::string prefix(const char *kernel, bool bf) {
  return std::string("mm_") + kernel + "_" + tname(bf);
}
double tolFor(bool bf) { return bf ? 2e-2 : 1e-4; }

/// Median ms of `reps` runs of a plan: events around the launches only (no
/// host synchronisation inside the timed region), after 3 warm-ups.
template <typename Args>
float timePlan(const std::string &pre, const k::Launch *plan, int n,
               const Args &args, int reps = 10) {
  std::vector<CUfunction> fns(n);
  for (int i = 0; i < n; ++i) {
    MM_CU(cuModuleGetFunction(&fns[i], mod, (pre + plan[i].suffix).c_str()));
    if (plan[i].smem > 48 * 1024)
      MM_CU(cuFuncSetAttribute(fns[i],
                               CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                               static_cast<int>(plan[i].smem)));
  }
  auto once = [&] {
    for (int i = 0; i < n; ++i) {
      Args copy = args;
      void *params[] = {&copy};
      MM_CU(cuLaunchKernel(fns[i], plan[i].gx, plan[i].gy, plan[i].gz,
                           plan[i].threads, 1, 1, plan[i].smem, nullptr, params,
                           nullptr));
    }
  };
  for (int w = 0; w < 3; ++w)
    once();
  MM_CU(cuCtxSynchronize());
  CUevent a, b;
  MM_CU(cuEventCreate(&a, CU_EVENT_DEFAULT));
  MM_CU(cuEventCreate(&b, CU_EVENT_DEFAULT));
  std::vector<float> ms;
  for (int r = 0; r < reps; ++r) {
    MM_CU(cuEventRecord(a, nullptr));
    once();
    MM_CU(cuEventRecord(b, nullptr));
    MM_CU(cuEventSynchronize(b));
    float t = 0;
    MM_CU(cuEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  cuEventDestroy(a);
  cuEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

void printBench(const std::string &what, float ms, double bytes) {
  std::printf("bench %-58s %8.4f ms %8.1f GB/s\n", what.c_str(), ms,
              bytes / (ms * 1e-3) / 1e9);
}

std::vector<float> positive(size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float &x : v)
    x = u(rng);
  return v;
}

std::unique_ptr<DevBuf> scalar(float v) {
  auto b = std::make_unique<DevBuf>(1, false);
  b->upload({v});
  return b;
}

struct ErrSlot {
  CUdeviceptr ptr = 0;
  ErrSlot() {
    MM_CU(cuMemAlloc(&ptr, sizeof(k::ErrorSlot)));
    MM_CU(cuMemsetD8(ptr, 0, sizeof(k::ErrorSlot)));
  }
  ~ErrSlot() { cuMemFree(ptr); }
  k::ErrorSlot get() const {
    k::ErrorSlot e;
    MM_CU(cuMemcpyDtoH(&e, ptr, sizeof(e)));
    return e;
  }
};

// ----------------------------------------------------------- rms_norm_grad

void testRmsNormGrad(long long rows, long long n, bool bf, bool bench) {
  auto x = randomVec(rng, rows * n, 2.f, bf);
  auto w = randomVec(rng, n, 1.5f, bf);
  auto dy = randomVec(rng, rows * n, 1.f, bf);
  DevBuf dX(rows * n, bf), dW(n, bf), dDy(rows * n, bf), dDx(rows * n, bf),
      dDw(n, false);
  dX.upload(x);
  dW.upload(w);
  dDy.upload(dy);
  k::RmsNormGradArgs a{dX.ptr, dW.ptr, dDy.ptr, dDx.ptr, dDw.ptr,
                       0,      rows,   n,       1e-5,    0};
  const unsigned long long ws = k::rmsNormGradWorkspaceBytes(a, 0, gpu.sms());
  DevBuf dWs(ws / 4 + 1, false);
  a.workspace = dWs.ptr;
  k::Launch plan[k::kMaxLaunches];
  const int np = k::rmsNormGradPlan(a, 0, gpu.sms(), plan);
  gpu.run(prefix("rms_norm_grad", bf), plan, np, a);
  std::vector<float> rdx(rows * n), rdw(n);
  cpu::Scratch s;
  cpu::rmsNormGrad(x.data(), w.data(), dy.data(), rdx.data(), rdw.data(), rows,
                   n, 1e-5, s);
  if (bf)
    for (float &v : rdx)
      v = bf16Round(v);
  const std::string tag = "rms_norm_grad " + std::string(tname(bf)) + " " +
                          std::to_string(rows) + "x" + std::to_string(n);
  rep.check(tag + " dx", relErr(dDx.download(), rdx), tolFor(bf));
  rep.check(tag + " dw", relErr(dDw.download(), rdw), 1e-4);
  if (bench) {
    printBench(tag, timePlan(prefix("rms_norm_grad", bf), plan, np, a),
               3.0 * rows * n * (bf ? 2 : 4) + 4.0 * n);
    std::printf("      _rows alone %8.4f ms, _reduce alone %8.4f ms\n",
                timePlan(prefix("rms_norm_grad", bf), plan + 1, 1, a),
                timePlan(prefix("rms_norm_grad", bf), plan + 2, 1, a));
  }
}

// ----------------------------------------------------- silu/sigmoid grads

void testActGrad(bool silu, long long n, bool bf, bool inPlace, bool bench) {
  auto x = randomVec(rng, n, 6.f, bf);
  auto dy = randomVec(rng, n, 1.f, bf);
  DevBuf dX(n, bf), dDy(n, bf), dDx(n, bf);
  dX.upload(x);
  dDy.upload(dy);
  k::ActGradArgs a{dX.ptr, dDy.ptr, inPlace ? dDy.ptr : dDx.ptr, n};
  k::Launch plan[k::kMaxLaunches];
  const int np = silu ? k::siluGradPlan(a, 0, gpu.sms(), plan)
                      : k::sigmoidGradPlan(a, 0, gpu.sms(), plan);
  const char *kn = silu ? "silu_grad" : "sigmoid_grad";
  gpu.run(prefix(kn, bf), plan, np, a);
  std::vector<float> r(n);
  (silu ? cpu::siluGrad : cpu::sigmoidGrad)(x.data(), dy.data(), r.data(), n);
  if (bf)
    for (float &v : r)
      v = bf16Round(v);
  const std::string tag = std::string(kn) + " " + tname(bf) +
                          " n=" + std::to_string(n) +
                          (inPlace ? " in place" : "");
  rep.check(tag, relErr((inPlace ? dDy : dDx).download(), r), tolFor(bf));
  if (bench)
    printBench(tag, timePlan(prefix(kn, bf), plan, np, a),
               3.0 * n * (bf ? 2 : 4));
}

// ---------------------------------------------- output gate's backward

/// sigmoid_grad's "_gate" entry: w = sigmoid_grad(x, dy·a), v = dy·b in one
/// pass; the reference composes the CPU kernels (dy·a in fp32, as the GPU).
void testGateGrad(long long n, bool bf, bool wOnDy, bool bench) {
  auto dy = randomVec(rng, n, 1.f, bf), av = randomVec(rng, n, 2.f, bf),
       bv = randomVec(rng, n, 1.f, bf), x = randomVec(rng, n, 6.f, bf);
  DevBuf dDy(n, bf), dA(n, bf), dB(n, bf), dX(n, bf), dW(n, bf), dV(n, bf);
  dDy.upload(dy);
  dA.upload(av);
  dB.upload(bv);
  dX.upload(x);
  // wOnDy: w written over dy (the exact aliasing the schedule allows).
  k::GateGradArgs a{dDy.ptr, dA.ptr, dB.ptr, dX.ptr,
                    wOnDy ? dDy.ptr : dW.ptr, dV.ptr, n};
  k::Launch plan[k::kMaxLaunches];
  const int np = k::gateGradPlan(a, 0, gpu.sms(), plan);
  gpu.run(prefix("sigmoid_grad", bf), plan, np, a);
  std::vector<float> u(n), w(n), v(n);
  for (long long i = 0; i < n; ++i) {
    u[i] = dy[i] * av[i];
    v[i] = dy[i] * bv[i];
  }
  cpu::sigmoidGrad(x.data(), u.data(), w.data(), n);
  if (bf)
    for (long long i = 0; i < n; ++i) {
      w[i] = bf16Round(w[i]);
      v[i] = bf16Round(v[i]);
    }
  const std::string tag = std::string("gate backward (sigmoid_grad _gate) ") +
                          tname(bf) + " n=" + std::to_string(n) +
                          (wOnDy ? " w over dy" : "");
  rep.check(tag + " w", relErr((wOnDy ? dDy : dW).download(), w), tolFor(bf));
  rep.check(tag + " v", relErr(dV.download(), v), tolFor(bf));
  if (bench)
    printBench(tag, timePlan(prefix("sigmoid_grad", bf), plan, np, a),
               6.0 * n * (bf ? 2 : 4));
}

// --------------------------------------------------------------- rope_grad

void testRopeGrad(long long B, long long T, long long H, long long D,
                  long long R, bool bf, bool inPlace) {
  const long long n = B * T * H * D;
  auto dy = randomVec(rng, n, 1.f, bf);
  DevBuf dDy(n, bf), dDx(n, bf);
  dDy.upload(dy);
  k::RopeGradArgs a{dDy.ptr, inPlace ? dDy.ptr : dDx.ptr, B, T, H, D, R,
                    10000.0};
  k::Launch plan[k::kMaxLaunches];
  const int np = k::ropeGradPlan(a, D, gpu.sms(), plan);
  gpu.run(prefix("rope_grad", bf), plan, np, a);
  std::vector<float> r(n);
  cpu::Scratch s;
  cpu::ropeGrad(dy.data(), r.data(), B, T, H, D, R, 10000.0, s);
  if (bf)
    for (float &v : r)
      v = bf16Round(v);
  char tag[128];
  std::snprintf(tag, sizeof tag, "rope_grad %s B%lld T%lld H%lld D%lld R%lld%s",
                tname(bf), B, T, H, D, R, inPlace ? " in place" : "");
  rep.check(tag, relErr((inPlace ? dDy : dDx).download(), r), tolFor(bf));
}

// ---------------------------------------------------------- embedding_grad

void testEmbeddingGrad(long long rows, long long vocab, long long hidden,
                       bool bf, bool bench, long long badRow = -1) {
  std::uniform_int_distribution<int> u(0, static_cast<int>(vocab) - 1);
  std::vector<int32_t> ids(rows);
  for (auto &id : ids)
    id = u(rng) % std::max<int>(1, static_cast<int>(vocab / 3 + 1)); // repeats
  if (badRow >= 0)
    ids[badRow] = static_cast<int32_t>(vocab + 3);
  auto dy = randomVec(rng, rows * hidden, 1.f, bf);
  DevBuf dIds(rows, false), dDy(rows * hidden, bf), dT(vocab * hidden, false);
  dIds.uploadRaw(ids.data(), rows * 4);
  dDy.upload(dy);
  ErrSlot err;
  k::EmbeddingGradArgs a{dIds.ptr, dDy.ptr, dT.ptr, err.ptr, 0, rows,
                         vocab,    hidden,  0,      0,       0};
  DevBuf dWs(k::embeddingGradWorkspaceBytes(a, 0, gpu.sms()) / 4 + 1, false);
  a.workspace = dWs.ptr;
  k::Launch plan[k::kMaxLaunches];
  const int np = k::embeddingGradPlan(a, 0, gpu.sms(), plan);
  gpu.run(prefix("embedding_grad", bf), plan, np, a);
  char tag[128];
  std::snprintf(tag, sizeof tag, "embedding_grad %s rows%lld V%lld H%lld",
                tname(bf), rows, vocab, hidden);
  const k::ErrorSlot e = err.get();
  if (badRow >= 0) {
    const bool ok = e.row == static_cast<unsigned long long>(badRow + 1) &&
                    e.value == vocab + 3 && e.kind == k::kErrorTokenId;
    rep.check(std::string(tag) + " bad id reported", ok ? 0 : 1, 0);
    return;
  }
  rep.check(std::string(tag) + " no error", e.row == 0 ? 0 : 1, 0);
  std::vector<float> r(vocab * hidden);
  rep.check(std::string(tag) + " cpu ok",
            cpu::embeddingGrad(ids.data(), dy.data(), r.data(), rows, vocab,
                               hidden, rows)
                    .ok()
                ? 0
                : 1,
            0);
  rep.check(tag, relErr(dT.download(), r), 1e-5);
  if (bench) {
    printBench(tag, timePlan(prefix("embedding_grad", bf), plan, np, a),
               4.0 * vocab * hidden + rows * hidden * (bf ? 2.0 : 4.0) +
                   4.0 * rows);
    // Phase breakdown: the plan's prefixes (each a valid run from scratch).
    for (int k = 1; k < np; ++k)
      std::printf("      prefix through %-10s %8.4f ms\n", plan[k - 1].suffix,
                  timePlan(prefix("embedding_grad", bf), plan, k, a));
  }
}

// --------------------------------------------------------------- grad_norm

void testGradNorm(const std::vector<long long> &sizes, bool bench) {
  std::vector<std::unique_ptr<DevBuf>> gs;
  double ref = 0;
  for (long long n : sizes) {
    auto g = randomVec(rng, n, 0.5f, false);
    ref += cpu::sumSquares(g.data(), n);
    gs.push_back(std::make_unique<DevBuf>(n, false));
    gs.back()->upload(g);
  }
  ref = std::sqrt(ref);
  DevBuf acc(2, false), out(1, false);
  k::GradNormArgs a{0, acc.ptr, out.ptr, 0};
  k::Launch plan[k::kMaxLaunches];
  int np = k::gradNormPlan(a, "_zero", gpu.sms(), plan);
  gpu.run(prefix("grad_norm", false), plan, np, a);
  for (size_t i = 0; i < sizes.size(); ++i) {
    a.g = gs[i]->ptr;
    a.n = sizes[i];
    np = k::gradNormPlan(a, "_sumsq", gpu.sms(), plan);
    gpu.run(prefix("grad_norm", false), plan, np, a);
  }
  np = k::gradNormPlan(a, "_finalize", gpu.sms(), plan);
  gpu.run(prefix("grad_norm", false), plan, np, a);
  const float got = out.download()[0];
  std::string tag = "grad_norm f32 " + std::to_string(sizes.size()) +
                    " tensors, last n=" + std::to_string(sizes.back());
  rep.check(tag, std::fabs(got - ref) / ref, 1e-5);
  // The multi-tensor form: one "_sumsq_multi" launch over a NormTensor table.
  std::vector<k::NormTensor> table;
  long long blocks = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    table.push_back({gs[i]->ptr, sizes[i], blocks});
    blocks += (sizes[i] + k::gradNormChunk() - 1) / k::gradNormChunk();
  }
  DevBuf dTable(table.size() * sizeof(k::NormTensor) / 4, false);
  dTable.uploadRaw(table.data(), table.size() * sizeof(k::NormTensor));
  k::GradNormArgs m{0,      acc.ptr,    out.ptr,
                    blocks, dTable.ptr, static_cast<long long>(table.size())};
  for (const char *phase : {"_zero", "_sumsq_multi", "_finalize"}) {
    np = k::gradNormPlan(m, phase, gpu.sms(), plan);
    gpu.run(prefix("grad_norm", false), plan, np, m);
  }
  rep.check(tag + " (_sumsq_multi)", std::fabs(out.download()[0] - ref) / ref,
            1e-5);
  if (bench) {
    k::Launch all[3];
    k::gradNormPlan(a, "_zero", gpu.sms(), all);
    k::gradNormPlan(a, "_sumsq", gpu.sms(), all + 1);
    k::gradNormPlan(a, "_finalize", gpu.sms(), all + 2);
    printBench("grad_norm f32 n=" + std::to_string(a.n),
               timePlan(prefix("grad_norm", false), all, 3, a), 4.0 * a.n);
  }
}

// ------------------------------------------------------------------- adamw

void testAdamW(long long n, double maxNorm, double wd, bool bench) {
  auto p = randomVec(rng, n, 1.f, false);
  auto g = randomVec(rng, n, 0.1f, false);
  auto m = randomVec(rng, n, 0.01f, false);
  auto v = positive(n, 0.f, 1e-3f);
  DevBuf dP(n, false), dG(n, false), dM(n, false), dV(n, false);
  dP.upload(p);
  dG.upload(g);
  dM.upload(m);
  dV.upload(v);
  const float norm = 3.7f, lr = 1e-3f;
  auto dNorm = scalar(norm), dLr = scalar(lr), dStep = scalar(1.f);
  k::AdamWArgs a{dP.ptr,   dG.ptr,     dM.ptr, dV.ptr, dNorm->ptr,
                 dLr->ptr, dStep->ptr, n,      0.9,    0.999,
                 1e-8,     wd,         maxNorm};
  k::Launch plan[k::kMaxLaunches];
  const int np = k::adamWPlan(a, 0, gpu.sms(), plan);
  for (int step = 1; step <= 3; ++step) {
    dStep->upload({static_cast<float>(step)});
    gpu.run(prefix("adamw", false), plan, np, a);
    cpu::AdamWParams ap;
    ap.lr = lr;
    ap.weightDecay = wd;
    ap.step = step;
    ap.gradScale = cpu::clipFactor(norm, maxNorm);
    cpu::adamw(p.data(), g.data(), m.data(), v.data(), n, ap);
  }
  char tag[128];
  std::snprintf(tag, sizeof tag, "adamw f32 n=%lld max_norm=%g wd=%g 3 steps",
                n, maxNorm, wd);
  rep.check(std::string(tag) + " p", relErr(dP.download(), p), 1e-6);
  rep.check(std::string(tag) + " m", relErr(dM.download(), m), 1e-6);
  rep.check(std::string(tag) + " v", relErr(dV.download(), v), 1e-6);
  if (bench)
    printBench(tag, timePlan(prefix("adamw", false), plan, np, a), 28.0 * n);
  // The fused store_param: one more step also writing bf16(p); it must equal
  // the updated fp32 p rounded to nearest even, bit for bit.
  DevBuf dStore(n, true);
  a.store = dStore.ptr;
  dStep->upload({4.f});
  gpu.run(prefix("adamw", false), plan, np, a);
  std::vector<float> pNew = dP.download(), stored = dStore.download();
  long long wrong = 0;
  for (long long i = 0; i < n; ++i)
    wrong += bf16Bits(pNew[i]) != bf16Bits(stored[i]);
  rep.check(std::string(tag) + " + fused bf16 store (mismatches)",
            static_cast<double>(wrong), 0);
  // A non-finite gradient norm skips the update: p, m, v and the store stay.
  dNorm->upload({std::nanf("")});
  std::vector<float> p0 = dP.download(), m0 = dM.download(), v0 = dV.download();
  dStep->upload({5.f});
  gpu.run(prefix("adamw", false), plan, np, a);
  rep.check(std::string(tag) + " NaN grad norm: p, m, v, store unchanged",
            relErr(dP.download(), p0) + relErr(dM.download(), m0) +
                relErr(dV.download(), v0) + relErr(dStore.download(), stored),
            0);
}

// The multi-tensor form ("_multi"): several tensors of ragged sizes in one
// launch, some with a fused bf16 store, 2 steps, against the CPU reference.
void testAdamWMulti(const std::vector<long long> &sizes) {
  struct T {
    std::vector<float> p, g, m, v;
    std::unique_ptr<DevBuf> dp, dg, dm, dv, ds;
  };
  std::vector<T> ts(sizes.size());
  std::vector<k::AdamWTensor> table;
  long long blocks = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    const long long n = sizes[i];
    T &t = ts[i];
    t.p = randomVec(rng, n, 1.f, false);
    t.g = randomVec(rng, n, 0.1f, false);
    t.m = randomVec(rng, n, 0.01f, false);
    t.v = positive(n, 0.f, 1e-3f);
    t.dp.reset(new DevBuf(n, false));
    t.dg.reset(new DevBuf(n, false));
    t.dm.reset(new DevBuf(n, false));
    t.dv.reset(new DevBuf(n, false));
    t.dp->upload(t.p);
    t.dg->upload(t.g);
    t.dm->upload(t.m);
    t.dv->upload(t.v);
    if (i % 2 == 0)
      t.ds.reset(new DevBuf(n, true));
    table.push_back({t.dp->ptr, t.dg->ptr, t.dm->ptr, t.dv->ptr,
                     t.ds ? t.ds->ptr : 0, n, blocks});
    blocks += (n + k::adamWChunk() - 1) / k::adamWChunk();
  }
  DevBuf dTable(table.size() * sizeof(k::AdamWTensor) / 4, false);
  dTable.uploadRaw(table.data(), table.size() * sizeof(k::AdamWTensor));
  const float norm = 0.7f, lr = 2e-3f;
  auto dNorm = scalar(norm), dLr = scalar(lr), dStep = scalar(1.f);
  k::AdamWArgs a{};
  a.norm = dNorm->ptr;
  a.lr = dLr->ptr;
  a.step = dStep->ptr;
  a.beta1 = 0.9;
  a.beta2 = 0.95;
  a.eps = 1e-8;
  a.weight_decay = 0.1;
  a.max_norm = 0.5;
  a.table = dTable.ptr;
  a.count = static_cast<long long>(table.size());
  k::Launch plan[k::kMaxLaunches];
  const int np = k::adamWMultiPlan(a, blocks, plan);
  for (int step = 1; step <= 2; ++step) {
    dStep->upload({static_cast<float>(step)});
    gpu.run(prefix("adamw", false), plan, np, a);
    cpu::AdamWParams ap;
    ap.lr = lr;
    ap.beta2 = 0.95;
    ap.weightDecay = 0.1;
    ap.step = step;
    ap.gradScale = cpu::clipFactor(norm, 0.5);
    for (T &t : ts)
      cpu::adamw(t.p.data(), t.g.data(), t.m.data(), t.v.data(),
                 static_cast<long long>(t.p.size()), ap);
  }
  double err = 0;
  long long wrong = 0;
  for (T &t : ts) {
    err = std::max({err, relErr(t.dp->download(), t.p),
                    relErr(t.dm->download(), t.m),
                    relErr(t.dv->download(), t.v)});
    if (t.ds) {
      std::vector<float> pNew = t.dp->download(), st = t.ds->download();
      for (size_t j = 0; j < pNew.size(); ++j)
        wrong += bf16Bits(pNew[j]) != bf16Bits(st[j]);
    }
  }
  rep.check("adamw _multi " + std::to_string(sizes.size()) +
                " tensors, 2 steps: p, m, v",
            err, 1e-6);
  rep.check("adamw _multi fused bf16 stores (mismatches)",
            static_cast<double>(wrong), 0);
}

// -------------------------------------------------------------------- came

cpu::CameParams cameParams(float lr, float norm, double maxNorm) {
  cpu::CameParams c;
  c.lr = lr;
  c.beta1 = 0.9;
  c.beta2 = 0.999;
  c.beta3 = 0.9999;
  c.eps1 = 1e-30;
  c.eps2 = 1e-16;
  c.clipThreshold = 1.0;
  c.weightDecay = 0.01;
  c.gradScale = cpu::clipFactor(norm, maxNorm);
  return c;
}

void testCame(long long count, long long rows, long long cols, bool bench) {
  const long long n = count * rows * cols;
  auto p = randomVec(rng, n, 1.f, false);
  std::vector<float> m(n, 0.f), row(count * rows, 0.f), col(count * cols, 0.f),
      resRow(count * rows, 0.f), resCol(count * cols, 0.f);
  DevBuf dP(n, false), dG(n, false), dM(n, false), dRow(count * rows, false),
      dCol(count * cols, false), dRR(count * rows, false),
      dRC(count * cols, false);
  dP.upload(p);
  dM.upload(m);
  dRow.upload(row);
  dCol.upload(col);
  dRR.upload(resRow);
  dRC.upload(resCol);
  const float norm = 2.5f, lr = 1e-3f;
  const double maxNorm = 1.0;
  auto dNorm = scalar(norm), dLr = scalar(lr);
  k::CameArgs a{};
  a.p = dP.ptr;
  a.g = dG.ptr;
  a.m = dM.ptr;
  a.row = dRow.ptr;
  a.col = dCol.ptr;
  a.res_row = dRR.ptr;
  a.res_col = dRC.ptr;
  a.norm = dNorm->ptr;
  a.lr = dLr->ptr;
  a.count = count;
  a.rows = rows;
  a.cols = cols;
  a.beta1 = 0.9;
  a.beta2 = 0.999;
  a.beta3 = 0.9999;
  a.eps1 = 1e-30;
  a.eps2 = 1e-16;
  a.clip_threshold = 1.0;
  a.weight_decay = 0.01;
  a.max_norm = maxNorm;
  DevBuf dWs(k::cameWorkspaceBytes(a, 0, gpu.sms()) / 4 + 1, false);
  a.workspace = dWs.ptr;
  k::Launch plan[k::kMaxLaunches];
  const int np = k::camePlan(a, 0, gpu.sms(), plan);
  const cpu::CameParams cp = cameParams(lr, norm, maxNorm);
  cpu::Scratch s;
  for (int step = 0; step < 3; ++step) {
    auto g = randomVec(rng, n, 0.1f, false);
    dG.upload(g);
    gpu.run(prefix("came", false), plan, np, a);
    cpu::cameFactored(p.data(), g.data(), m.data(), row.data(), col.data(),
                      resRow.data(), resCol.data(), count, rows, cols, cp, s);
  }
  char tag[128];
  std::snprintf(tag, sizeof tag, "came f32 [%lld, %lld, %lld] 3 steps", count,
                rows, cols);
  const std::string t(tag);
  rep.check(t + " p", relErr(dP.download(), p), 1e-5);
  rep.check(t + " m", relErr(dM.download(), m), 1e-4);
  rep.check(t + " row", relErr(dRow.download(), row), 1e-4);
  rep.check(t + " col", relErr(dCol.download(), col), 1e-4);
  rep.check(t + " res_row", relErr(dRR.download(), resRow), 1e-4);
  rep.check(t + " res_col", relErr(dRC.download(), resCol), 1e-4);
  if (bench)
    printBench(t, timePlan(prefix("came", false), plan, np, a), 20.0 * n);
}

void testCameVector(long long n, bool bench) {
  auto p = randomVec(rng, n, 1.f, false);
  std::vector<float> m(n, 0.f), v(n, 0.f);
  DevBuf dP(n, false), dG(n, false), dM(n, false), dV(n, false);
  dP.upload(p);
  dM.upload(m);
  dV.upload(v);
  const float norm = 0.5f, lr = 2e-3f;
  const double maxNorm = 1.0;
  auto dNorm = scalar(norm), dLr = scalar(lr);
  DevBuf dWs(4, false);
  k::CameVectorArgs a{dP.ptr,  dG.ptr, dM.ptr, dV.ptr, dNorm->ptr, dLr->ptr,
                      dWs.ptr, n,      0.9,    0.999,  0.9999,     1e-30,
                      1e-16,   1.0,    0.01,   maxNorm};
  k::Launch plan[k::kMaxLaunches];
  const int np = k::cameVectorPlan(a, 0, gpu.sms(), plan);
  const cpu::CameParams cp = cameParams(lr, norm, maxNorm);
  for (int step = 0; step < 3; ++step) {
    auto g = randomVec(rng, n, 0.1f, false);
    dG.upload(g);
    gpu.run(prefix("came_vector", false), plan, np, a);
    cpu::cameVector(p.data(), g.data(), m.data(), v.data(), n, cp);
  }
  const std::string t = "came_vector f32 n=" + std::to_string(n) + " 3 steps";
  rep.check(t + " p", relErr(dP.download(), p), 1e-5);
  rep.check(t + " m", relErr(dM.download(), m), 1e-4);
  rep.check(t + " v", relErr(dV.download(), v), 1e-4);
  if (bench)
    printBench(t, timePlan(prefix("came_vector", false), plan, np, a),
               32.0 * n);
}

// ------------------------------------------------------------- store_param

void testStoreParam(long long n, bool bf, bool bench) {
  auto master = randomVec(rng, n, 3.f, false);
  DevBuf dM(n, false), dP(n, bf);
  dM.upload(master);
  k::StoreParamArgs a{dM.ptr, dP.ptr, n};
  k::Launch plan[k::kMaxLaunches];
  const int np = k::storeParamPlan(a, 0, gpu.sms(), plan);
  gpu.run(prefix("store_param", bf), plan, np, a);
  auto got = dP.download();
  long long bad = 0;
  for (long long i = 0; i < n; ++i)
    bad += got[i] != (bf ? bf16Round(master[i]) : master[i]);
  const std::string t =
      std::string("store_param ") + tname(bf) + " n=" + std::to_string(n);
  rep.check(t + " (mismatches)", static_cast<double>(bad), 0);
  if (bench)
    printBench(t, timePlan(prefix("store_param", bf), plan, np, a),
               n * (4.0 + (bf ? 2 : 4)));
}

// ----------------------------------------------------------------- lm_head

/// Runs the lm_head phases over `total` rows in chunks of `chunk` rows
/// (random f32 logits per chunk) and checks row losses, dlogits (when
/// `grad`) and the loss against double-precision softmax-CE.
void testLmHead(long long total, long long chunk, long long vocab, bool bf,
                bool grad, double ignoreFrac, bool bench,
                long long badRow = -1) {
  std::uniform_int_distribution<int> u(0, static_cast<int>(vocab) - 1);
  std::uniform_real_distribution<double> f(0, 1);
  std::vector<int32_t> labels(total);
  for (auto &l : labels)
    l = f(rng) < ignoreFrac ? -100 : u(rng);
  if (badRow >= 0)
    labels[badRow] = static_cast<int32_t>(vocab);
  long long count = 0;
  for (auto l : labels)
    count += l != -100;
  DevBuf dLab(total, false), dRowLoss(total, false), dCount(1, false),
      dLoss(1, false), dLogits(chunk * vocab, false),
      dDl(grad ? chunk * vocab : 1, bf);
  dLab.uploadRaw(labels.data(), total * 4);
  ErrSlot err;
  k::LmHeadArgs a{dLogits.ptr, grad ? dDl.ptr : 0,
                  dLab.ptr,    dRowLoss.ptr,
                  dCount.ptr,  dLoss.ptr,
                  err.ptr,     total,
                  0,           0,
                  vocab};
  const std::string pre = prefix("lm_head", bf);
  k::Launch plan[k::kMaxLaunches];
  int np = k::lmHeadPlan(a, "_count", gpu.sms(), plan);
  gpu.run(pre, plan, np, a);
  double total2 = 0, dlNum = 0, dlDen = 0, rlErr = 0;
  const double invCount = count ? 1.0 / count : 0.0;
  std::vector<float> logits(chunk * vocab);
  std::uniform_real_distribution<float> nd(-8.f, 8.f);
  for (long long r0 = 0; r0 < total; r0 += chunk) {
    const long long rows = std::min(chunk, total - r0);
    for (long long i = 0; i < rows * vocab; ++i)
      logits[i] = nd(rng);
    dLogits.uploadRaw(logits.data(), rows * vocab * 4);
    a.row0 = r0;
    a.rows = rows;
    np = k::lmHeadPlan(a, "_rows", gpu.sms(), plan);
    gpu.run(pre, plan, np, a);
    std::vector<float> dl = grad ? dDl.download() : std::vector<float>();
    for (long long r = 0; r < rows; ++r) {
      const int32_t label = labels[r0 + r];
      const float *z = logits.data() + r * vocab;
      double mx = -INFINITY, s = 0;
      for (long long c = 0; c < vocab; ++c)
        mx = std::max(mx, double(z[c]));
      for (long long c = 0; c < vocab; ++c)
        s += std::exp(double(z[c]) - mx);
      const double lse = mx + std::log(s);
      const bool counts = label >= 0 && label < vocab;
      if (counts)
        total2 += lse - z[label];
      if (!grad)
        continue;
      for (long long c = 0; c < vocab; ++c) {
        double ref = 0;
        if (counts)
          ref = (std::exp(double(z[c]) - lse) - (c == label ? 1.0 : 0.0)) *
                invCount;
        if (bf)
          ref = bf16Round(static_cast<float>(ref));
        const double d = dl[r * vocab + c] - ref;
        if (!std::isfinite(dl[r * vocab + c]))
          dlNum = INFINITY;
        dlNum += d * d;
        dlDen += ref * ref;
      }
    }
  }
  np = k::lmHeadPlan(a, "_reduce", gpu.sms(), plan);
  gpu.run(pre, plan, np, a);
  (void)rlErr;
  char tag[160];
  std::snprintf(tag, sizeof tag,
                "lm_head %s rows%lld chunk%lld V%lld%s ignore%.0f%%", tname(bf),
                total, chunk, vocab, grad ? " grad" : " loss",
                ignoreFrac * 100);
  const std::string t(tag);
  const float loss = dLoss.download()[0];
  const k::ErrorSlot e = err.get();
  if (badRow >= 0) {
    const bool ok = e.row == static_cast<unsigned long long>(badRow + 1) &&
                    e.value == vocab && e.kind == k::kErrorLabel;
    rep.check(t + " bad label reported", ok ? 0 : 1, 0);
    return;
  }
  rep.check(t + " no error", e.row == 0 ? 0 : 1, 0);
  const float cnt = dCount.download()[0];
  rep.check(t + " count", std::fabs(cnt - double(count)), 0);
  if (count == 0) {
    rep.check(t + " all ignored: NaN loss", std::isnan(loss) ? 0 : 1, 0);
  } else {
    const double ref = total2 / count;
    rep.check(t + " loss", std::fabs(loss - ref) / std::fabs(ref), 1e-5);
  }
  if (grad)
    rep.check(t + " dlogits",
              dlDen > 0 ? std::sqrt(dlNum / dlDen) : std::sqrt(dlNum),
              bf ? 2e-2 : 1e-4);
  if (bench) {
    a.row0 = 0;
    a.rows = chunk;
    np = k::lmHeadPlan(a, "_rows", gpu.sms(), plan);
    printBench(t + " _rows", timePlan(pre, plan, np, a),
               chunk * vocab * (4.0 + (grad ? (bf ? 2 : 4) : 0)));
  }
}

// ------------------------------------------------------------ finite_check

void testFiniteCheck(bool bf, long long n, bool bench) {
  auto x = randomVec(rng, n, 1.f, bf);
  DevBuf dX(n, bf), dSlot(2, false);
  MM_CU(cuMemsetD8(dSlot.ptr, 0xff, 8));
  k::FiniteCheckArgs a{dX.ptr, dSlot.ptr, n, 0};
  k::Launch plan[k::kMaxLaunches];
  const int np = k::finiteCheckPlan(a, 0, gpu.sms(), plan);
  const std::string pre = prefix("finite_check", bf);
  auto slot = [&] {
    unsigned long long s;
    MM_CU(cuMemcpyDtoH(&s, dSlot.ptr, 8));
    return s;
  };
  const std::string t =
      std::string("finite_check ") + tname(bf) + " n=" + std::to_string(n);
  // Clean data: the slot stays ~0.
  dX.upload(x);
  a.step = 2;
  gpu.run(pre, plan, np, a);
  rep.check(t + " clean", slot() == ~0ull ? 0 : 1, 0);
  // Step 5: NaN at 0.7n, Inf at n/2, NaN at n-1 -> (5, n/2).
  auto y = x;
  y[n * 7 / 10] = NAN;
  y[n / 2] = INFINITY;
  y[n - 1] = NAN;
  dX.upload(y);
  a.step = 5;
  gpu.run(pre, plan, np, a);
  const unsigned long long e5 = (5ull << 40) | (n / 2);
  rep.check(t + " step 5 first at n/2", slot() == e5 ? 0 : 1, 0);
  // Step 3: NaN at 0.8n -> (3, 0.8n) wins (smaller step).
  y = x;
  y[n * 8 / 10] = -NAN;
  y[n * 9 / 10] = -INFINITY;
  dX.upload(y);
  a.step = 3;
  gpu.run(pre, plan, np, a);
  const unsigned long long e3 = (3ull << 40) | (n * 8 / 10);
  rep.check(t + " step 3 wins", slot() == e3 ? 0 : 1, 0);
  // Step 7: NaN at 0 -> unchanged.
  y = x;
  y[0] = NAN;
  dX.upload(y);
  a.step = 7;
  gpu.run(pre, plan, np, a);
  rep.check(t + " step 7 keeps step 3", slot() == e3 ? 0 : 1, 0);
  if (bench) {
    dX.upload(x);
    printBench(t, timePlan(pre, plan, np, a), n * (bf ? 2.0 : 4.0));
  }
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CUBIN [--bench | --quick]\n", argv[0]);
    return 2;
  }
  const bool bench = argc > 2 && std::string(argv[2]) == "--bench";
  // --quick: the small shapes only (for compute-sanitizer).
  const bool quick = argc > 2 && std::string(argv[2]) == "--quick";
  if (!gpu.open(argv[1]))
    return 0;
  MM_CU(cuModuleLoad(&mod, argv[1]));
  std::printf("device %s, %d SMs%s\n", gpu.name().c_str(), gpu.sms(),
              bench ? ", bench" : "");
  const long long M32 = 32ll << 20;

  if (!bench) {
    for (bool bf : {false, true}) {
      testRmsNormGrad(1, 64, bf, false);
      testRmsNormGrad(2, 1000, bf, false);
      testRmsNormGrad(37, 1030, bf, false);
      testRmsNormGrad(5, 2048, bf, false);
      testRmsNormGrad(333, 768, bf, false);
      if (!quick)
        testRmsNormGrad(8192, 1024, bf, false);
      for (bool silu : {true, false}) {
        testActGrad(silu, 1, bf, false, false);
        testActGrad(silu, 1003, bf, false, false);
        testActGrad(silu, 65536 + 3, bf, true, false);
      }
      testGateGrad(1, bf, false, false);
      testGateGrad(1003, bf, false, false);
      testGateGrad(65536 + 3, bf, true, false);
      testRopeGrad(1, 5, 3, 16, 16, bf, false);
      testRopeGrad(2, 33, 2, 64, 32, bf, false);
      testRopeGrad(1, 70, 4, 128, 64, bf, true);
      testEmbeddingGrad(1, 7, 5, bf, false);
      testEmbeddingGrad(37, 50, 64, bf, false);
      testEmbeddingGrad(200, 1000, 1030, bf, false);
      testEmbeddingGrad(2 * 129, 5000, 256, bf, false);
      testEmbeddingGrad(300, 10, 64, bf, false);     // heavy ids (atomics)
      testEmbeddingGrad(1000, 5, 1030, bf, false);   // heavy, scalar path
      testEmbeddingGrad(40000, 40000, 8, bf, false); // large vocab
      testEmbeddingGrad(64, 100, 128, bf, false, 41);
      testStoreParam(1, bf, false);
      testStoreParam(1003, bf, false);
      testStoreParam(1 << 20, bf, false);
      testLmHead(37, 16, 1000, bf, true, 0.2, false);
      testLmHead(37, 37, 1003, bf, true, 0.3, false);
      testLmHead(21, 8, 1000, bf, false, 0.2, false);
      testLmHead(5, 3, 40000, bf, true, 0.2, false); // V > 32768: two passes
      testLmHead(5, 3, 40000, bf, false, 0.2, false);
      testLmHead(9, 4, 500, bf, true, 1.0, false);
      testLmHead(9, 4, 500, bf, false, 1.0, false);
      testLmHead(20, 8, 256, bf, true, 0.0, false, 13);
      testFiniteCheck(bf, 100003, false);
      if (!quick)
        testFiniteCheck(bf, 1 << 22, false);
    }
    if (!quick)
      testEmbeddingGrad(8192, 32000, 1024, true, false);
    testGradNorm({1}, false);
    testGradNorm({1001, 4096, 100003, 7}, false);
    if (!quick)
      testGradNorm({M32 + 5}, false);
    testAdamW(1, 1.0, 0.1, false);
    testAdamW(1003, 1.0, 0.1, false);
    testAdamW(100003, 0.0, 0.0, false);
    testAdamWMulti({1, 1003, 8192, 8193, 100003, 7, 64});
    if (!quick)
      testAdamW(1000000, 1.0, 0.01, false);
    testCame(3, 40, 24, false);
    testCame(2, 33, 300, false);
    testCame(1, 1, 7, false);
    testCame(2, 300, 5, false);
    testCameVector(1000, false);
    testCameVector(100003, false);
    return rep.finish();
  }
  // --bench: the preset shapes (bf16 activations), still checked.
  testRmsNormGrad(8192, 1024, true, true);
  testRmsNormGrad(8192, 1024, false, true);
  testEmbeddingGrad(8192, 32000, 1024, true, true);
  testLmHead(4096, 4096, 32000, true, true, 0.05, true);
  testLmHead(4096, 4096, 32000, true, false, 0.05, true);
  testGradNorm({M32}, true);
  testAdamW(M32, 1.0, 0.1, true);
  testActGrad(true, M32, true, false, true);
  testGateGrad(M32, true, false, true);
  testStoreParam(M32, true, true);
  testFiniteCheck(true, M32, true);
  testCameVector(M32, true);
  testCame(8, 2048, 2048, true);
  return rep.finish();
}
