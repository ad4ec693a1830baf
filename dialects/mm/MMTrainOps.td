//===- MMTrainOps.td - mm training ops ------------------------*- tablegen -*-===//
//
// The backward of every forward op of MMOps.td, the fused lm_head +
// cross-entropy loss, optimizer state and updates. `mm-autodiff` builds them;
// each lowers to the catalog kernel of the same name (docs/kernels.md,
// "Training kernels"). Verifiers live in MMTrainOps.cpp.
//
// Backward of each forward op:
//   embedding          -> mm.embedding_grad
//   rms_norm           -> mm.rms_norm_grad
//   linear             -> mm.linear_grad
//   logits + cross_entropy -> mm.lm_head_loss / mm.lm_head_loss_grad (fused, chunked)
//   silu, sigmoid      -> mm.silu_grad, mm.sigmoid_grad
//   mul                -> two mm.mul;  scaled_add -> mm.scaled_add with beta 0
//   rope               -> mm.rope_grad
//   lightning_attention -> mm.lightning_attention_grad
//   softmax_attention  -> mm.softmax_attention_grad
//   moe                -> mm.moe_grad
//
//===----------------------------------------------------------------------===//

#ifndef MM_TRAIN_OPS_TD
#define MM_TRAIN_OPS_TD

//===----------------------------------------------------------------------===//
// Backward ops
//===----------------------------------------------------------------------===//

class MM_GradOp<string mnemonic, list<Trait> traits = []>
    : MM_Op<mnemonic, !listconcat([Pure], traits)> {
  let assemblyFormat = "operands attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def MM_EmbeddingGradOp : MM_GradOp<"embedding_grad"> {
  let summary = "gradient of the embedding table";
  let description = [{
    `result[v] = sum over (b, t) with ids[b, t] = v of dy[b, t]`; rows of unused ids are 0.

    ```mlir
    %dt = mm.embedding_grad %ids, %dy : (tensor<?x?xi32>, tensor<?x?x64xf32>) -> tensor<128x64xf32>
    ```
  }];
  let arguments = (ins MM_IndexTensor:$ids, // [B, T]
                       MM_FloatTensor:$dy); // [B, T, H] gradient of the embedding output
  let results = (outs MM_FloatTensor:$dtable); // [V, H]
}

def MM_RMSNormGradOp : MM_GradOp<"rms_norm_grad"> {
  let summary = "backward of rms_norm";
  let description = [{
    With `r = rsqrt(mean(x^2) + eps)`: `dx = r*w*dy - x * r^3/N * sum(w*dy*x)` and
    `dw = sum over rows of dy * x * r`.

    ```mlir
    %dx, %dw = mm.rms_norm_grad %x, %w, %dy {eps = 1.0e-05 : f64}
        : (tensor<?x?x64xf32>, tensor<64xf32>, tensor<?x?x64xf32>) -> (tensor<?x?x64xf32>, tensor<64xf32>)
    ```
  }];
  let arguments = (ins MM_FloatTensor:$input,  // [B, T, N] forward input
                       MM_FloatTensor:$weight, // [N]
                       MM_FloatTensor:$dy,     // [B, T, N]
                       F64Attr:$eps);
  let results = (outs MM_FloatTensor:$dx,  // [B, T, N]
                      MM_FloatTensor:$dw); // [N]
}

def MM_LinearGradOp : MM_GradOp<"linear_grad"> {
  let summary = "backward of linear";
  let description = [{
    `dx = dy @ weight` and `dw = dy^T @ x` summed over batch and sequence.

    ```mlir
    %dx, %dw = mm.linear_grad %x, %w, %dy
        : (tensor<?x?x64xf32>, tensor<96x64xf32>, tensor<?x?x96xf32>) -> (tensor<?x?x64xf32>, tensor<96x64xf32>)
    ```
  }];
  let arguments = (ins MM_FloatTensor:$input,  // [B, T, K]
                       MM_FloatTensor:$weight, // [N, K]
                       MM_FloatTensor:$dy);    // [B, T, N]
  let results = (outs MM_FloatTensor:$dx,  // [B, T, K]
                      MM_FloatTensor:$dw); // [N, K]
}

class MM_UnaryGradOp<string mnemonic, string formula> : MM_GradOp<mnemonic> {
  let summary = "backward of an elementwise op: " # formula;
  let description = "`dx = " # formula # "`, from the forward input `x`.";
  let arguments = (ins MM_FloatTensor:$input, // forward input x
                       MM_FloatTensor:$dy);   // gradient of the forward result
  let results = (outs MM_FloatTensor:$dx);
}

def MM_SiluGradOp : MM_UnaryGradOp<"silu_grad",
    "dy * sigmoid(x) * (1 + x * (1 - sigmoid(x)))">;
def MM_SigmoidGradOp : MM_UnaryGradOp<"sigmoid_grad",
    "dy * sigmoid(x) * (1 - sigmoid(x))">;

def MM_RopeGradOp : MM_GradOp<"rope_grad"> {
  let summary = "backward of rope: the inverse rotation";
  let description = [{
    Rotates `dy` by the negated angles of `mm.rope` with the same attributes.

    ```mlir
    %dx = mm.rope_grad %dy {num_heads = 4 : i64, head_dim = 16 : i64, rotary_dim = 8 : i64, theta = 1.0e+04 : f64}
        : (tensor<?x?x64xf32>) -> tensor<?x?x64xf32>
    ```
  }];
  let arguments = (ins MM_FloatTensor:$dy, // [B, T, H*D]
                       I64Attr:$num_heads, I64Attr:$head_dim, I64Attr:$rotary_dim,
                       F64Attr:$theta);
  let results = (outs MM_FloatTensor:$dx);
}

def MM_LightningAttentionGradOp : MM_GradOp<"lightning_attention_grad"> {
  let summary = "backward of lightning_attention, the state recurrence run in reverse";
  let description = [{
    `dq` runs the forward KV-state recurrence block by block; `dk` and `dv` run its transpose,
    the state `G = sum_{t >= block end} exp(-s (t - end)) q_t^T do_t`, from the last block to
    the first. The result has the layout of `qkv` (q|k|v per head).

    ```mlir
    %dqkv = mm.lightning_attention_grad %qkv, %do {num_heads = 4 : i64, head_dim = 16 : i64,
        block_size = 16 : i64, layer_index = 0 : i64, num_layers = 4 : i64}
        : (tensor<?x?x192xf32>, tensor<?x?x64xf32>) -> tensor<?x?x192xf32>
    ```
  }];
  let arguments = (ins MM_FloatTensor:$qkv,  // [B, T, H*3*D] forward input
                       MM_FloatTensor:$dout, // [B, T, H*D]
                       I64Attr:$num_heads, I64Attr:$head_dim, I64Attr:$block_size,
                       I64Attr:$layer_index, I64Attr:$num_layers);
  let results = (outs MM_FloatTensor:$dqkv); // [B, T, H*3*D]
}

def MM_SoftmaxAttentionGradOp : MM_GradOp<"softmax_attention_grad"> {
  let summary = "backward of softmax_attention, flash style";
  let description = [{
    Recomputes each query row's probabilities `p` from q and k (nothing of the forward is
    stored), then `ds = p * (do.v - sum(p * do.v))`, `dq = scale * ds k`, `dk = scale * ds^T q`,
    `dv = p^T do`; dk and dv sum over the query heads of each kv head.

    ```mlir
    %dq, %dk, %dv = mm.softmax_attention_grad %q, %k, %v, %do {num_heads = 4 : i64,
        num_kv_heads = 2 : i64, head_dim = 16 : i64, scale = 2.5e-01 : f64}
        : (tensor<?x?x64xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>, tensor<?x?x64xf32>)
        -> (tensor<?x?x64xf32>, tensor<?x?x32xf32>, tensor<?x?x32xf32>)
    ```
  }];
  let arguments = (ins MM_FloatTensor:$query, MM_FloatTensor:$key, MM_FloatTensor:$value,
                       MM_FloatTensor:$dout, // [B, T, Hq*D]
                       I64Attr:$num_heads, I64Attr:$num_kv_heads, I64Attr:$head_dim,
                       F64Attr:$scale);
  let results = (outs MM_FloatTensor:$dq, MM_FloatTensor:$dk, MM_FloatTensor:$dv);
}

def MM_MoEGradOp : MM_GradOp<"moe_grad"> {
  let summary = "backward of moe, router included";
  let description = [{
    Gradients of the input, the router and the three expert weights. The router gradient
    flows through the renormalised top-k weights `w_j = p_j / sum_topk p` and the softmax;
    the top-k selection is piecewise constant.

    ```mlir
    %dx, %dr, %d1, %d2, %d3 = mm.moe_grad %x, %r, %w1, %w2, %w3, %dy {top_k = 2 : i64}
        : (tensor<?x?x64xf32>, tensor<4x64xf32>, tensor<4x96x64xf32>, tensor<4x64x96xf32>,
           tensor<4x96x64xf32>, tensor<?x?x64xf32>)
        -> (tensor<?x?x64xf32>, tensor<4x64xf32>, tensor<4x96x64xf32>, tensor<4x64x96xf32>, tensor<4x96x64xf32>)
    ```
  }];
  let arguments = (ins MM_FloatTensor:$input, MM_FloatTensor:$router, MM_FloatTensor:$w1,
                       MM_FloatTensor:$w2, MM_FloatTensor:$w3,
                       MM_FloatTensor:$dy, // [B, T, H]
                       I64Attr:$top_k);
  let results = (outs MM_FloatTensor:$dx, MM_FloatTensor:$drouter, MM_FloatTensor:$dw1,
                      MM_FloatTensor:$dw2, MM_FloatTensor:$dw3);
}

//===----------------------------------------------------------------------===//
// Loss
//===----------------------------------------------------------------------===//

def MM_LMHeadLossOp : MM_GradOp<"lm_head_loss"> {
  let summary = "lm_head fused with mean cross-entropy, in chunks of tokens";
  let description = [{
    `mean over tokens with label >= 0 of logsumexp(h w^T) - (h w^T)[label]` (label -100 is
    ignored), computed `chunk_rows` tokens at a time: the `[B, T, V]` logits never exist.

    ```mlir
    %loss = mm.lm_head_loss %h, %w, %labels {chunk_rows = 1024 : i64}
        : (tensor<?x?x64xf32>, tensor<128x64xf32>, tensor<?x?xi32>) -> tensor<f32>
    ```
  }];
  let arguments = (ins MM_FloatTensor:$input,   // [B, T, H] final hidden state
                       MM_FloatTensor:$weight,  // [V, H] lm_head
                       MM_IndexTensor:$labels,  // [B, T]
                       I64Attr:$chunk_rows);    // tokens per chunk
  let results = (outs 0DTensorOf<[F32]>:$loss);
}

def MM_LMHeadLossGradOp : MM_GradOp<"lm_head_loss_grad"> {
  let summary = "gradient of lm_head_loss, in chunks of tokens";
  let description = [{
    With `g = (softmax(h w^T) - onehot(label)) / count` per chunk: `dh = g w`, `dw = g^T h`.

    ```mlir
    %dh, %dw = mm.lm_head_loss_grad %h, %w, %labels {chunk_rows = 1024 : i64}
        : (tensor<?x?x64xf32>, tensor<128x64xf32>, tensor<?x?xi32>) -> (tensor<?x?x64xf32>, tensor<128x64xf32>)
    ```
  }];
  let arguments = (ins MM_FloatTensor:$input, MM_FloatTensor:$weight, MM_IndexTensor:$labels,
                       I64Attr:$chunk_rows);
  let results = (outs MM_FloatTensor:$dinput, MM_FloatTensor:$dweight);
}

//===----------------------------------------------------------------------===//
// Optimizer
//===----------------------------------------------------------------------===//

def MM_GradNormOp : MM_GradOp<"grad_norm"> {
  let summary = "global L2 norm of all gradients";
  let description = [{
    `sqrt(sum over every operand of sum(g^2))`, accumulated in double.

    ```mlir
    %n = mm.grad_norm %g0, %g1 : (tensor<64xf32>, tensor<128x64xf32>) -> tensor<f32>
    ```
  }];
  let arguments = (ins Variadic<MM_FloatTensor>:$grads);
  let results = (outs 0DTensorOf<[F32]>:$norm);
}

def MM_StateOp : MM_Op<"state"> {
  let summary = "a named optimizer state tensor, zero at the start of training";
  let description = [{
    Persistent across steps and saved in checkpoints. Not pure: two states of one name are
    one tensor.

    ```mlir
    %m = mm.state "adamw.m:model.norm.weight" : tensor<64xf32>
    ```
  }];
  let arguments = (ins StrAttr:$name);
  let results = (outs MM_FloatTensor:$result);
  let assemblyFormat = "$name attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def MM_AdamWOp : MM_Op<"adamw"> {
  let summary = "one AdamW step (torch.optim.AdamW) with global-norm clipping";
  let description = [{
    With `g = grad * min(1, max_norm / (grad_norm + 1e-6))` (no clipping when max_norm is 0):
    `p *= 1 - lr*weight_decay; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
    p -= lr/(1-b1^step) * m / (sqrt(v)/sqrt(1-b2^step) + eps)`. The results are the updated
    param, m and v; lowering writes them in place (the param is the fp32 master weight).

    ```mlir
    %p2, %m2, %v2 = mm.adamw %p, %g, %m, %v, %norm, %lr, %step {beta1 = 0.9 : f64,
        beta2 = 0.999 : f64, eps = 1.0e-08 : f64, weight_decay = 0.1 : f64, max_norm = 1.0 : f64}
        : (tensor<64xf32>, tensor<64xf32>, tensor<64xf32>, tensor<64xf32>, tensor<f32>,
           tensor<f32>, tensor<f32>) -> (tensor<64xf32>, tensor<64xf32>, tensor<64xf32>)
    ```
  }];
  let arguments = (ins MM_FloatTensor:$param, MM_FloatTensor:$grad,
                       MM_FloatTensor:$m, MM_FloatTensor:$v,
                       0DTensorOf<[F32]>:$grad_norm, // from mm.grad_norm
                       0DTensorOf<[F32]>:$lr,        // learning rate (a program input)
                       0DTensorOf<[F32]>:$step,      // 1-based step (a program input)
                       F64Attr:$beta1, F64Attr:$beta2, F64Attr:$eps,
                       F64Attr:$weight_decay, F64Attr:$max_norm);
  let results = (outs MM_FloatTensor:$new_param, MM_FloatTensor:$new_m,
                      MM_FloatTensor:$new_v);
  let assemblyFormat = "operands attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def MM_CameOp : MM_Op<"came"> {
  let summary = "one CAME step (confidence-guided, factored second moments)";
  let description = [{
    CAME (Luo et al., ACL 2023) for a parameter of rank >= 2, factored over its last two dims:
    `row`/`res_row` drop the last dim, `col`/`res_col` the second-to-last. Memory per
    [N, K] matrix: N*K (m) + 2(N + K) instead of AdamW's 2*N*K. Gradients are clipped by
    global norm first, as for adamw. Updated in place by lowering.

    ```mlir
    %p2, %m2, %r2, %c2, %rr2, %rc2 = mm.came %p, %g, %m, %r, %c, %rr, %rc, %norm, %lr {beta1 = 0.9 : f64,
        beta2 = 0.999 : f64, beta3 = 0.9999 : f64, eps = 1.0e-30 : f64, eps2 = 1.0e-16 : f64,
        clip_threshold = 1.0 : f64, weight_decay = 0.0 : f64, max_norm = 1.0 : f64} : ...
    ```
  }];
  let arguments = (ins MM_FloatTensor:$param, MM_FloatTensor:$grad, MM_FloatTensor:$m,
                       MM_FloatTensor:$row, MM_FloatTensor:$col,
                       MM_FloatTensor:$res_row, MM_FloatTensor:$res_col,
                       0DTensorOf<[F32]>:$grad_norm, 0DTensorOf<[F32]>:$lr,
                       F64Attr:$beta1, F64Attr:$beta2, F64Attr:$beta3, F64Attr:$eps,
                       F64Attr:$eps2, F64Attr:$clip_threshold, F64Attr:$weight_decay,
                       F64Attr:$max_norm);
  let results = (outs MM_FloatTensor:$new_param, MM_FloatTensor:$new_m,
                      MM_FloatTensor:$new_row, MM_FloatTensor:$new_col,
                      MM_FloatTensor:$new_res_row, MM_FloatTensor:$new_res_col);
  let assemblyFormat = "operands attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

def MM_CameVectorOp : MM_Op<"came_vector"> {
  let summary = "one CAME step for a vector parameter (unfactored, no confidence term)";
  let description = [{
    ```mlir
    %p2, %m2, %v2 = mm.came_vector %p, %g, %m, %v, %norm, %lr {beta1 = 0.9 : f64, ...} : ...
    ```
  }];
  let arguments = (ins MM_FloatTensor:$param, MM_FloatTensor:$grad, MM_FloatTensor:$m,
                       MM_FloatTensor:$v, 0DTensorOf<[F32]>:$grad_norm,
                       0DTensorOf<[F32]>:$lr,
                       F64Attr:$beta1, F64Attr:$beta2, F64Attr:$beta3, F64Attr:$eps,
                       F64Attr:$eps2, F64Attr:$clip_threshold, F64Attr:$weight_decay,
                       F64Attr:$max_norm);
  let results = (outs MM_FloatTensor:$new_param, MM_FloatTensor:$new_m, MM_FloatTensor:$new_v);
  let assemblyFormat = "operands attr-dict `:` functional-type(operands, results)";
  let hasVerifier = 1;
}

#endif // MM_TRAIN_OPS_TD
