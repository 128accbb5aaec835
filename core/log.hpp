// Where the loop reports what it cannot throw: slow callbacks in debug mode,
// exceptions no one handled, executor shutdown overruns. asyncio sends these
// to the "asyncio" logger; aiocpp sends them to one process-wide sink.
#pragma once

#include <functional>
#include <string_view>

namespace aio {

enum class LogLevel { debug, info, warning, error };

using LogSink = std::function<void(LogLevel, std::string_view message)>;

// Installs `sink` (thread-safe) and returns the previous one. An empty sink
// restores the default, which writes "aio: LEVEL: message" lines to stderr.
LogSink set_log_sink(LogSink sink);

// Sends one message to the sink; safe from any thread.
void log(LogLevel level, std::string_view message);

}  // namespace aio
