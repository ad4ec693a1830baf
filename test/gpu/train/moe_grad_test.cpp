// GPU test of the moe_grad launch plan (kernels/moe_grad.{h,cuh}) against the
// CPU reference cpu::moeGrad: f32 and bf16, ragged token counts, top-k 1..3,
// shapes that take the tensor-core GEMMs (bf16, H and I multiples of 8) and
// the SIMT ones; the preset (small model: rows 8192, H = I = 1024, E 8,
// top-2) checks dx on sampled tokens (a full CPU reference takes minutes).
// `--bench` times the preset (median of 10) and each phase.
//
//   moe_grad_test <cubin> [--bench | --small]
#include "kernels/moe_grad.h"
#include "runtime/cpu/TrainKernels.h"
#include "test/gpu/train/TrainTest.h"

using namespace mm;
using mm::test::DevBuf;

namespace {

/// MoeGradArgs::elem_bytes and wgmma as the executor fills them: 1 as for
/// this sm_90a cubin (the plan launches only the working GEMM forms, wgmma
/// for bf16), 2 asking for the mma.sync forms, 0 leaving both 0 (the plan
/// launches both forms of each GEMM and the device picks wgmma).
int g_hints = 1;

struct Shape {
  long long rows, H, I, E, K;
};

struct Problem {
  Shape s;
  bool bf16;
  std::vector<float> x, router, w1, w2, w3, dy;
  DevBuf x_, router_, w1_, w2_, w3_, dy_, dx, drouter, dw1, dw2, dw3, ws;
  k::MoeGradArgs args{};
  k::Launch plan[k::kMaxLaunches];
  int n = 0;
  std::string prefix;

  Problem(const Shape &sh, bool isBf16, int sms, uint64_t seed)
      : s(sh), bf16(isBf16) {
    std::mt19937_64 rng(seed);
    const long long H = s.H, I = s.I, E = s.E, R = s.rows;
    x = test::randomVec(rng, R * H, 1.f, bf16);
    router = test::randomVec(rng, E * H, 2.f / std::sqrt(float(H)), bf16);
    w1 = test::randomVec(rng, E * I * H, 1.f / std::sqrt(float(H)), bf16);
    w3 = test::randomVec(rng, E * I * H, 1.f / std::sqrt(float(H)), bf16);
    w2 = test::randomVec(rng, E * H * I, 1.f / std::sqrt(float(I)), bf16);
    dy = test::randomVec(rng, R * H, 1.f, bf16);
    new (&x_) DevBuf(x.size(), bf16);
    new (&router_) DevBuf(router.size(), bf16);
    new (&w1_) DevBuf(w1.size(), bf16);
    new (&w2_) DevBuf(w2.size(), bf16);
    new (&w3_) DevBuf(w3.size(), bf16);
    new (&dy_) DevBuf(dy.size(), bf16);
    new (&dx) DevBuf(R * H, bf16);
    new (&drouter) DevBuf(E * H, false);
    new (&dw1) DevBuf(E * I * H, false);
    new (&dw2) DevBuf(E * H * I, false);
    new (&dw3) DevBuf(E * I * H, false);
    x_.upload(x);
    router_.upload(router);
    w1_.upload(w1);
    w2_.upload(w2);
    w3_.upload(w3);
    dy_.upload(dy);
    args.x = x_.ptr;
    args.router = router_.ptr;
    args.w1 = w1_.ptr;
    args.w2 = w2_.ptr;
    args.w3 = w3_.ptr;
    args.dy = dy_.ptr;
    args.dx = dx.ptr;
    args.drouter = drouter.ptr;
    args.dw1 = dw1.ptr;
    args.dw2 = dw2.ptr;
    args.dw3 = dw3.ptr;
    args.rows = R;
    args.hidden = H;
    args.experts = E;
    args.inter = I;
    args.top_k = s.K;
    if (g_hints) {
      args.elem_bytes = bf16 ? 2 : 4;
      args.wgmma = g_hints;
    }
    const unsigned long long bytes = k::moeGradWorkspaceBytes(args, 0, sms);
    new (&ws) DevBuf((bytes + 3) / 4, false);
    args.workspace = ws.ptr;
    n = k::moeGradPlan(args, 0, sms, plan);
    prefix = bf16 ? "mm_moe_grad_bf16" : "mm_moe_grad_f32";
  }
  std::string name() const {
    char b[128];
    std::snprintf(b, sizeof b, "%s rows %lld H %lld I %lld E %lld k %lld",
                  bf16 ? "bf16" : "f32 ", s.rows, s.H, s.I, s.E, s.K);
    return b;
  }
};

void checkFull(test::Gpu &gpu, test::Report &rep, const Shape &s, bool bf16,
               uint64_t seed) {
  Problem p(s, bf16, gpu.sms(), seed);
  gpu.run(p.prefix, p.plan, p.n, p.args);
  // A second run (poisoned outputs) must give the same answer: everything is
  // recomputed and fully overwritten.
  p.dx.poison();
  p.drouter.poison();
  p.dw1.poison();
  p.dw2.poison();
  p.dw3.poison();
  gpu.run(p.prefix, p.plan, p.n, p.args);
  const long long H = s.H, I = s.I, E = s.E, R = s.rows;
  std::vector<float> dx(R * H), dr(E * H), d1(E * I * H), d2(E * H * I),
      d3(E * I * H);
  cpu::Scratch scratch;
  cpu::moeGrad(p.x.data(), p.router.data(), p.w1.data(), p.w2.data(),
               p.w3.data(), p.dy.data(), dx.data(), dr.data(), d1.data(),
               d2.data(), d3.data(), R, H, E, I, s.K, scratch);
  const double tol = bf16 ? 2e-2 : 1e-4;
  const std::string n = p.name();
  rep.check(n + " dx", test::relErr(p.dx.download(), dx), tol);
  if (s.K == 1) {
    // One expert per token: its renormalised weight is identically 1, so the
    // exact router gradient is 0 (the reference holds roundoff of it).
    double ref = 0;
    for (float v : dr)
      ref = std::max(ref, double(std::fabs(v)));
    rep.check(
        n + " drouter = 0 (ref roundoff " + std::to_string(ref) + ")",
        test::relErr(p.drouter.download(), std::vector<float>(dr.size(), 0.f)),
        1e-6);
  } else {
    rep.check(n + " drouter", test::relErr(p.drouter.download(), dr), tol);
  }
  rep.check(n + " dw1", test::relErr(p.dw1.download(), d1), tol);
  rep.check(n + " dw2", test::relErr(p.dw2.download(), d2), tol);
  rep.check(n + " dw3", test::relErr(p.dw3.download(), d3), tol);
}

/// Large shapes: dx of `samples` tokens against the reference run on those
/// tokens alone (a token's dx depends on its own x and dy only).
void checkSampled(test::Gpu &gpu, test::Report &rep, Problem &p, int samples) {
  gpu.run(p.prefix, p.plan, p.n, p.args);
  const long long H = p.s.H, I = p.s.I, E = p.s.E;
  const std::vector<float> dxAll = p.dx.download();
  std::vector<float> xs, dys, got;
  for (int i = 0; i < samples; ++i) {
    const long long r = (i * 7919ll) % p.s.rows;
    xs.insert(xs.end(), p.x.begin() + r * H, p.x.begin() + (r + 1) * H);
    dys.insert(dys.end(), p.dy.begin() + r * H, p.dy.begin() + (r + 1) * H);
    got.insert(got.end(), dxAll.begin() + r * H, dxAll.begin() + (r + 1) * H);
  }
  std::vector<float> dx(samples * H), dr(E * H), d1(E * I * H), d2(E * H * I),
      d3(E * I * H);
  cpu::Scratch scratch;
  cpu::moeGrad(xs.data(), p.router.data(), p.w1.data(), p.w2.data(),
               p.w3.data(), dys.data(), dx.data(), dr.data(), d1.data(),
               d2.data(), d3.data(), samples, H, E, I, p.s.K, scratch);
  rep.check(p.name() + " dx (" + std::to_string(samples) + " tokens)",
            test::relErr(got, dx), p.bf16 ? 2e-2 : 1e-4);
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <cubin> [--bench]\n", argv[0]);
    return 2;
  }
  const bool bench = argc > 2 && std::string(argv[2]) == "--bench";
  test::Gpu gpu;
  if (!gpu.open(argv[1]))
    return 0;
  std::printf("device: %s (%d SMs)\n", gpu.name().c_str(), gpu.sms());
  test::Report rep;
  const Shape preset{8192, 1024, 1024, 8, 2};
  const bool small = argc > 2 && std::string(argv[2]) == "--small";
  if (small) { // quick shapes only (for compute-sanitizer)
    checkFull(gpu, rep, {37, 32, 48, 4, 2}, false, 1);
    checkFull(gpu, rep, {37, 32, 48, 4, 2}, true, 2);
    checkFull(gpu, rep, {130, 264, 136, 3, 3}, true, 3);
    checkFull(gpu, rep, {37, 36, 44, 5, 2}, true, 4);
    checkFull(gpu, rep, {1, 32, 48, 4, 2}, true, 5);
    g_hints = 2;
    checkFull(gpu, rep, {130, 264, 136, 3, 3}, true, 3);
    return rep.finish();
  }
  if (!bench) {
    const Shape shapes[] = {{37, 32, 48, 4, 2},   {333, 64, 40, 6, 3},
                            {37, 32, 48, 4, 1},   {1, 32, 48, 4, 2},
                            {2, 64, 40, 6, 3},    {1000, 32, 48, 4, 2},
                            {37, 36, 44, 5, 2},   {333, 128, 192, 8, 2},
                            {1000, 64, 40, 6, 1}, {130, 264, 136, 3, 3}};
    uint64_t seed = 1;
    for (bool bf16 : {false, true})
      for (const Shape &s : shapes)
        checkFull(gpu, rep, s, bf16, seed++);
    checkFull(gpu, rep, {512, 1024, 1024, 8, 2}, true, 99);
    checkFull(gpu, rep, {700, 1032, 328, 8, 2}, true, 98);
    // without the executor's hints (both forms of each GEMM launched), and
    // asking for the mma.sync forms
    for (int h : {0, 2}) {
      g_hints = h;
      checkFull(gpu, rep, {333, 128, 192, 8, 2}, true, 97);
      checkFull(gpu, rep, {37, 36, 44, 5, 2}, true, 96);
      checkFull(gpu, rep, {130, 264, 136, 3, 3}, true, 95);
      checkFull(gpu, rep, {333, 64, 40, 6, 3}, false, 94);
      checkFull(gpu, rep, {512, 1024, 1024, 8, 2}, true, 93);
    }
    g_hints = 1;
    {
      Problem p(preset, true, gpu.sms(), 7);
      checkSampled(gpu, rep, p, 64);
    }
    checkFull(gpu, rep, {1000, 256, 256, 8, 2}, false, 8);
    return rep.finish();
  }
  for (int h : {0, 2}) {
    g_hints = h;
    Problem q(preset, true, gpu.sms(), 7);
    std::printf("bench wgmma=%d (%s, %d launches): %.3f ms\n", h,
                h ? "mma.sync GEMMs" : "both forms launched", q.n,
                gpu.time(q.prefix, q.plan, q.n, q.args));
    if (h == 2)
      for (int i = 0; i < q.n; ++i)
        std::printf("  phase %-14s %.3f ms\n", q.plan[i].suffix,
                    gpu.time(q.prefix, &q.plan[i], 1, q.args));
  }
  g_hints = 1;
  Problem p(preset, true, gpu.sms(), 7);
  const float ms = gpu.time(p.prefix, p.plan, p.n, p.args);
  const double flops = 9.0 * 2 * preset.rows * preset.K * preset.H * preset.I;
  std::printf("bench %s: %.3f ms, %.1f TFLOP/s (9·2·rows·k·H·I = %.1f GFLOP)\n",
              p.name().c_str(), ms, flops / ms / 1e9, flops / 1e9);
  for (int i = 0; i < p.n; ++i) {
    const float t = gpu.time(p.prefix, &p.plan[i], 1, p.args);
    std::printf("  phase %-14s grid %6u x %3u x %2u  %.3f ms\n",
                p.plan[i].suffix, p.plan[i].gx, p.plan[i].gy, p.plan[i].gz, t);
  }
  return 0;
}
