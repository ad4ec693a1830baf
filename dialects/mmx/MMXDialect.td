//===- MMXDialect.td - the mmx execution dialect --------------*- tablegen -*-===//
//
// The `mmx` dialect: one op is one runtime step. A program is a straight-line
// list of buffer declarations and kernel launches (collectives, copies and
// events join later), ready for memory planning and serialization.
//
//===----------------------------------------------------------------------===//

#ifndef MMX_DIALECT_TD
#define MMX_DIALECT_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"

def MMX_Dialect : Dialect {
  let name = "mmx";
  let cppNamespace = "::mmx";
  let summary = "Execution-level ops: buffers, kernel launches, program I/O";
  let description = [{
    Buffers have a symbolic shape: an array whose entries are integers (static sizes) or the
    strings "B" (batch) and "T" (sequence length), resolved at run time up to the program's
    `max_batch` / `max_seq`. Activation buffers (`mmx.alloc`) get an arena `offset` from
    `mm-plan-memory`.
  }];
  let useDefaultTypePrinterParser = 1;
}

class MMX_Op<string mnemonic, list<Trait> traits = []>
    : Op<MMX_Dialect, mnemonic, traits>;

def MMX_BufferType : TypeDef<MMX_Dialect, "Buffer"> {
  let mnemonic = "buffer";
  let summary = "a handle to a tensor in memory";
  let description = [{
    The dtype and symbolic shape live on the op that defines the buffer.
  }];
}

#endif // MMX_DIALECT_TD
