//===- Passes.td - mm compiler passes -------------------------*- tablegen -*-===//

#ifndef MM_COMPILER_PASSES_TD
#define MM_COMPILER_PASSES_TD

include "mlir/Pass/PassBase.td"

def LowerToMMXPass : Pass<"mm-lower-to-mmx", "mlir::ModuleOp"> {
  let summary = "Lower the model function to an mmx program of kernel launches";
  let description = [{
    Turns the single `func.func` of an `mm` model into an `mmx.program` of the same name:
    function arguments become `mmx.input`, `mm.param` becomes `mmx.weight`, every other `mm`
    op becomes an `mmx.alloc` for its result plus one `mmx.launch` of the catalog kernel of the
    same name with the op's attributes as `params`, and returned values become `mmx.output`.
    Dynamic dims 0 and 1 of activations are the symbolic batch `B` and sequence `T`.

    Before:
    ```mlir
    func.func @forward(%ids: tensor<?x?xi32>) -> tensor<?x?x8xf32> {
      %t = mm.param "emb" : tensor<8x4xf32>
      %h = mm.embedding %ids, %t : (tensor<?x?xi32>, tensor<8x4xf32>) -> tensor<?x?x4xf32>
      ...
    }
    ```
    After:
    ```mlir
    mmx.program @forward attributes {max_batch = 1 : i64, max_seq = 16 : i64, target = "cpu"} {
      %0 = mmx.input "input_ids" {dtype = i32, shape = ["B", "T"]}
      %1 = mmx.weight "emb" {dtype = f32, shape = [8, 4]}
      %2 = mmx.alloc {dtype = f32, shape = ["B", "T", 4]}
      mmx.launch "embedding" (%0, %1) -> (%2) {params = {}}
      ...
    }
    ```
  }];
  let dependentDialects = ["mmx::MMXDialect"];
  let options = [
    Option<"maxBatch", "max-batch", "int64_t", /*default=*/"1",
           "Largest batch the program must run">,
    Option<"maxSeq", "max-seq", "int64_t", /*default=*/"2048",
           "Largest sequence length the program must run">,
    Option<"target", "target", "std::string", /*default=*/"\"cpu\"",
           "Execution target: cpu, or a GPU architecture (sm_80, sm_89, sm_90a)">,
  ];
}

def AutodiffPass : Pass<"mm-autodiff", "mlir::ModuleOp"> {
  let summary = "Build the backward graph and optimizer update of the model (training mode)";
  let description = [{
    Turns the model function `(input_ids) -> logits` into one training step. The final
    `mm.logits` becomes the fused, chunked `mm.lm_head_loss` (a new `labels` argument); the ops
    are walked in reverse and each emits its backward op (`mm.*_grad`, see MMTrainOps.td);
    gradients of values used more than once are summed with `mm.scaled_add`.

    With `optimizer=adamw` (or `came`) the function also takes `lr` and `step` (f32 scalars),
    computes `mm.grad_norm` over every weight gradient and updates each weight in place through
    `mm.state` moments, returning `(loss, grad_norm)`. With `optimizer=none` it returns the loss
    and each weight's gradient, named `grad:<weight name>`.

    Before:
    ```mlir
    func.func @model(%ids: tensor<?x?xi32>) -> tensor<?x?x8xf32> {
      %t = mm.param "emb" : tensor<8x4xf32>
      %h = mm.embedding %ids, %t : ...
      %w = mm.param "lm_head.weight" : tensor<8x4xf32>
      %l = mm.logits %h, %w : ...
      return %l : tensor<?x?x8xf32>
    }
    ```
    After (`optimizer=none`):
    ```mlir
    func.func @model(%ids: tensor<?x?xi32>, %labels: tensor<?x?xi32>) -> (tensor<f32>, tensor<8x4xf32>, tensor<8x4xf32>) {
      ...
      %loss = mm.lm_head_loss %h, %w, %labels {chunk_rows = 1024 : i64} : ...
      %dh, %dw = mm.lm_head_loss_grad %h, %w, %labels {chunk_rows = 1024 : i64} : ...
      %dt = mm.embedding_grad %ids, %dh : ...
      return %loss, %dt, %dw : ...
    }
    ```
  }];
  let dependentDialects = ["mm::MMDialect"];
  let options = [
    Option<"optimizer", "optimizer", "std::string", /*default=*/"\"adamw\"",
           "adamw, came (memory-light) or none (return the gradients)">,
    Option<"beta1", "beta1", "double", /*default=*/"0.9", "First-moment decay">,
    Option<"beta2", "beta2", "double", /*default=*/"0.999", "Second-moment decay">,
    Option<"beta3", "beta3", "double", /*default=*/"0.9999", "CAME's confidence decay">,
    Option<"eps", "eps", "double", /*default=*/"1e-8", "AdamW's epsilon">,
    Option<"weightDecay", "weight-decay", "double", /*default=*/"0.0",
           "Decoupled weight decay">,
    Option<"maxNorm", "max-norm", "double", /*default=*/"1.0",
           "Clip gradients to this global L2 norm (0: no clipping)">,
    Option<"chunkRows", "chunk-rows", "int64_t", /*default=*/"1024",
           "Tokens per chunk of the fused lm_head + cross-entropy">,
    Option<"recompute", "recompute", "bool", /*default=*/"false",
           "Recompute each decoder layer's activations in the backward pass">,
  ];
}

def SetDtypePass : Pass<"mm-set-dtype", "mlir::ModuleOp"> {
  let summary = "Choose the storage type of weights and activations (f32 or bf16)";
  let description = [{
    Runs on the `mmx.program` right after `mm-lower-to-mmx` (which keeps the importer's f32).
    With `dtype=bf16` every float `mmx.weight` is stored as bf16 (the runtime rounds f32
    checkpoint tensors to nearest even when it binds them) and every float `mmx.alloc` becomes
    bf16, except the results of `logits` and `cross_entropy` launches, which stay f32: the
    kernels read bf16 and accumulate in fp32 (router probabilities, softmax statistics and the
    lightning state stay fp32 inside them), and the program's logits come out in f32.
    `dtype=f32` changes nothing.

    A training program (from `mm-autodiff`) also keeps f32 the loss (`lm_head_loss`), `grad_norm`
    and every weight gradient: the second input of each optimizer launch, the `grad:<weight>`
    outputs (`optimizer=none`) and the `scaled_add` sums that build them. Each optimizer launch
    then updates an fp32 master, `mmx.state "master:<weight>"` (which the runtime initialises
    from the loaded weight, unrounded), instead of the bf16 weight, and a `store_param` launch
    after it writes the master, rounded to bf16, into the weight:
    ```mlir
    %s = mmx.state "master:w" {dtype = f32, shape = [8, 8]}
    mmx.launch "adamw"(%s, %dw, %m, %v, %n, %lr, %step) -> (%s, %m, %v) {params = {...}}
    mmx.launch "store_param"(%s, %w) -> (%w) {params = {}}
    ```

    Before (`dtype=bf16`):
    ```mlir
    %w = mmx.weight "emb" {dtype = f32, shape = [8, 4]}
    %h = mmx.alloc {dtype = f32, shape = ["B", "T", 4]}
    mmx.launch "embedding" (%ids, %w) -> (%h) {params = {}}
    %l = mmx.alloc {dtype = f32, shape = ["B", "T", 8]}
    mmx.launch "logits" (%h, %lm) -> (%l) {params = {}}
    ```
    After:
    ```mlir
    %w = mmx.weight "emb" {dtype = bf16, shape = [8, 4]}
    %h = mmx.alloc {dtype = bf16, shape = ["B", "T", 4]}
    mmx.launch "embedding" (%ids, %w) -> (%h) {params = {}}
    %l = mmx.alloc {dtype = f32, shape = ["B", "T", 8]}
    mmx.launch "logits" (%h, %lm) -> (%l) {params = {}}
    ```
  }];
  let dependentDialects = ["mmx::MMXDialect"];
  let options = [
    Option<"dtype", "dtype", "std::string", /*default=*/"\"f32\"",
           "Storage type of weights and activations: f32 or bf16">,
  ];
}

def LastLogitsPass : Pass<"mm-last-logits", "mlir::ModuleOp"> {
  let summary = "Compute the output logits at the last position only (prefill)";
  let description = [{
    A prefill needs only the next-token distribution, and `[B, T, V]` f32 logits do not fit
    at long T (1M tokens x 32000 x 4 bytes = 128 GB). This pass gives each `logits` launch
    whose result is a program output the param `last_position = 1`: it projects only row
    `T-1` of each sequence, and its result becomes `[B, 1, V]`. With `logits=all` (the
    default) it changes nothing.

    Before:
    ```mlir
    %l = mmx.alloc {dtype = f32, shape = ["B", "T", 8]}
    mmx.launch "logits" (%h, %lm) -> (%l) {params = {}}
    mmx.output "logits" %l
    ```
    After:
    ```mlir
    %l = mmx.alloc {dtype = f32, shape = ["B", 1, 8]}
    mmx.launch "logits" (%h, %lm) -> (%l) {params = {last_position = 1 : i64}}
    mmx.output "logits" %l
    ```
  }];
  let dependentDialects = ["mmx::MMXDialect"];
  let options = [
    Option<"logits", "logits", "std::string", /*default=*/"\"last\"",
           "all ([B, T, V], unchanged) or last ([B, 1, V])">,
  ];
}

def PlanMemoryPass : Pass<"mm-plan-memory", "mlir::ModuleOp"> {
  let summary = "Assign arena offsets to activation buffers from their liveness";
  let description = [{
    Each `mmx.alloc` lives from its definition to its last use (to the end of the program if
    it is an `mmx.output`). Buffers are placed largest first at the lowest 256-byte aligned
    offset that overlaps no buffer with an intersecting lifetime. Sets `offset` on every alloc
    and `arena_bytes` (the peak, sized at `max_batch` x `max_seq`) on the program.

    Before: `%2 = mmx.alloc {dtype = f32, shape = ["B", "T", 4]}`
    After:  `%2 = mmx.alloc {dtype = f32, offset = 0 : i64, shape = ["B", "T", 4]}` and
    `mmx.program @forward attributes {arena_bytes = 256 : i64, ...}`
  }];
  let options = [
    Option<"report", "report", "bool", /*default=*/"false",
           "Print the planned arena size of each program to stderr">,
  ];
}

def FusePass : Pass<"mm-fuse", "mlir::ModuleOp"> {
  let summary = "Merge elementwise chains of an mmx program into fused kernel launches";
  let description = [{
    Rewrites a producer launch whose output buffer has exactly one reader (and is no program
    output) into its consumer, removing the intermediate buffer:

    | producer | consumer | fused launch |
    | --- | --- | --- |
    | `scaled_add(a, b)` | `rms_norm(·, w)` | `add_rms_norm(a, b, w)` {alpha, beta, eps} |
    | `sigmoid(a)` | `mul(·, b)` or `mul(b, ·)` | `sigmoid_mul(a, b)` |
    | `silu(x)` | `lightning_attention(·)` | `lightning_attention(x)` {silu_input = 1} |

    Every backend runs the fused kernels (docs/kernels.md), so the program stays runnable on the
    CPU too.

    Before:
    ```mlir
    %h = mmx.alloc {dtype = f32, shape = ["B", "T", 64]}
    mmx.launch "scaled_add"(%n, %attn) -> (%h) {params = {alpha = 1.1 : f64, beta = 1.2 : f64}}
    %n2 = mmx.alloc {dtype = f32, shape = ["B", "T", 64]}
    mmx.launch "rms_norm"(%h, %w) -> (%n2) {params = {eps = 1.0e-05 : f64}}
    ```
    After:
    ```mlir
    %n2 = mmx.alloc {dtype = f32, shape = ["B", "T", 64]}
    mmx.launch "add_rms_norm"(%n, %attn, %w) -> (%n2)
        {params = {alpha = 1.1 : f64, beta = 1.2 : f64, eps = 1.0e-05 : f64}}
    ```
  }];
}

def TilePass : Pass<"mm-tile", "mlir::ModuleOp"> {
  let summary = "Choose per-target tile sizes for every kernel launch";
  let description = [{
    For a GPU target (`sm_80`, `sm_89`, `sm_90a`) adds `tile_*` integer params to each launch
    that runs a kernel template: `tile_threads` (block size) everywhere; `tile_block` (tokens per
    Lightning-Attention-2 block) and `tile_dv` (value columns per block) for
    `lightning_attention`; `tile_q` / `tile_k` (query / key rows per tile) for
    `softmax_attention` (bf16: the tensor-core forms on 256 threads, 128×128 tiles for wgmma on sm_90a at head_dim 128, else 128×64); `tile_m` /
    `tile_n` / `tile_k` for the grouped GEMMs of `moe`. f32 tiles are the largest whose shared
    memory fits the target (227 KB on sm_90a, 163 KB on sm_80,
    99 KB on sm_89). `linear` and `logits` go to cuBLASLt and get none. The CPU target is left
    unchanged; the CPU backend ignores tile params.

    Before: `mmx.launch "softmax_attention"(%q, %k, %v) -> (%o) {params = {head_dim = 128 : i64, ...}}`
    After (sm_89): `... {params = {head_dim = 128 : i64, ..., tile_k = 32 : i64, tile_q = 32 : i64, tile_threads = 256 : i64}}`
  }];
}

def CodegenCudaPass : Pass<"mm-codegen-cuda", "mlir::ModuleOp"> {
  let summary = "Emit the CUDA C++ translation unit that instantiates the program's kernels";
  let description = [{
    For a GPU target, gives every templated launch a `function` attribute (the cubin entry
    point; multi-kernel ops such as `moe` use it as a prefix) and sets `cuda_source` on the
    program: one translation unit that includes `kernels/*.cuh` and defines one
    `extern "C" __global__` entry per distinct instantiation (dtype, head dim and tiles as
    template arguments). `mm-serialize` compiles it with NVRTC. Needs `mm-tile` first.
    `linear` and `logits` launches get no function: the runtime runs them with cuBLASLt.

    After:
    ```mlir
    mmx.launch "rms_norm"(%x, %w) -> (%y) {function = "mm_rms_norm_f32_t256", params = {...}}
    ```
  }];
  let options = [
    Option<"dump", "dump", "bool", /*default=*/"false",
           "Print the generated CUDA source to stdout">,
  ];
}

def SerializePass : Pass<"mm-serialize", "mlir::ModuleOp"> {
  let summary = "Write the planned mmx program as a flatbuffers artifact (.mmb)";
  let description = [{
    Serializes the module's single, memory-planned `mmx.program` into the schema of
    `runtime/schema/mm_artifact.fbs` and writes it to `artifact`. The IR is unchanged.
    For a GPU target it compiles the program's `cuda_source` (from `mm-codegen-cuda`) with NVRTC
    for that architecture and embeds the cubin (`Program.cubin`); each step records its
    `function`. NVRTC (libnvrtc.so from the CUDA toolkit) is loaded on first use, so the
    compiler runs without it for the CPU target.
  }];
  let options = [
    Option<"artifact", "artifact", "std::string", /*default=*/"",
           "Path of the .mmb file to write">,
  ];
}

def ModelStatsPass : Pass<"mm-model-stats", "mlir::ModuleOp"> {
  let summary = "Count parameters and plan per-GPU memory for a parallel layout";
  let description = [{
    Works on the `mm` model function (before `mm-lower-to-mmx`), from shapes alone, and attaches
    the result to the module as `mm.model_stats`; with `report` it also prints it to stderr.

    Parameters. `total_params` counts every `mm.param` element (every expert of every layer;
    the two halves of a fused `gate_up_proj` are two disjoint params). `active_params` counts
    what one token uses: for each `mm.moe`, only `top_k` of its `E` experts.
    `active_params_non_embedding` also leaves out the embedding table and the `lm_head`
    (counted once when tied).

    Layout `tp x dp` GPUs, `ep` dividing `tp*dp` and the expert count:
    - Attention is split over `tp` by heads (Megatron): projections producing heads are
      column-parallel, the projection consuming them is row-parallel; K/V heads are split as
      `ceil(num_kv_heads/tp)` per GPU (replicated when there are fewer KV heads than `tp`). The
      lightning output norm over `H*D` channels is split with its heads.
    - The embedding table and `lm_head` are split over `tp` by vocabulary rows.
    - Routers and the hidden-size norms are replicated.
    - Experts are split over `ep`: `E/ep` whole experts per GPU.
    - `dp` replicates everything but the experts; `max-batch` is the batch of one DP replica.
    Per-GPU memory, at `max-batch` x `max-seq` with `dtype` storage:
    - `weight_bytes_per_gpu`: the weight shares above.
    - `activation_bytes_per_gpu`: the peak over the program of the bytes of live activations (an
      activation lives from its op to its last use; TP-split activations count `1/tp`), plus at
      the `mm.moe` op the expert scratch `B*T*top_k/ep * 2*I` (gate and up) and the all-to-all
      dispatch/combine buffers `2 * B*T*top_k * hidden`.
    - `lightning_state_bytes_per_gpu`: per lightning layer `B * ceil(H/tp) * D * D` fp32.
    - `kv_cache_bytes_per_gpu`: per softmax layer `2 * B * max-seq * ceil(Hkv/tp) * D` in `dtype`.
    - `total_bytes_per_gpu`: their sum.

    ```mlir
    module attributes {mm.model_stats = {active_params = ..., total_params = ...,
                                         weight_bytes_per_gpu = ..., ...}} { func.func @forward ... }
    ```
  }];
  let options = [
    Option<"tp", "tp", "int64_t", /*default=*/"1", "Tensor-parallel degree (heads, vocabulary)">,
    Option<"ep", "ep", "int64_t", /*default=*/"1", "Expert-parallel degree (divides tp*dp)">,
    Option<"dp", "dp", "int64_t", /*default=*/"1", "Data-parallel degree">,
    Option<"maxBatch", "max-batch", "int64_t", /*default=*/"1",
           "Batch of one data-parallel replica">,
    Option<"maxSeq", "max-seq", "int64_t", /*default=*/"2048", "Largest sequence length">,
    Option<"dtype", "dtype", "std::string", /*default=*/"\"bf16\"",
           "Storage type of weights, activations and the KV cache: f32, bf16 or f16">,
    Option<"report", "report", "bool", /*default=*/"true", "Print the result to stderr">,
  ];
}

#endif // MM_COMPILER_PASSES_TD
