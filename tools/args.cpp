#include "tools/args.h"

#include <cstdio>
#include <sstream>

namespace unet::cli {
namespace {

// `convert` is std::stof or std::stod (each rounds the decimal once, to its own type).
template <typename Convert>
auto parse_number(const std::string& v, const std::string& flag, const std::string& command, Convert convert) {
  std::size_t used = 0;
  decltype(convert(v, &used)) out = 0;
  try {
    out = convert(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != v.size()) throw UsageError("unet " + command + ": " + flag + " must be a number, got '" + v + "'");
  return out;
}

}  // namespace

Args::Args(std::string command, std::string description)
    : command_(std::move(command)), description_(std::move(description)) {}

Args& Args::option(const std::string& name, const std::string& value_name,
                   const std::string& fallback, const std::string& help) {
  order_.push_back(name);
  specs_[name] = {value_name, fallback, help, false};
  return *this;
}

Args& Args::flag(const std::string& name, const std::string& help) {
  order_.push_back(name);
  specs_[name] = {"", "", help, true};
  return *this;
}

bool Args::parse(int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(help().c_str(), stdout);
      return false;
    }
    if (!arg.starts_with("--")) throw UsageError("unet " + command_ + ": unexpected argument '" + arg + "' (see --help)");
    std::string name = arg.substr(2);
    std::string value;
    bool inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    auto it = specs_.find(name);
    if (it == specs_.end()) throw UsageError("unet " + command_ + ": unknown flag --" + name + " (see --help)");
    if (it->second.is_switch) {
      if (inline_value) throw UsageError("unet " + command_ + ": --" + name + " takes no value");
      values_[name] = "1";
      continue;
    }
    if (!inline_value) {
      if (i + 1 >= argc) throw UsageError("unet " + command_ + ": --" + name + " needs a value <" + it->second.value_name + ">");
      value = argv[++i];
    }
    values_[name] = value;
  }
  return true;
}

const Args::Spec& Args::spec(const std::string& name) const {
  auto it = specs_.find(name);
  if (it == specs_.end()) throw std::logic_error("flag --" + name + " was never declared");
  return it->second;
}

std::string Args::get(const std::string& name) const {
  const Spec& s = spec(name);
  auto it = values_.find(name);
  return it != values_.end() ? it->second : s.fallback;
}

void Args::set_fallback(const std::string& name, const std::string& value) {
  spec(name);
  specs_.at(name).fallback = value;
}

bool Args::has(const std::string& name) const {
  spec(name);
  return values_.count(name) > 0;
}

long long Args::get_int64(const std::string& name) const {
  const std::string v = get(name);
  std::size_t used = 0;
  long long out = 0;
  try {
    out = std::stoll(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != v.size()) throw UsageError("unet " + command_ + ": --" + name + " must be an integer, got '" + v + "'");
  return out;
}

int Args::get_int(const std::string& name) const {
  const long long v = get_int64(name);
  if (v < -2147483647LL || v > 2147483647LL) throw UsageError("unet " + command_ + ": --" + name + " is out of range");
  return int(v);
}

float Args::get_float(const std::string& name) const {
  return parse_number(get(name), "--" + name, command_, [](const std::string& v, std::size_t* used) { return std::stof(v, used); });
}

double Args::get_double(const std::string& name) const {
  return parse_number(get(name), "--" + name, command_, [](const std::string& v, std::size_t* used) { return std::stod(v, used); });
}

std::string Args::help() const {
  std::ostringstream out;
  out << "usage: unet " << command_ << " [flags]\n\n" << description_ << "\n\nflags:\n";
  for (const auto& name : order_) {
    const Spec& s = specs_.at(name);
    std::string left = "  --" + name + (s.is_switch ? "" : " <" + s.value_name + ">");
    out << left << std::string(left.size() < 30 ? 30 - left.size() : 1, ' ') << s.help;
    if (!s.is_switch && !s.fallback.empty()) out << " (default: " << s.fallback << ")";
    out << '\n';
  }
  out << "  --help                      this text\n";
  return out.str();
}

}  // namespace unet::cli
