// A small command-line parser for the `unet` subcommands: --name value flags, --name switches,
// --help, and errors that name the flag and say what was expected.
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace unet::cli {

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Args {
 public:
  Args(std::string command, std::string description);

  // A flag with a value; `fallback` is shown in --help and used when the flag is absent.
  Args& option(const std::string& name, const std::string& value_name, const std::string& fallback,
               const std::string& help);
  // A switch without a value.
  Args& flag(const std::string& name, const std::string& help);

  // Returns false when --help was asked for (the help has then been printed).
  bool parse(int argc, char** argv);

  std::string get(const std::string& name) const;
  int get_int(const std::string& name) const;
  long long get_int64(const std::string& name) const;
  float get_float(const std::string& name) const;
  double get_double(const std::string& name) const;  // for values whose float rounding would matter
  bool has(const std::string& name) const;  // a switch was given, or an option was set explicitly
  // Replaces an option's fallback after parsing, for defaults known only then (a checkpoint's).
  void set_fallback(const std::string& name, const std::string& value);

  std::string help() const;

 private:
  struct Spec {
    std::string value_name, fallback, help;
    bool is_switch = false;
  };
  const Spec& spec(const std::string& name) const;

  std::string command_, description_;
  std::vector<std::string> order_;
  std::map<std::string, Spec> specs_;
  std::map<std::string, std::string> values_;
};

}  // namespace unet::cli
