//===- MMXOps.td - mmx dialect ops ----------------------------*- tablegen -*-===//

#ifndef MMX_OPS_TD
#define MMX_OPS_TD

include "MMXDialect.td"
include "mlir/IR/CommonAttrConstraints.td"
include "mlir/IR/SymbolInterfaces.td"

def MMX_ProgramOp : MMX_Op<"program", [IsolatedFromAbove, NoTerminator,
                                       SingleBlock, Symbol]> {
  let summary = "a compiled model: buffers and steps in execution order";
  let description = [{
    ```mlir
    mmx.program @forward attributes {max_batch = 2 : i64, max_seq = 64 : i64, target = "cpu"} {
      %ids = mmx.input "input_ids" {dtype = i32, shape = ["B", "T"]}
      ...
    }
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name,        // program name
                       StrAttr:$target,                 // "cpu" or a GPU arch
                       I64Attr:$max_batch,              // largest B
                       I64Attr:$max_seq,                // largest T
                       OptionalAttr<I64Attr>:$arena_bytes); // set by mm-plan-memory
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = "$sym_name attr-dict-with-keyword $body";
  let hasVerifier = 1;
}

def MMX_InputOp : MMX_Op<"input"> {
  let summary = "a buffer the caller provides";
  let description = [{
    ```mlir
    %ids = mmx.input "input_ids" {dtype = i32, shape = ["B", "T"]}
    ```
  }];
  let arguments = (ins StrAttr:$name,    // binding name
                       TypeAttr:$dtype,  // element type
                       ArrayAttr:$shape); // symbolic shape
  let results = (outs MMX_BufferType:$result);
  let assemblyFormat = "$name attr-dict";
  let hasVerifier = 1;
}

def MMX_WeightOp : MMX_Op<"weight"> {
  let summary = "a buffer bound by name from the weights";
  let description = [{
    With `slice_axis`/`slice_offset` the buffer is that slice of the named tensor (see
    `mm.param`; the artifact's `Buffer.slice_axis`/`slice_offset`).

    ```mlir
    %w = mmx.weight "model.norm.weight" {dtype = f32, shape = [64]}
    ```
  }];
  let arguments = (ins StrAttr:$name,    // checkpoint tensor name ({e} stacks experts)
                       TypeAttr:$dtype,  // element type
                       ArrayAttr:$shape, // static shape
                       OptionalAttr<I64Attr>:$slice_axis,    // axis of the named tensor to slice
                       OptionalAttr<I64Attr>:$slice_offset); // first index along slice_axis
  let results = (outs MMX_BufferType:$result);
  let assemblyFormat = "$name attr-dict";
  let hasVerifier = 1;
}

def MMX_StateOp : MMX_Op<"state"> {
  let summary = "a persistent optimizer state buffer";
  let description = [{
    Updated in place by optimizer launches and saved in training checkpoints. Zero at session
    start, except a master weight (the first input of a `store_param` launch, named
    "master:<weight>"), which starts as the loaded weight.

    ```mlir
    %m = mmx.state "adamw.m:model.norm.weight" {dtype = f32, shape = [64]}
    ```
  }];
  let arguments = (ins StrAttr:$name,    // state name
                       TypeAttr:$dtype,  // f32
                       ArrayAttr:$shape); // static shape
  let results = (outs MMX_BufferType:$result);
  let assemblyFormat = "$name attr-dict";
  let hasVerifier = 1;
}

def MMX_AllocOp : MMX_Op<"alloc"> {
  let summary = "an activation buffer in the arena";
  let description = [{
    ```mlir
    %h = mmx.alloc {dtype = f32, shape = ["B", "T", 64], offset = 0 : i64}
    ```
  }];
  let arguments = (ins TypeAttr:$dtype,              // element type
                       ArrayAttr:$shape,             // symbolic shape
                       OptionalAttr<I64Attr>:$offset); // arena offset, set by mm-plan-memory
  let results = (outs MMX_BufferType:$result);
  let assemblyFormat = "attr-dict";
  let hasVerifier = 1;
}

def MMX_LaunchOp : MMX_Op<"launch", [AttrSizedOperandSegments]> {
  let summary = "one kernel launch";
  let description = [{
    Runs catalog kernel `kernel` (docs/kernels.md) reading `ins` and writing `outs`.

    ```mlir
    mmx.launch "rms_norm" (%x, %w) -> (%y) {params = {eps = 1.0e-05 : f64}}
    ```
  }];
  let arguments = (ins StrAttr:$kernel,                // catalog kernel name
                       Variadic<MMX_BufferType>:$ins,  // buffers read
                       Variadic<MMX_BufferType>:$outs, // buffers written
                       DictionaryAttr:$params);        // kernel parameters
  let assemblyFormat = "$kernel `(` $ins `)` `->` `(` $outs `)` attr-dict";
}

def MMX_OutputOp : MMX_Op<"output"> {
  let summary = "names a buffer as a program result";
  let description = [{
    ```mlir
    mmx.output "logits" %logits
    ```
  }];
  let arguments = (ins StrAttr:$name, MMX_BufferType:$buffer);
  let assemblyFormat = "$name $buffer attr-dict";
}

#endif // MMX_OPS_TD
