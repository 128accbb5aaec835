// aio-child-helper: the child of the subprocess tests where there is no
// /bin/sh (Windows, under Wine). It runs its arguments as a list of
// commands, flushing its output after each:
//   out TEXT        writes TEXT to stdout        err TEXT   the same to stderr
//   echo            copies stdin to stdout until its end
//   write N         writes N bytes ('a'..'z' repeated) to stdout
//   sleep SECONDS   sleeps                       exit N     exits with code N
//   env NAME        writes NAME's value, or "unset", and a newline
//   cwd             writes the working directory and a newline
//   argv ...        writes every argument after it, each ended by a NUL
//   ignore-ctrl     ignores Ctrl-C and Ctrl-Break (Windows)
//   orphan SECONDS  starts a copy of itself that sleeps SECONDS holding
//                   this process's stdout, and writes its pid and a newline
// Without `exit` it exits with 0. Plain C++ and Win32: it uses no aiocpp.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#ifdef _WIN32
#include <fcntl.h>
#include <io.h>
#include <windows.h>
#else
#include <unistd.h>
#endif

namespace {

void put(std::FILE* to, const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), to);
  std::fflush(to);
}

#ifdef _WIN32
BOOL WINAPI ignore(DWORD) { return TRUE; }

int orphan(const char* seconds) {
  char self[MAX_PATH] = {};
  GetModuleFileNameA(nullptr, self, MAX_PATH);
  std::string line = std::string("\"") + self + "\" sleep " + seconds;
  STARTUPINFOA startup{};
  startup.cb = sizeof startup;
  startup.dwFlags = STARTF_USESTDHANDLES;
  startup.hStdInput = GetStdHandle(STD_INPUT_HANDLE);
  startup.hStdOutput = GetStdHandle(STD_OUTPUT_HANDLE);
  startup.hStdError = GetStdHandle(STD_ERROR_HANDLE);
  PROCESS_INFORMATION info{};
  if (!CreateProcessA(nullptr, line.data(), nullptr, nullptr, TRUE, 0, nullptr, nullptr, &startup, &info)) return -1;
  CloseHandle(info.hThread);
  CloseHandle(info.hProcess);
  return static_cast<int>(info.dwProcessId);
}
#endif

}  // namespace

int main(int argc, char** argv) {
#ifdef _WIN32
  _setmode(_fileno(stdin), _O_BINARY);
  _setmode(_fileno(stdout), _O_BINARY);
  _setmode(_fileno(stderr), _O_BINARY);
#endif
  for (int i = 1; i < argc; ++i) {
    std::string command = argv[i];
    const char* arg = i + 1 < argc ? argv[i + 1] : "";
    if (command == "out" || command == "err") {
      put(command == "out" ? stdout : stderr, arg);
      ++i;
    } else if (command == "echo") {
      char buffer[65536];
      std::size_t n;
      while ((n = std::fread(buffer, 1, sizeof buffer, stdin)) > 0) std::fwrite(buffer, 1, n, stdout);
      std::fflush(stdout);
    } else if (command == "write") {
      std::string chunk(65536, 'a');
      for (std::size_t k = 0; k < chunk.size(); ++k) chunk[k] = static_cast<char>('a' + k % 26);
      for (long long left = std::atoll(arg); left > 0; left -= static_cast<long long>(chunk.size()))
        std::fwrite(chunk.data(), 1, static_cast<std::size_t>(std::min<long long>(left, chunk.size())), stdout);
      std::fflush(stdout);
      ++i;
    } else if (command == "sleep") {
      std::this_thread::sleep_for(std::chrono::duration<double>(std::atof(arg)));
      ++i;
    } else if (command == "exit") {
      std::fflush(nullptr);
      return std::atoi(arg);
    } else if (command == "env") {
      const char* value = std::getenv(arg);
      put(stdout, std::string(value ? value : "unset") + "\n");
      ++i;
    } else if (command == "cwd") {
      char buffer[4096] = {};
#ifdef _WIN32
      GetCurrentDirectoryA(sizeof buffer, buffer);
#else
      if (!getcwd(buffer, sizeof buffer)) buffer[0] = 0;
#endif
      put(stdout, std::string(buffer) + "\n");
    } else if (command == "argv") {
      for (++i; i < argc; ++i) put(stdout, std::string(argv[i]) + '\0');
    } else if (command == "ignore-ctrl") {
#ifdef _WIN32
      SetConsoleCtrlHandler(ignore, TRUE);
#endif
    } else if (command == "orphan") {
#ifdef _WIN32
      put(stdout, std::to_string(orphan(arg)) + "\n");
#endif
      ++i;
    } else {
      put(stderr, "aio-child-helper: unknown command " + command + "\n");
      return 120;
    }
  }
  return 0;
}
