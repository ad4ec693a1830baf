// Recursive-descent JSON parser; see Json.h.
#include "runtime/base/Json.h"

#include <cerrno>
#include <cstdlib>
#include <set>

namespace mm {

const JsonValue *JsonValue::get(const std::string &key) const {
  for (const auto &kv : object)
    if (kv.first == key)
      return &kv.second;
  return nullptr;
}

namespace {

constexpr int kMaxDepth = 64;

class Parser {
public:
  explicit Parser(std::string_view s) : s_(s) {}

  Status parseTop(JsonValue &out) {
    skipWs();
    MM_RETURN_IF_ERROR(parseValue(out, 0));
    skipWs();
    if (pos_ != s_.size())
      return error("unexpected trailing characters");
    return Status::ok();
  }

private:
  Status error(const std::string &m) const {
    return invalidArgument("JSON error at byte " + std::to_string(pos_) + ": " +
                           m);
  }

  void skipWs() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' ||
                                s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }

  bool consume(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) == word) {
      pos_ += word.size();
      return true;
    }
    return false;
  }

  Status parseValue(JsonValue &out, int depth) {
    if (depth > kMaxDepth)
      return error("nesting deeper than " + std::to_string(kMaxDepth));
    if (pos_ >= s_.size())
      return error("unexpected end of input");
    char c = s_[pos_];
    if (c == '{')
      return parseObject(out, depth);
    if (c == '[')
      return parseArray(out, depth);
    if (c == '"') {
      out.kind = JsonValue::Kind::String;
      return parseString(out.string);
    }
    if (c == '-' || (c >= '0' && c <= '9'))
      return parseNumber(out);
    if (literal("true")) {
      out.kind = JsonValue::Kind::Bool;
      out.boolean = true;
      return Status::ok();
    }
    if (literal("false")) {
      out.kind = JsonValue::Kind::Bool;
      return Status::ok();
    }
    if (literal("null")) {
      out.kind = JsonValue::Kind::Null;
      return Status::ok();
    }
    return error(std::string("unexpected character '") + c + "'");
  }

  Status parseObject(JsonValue &out, int depth) {
    out.kind = JsonValue::Kind::Object;
    ++pos_; // '{'
    skipWs();
    if (consume('}'))
      return Status::ok();
    std::set<std::string> seen;
    while (true) {
      skipWs();
      if (pos_ >= s_.size() || s_[pos_] != '"')
        return error("expected a string key");
      std::string key;
      MM_RETURN_IF_ERROR(parseString(key));
      if (!seen.insert(key).second)
        return error("duplicate key \"" + key + "\"");
      skipWs();
      if (!consume(':'))
        return error("expected ':'");
      skipWs();
      JsonValue v;
      MM_RETURN_IF_ERROR(parseValue(v, depth + 1));
      out.object.emplace_back(std::move(key), std::move(v));
      skipWs();
      if (consume('}'))
        return Status::ok();
      if (!consume(','))
        return error("expected ',' or '}'");
    }
  }

  Status parseArray(JsonValue &out, int depth) {
    out.kind = JsonValue::Kind::Array;
    ++pos_; // '['
    skipWs();
    if (consume(']'))
      return Status::ok();
    while (true) {
      skipWs();
      JsonValue v;
      MM_RETURN_IF_ERROR(parseValue(v, depth + 1));
      out.array.push_back(std::move(v));
      skipWs();
      if (consume(']'))
        return Status::ok();
      if (!consume(','))
        return error("expected ',' or ']'");
    }
  }

  static void appendUtf8(std::string &s, uint32_t cp) {
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else if (cp < 0x800) {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s += static_cast<char>(0xE0 | (cp >> 12));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      s += static_cast<char>(0xF0 | (cp >> 18));
      s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  Status parseHex4(uint32_t &cp) {
    if (pos_ + 4 > s_.size())
      return error("truncated \\u escape");
    cp = 0;
    for (int i = 0; i < 4; ++i) {
      char h = s_[pos_++];
      cp <<= 4;
      if (h >= '0' && h <= '9')
        cp |= h - '0';
      else if (h >= 'a' && h <= 'f')
        cp |= h - 'a' + 10;
      else if (h >= 'A' && h <= 'F')
        cp |= h - 'A' + 10;
      else
        return error("bad hex digit in \\u escape");
    }
    return Status::ok();
  }

  Status parseString(std::string &out) {
    ++pos_; // '"'
    while (true) {
      if (pos_ >= s_.size())
        return error("unterminated string");
      char c = s_[pos_++];
      if (c == '"')
        return Status::ok();
      if (static_cast<unsigned char>(c) < 0x20)
        return error("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size())
        return error("unterminated escape");
      char e = s_[pos_++];
      switch (e) {
      case '"':
      case '\\':
      case '/':
        out += e;
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        uint32_t cp = 0;
        MM_RETURN_IF_ERROR(parseHex4(cp));
        if (cp >= 0xD800 && cp < 0xDC00) {
          uint32_t lo = 0;
          if (!literal("\\u"))
            return error("unpaired surrogate");
          MM_RETURN_IF_ERROR(parseHex4(lo));
          if (lo < 0xDC00 || lo >= 0xE000)
            return error("unpaired surrogate");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp < 0xE000) {
          return error("unpaired surrogate");
        }
        appendUtf8(out, cp);
        break;
      }
      default:
        return error(std::string("bad escape '\\") + e + "'");
      }
    }
  }

  Status parseNumber(JsonValue &out) {
    size_t start = pos_;
    bool negative = consume('-');
    if (pos_ >= s_.size() || s_[pos_] < '0' || s_[pos_] > '9')
      return error("bad number");
    if (s_[pos_] == '0') {
      ++pos_;
    } else {
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9')
        ++pos_;
    }
    size_t intEnd = pos_;
    bool integral = true;
    if (consume('.')) {
      integral = false;
      if (pos_ >= s_.size() || s_[pos_] < '0' || s_[pos_] > '9')
        return error("bad number: digit expected after '.'");
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9')
        ++pos_;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      integral = false;
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-'))
        ++pos_;
      if (pos_ >= s_.size() || s_[pos_] < '0' || s_[pos_] > '9')
        return error("bad number: digit expected in exponent");
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9')
        ++pos_;
    }
    std::string text(s_.substr(start, pos_ - start));
    out.kind = JsonValue::Kind::Number;
    out.number = std::strtod(text.c_str(), nullptr);
    if (integral) {
      // Exact integer value, with overflow detection (strtoull accepts too
      // much).
      std::string_view digits = s_.substr(start + (negative ? 1 : 0),
                                          intEnd - start - (negative ? 1 : 0));
      uint64_t v = 0;
      bool overflow = false;
      for (char d : digits) {
        uint64_t digit = static_cast<uint64_t>(d - '0');
        if (v > (UINT64_MAX - digit) / 10) {
          overflow = true;
          break;
        }
        v = v * 10 + digit;
      }
      if (!overflow) {
        if (!negative) {
          out.isInteger = true;
          out.isNonNegative = true;
          out.unsignedInteger = v;
          out.integer = v <= static_cast<uint64_t>(INT64_MAX)
                            ? static_cast<int64_t>(v)
                            : INT64_MAX;
        } else if (v <= static_cast<uint64_t>(INT64_MAX) + 1) {
          out.isInteger = true;
          out.isNonNegative = v == 0;
          out.integer = v == static_cast<uint64_t>(INT64_MAX) + 1
                            ? INT64_MIN
                            : -static_cast<int64_t>(v);
        }
      }
    }
    return Status::ok();
  }

  std::string_view s_;
  size_t pos_ = 0;
};

} // namespace

StatusOr<JsonValue> parseJson(std::string_view text) {
  JsonValue v;
  Parser p(text);
  MM_RETURN_IF_ERROR(p.parseTop(v));
  return v;
}

} // namespace mm
