// rope (docs/kernels.md): NeoX rotate-half on channels [0, R) of every head, R
// = rotary_dim (R = D is full RoPE, R < D partial as in MiniMax-Text-01);
// channels [R, D) pass through. Position of token t is t; inv_freq[i] =
// theta^(-2i/R).
//
// Operands: x, out [B, T, H*D] T, row-major. May run in place.
// Tiling: one thread per (token, head, pair i < R/2) rotating channels i and
// i+R/2 together (so in place is race-free), plus one per pass-through channel.
// The angle t·inv_freq is formed and reduced in double: at long contexts it
// reaches 1e6 rad, where fp32 would lose the phase.
#pragma once

#include "kernels/common.cuh"

namespace mm {
namespace k {

template <typename T> __device__ void rope(const RopeArgs &p) {
  const long long half = p.rotary_dim / 2;
  const long long perHead = p.head_dim - half; // pairs + pass-through channels
  const long long total = p.batch * p.seq * p.heads * perHead;
  const T *x = cptr<T>(p.x);
  T *out = mptr<T>(p.out);
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long w =
           static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
       w < total; w += stride) {
    const long long item = w % perHead;
    const long long rowHead = w / perHead; // (b*T + t)*H + h
    const long long t = (rowHead / p.heads) % p.seq;
    const long long base = rowHead * p.head_dim;
    if (item < half) {
      const double invFreq =
          pow(p.theta, -2.0 * static_cast<double>(item) /
                           static_cast<double>(p.rotary_dim));
      double s, c;
      sincos(static_cast<double>(t) * invFreq, &s, &c);
      const float lo = ld(x, base + item), hi = ld(x, base + item + half);
      const float cf = static_cast<float>(c), sf = static_cast<float>(s);
      st(out, base + item, lo * cf - hi * sf);
      st(out, base + item + half, hi * cf + lo * sf);
    } else {
      const long long ch = item + half; // in [R, D)
      if (x != out)
        out[base + ch] = x[base + ch];
    }
  }
}

} // namespace k
} // namespace mm
