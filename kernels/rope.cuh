// rope (docs/kernels.md): NeoX rotate-half on channels [0, R) of every head, R
// = rotary_dim (R = D is full RoPE, R < D partial as in MiniMax-Text-01);
// channels [R, D) pass through. Position of token t is t; inv_freq[i] =
// theta^(-2i/R).
//
// Operands: x, out [B, T, H*D] T, row-major. May run in place.
// Tiling: one thread per (token, pair i < R/2) for all heads: the angle's
// cosine and sine are formed once and rotate channels i and i+R/2 of every
// head (so in place is race-free), plus one thread per (token, pass-through
// channel) copying it for every head. The angle t·inv_freq is formed and
// reduced in double: at long contexts it reaches 1e6 rad, where fp32 would lose
// the phase. rope_grad (kernels/train_small.cuh) is the inverse rotation
// (INVERSE = true) of the same routine.
#pragma once

#include "kernels/common.cuh"

namespace mm {
namespace k {

/// out = R(±t·inv_freq) x on the rotary channels of every head (see above);
/// INVERSE rotates by the negative angle (the backward).
template <typename T, bool INVERSE>
__device__ void ropeRotate(const RopeArgs &p) {
  const long long half = p.rotary_dim / 2;
  const long long perHead = p.head_dim - half; // pairs + pass-through channels
  const long long total = p.batch * p.seq * perHead;
  const long long rowStride = p.heads * p.head_dim;
  const T *x = cptr<T>(p.x);
  T *out = mptr<T>(p.out);
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long w =
           static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
       w < total; w += stride) {
    const long long item = w % perHead;
    const long long row = w / perHead; // b*T + t
    const long long t = row % p.seq;
    const long long base = row * rowStride;
    if (item < half) {
      const double invFreq =
          pow(p.theta, -2.0 * static_cast<double>(item) /
                           static_cast<double>(p.rotary_dim));
      double s, c;
      sincos(static_cast<double>(t) * invFreq, &s, &c);
      const float cf = static_cast<float>(c),
                  sf = INVERSE ? -static_cast<float>(s) : static_cast<float>(s);
      for (long long h = 0; h < p.heads; ++h) {
        const long long at = base + h * p.head_dim + item;
        const float lo = ld(x, at), hi = ld(x, at + half);
        st(out, at, lo * cf - hi * sf);
        st(out, at + half, hi * cf + lo * sf);
      }
    } else if (x != out) {
      const long long ch = item + half; // in [R, D)
      for (long long h = 0; h < p.heads; ++h)
        out[base + h * p.head_dim + ch] = x[base + h * p.head_dim + ch];
    }
  }
}

template <typename T> __device__ void rope(const RopeArgs &p) {
  ropeRotate<T, false>(p);
}

} // namespace k
} // namespace mm
