#include <core/log.hpp>

#include <cstdio>
#include <mutex>
#include <string>
#include <utility>

namespace aio {
namespace {

std::mutex sink_mutex;
LogSink sink;

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::debug:
      return "DEBUG";
    case LogLevel::info:
      return "INFO";
    case LogLevel::warning:
      return "WARNING";
    case LogLevel::error:
      return "ERROR";
  }
  return "?";
}

}  // namespace

LogSink set_log_sink(LogSink new_sink) {
  std::lock_guard lock(sink_mutex);
  return std::exchange(sink, std::move(new_sink));
}

void log(LogLevel level, std::string_view message) {
  std::lock_guard lock(sink_mutex);
  if (sink) {
    sink(level, message);
    return;
  }
  std::string line = "aio: ";
  line += level_name(level);
  line += ": ";
  line += message;
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace aio
