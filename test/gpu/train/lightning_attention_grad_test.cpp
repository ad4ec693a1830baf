// GPU test of kernels/lightning_attention_grad.cuh against the CPU reference
// (mm::cpu::lightningAttentionGrad): f32 (SIMT form, D = 8..128) and bf16
// (SIMT form for D = 8..32, tensor-core form for D = 64, 128), ragged T, B = 1
// and 2, several layers (decays) and reference block sizes; relative L2 error
// per q/k/v part of dqkv. The longest shape (T = 65536, H = 16, D = 128) is
// checked against the SIMT form on the GPU (entries mm_lgrad_simt_bf16_d<D>),
// the CPU reference being too slow there. --bench times the preset shapes.
//
// Usage: lightning_attention_grad_test CUBIN [--bench | --quick]
// (--quick: a few small shapes of every form, for compute-sanitizer)
#include "kernels/lightning_attention_grad.h"
#include "runtime/cpu/TrainKernels.h"
#include "test/gpu/train/TrainTest.h"

using namespace mm;
using namespace mm::test;

namespace {

struct Shape {
  long long B, T, H;
  int D;
  long long layer, L;
  bool bf16;
  long long blockSize; // of the CPU reference (evaluation order only)
};

std::string prefixOf(const Shape &s) {
  return std::string("mm_lightning_attention_grad_") +
         (s.bf16 ? "bf16" : "f32") + "_d" + std::to_string(s.D);
}

struct Problem {
  Shape s;
  std::vector<float> qkv, dout;
  DevBuf dqkvIn, doutIn, out, ws;
  k::LightningGradArgs args{};
  k::Launch plan[k::kMaxLaunches];
  int n = 0;
  Problem(Gpu &gpu, const Shape &sh, std::mt19937_64 &rng)
      : s(sh), dqkvIn(sh.B * sh.T * sh.H * 3 * sh.D, sh.bf16),
        doutIn(sh.B * sh.T * sh.H * sh.D, sh.bf16),
        out(sh.B * sh.T * sh.H * 3 * sh.D, sh.bf16) {
    qkv = randomVec(rng, dqkvIn.count, 1.0f, s.bf16);
    dout = randomVec(rng, doutIn.count, 1.0f, s.bf16);
    dqkvIn.upload(qkv);
    doutIn.upload(dout);
    args.qkv = dqkvIn.ptr;
    args.dout = doutIn.ptr;
    args.dqkv = out.ptr;
    args.batch = s.B;
    args.seq = s.T;
    args.heads = s.H;
    args.layer = s.layer;
    args.num_layers = s.L;
    const unsigned long long bytes =
        k::lightningAttentionGradWorkspaceBytes(args, s.D, gpu.sms());
    new (&ws) DevBuf(bytes / 4 + 1, false);
    args.workspace = ws.ptr;
    n = k::lightningAttentionGradPlan(args, s.D, gpu.sms(), plan);
  }
  std::string name() const {
    char buf[160];
    std::snprintf(buf, sizeof(buf),
                  "%s B%lld T%lld H%lld D%d l%lld/%lld seg%lld",
                  s.bf16 ? "bf16" : "f32 ", s.B, s.T, s.H, s.D, s.layer, s.L,
                  args.seg_len);
    return buf;
  }
};

/// Relative L2 error of each of the q, k, v parts of dqkv.
void compareParts(Report &rep, const std::string &what, const Shape &s,
                  const std::vector<float> &got, const std::vector<float> &ref,
                  double tol) {
  const char *part[3] = {"dq", "dk", "dv"};
  for (int p = 0; p < 3; ++p) {
    std::vector<float> a, b;
    a.reserve(got.size() / 3);
    b.reserve(got.size() / 3);
    for (long long r = 0; r < s.B * s.T * s.H; ++r)
      for (int d = 0; d < s.D; ++d) {
        a.push_back(got[(r * 3 + p) * s.D + d]);
        b.push_back(ref[(r * 3 + p) * s.D + d]);
      }
    rep.check(what + " " + part[p], relErr(a, b), tol);
  }
}

void checkCpu(Gpu &gpu, Report &rep, const Shape &s, std::mt19937_64 &rng) {
  Problem pr(gpu, s, rng);
  if (pr.n == 0) {
    rep.check(pr.name() + " (no plan)", INFINITY, 0);
    return;
  }
  gpu.run(prefixOf(s), pr.plan, pr.n, pr.args);
  const std::vector<float> got = pr.out.download();
  std::vector<float> ref(got.size());
  cpu::Scratch scratch;
  cpu::lightningAttentionGrad(pr.qkv.data(), pr.dout.data(), ref.data(), s.B,
                              s.T, s.H, s.D, s.blockSize, s.layer, s.L,
                              scratch);
  compareParts(rep, pr.name() + " cpu", s, got, ref, s.bf16 ? 2e-2 : 1e-4);
}

/// Tensor-core form against the SIMT form (both on the GPU, bf16 operands).
void checkSimt(Gpu &gpu, Report &rep, const Shape &s, std::mt19937_64 &rng) {
  Problem pr(gpu, s, rng);
  gpu.run(prefixOf(s), pr.plan, pr.n, pr.args);
  const std::vector<float> got = pr.out.download();
  pr.out.poison();
  gpu.run("mm_lgrad_simt_bf16_d" + std::to_string(s.D), pr.plan, pr.n, pr.args);
  const std::vector<float> ref = pr.out.download();
  compareParts(rep, pr.name() + " simt", s, got, ref, 2e-2);
}

void bench(Gpu &gpu, const Shape &s, std::mt19937_64 &rng) {
  Problem pr(gpu, s, rng);
  const float ms = gpu.time(prefixOf(s), pr.plan, pr.n, pr.args);
  // Nominal work of the chunk form: per job and 64-token sub-chunk, Q'K'ᵀ and
  // P V' (64·64·D each), Q'·S and the state update (64·D·D each), plus the
  // states launch's update.
  const double tokens = double(s.B) * s.T * s.H;
  const double flops = 3.0 * tokens * 2.0 * (2.0 * 64 * s.D + 3.0 * s.D * s.D);
  const double bytes =
      tokens * s.D * (s.bf16 ? 2.0 : 4.0) * (3 + 1 + 3); // qkv, dout, dqkv
  std::printf("bench %s: %.4f ms  %.1f TFLOP/s (nominal)  %.0f GB/s (min "
              "traffic)  [%d launches, nseg %lld]\n",
              pr.name().c_str(), ms, flops / ms / 1e9, bytes / ms / 1e6, pr.n,
              pr.args.nseg);
  for (int i = 0; i < pr.n; ++i) {
    const float t = gpu.time(prefixOf(s), pr.plan + i, 1, pr.args);
    std::printf("   %-8s grid (%u,%u,%u) smem %u: %.4f ms\n", pr.plan[i].suffix,
                pr.plan[i].gx, pr.plan[i].gy, pr.plan[i].gz, pr.plan[i].smem,
                t);
  }
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CUBIN [--bench]\n", argv[0]);
    return 2;
  }
  const bool doBench = argc > 2 && std::string(argv[2]) == "--bench";
  const bool quick = argc > 2 && std::string(argv[2]) == "--quick";
  Gpu gpu;
  if (!gpu.open(argv[1]))
    return 0;
  std::printf("device %s, %d SMs\n", gpu.name().c_str(), gpu.sms());
  std::mt19937_64 rng(1234);
  if (doBench) {
    bench(gpu, {1, 8192, 16, 64, 3, 7, true, 64}, rng);
    bench(gpu, {1, 65536, 16, 128, 3, 7, true, 64}, rng);
    bench(gpu, {1, 8192, 16, 64, 3, 7, false, 64}, rng);
    return 0;
  }
  Report rep;
  if (quick) { // small shapes of every form (for compute-sanitizer)
    checkCpu(gpu, rep, {2, 333, 2, 16, 1, 4, false, 64}, rng);
    checkCpu(gpu, rep, {2, 333, 2, 128, 1, 4, false, 64}, rng);
    checkCpu(gpu, rep, {2, 333, 2, 64, 1, 4, true, 64}, rng);
    checkCpu(gpu, rep, {1, 1000, 2, 128, 1, 4, true, 64}, rng);
    return rep.finish();
  }
  const long long ragged[] = {1, 37, 333, 1000, 4097};
  const int dims[] = {8, 16, 32, 64, 128};
  int c = 0;
  for (int bf = 0; bf < 2; ++bf)
    for (int D : dims)
      for (long long T : ragged) {
        if (D == 128 && T == 4097 && !bf)
          continue; // covered in bf16; keeps the CPU time down
        const long long B = (c % 2) + 1, H = D >= 64 ? 2 : 3;
        const long long layer = c % 4, L = 4;
        const long long blocks[] = {16, 64, 256};
        checkCpu(gpu, rep, {B, T, H, D, layer, L, bf == 1, blocks[c % 3]}, rng);
        ++c;
      }
  // No decay at all (the last layer), long sums; and a single layer model.
  checkCpu(gpu, rep, {2, 1000, 2, 64, 3, 4, true, 64}, rng);
  checkCpu(gpu, rep, {1, 1000, 2, 64, 3, 4, false, 64}, rng);
  checkCpu(gpu, rep, {1, 300, 2, 128, 0, 1, true, 64}, rng);
  // More segments than one wave, B = 2, tensor-core form.
  checkCpu(gpu, rep, {2, 4097, 8, 64, 1, 7, true, 64}, rng);
  checkCpu(gpu, rep, {2, 4097, 4, 128, 5, 7, true, 256}, rng);
  // The preset shapes.
  checkCpu(gpu, rep, {1, 8192, 16, 64, 3, 7, true, 64}, rng);
  checkSimt(gpu, rep, {1, 8192, 16, 64, 3, 7, true, 64}, rng);
  checkSimt(gpu, rep, {1, 65536, 16, 128, 3, 7, true, 64}, rng);
  checkSimt(gpu, rep, {2, 20001, 4, 128, 6, 7, true, 64}, rng);
  return rep.finish();
}
