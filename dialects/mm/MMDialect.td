//===- MMDialect.td - the mm model dialect -------------------*- tablegen -*-===//
//
// The `mm` dialect: tensor-level ops of a MiniMax-style hybrid decoder.
//
//===----------------------------------------------------------------------===//

#ifndef MM_DIALECT_TD
#define MM_DIALECT_TD

include "mlir/IR/OpBase.td"

def MM_Dialect : Dialect {
  let name = "mm";
  let cppNamespace = "::mm";
  let summary = "Tensor-level ops of hybrid lightning/softmax-attention MoE models";
  let description = [{
    The `mm` dialect expresses a whole model as a graph of tensor ops on ranked tensors.
    Activations are `[B, T, N]`: batch and sequence length are dynamic (`?`) and resolved at
    run time up to maxima fixed at compile time; every other dimension is static. Weights are
    named by `mm.param`. Attention ops take heads flattened into the last dimension
    (`[B, T, H*D]`) and carry the head layout as attributes, so no reshapes are needed.
  }];
}

// Base class of every mm op.
class MM_Op<string mnemonic, list<Trait> traits = []>
    : Op<MM_Dialect, mnemonic, traits>;

#endif // MM_DIALECT_TD
