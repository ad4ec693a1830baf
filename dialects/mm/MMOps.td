//===- MMOps.td - mm dialect ops ------------------------------*- tablegen -*-===//
//
// Ops of the `mm` dialect. Semantics follow ../../docs/kernels.md and the DESIGN's
// "Semantics: a MiniMax decoder layer". Shape checks live in MMOps.cpp.
//
//===----------------------------------------------------------------------===//

#ifndef MM_OPS_TD
#define MM_OPS_TD

include "MMDialect.td"
include "mlir/IR/CommonAttrConstraints.td"
include "mlir/IR/CommonTypeConstraints.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

// Floating-point tensors the model computes with.
def MM_FloatTensor : RankedTensorOf<[F32, BF16, F16]>;
// Token ids and labels.
def MM_IndexTensor : RankedTensorOf<[I32, I64]>;

//===----------------------------------------------------------------------===//
// Weights
//===----------------------------------------------------------------------===//

def MM_ParamOp : MM_Op<"param", [Pure]> {
  let summary = "a named weight tensor";
  let description = [{
    Names one weight of the model. The runtime binds it by `name` from the weights file. A name
    containing `{e}` is stacked over the first dimension: row `e` is the tensor named with `{e}`
    replaced by `e` (per-expert checkpoint tensors become one `[E, ...]` operand).

    With `slice_axis` and `slice_offset`, the weight is the slice
    `[slice_offset, slice_offset + size)` along `slice_axis` of the named tensor, whose other dims
    equal the result's (`size` is the result's dim there). This binds the `w1` (gate) and `w3`
    (up) halves of a fused `experts.gate_up_proj` `[E, 2I, H]` without copying the checkpoint.

    ```mlir
    %w = mm.param "model.norm.weight" : tensor<64xf32>
    %w3 = mm.param "model.layers.0.mlp.experts.gate_up_proj" {slice_axis = 1 : i64, slice_offset = 96 : i64}
        : tensor<4x96x64xf32>
    ```
  }];
  let arguments = (ins StrAttr:$name,                       // checkpoint tensor name
                       OptionalAttr<I64Attr>:$slice_axis,    // axis of the named tensor to slice
                       OptionalAttr<I64Attr>:$slice_offset); // first index along slice_axis
  let results = (outs MM_FloatTensor:$result);
  let assemblyFormat = "$name attr-dict `:` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Embedding, norms, projections
//===----------------------------------------------------------------------===//

def MM_EmbeddingOp : MM_Op<"embedding", [Pure]> {
  let summary = "token embedding lookup";
  let description = [{
    `result[b, t] = table[ids[b, t]]`.

    ```mlir
    %h = mm.embedding %ids, %table : (tensor<?x?xi32>, tensor<128x64xf32>) -> tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins MM_IndexTensor:$ids,   // [B, T] token ids
                       MM_FloatTensor:$table); // [V, H] embedding table
  let results = (outs MM_FloatTensor:$result); // [B, T, H]
  let assemblyFormat = "operands attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def MM_RMSNormOp : MM_Op<"rms_norm", [Pure]> {
  let summary = "RMSNorm over the last dimension";
  let description = [{
    `x * rsqrt(mean(x^2) + eps) * weight`, reduced in fp32.

    ```mlir
    %y = mm.rms_norm %x, %w {eps = 1.0e-05 : f64} : (tensor<?x?x64xf32>, tensor<64xf32>) -> tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins MM_FloatTensor:$input,  // [B, T, N]
                       MM_FloatTensor:$weight, // [N]
                       F64Attr:$eps);          // added to the mean square
  let results = (outs MM_FloatTensor:$result); // [B, T, N]
  let assemblyFormat = "operands attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def MM_LinearOp : MM_Op<"linear", [Pure]> {
  let summary = "dense projection without bias";
  let description = [{
    `input @ weight^T`, with the weight in PyTorch `nn.Linear` layout `[N, K]`.

    ```mlir
    %y = mm.linear %x, %w : (tensor<?x?x64xf32>, tensor<96x64xf32>) -> tensor<?x?x96xf32>
    ```
  }];
  let arguments = (ins MM_FloatTensor:$input,  // [B, T, K]
                       MM_FloatTensor:$weight); // [N, K]
  let results = (outs MM_FloatTensor:$result); // [B, T, N]
  let assemblyFormat = "operands attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def MM_LogitsOp : MM_Op<"logits", [Pure]> {
  let summary = "the lm_head projection to vocabulary logits";
  let description = [{
    Like `mm.linear`, but marks the vocabulary projection so that training can fuse it with
    `mm.cross_entropy` and compute it in chunks.

    ```mlir
    %l = mm.logits %h, %w : (tensor<?x?x64xf32>, tensor<128x64xf32>) -> tensor<?x?x128xf32>
    ```
  }];
  let arguments = (ins MM_FloatTensor:$input,  // [B, T, H]
                       MM_FloatTensor:$weight); // [V, H]
  let results = (outs MM_FloatTensor:$result); // [B, T, V]
  let assemblyFormat = "operands attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

def MM_RopeOp : MM_Op<"rope", [Pure]> {
  let summary = "NeoX rotate-half rotary embedding, full or partial";
  let description = [{
    Rotates the first `rotary_dim` channels of each of `num_heads` heads of width `head_dim`
    (NeoX `rotate_half` pairing `i` with `i + rotary_dim/2`); the other channels pass through.
    Token `t` has position `t`; `inv_freq[i] = theta^(-2i/rotary_dim)`.

    ```mlir
    %y = mm.rope %q {num_heads = 4 : i64, head_dim = 16 : i64, rotary_dim = 8 : i64, theta = 1.0e+04 : f64}
        : (tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins MM_FloatTensor:$input, // [B, T, H*D]
                       I64Attr:$num_heads,     // H
                       I64Attr:$head_dim,      // D
                       I64Attr:$rotary_dim,    // channels rotated per head (even, <= D)
                       F64Attr:$theta);        // RoPE base
  let results = (outs MM_FloatTensor:$result); // [B, T, H*D]
  let assemblyFormat = "operands attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def MM_LightningAttentionOp : MM_Op<"lightning_attention", [Pure]> {
  let summary = "causal decayed linear attention (Lightning Attention-2)";
  let description = [{
    `qkv` holds, per head `h`, q|k|v in channels `h*3D + [0, 3D)`. Head `h` decays with
    `s_h = (2^(-8/H))^(h+1) * (1 - layer_index/(num_layers-1+1e-5) + 1e-5)` and computes
    `o_t = q_t . sum_{u<=t} exp(-s_h (t-u)) k_u^T v_u`, block-wise with blocks of `block_size`
    tokens and an fp32 `[D, D]` state between blocks. No scale, no RoPE.

    ```mlir
    %o = mm.lightning_attention %qkv {num_heads = 4 : i64, head_dim = 16 : i64, block_size = 16 : i64,
        layer_index = 0 : i64, num_layers = 4 : i64} : (tensor<?x?x192xf32>) -> tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins MM_FloatTensor:$qkv,   // [B, T, H*3*D], after silu
                       I64Attr:$num_heads,     // H
                       I64Attr:$head_dim,      // D
                       I64Attr:$block_size,    // tokens per block
                       I64Attr:$layer_index,   // global index of the layer (sets the decay)
                       I64Attr:$num_layers);   // layers in the model (sets the decay)
  let results = (outs MM_FloatTensor:$result); // [B, T, H*D]
  let assemblyFormat = "operands attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def MM_SoftmaxAttentionOp : MM_Op<"softmax_attention", [Pure]> {
  let summary = "causal softmax attention with grouped-query heads";
  let description = [{
    Causal `softmax(q k^T * scale) v`. Query head `h` reads key/value head
    `h / (num_heads / num_kv_heads)`.

    ```mlir
    %o = mm.softmax_attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 2 : i64, head_dim = 16 : i64,
        scale = 2.5e-01 : f64} : (tensor<?x?x64xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>) -> tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins MM_FloatTensor:$query, // [B, T, Hq*D]
                       MM_FloatTensor:$key,   // [B, T, Hkv*D]
                       MM_FloatTensor:$value, // [B, T, Hkv*D]
                       I64Attr:$num_heads,     // Hq
                       I64Attr:$num_kv_heads,  // Hkv, divides Hq
                       I64Attr:$head_dim,      // D
                       F64Attr:$scale);        // logit scale, usually D^-0.5
  let results = (outs MM_FloatTensor:$result); // [B, T, Hq*D]
  let assemblyFormat = "operands attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Mixture of experts
//===----------------------------------------------------------------------===//

def MM_MoEOp : MM_Op<"moe", [Pure]> {
  let summary = "top-k routed mixture of SwiGLU experts";
  let description = [{
    `p = softmax(x router^T)` in fp32, the `top_k` largest renormalised to sum 1, and
    `out = sum_k p_k * w2[e_k](silu(w1[e_k] x) * (w3[e_k] x))`. No shared expert.

    ```mlir
    %y = mm.moe %x, %router, %w1, %w2, %w3 {top_k = 2 : i64}
        : (tensor<?x?x64xf32>, tensor<4x64xf32>, tensor<4x96x64xf32>, tensor<4x64x96xf32>, tensor<4x96x64xf32>)
        -> tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins MM_FloatTensor:$input,  // [B, T, H]
                       MM_FloatTensor:$router, // [E, H]
                       MM_FloatTensor:$w1,     // [E, I, H] gate projection
                       MM_FloatTensor:$w2,     // [E, H, I] down projection
                       MM_FloatTensor:$w3,     // [E, I, H] up projection
                       I64Attr:$top_k);        // experts per token, 1 <= top_k <= E
  let results = (outs MM_FloatTensor:$result); // [B, T, H]
  let assemblyFormat = "operands attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Elementwise
//===----------------------------------------------------------------------===//

class MM_UnaryOp<string mnemonic, string formula> : MM_Op<mnemonic,
    [Pure, SameOperandsAndResultType]> {
  let summary = "elementwise " # formula;
  let description = "Elementwise `" # formula # "`.";
  let arguments = (ins MM_FloatTensor:$input);
  let results = (outs MM_FloatTensor:$result);
  let assemblyFormat = "operands attr-dict `:` type($result)";
}

def MM_SiluOp : MM_UnaryOp<"silu", "x * sigmoid(x)">;
def MM_SigmoidOp : MM_UnaryOp<"sigmoid", "1 / (1 + exp(-x))">;

def MM_MulOp : MM_Op<"mul", [Pure, SameOperandsAndResultType]> {
  let summary = "elementwise product (gating)";
  let description = [{
    `lhs * rhs`.

    ```mlir
    %y = mm.mul %a, %b : tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins MM_FloatTensor:$lhs, MM_FloatTensor:$rhs);
  let results = (outs MM_FloatTensor:$result);
  let assemblyFormat = "operands attr-dict `:` type($result)";
}

def MM_ScaledAddOp : MM_Op<"scaled_add", [Pure, SameOperandsAndResultType]> {
  let summary = "alpha * lhs + beta * rhs (residual scaling)";
  let description = [{
    The scaled residual of the MiniMax decoder: `alpha * lhs + beta * rhs`.

    ```mlir
    %y = mm.scaled_add %h, %attn {alpha = 1.3 : f64, beta = 0.9 : f64} : tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins MM_FloatTensor:$lhs, // residual
                       MM_FloatTensor:$rhs, // branch output
                       F64Attr:$alpha,      // residual factor
                       F64Attr:$beta);      // branch factor
  let results = (outs MM_FloatTensor:$result);
  let assemblyFormat = "operands attr-dict `:` type($result)";
}

//===----------------------------------------------------------------------===//
// Loss
//===----------------------------------------------------------------------===//

def MM_CrossEntropyOp : MM_Op<"cross_entropy", [Pure]> {
  let summary = "mean token cross-entropy";
  let description = [{
    Mean over tokens with `label >= 0` of `logsumexp(logits) - logits[label]`; label -100 is
    ignored. The result is an f32 scalar.

    ```mlir
    %loss = mm.cross_entropy %logits, %labels : (tensor<?x?x128xf32>, tensor<?x?xi32>) -> tensor<f32>
    ```
  }];
  let arguments = (ins MM_FloatTensor:$logits, // [B, T, V]
                       MM_IndexTensor:$labels); // [B, T]
  let results = (outs 0DTensorOf<[F32]>:$result);
  let assemblyFormat = "operands attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

include "MMTrainOps.td"

#endif // MM_OPS_TD
