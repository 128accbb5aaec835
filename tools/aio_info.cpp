// aio-info: the library version, the event loop backends here and the
// OpenSSL of the TLS layer.
#include <core/aio.hpp>
#include <net/tls_info.hpp>
#include <process/subprocess.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>

namespace {

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : " ") + n;
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "aio-info: aiocpp's version, the event loop backends compiled in and usable here, and the OpenSSL "
      "it was built with and runs with"};
  bool as_json = false;
  app.add_flag("--json", as_json, "Print one JSON object");
  CLI11_PARSE(app, argc, argv);

  try {
    // What new_event_loop() picks now: AIO_BACKEND if set, else the default.
    auto loop = aio::new_event_loop();
    std::string selected(loop->backend());
    loop->close();
    const char* env = std::getenv("AIO_BACKEND");
    const char* forced_watcher = std::getenv("AIO_CHILD_WATCHER");
    // Compiled in but refused here, with the probe's reason.
    nlohmann::json unusable = nlohmann::json::object();
    for (const auto& [name, why] : aio::unusable_backends()) unusable[name] = why;
    const auto tls = aio::tls_library_info();
    if (as_json) {
      nlohmann::json out = {
          {"version", aio::version()},
          {"compiled", aio::compiled_backends()},
          {"available", aio::available_backends()},
          {"default", aio::default_backend()},
          {"unusable", unusable},
          {"selected", selected},
          {"child_watcher", aio::child_watcher()},
          {"AIO_BACKEND", env ? nlohmann::json(env) : nlohmann::json(nullptr)},
          {"tls", nlohmann::json{{"built_with", tls.built_with}, {"running", tls.running}}},
      };
      std::cout << out.dump() << '\n';
    } else {
      std::cout << "aiocpp " << aio::version() << '\n'
                << "compiled:  " << join(aio::compiled_backends()) << '\n'
                << "available: " << join(aio::available_backends()) << '\n'
                << "default:   " << aio::default_backend() << '\n';
      for (const auto& [name, why] : aio::unusable_backends())
        std::cout << "unusable:  " << name << " (" << why << ")\n";
      std::cout << "selected:  " << selected << (env && *env ? " (AIO_BACKEND)" : "") << '\n'
                << "children:  " << aio::child_watcher()
                << (forced_watcher && *forced_watcher ? " (AIO_CHILD_WATCHER)" : " (how subprocess exits are watched)")
                << '\n';
      std::cout << "tls built: " << tls.built_with << '\n' << "tls runs:  " << tls.running << '\n';
    }
  } catch (const std::exception& e) {
    std::cerr << "aio-info: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
