// RUN: mm-opt %s --split-input-file --verify-diagnostics

// Tests that shape entries are integers, "B" or "T".
mmx.program @p attributes {max_batch = 1 : i64, max_seq = 8 : i64, target = "cpu"} {
  // expected-error @+1 {{expects shape entries to be integers, "B" or "T" but got "N"}}
  %a = mmx.alloc {dtype = f32, shape = ["N", 4]}
}

// -----

// Tests that weights have static shapes.
mmx.program @p attributes {max_batch = 1 : i64, max_seq = 8 : i64, target = "cpu"} {
  // expected-error @+1 {{expects a static shape but got ["T", 4]}}
  %w = mmx.weight "w" {dtype = f32, shape = ["T", 4]}
}

// -----

// Tests that buffer dtypes are ones the runtime has.
mmx.program @p attributes {max_batch = 1 : i64, max_seq = 8 : i64, target = "cpu"} {
  // expected-error @+1 {{expects dtype f32, i32, bf16 or f16 but got 'f64'}}
  %i = mmx.input "x" {dtype = f64, shape = ["B", "T"]}
}

// -----

// Tests that arena offsets are non-negative.
mmx.program @p attributes {max_batch = 1 : i64, max_seq = 8 : i64, target = "cpu"} {
  // expected-error @+1 {{expects a non-negative offset but got -256}}
  %a = mmx.alloc {dtype = f32, offset = -256 : i64, shape = [4]}
}

// -----

// Tests that programs run at least one token.
// expected-error @+1 {{expects max_batch and max_seq >= 1 but got 0 and 8}}
mmx.program @p attributes {max_batch = 0 : i64, max_seq = 8 : i64, target = "cpu"} {
}

// -----

// Tests that a sliced weight gives both slice attributes and a slice axis within its rank.
mmx.program @p attributes {max_batch = 1 : i64, max_seq = 8 : i64, target = "cpu"} {
  // expected-error @+1 {{expects slice_axis and slice_offset together but got only slice_offset}}
  %w = mmx.weight "gate_up" {dtype = f32, shape = [4, 8, 16], slice_offset = 8 : i64}
}

// -----

mmx.program @p attributes {max_batch = 1 : i64, max_seq = 8 : i64, target = "cpu"} {
  // expected-error @+1 {{expects slice_axis in [0, 3) but got 5}}
  %w = mmx.weight "gate_up" {dtype = f32, shape = [4, 8, 16], slice_axis = 5 : i64, slice_offset = 8 : i64}
}
