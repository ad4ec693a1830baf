//===- Import.cpp - Hugging Face MiniMax config -> mm module --------------===//
//
// Field names follow both config.json schemas: the current transformers one
// (layer_types, *_alpha_factor, rope_parameters) and the original
// MiniMax-Text-01 one (attn_type_list, layernorm_*_alpha, rope_theta,
// rotary_dim). A field that is neither known nor ignorable is an error, so
// typos never pass silently.
//
//===----------------------------------------------------------------------===//

#include "mm/Compiler/Import.h"
#include "mm/MMOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

#include <cmath>
#include <set>

using namespace mlir;
using llvm::json::Object;
using JValue = llvm::json::Value;

namespace {

/// Fields that describe training, tokenisation or serving and do not change
/// the forward graph.
const std::set<std::string> kIgnoredFields = {"architectures",
                                              "model_type",
                                              "transformers_version",
                                              "torch_dtype",
                                              "dtype",
                                              "bos_token_id",
                                              "eos_token_id",
                                              "pad_token_id",
                                              "initializer_range",
                                              "use_cache",
                                              "output_router_logits",
                                              "router_aux_loss_coef",
                                              "router_jitter_noise",
                                              "attention_dropout",
                                              "sliding_window",
                                              "max_position_embeddings",
                                              "auto_map",
                                              "tokenizer_class",
                                              "_name_or_path",
                                              "postnorm",
                                              "shared_intermediate_size",
                                              "shared_moe_mode",
                                              "attention_bias",
                                              "mlp_bias",
                                              "use_sliding_window",
                                              "max_window_layers",
                                              "bias",
                                              "residual_post_norm",
                                              "layer_types_note",
                                              "output_attentions",
                                              "output_hidden_states",
                                              "return_dict",
                                              "tie_encoder_decoder",
                                              "is_encoder_decoder",
                                              "chunk_size_feed_forward",
                                              "rope_scaling",
                                              "hidden_act"};

/// Ignorable fields that describe a different graph unless they hold the value
/// the MiniMax graph assumes (or null): each entry is the field and the JSON
/// text of the values allowed.
const std::pair<const char *, std::vector<const char *>> kFixedFields[] = {
    {"hidden_act", {"\"silu\""}},
    {"sliding_window", {"null"}},
    {"use_sliding_window", {"false"}},
    {"rope_scaling", {"null"}},
    {"attention_bias", {"false"}},
    {"mlp_bias", {"false"}},
    {"bias", {"false"}},
    {"postnorm", {"true"}},
    {"shared_intermediate_size", {"0", "null"}},
};

class ConfigReader {
public:
  ConfigReader(const Object &json, std::string &error)
      : json(json), error(error) {}

  bool fail(const std::string &message) {
    if (error.empty())
      error = message;
    return false;
  }

  const JValue *get(llvm::StringRef key) {
    used.insert(key.str());
    return json.get(key);
  }

  bool integer(llvm::StringRef key, int64_t &out, bool required) {
    const JValue *v = get(key);
    if (!v)
      return required ? fail("missing field '" + key.str() + "'") : true;
    auto i = v->getAsInteger();
    if (!i)
      return fail("field '" + key.str() + "' must be an integer");
    out = *i;
    return true;
  }

  bool number(llvm::StringRef key, double &out) {
    const JValue *v = get(key);
    if (!v)
      return true;
    auto d = v->getAsNumber();
    if (!d)
      return fail("field '" + key.str() + "' must be a number");
    out = *d;
    return true;
  }

  /// Reads the first present of two synonymous fields; both present and
  /// different is a contradiction.
  bool numberEither(llvm::StringRef current, llvm::StringRef legacy,
                    double &out) {
    double a = NAN, b = NAN;
    if (!number(current, a) || !number(legacy, b))
      return false;
    if (!std::isnan(a) && !std::isnan(b) && a != b)
      return fail("fields '" + current.str() + "' and '" + legacy.str() +
                  "' contradict each other");
    if (!std::isnan(a))
      out = a;
    else if (!std::isnan(b))
      out = b;
    return true;
  }

  bool checkFixed() {
    for (const auto &[key, allowed] : kFixedFields) {
      const JValue *v = json.get(key);
      if (!v)
        continue;
      std::string text;
      llvm::raw_string_ostream os(text);
      os << *v;
      if (!llvm::is_contained(allowed, llvm::StringRef(text))) {
        std::string want;
        for (const char *a : allowed)
          want += std::string(want.empty() ? "" : " or ") + a;
        return fail("field '" + std::string(key) + "' is " + text +
                    " but the MiniMax graph needs " + want);
      }
    }
    return true;
  }

  bool checkUnknown() {
    if (!checkFixed())
      return false;
    for (const auto &kv : json) {
      std::string key = kv.first.str();
      if (!used.count(key) && !kIgnoredFields.count(key))
        return fail("unknown field '" + key + "'");
    }
    return true;
  }

private:
  const Object &json;
  std::string &error;
  std::set<std::string> used;
};

} // namespace

bool mm::parseModelConfig(const Object &json, ModelConfig &c,
                          std::string &error) {
  ConfigReader r(json, error);
  if (!r.integer("vocab_size", c.vocabSize, true) ||
      !r.integer("hidden_size", c.hiddenSize, true) ||
      !r.integer("intermediate_size", c.intermediateSize, true) ||
      !r.integer("num_hidden_layers", c.numLayers, true) ||
      !r.integer("num_attention_heads", c.numHeads, true))
    return false;
  c.numKvHeads = c.numHeads;
  c.headDim = c.numHeads > 0 ? c.hiddenSize / c.numHeads : 0;
  c.numExperts = 1;
  c.topK = 1;
  if (!r.integer("num_key_value_heads", c.numKvHeads, false) ||
      !r.integer("head_dim", c.headDim, false) ||
      !r.integer("num_local_experts", c.numExperts, false) ||
      !r.integer("num_experts_per_tok", c.topK, true) ||
      !r.integer("block_size", c.blockSize, false))
    return false;
  // transformers accepts `num_experts` as an alias of num_local_experts.
  int64_t aliasExperts = -1;
  if (!r.integer("num_experts", aliasExperts, false))
    return false;
  if (aliasExperts >= 0 && json.get("num_local_experts") &&
      aliasExperts != c.numExperts)
    return r.fail("fields 'num_local_experts' and 'num_experts' contradict "
                  "each other");
  if (aliasExperts >= 0)
    c.numExperts = aliasExperts;
  if (!json.get("num_local_experts") && aliasExperts < 0)
    return r.fail("missing field 'num_local_experts'");
  if (!r.number("rms_norm_eps", c.rmsNormEps))
    return false;
  if (const JValue *tie = r.get("tie_word_embeddings")) {
    if (!tie->getAsBoolean())
      return r.fail("field 'tie_word_embeddings' must be a bool");
    c.tieWordEmbeddings = *tie->getAsBoolean();
  }

  // Layer kinds.
  const JValue *types = r.get("layer_types");
  const JValue *legacyTypes = r.get("attn_type_list");
  std::vector<bool> fromTypes, fromLegacy;
  if (types) {
    const auto *arr = types->getAsArray();
    if (!arr)
      return r.fail("field 'layer_types' must be an array");
    for (const JValue &t : *arr) {
      auto s = t.getAsString();
      if (s == llvm::StringRef("linear_attention"))
        fromTypes.push_back(true);
      else if (s == llvm::StringRef("full_attention"))
        fromTypes.push_back(false);
      else
        return r.fail("field 'layer_types' has an entry that is "
                      "neither \"linear_attention\" nor \"full_attention\"");
    }
  }
  if (legacyTypes) {
    const auto *arr = legacyTypes->getAsArray();
    if (!arr)
      return r.fail("field 'attn_type_list' must be an array");
    for (const JValue &t : *arr) {
      auto i = t.getAsInteger();
      if (!i || (*i != 0 && *i != 1))
        return r.fail("field 'attn_type_list' must hold 0 "
                      "(lightning) or 1 (softmax)");
      fromLegacy.push_back(*i == 0);
    }
  }
  if (types && legacyTypes && fromTypes != fromLegacy)
    return r.fail("fields 'layer_types' and 'attn_type_list' "
                  "contradict each other");
  c.isLinearLayer = types ? fromTypes : fromLegacy;
  if (!types && !legacyTypes)
    c.isLinearLayer.assign(c.numLayers, false);
  if ((int64_t)c.isLinearLayer.size() != c.numLayers)
    return r.fail(
        "field '" + std::string(types ? "layer_types" : "attn_type_list") +
        "' has " + std::to_string(c.isLinearLayer.size()) +
        " entries but num_hidden_layers is " + std::to_string(c.numLayers));

  // Residual scaling factors.
  if (!r.numberEither("linear_attn_alpha_factor",
                      "layernorm_linear_attention_alpha", c.linearAlpha) ||
      !r.numberEither("linear_attn_beta_factor",
                      "layernorm_linear_attention_beta", c.linearBeta) ||
      !r.numberEither("full_attn_alpha_factor",
                      "layernorm_full_attention_alpha", c.fullAlpha) ||
      !r.numberEither("full_attn_beta_factor", "layernorm_full_attention_beta",
                      c.fullBeta) ||
      !r.numberEither("mlp_alpha_factor", "layernorm_mlp_alpha", c.mlpAlpha) ||
      !r.numberEither("mlp_beta_factor", "layernorm_mlp_beta", c.mlpBeta))
    return false;

  // RoPE: theta from rope_parameters or the legacy rope_theta; rotary width
  // from rotary_dim or partial_rotary_factor, else the whole head.
  double theta = NAN, partial = NAN;
  if (const JValue *rp = r.get("rope_parameters")) {
    const Object *o = rp->getAsObject();
    if (!o)
      return r.fail("field 'rope_parameters' must be an object");
    for (const auto &kv : *o) {
      llvm::StringRef key = kv.first;
      if (key == "rope_theta") {
        if (!kv.second.getAsNumber())
          return r.fail("'rope_parameters.rope_theta' must be a "
                        "number");
        theta = *kv.second.getAsNumber();
      } else if (key == "partial_rotary_factor") {
        if (!kv.second.getAsNumber())
          return r.fail("'rope_parameters.partial_rotary_factor' "
                        "must be a number");
        partial = *kv.second.getAsNumber();
      } else if (key == "rope_type") {
        if (kv.second.getAsString() != llvm::StringRef("default"))
          return r.fail("'rope_parameters.rope_type' must be "
                        "\"default\" (scaled RoPE is not supported)");
      } else {
        return r.fail("unknown field 'rope_parameters." + key.str() + "'");
      }
    }
  }
  double legacyTheta = NAN;
  if (!r.number("rope_theta", legacyTheta))
    return false;
  if (!std::isnan(theta) && !std::isnan(legacyTheta) && theta != legacyTheta)
    return r.fail("fields 'rope_parameters.rope_theta' and "
                  "'rope_theta' contradict each other");
  c.ropeTheta = !std::isnan(theta)         ? theta
                : !std::isnan(legacyTheta) ? legacyTheta
                                           : 10000.0;
  double legacyPartial = NAN;
  if (!r.number("partial_rotary_factor", legacyPartial))
    return false;
  if (std::isnan(partial))
    partial = legacyPartial;
  c.rotaryDim = c.headDim;
  if (!std::isnan(partial))
    c.rotaryDim = (int64_t)std::llround(c.headDim * partial);
  int64_t rotaryDim = -1;
  if (!r.integer("rotary_dim", rotaryDim, false))
    return false;
  if (rotaryDim >= 0) {
    if (!std::isnan(partial) && rotaryDim != c.rotaryDim)
      return r.fail("fields 'rotary_dim' and "
                    "'partial_rotary_factor' contradict each other");
    c.rotaryDim = rotaryDim;
  }

  // Sanity of the values themselves.
  auto positive = [&](const char *name, int64_t v) {
    return v > 0 || r.fail(std::string("field '") + name +
                           "' must be > 0 but is " + std::to_string(v));
  };
  if (!positive("vocab_size", c.vocabSize) ||
      !positive("hidden_size", c.hiddenSize) ||
      !positive("intermediate_size", c.intermediateSize) ||
      !positive("num_hidden_layers", c.numLayers) ||
      !positive("num_attention_heads", c.numHeads) ||
      !positive("num_key_value_heads", c.numKvHeads) ||
      !positive("head_dim", c.headDim) ||
      !positive("num_local_experts", c.numExperts) ||
      !positive("num_experts_per_tok", c.topK) ||
      !positive("block_size", c.blockSize))
    return false;
  if (c.numHeads % c.numKvHeads != 0)
    return r.fail("num_key_value_heads (" + std::to_string(c.numKvHeads) +
                  ") must divide num_attention_heads (" +
                  std::to_string(c.numHeads) + ")");
  if (c.topK > c.numExperts)
    return r.fail("num_experts_per_tok (" + std::to_string(c.topK) +
                  ") exceeds num_local_experts (" +
                  std::to_string(c.numExperts) + ")");
  if (c.rotaryDim <= 0 || c.rotaryDim % 2 || c.rotaryDim > c.headDim)
    return r.fail("rotary_dim " + std::to_string(c.rotaryDim) +
                  " must be even and within head_dim " +
                  std::to_string(c.headDim));
  if (!(c.rmsNormEps > 0))
    return r.fail("field 'rms_norm_eps' must be > 0");
  return r.checkUnknown();
}

namespace {

class ModelBuilder {
public:
  ModelBuilder(MLIRContext *ctx, const mm::ModelConfig &c,
               mm::TensorShapes *expected)
      : ctx(ctx), c(c), expected(expected), b(ctx), f32(b.getF32Type()) {}

  OwningOpRef<ModuleOp> build() {
    auto module = ModuleOp::create(UnknownLoc::get(ctx));
    b.setInsertionPointToEnd(module.getBody());
    int64_t dyn = ShapedType::kDynamic;
    auto idsType = RankedTensorType::get({dyn, dyn}, b.getI32Type());
    auto fnType = b.getFunctionType({idsType}, {act(c.vocabSize)});
    auto fn = func::FuncOp::create(b, loc("model"), c.name, fnType);
    fn.setArgAttr(0, "mm.name", b.getStringAttr("input_ids"));
    fn.setResultAttr(0, "mm.name", b.getStringAttr("logits"));
    b.setInsertionPointToStart(fn.addEntryBlock());

    Value ids = fn.getArgument(0);
    Value embed =
        param("model.embed_tokens.weight", {c.vocabSize, c.hiddenSize});
    Value h = mm::EmbeddingOp::create(b, loc("model.embed_tokens"),
                                      act(c.hiddenSize), ids, embed);
    for (int64_t l = 0; l < c.numLayers; ++l)
      h = layer(h, l);
    h = rmsNorm(h, "model.norm", c.hiddenSize, c.rmsNormEps);
    Value head = c.tieWordEmbeddings
                     ? embed
                     : param("lm_head.weight", {c.vocabSize, c.hiddenSize});
    Value logits =
        mm::LogitsOp::create(b, loc("lm_head"), act(c.vocabSize), h, head);
    func::ReturnOp::create(b, loc("model"), logits);
    return module;
  }

private:
  IntegerAttr i64(int64_t v) { return b.getI64IntegerAttr(v); }
  FloatAttr f64(double v) { return b.getF64FloatAttr(v); }

  Location loc(const std::string &name) {
    return NameLoc::get(b.getStringAttr(name));
  }

  RankedTensorType act(int64_t n) {
    return RankedTensorType::get(
        {ShapedType::kDynamic, ShapedType::kDynamic, n}, f32);
  }

  Value param(const std::string &name, llvm::ArrayRef<int64_t> shape) {
    if (expected) {
      size_t at = name.find("{e}");
      if (at == std::string::npos)
        (*expected)[name] = shape.vec();
      else
        for (int64_t e = 0; e < shape[0]; ++e)
          (*expected)[std::string(name).replace(at, 3, std::to_string(e))] =
              shape.drop_front().vec();
    }
    return mm::ParamOp::create(b, loc(name), RankedTensorType::get(shape, f32),
                               name, IntegerAttr(), IntegerAttr());
  }

  /// Rows [offset, offset + shape[axis]) along `axis` of the tensor `name`,
  /// whose whole shape is `full`.
  Value slicedParam(const std::string &name, llvm::ArrayRef<int64_t> full,
                    llvm::ArrayRef<int64_t> shape, int64_t axis,
                    int64_t offset) {
    if (expected)
      (*expected)[name] = full.vec();
    return mm::ParamOp::create(b, loc(name), RankedTensorType::get(shape, f32),
                               name, i64(axis), i64(offset));
  }

  Value rmsNorm(Value x, const std::string &prefix, int64_t n, double eps) {
    Value w = param(prefix + ".weight", {n});
    return mm::RMSNormOp::create(b, loc(prefix), x.getType(), x, w,
                                 b.getF64FloatAttr(eps));
  }

  Value linear(Value x, const std::string &prefix, int64_t out, int64_t in) {
    Value w = param(prefix + ".weight", {out, in});
    return mm::LinearOp::create(b, loc(prefix), act(out), x, w);
  }

  Value layer(Value x, int64_t l) {
    std::string p = "model.layers." + std::to_string(l);
    int64_t hd = c.hiddenSize, heads = c.numHeads, d = c.headDim;
    Value n = rmsNorm(x, p + ".input_layernorm", hd, c.rmsNormEps);
    Value attn;
    double alpha, beta;
    std::string a = p + ".self_attn";
    if (c.isLinearLayer[l]) {
      Value qkv = linear(n, a + ".qkv_proj", 3 * heads * d, hd);
      qkv = mm::SiluOp::create(b, loc(a + ".act"), qkv);
      Value o = mm::LightningAttentionOp::create(b, loc(a), act(heads * d), qkv,
                                                 heads, d, c.blockSize, l,
                                                 c.numLayers);
      o = rmsNorm(o, a + ".norm", heads * d, 1e-6);
      Value gate = linear(n, a + ".output_gate", heads * d, hd);
      gate = mm::SigmoidOp::create(b, loc(a + ".output_gate"), gate);
      o = mm::MulOp::create(b, loc(a + ".gating"), gate, o);
      attn = linear(o, a + ".out_proj", hd, heads * d);
      alpha = c.linearAlpha;
      beta = c.linearBeta;
    } else {
      int64_t kv = c.numKvHeads;
      Value q = linear(n, a + ".q_proj", heads * d, hd);
      Value k = linear(n, a + ".k_proj", kv * d, hd);
      Value v = linear(n, a + ".v_proj", kv * d, hd);
      q = mm::RopeOp::create(b, loc(a + ".rope_q"), q.getType(), q, i64(heads),
                             i64(d), i64(c.rotaryDim), f64(c.ropeTheta));
      k = mm::RopeOp::create(b, loc(a + ".rope_k"), k.getType(), k, i64(kv),
                             i64(d), i64(c.rotaryDim), f64(c.ropeTheta));
      Value o = mm::SoftmaxAttentionOp::create(b, loc(a), act(heads * d), q, k,
                                               v, i64(heads), i64(kv), i64(d),
                                               f64(1.0 / std::sqrt((double)d)));
      attn = linear(o, a + ".o_proj", hd, heads * d);
      alpha = c.fullAlpha;
      beta = c.fullBeta;
    }
    Value h = mm::ScaledAddOp::create(b, loc(p + ".attn_residual"), n.getType(),
                                      n, attn, b.getF64FloatAttr(alpha),
                                      b.getF64FloatAttr(beta));
    n = rmsNorm(h, p + ".post_attention_layernorm", hd, c.rmsNormEps);
    mm::MoENaming naming =
        c.moeNaming.empty() ? mm::MoENaming() : c.moeNaming[l];
    std::string m = p + "." + naming.expertsPrefix;
    int64_t e = c.numExperts, ffn = c.intermediateSize;
    Value router =
        param(p + "." + naming.routerPrefix + ".gate.weight", {e, hd});
    Value w1, w2, w3;
    if (naming.fused) {
      std::string gateUp = m + ".experts.gate_up_proj";
      w1 = slicedParam(gateUp, {e, 2 * ffn, hd}, {e, ffn, hd}, 1, 0);
      w3 = slicedParam(gateUp, {e, 2 * ffn, hd}, {e, ffn, hd}, 1, ffn);
      w2 = param(m + ".experts.down_proj", {e, hd, ffn});
    } else {
      w1 = param(m + ".experts.{e}.w1.weight", {e, ffn, hd});
      w2 = param(m + ".experts.{e}.w2.weight", {e, hd, ffn});
      w3 = param(m + ".experts.{e}.w3.weight", {e, ffn, hd});
    }
    Value moe = mm::MoEOp::create(b, loc(m), n.getType(), n, router, w1, w2, w3,
                                  c.topK);
    return mm::ScaledAddOp::create(b, loc(p + ".mlp_residual"), n.getType(), n,
                                   moe, b.getF64FloatAttr(c.mlpAlpha),
                                   b.getF64FloatAttr(c.mlpBeta));
  }

  MLIRContext *ctx;
  const mm::ModelConfig &c;
  mm::TensorShapes *expected;
  OpBuilder b;
  Type f32;
};

} // namespace

OwningOpRef<ModuleOp> mm::buildModel(MLIRContext *ctx,
                                     const ModelConfig &config,
                                     TensorShapes *expected) {
  ctx->loadDialect<mm::MMDialect, func::FuncDialect>();
  return ModelBuilder(ctx, config, expected).build();
}

//===----------------------------------------------------------------------===//
// Checkpoint headers
//===----------------------------------------------------------------------===//

namespace {

std::string dimsText(const std::vector<int64_t> &dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i)
    s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

/// "model.layers.<l>.<rest>" -> l, or -1.
int64_t layerOf(llvm::StringRef name, llvm::StringRef &rest) {
  if (!name.consume_front("model.layers."))
    return -1;
  auto [index, tail] = name.split('.');
  int64_t l;
  if (index.getAsInteger(10, l))
    return -1;
  rest = tail;
  return l;
}

} // namespace

bool mm::detectMoENaming(const CheckpointHeaders &headers, ModelConfig &c,
                         std::string &error) {
  auto has = [&](const std::string &n) { return headers.tensors.count(n) > 0; };
  static const char *kPrefixes[] = {"block_sparse_moe", "mlp"};
  c.moeNaming.assign(c.numLayers, MoENaming());
  for (int64_t l = 0; l < c.numLayers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    auto routerFor = [&](const std::string &prefix) -> std::string {
      if (has(p + prefix + ".gate.weight"))
        return prefix;
      for (const char *other : kPrefixes)
        if (has(p + other + ".gate.weight"))
          return other;
      return prefix;
    };
    std::vector<std::pair<MoENaming, std::string>> found;
    for (const char *prefix : kPrefixes) {
      std::string e = p + prefix + ".experts.";
      for (bool fused : {true, false}) {
        std::string marker = e + (fused ? "gate_up_proj" : "0.w1.weight");
        std::string other = e + (fused ? "down_proj" : "0.w2.weight");
        if (!has(marker) && !has(other))
          continue;
        MoENaming n;
        n.expertsPrefix = prefix;
        n.routerPrefix = routerFor(prefix);
        n.fused = fused;
        found.emplace_back(n, has(marker) ? marker : other);
      }
    }
    if (found.empty()) {
      error = headers.description + ": no expert weights for layer " +
              std::to_string(l) + " (looked for '" + p +
              "block_sparse_moe.experts.0.w1.weight', '" + p +
              "mlp.experts.gate_up_proj' and their variants)";
      return false;
    }
    if (found.size() > 1) {
      error = headers.description + ": layer " + std::to_string(l) +
              " names its experts two ways: '" + found[0].second + "' and '" +
              found[1].second + "'";
      return false;
    }
    c.moeNaming[l] = found.front().first;
  }
  return true;
}

bool mm::checkCheckpoint(const ModelConfig &c, const TensorShapes &expected,
                         const CheckpointHeaders &headers, std::string &error) {
  for (const auto &[name, t] : headers.tensors) {
    if (expected.count(name))
      continue;
    llvm::StringRef rest;
    int64_t l = layerOf(name, rest);
    auto fail = [&](const std::string &why) {
      error = t.file + ": tensor '" + name + "' " + why;
      return false;
    };
    if (l >= c.numLayers)
      return fail("belongs to layer " + std::to_string(l) +
                  " but config.json has num_hidden_layers = " +
                  std::to_string(c.numLayers));
    // transformers saves the lightning decay tables it derives from the
    // config; they must agree with it, and are otherwise not needed.
    if (l >= 0 && c.isLinearLayer[l]) {
      std::vector<int64_t> want;
      if (rest == "self_attn.slope_rate")
        want = {c.numHeads, 1, 1};
      else if (rest == "self_attn.query_decay" || rest == "self_attn.key_decay")
        want = {c.numHeads, c.blockSize, 1};
      else if (rest == "self_attn.diagonal_decay")
        want = {1, c.numHeads, c.blockSize, c.blockSize};
      if (!want.empty()) {
        if (t.shape != want)
          return fail("has shape " + dimsText(t.shape) + " but block_size " +
                      std::to_string(c.blockSize) +
                      " and num_attention_heads " + std::to_string(c.numHeads) +
                      " of config.json give " + dimsText(want));
        continue;
      }
    }
    if (name == "lm_head.weight" && c.tieWordEmbeddings)
      continue; // some tied checkpoints store the shared table twice
    if (l >= 0) {
      // An expert beyond num_local_experts is the common contradiction.
      llvm::StringRef afterPrefix = rest;
      if (afterPrefix.consume_front("block_sparse_moe.experts.") ||
          afterPrefix.consume_front("mlp.experts.")) {
        int64_t e;
        if (!afterPrefix.split('.').first.getAsInteger(10, e) &&
            e >= c.numExperts)
          return fail("is expert " + std::to_string(e) +
                      " but config.json has num_local_experts = " +
                      std::to_string(c.numExperts));
      }
    }
    return fail("is not used by the model config.json describes (an extra "
                "or misnamed weight)");
  }
  for (const auto &[name, shape] : expected) {
    auto it = headers.tensors.find(name);
    if (it == headers.tensors.end()) {
      error = headers.description + ": tensor '" + name +
              "' is missing (the config needs it with shape " +
              dimsText(shape) + ")";
      return false;
    }
    const TensorInfo &t = it->second;
    if (t.dtype != "F32" && t.dtype != "BF16" && t.dtype != "F16") {
      error = t.file + ": tensor '" + name + "' has dtype " + t.dtype +
              " but weights must be F32, BF16 or F16";
      return false;
    }
    if (t.shape != shape) {
      error = t.file + ": tensor '" + name + "' has shape " +
              dimsText(t.shape) + " but the config needs " + dimsText(shape);
      // Routers and fused experts lead with the expert count.
      llvm::StringRef n(name);
      if ((n.ends_with(".gate.weight") ||
           n.ends_with(".experts.gate_up_proj") ||
           n.ends_with(".experts.down_proj")) &&
          !t.shape.empty() && t.shape[0] != c.numExperts)
        error += " (config.json has num_local_experts = " +
                 std::to_string(c.numExperts) + ", the checkpoint " +
                 std::to_string(t.shape[0]) + ")";
      return false;
    }
  }
  return true;
}
