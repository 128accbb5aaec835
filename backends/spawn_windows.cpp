// backends/spawn.hpp on Windows: CreateProcessW, whose only inherited
// handles are the child's three standard streams (copies made for that one
// call, named in PROC_THREAD_ATTRIBUTE_HANDLE_LIST), and the process handle
// as the SpawnedChild's handle, which the proactor waits on.
#define _CRT_RAND_S  // rand_s in stdlib.h
#include <backends/spawn.hpp>
#include <backends/syscall.hpp>
#include <backends/windows_handle.hpp>

#include <windows.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cwctype>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace aio::detail {
namespace {

// The pipes' buffer sizes (asyncio uses 8 KiB; more moves large outputs in
// fewer completions).
constexpr DWORD pipe_buffer = 64 * 1024;

struct AttributeListDeleter {
  void operator()(LPPROC_THREAD_ATTRIBUTE_LIST list) const noexcept { DeleteProcThreadAttributeList(list); }
};

HANDLE as_handle(fd_t fd) noexcept { return reinterpret_cast<HANDLE>(fd); }
fd_t as_fd(HANDLE handle) noexcept { return reinterpret_cast<fd_t>(handle); }

[[noreturn]] void throw_last_error(const std::string& what) { throw_os_error(static_cast<int>(GetLastError()), what); }

std::wstring widen(const std::string& text, const char* what) {
  if (text.empty()) return {};
  int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, text.data(), static_cast<int>(text.size()), nullptr, 0);
  if (n <= 0) throw std::invalid_argument(std::string("subprocess: ") + what + " is not valid UTF-8");
  std::wstring wide(static_cast<std::size_t>(n), L'\0');
  MultiByteToWideChar(CP_UTF8, 0, text.data(), static_cast<int>(text.size()), wide.data(), n);
  return wide;
}

std::wstring lower(std::wstring text) {
  for (wchar_t& c : text) c = static_cast<wchar_t>(std::towlower(c));
  return text;
}

// argv[0] as the C runtime reads it: up to the next blank unless quoted,
// with no escapes (a path cannot hold a '"').
void append_program(std::wstring& line, const std::wstring& program) {
  if (program.find(L'"') != std::wstring::npos)
    throw std::invalid_argument("subprocess: the program contains a '\"', which no Windows path can");
  bool quote = program.empty() || program.find_first_of(L" \t") != std::wstring::npos;
  if (quote) line += L'"';
  line += program;
  if (quote) line += L'"';
}

// One argument so that the C runtime's parser (and CommandLineToArgvW)
// reads it back unchanged: backslashes count only before a '"'.
void append_argument(std::wstring& line, const std::wstring& arg) {
  if (!arg.empty() && arg.find_first_of(L" \t\n\v\"") == std::wstring::npos) {
    line += arg;
    return;
  }
  line += L'"';
  for (auto it = arg.begin();; ++it) {
    std::size_t backslashes = 0;
    while (it != arg.end() && *it == L'\\') ++it, ++backslashes;
    if (it == arg.end()) {
      line.append(backslashes * 2, L'\\');  // the closing quote follows
      break;
    }
    line.append(*it == L'"' ? backslashes * 2 + 1 : backslashes, L'\\');
    line += *it;
  }
  line += L'"';
}

// cmd.exe does not parse its command line as the C runtime does: what
// follows /c goes to it verbatim inside one pair of quotes, as CPython's
// shell=True writes it (`cmd.exe /c "..."`), which cmd strips again.
bool is_shell_command(const SpawnRequest& request) {
  if (request.args.size() != 3 || lower(widen(request.args[1], "an argument")) != L"/c") return false;
  std::wstring program = lower(widen(request.program, "the program"));
  std::size_t slash = program.find_last_of(L"\\/");
  std::wstring name = slash == std::wstring::npos ? program : program.substr(slash + 1);
  return name == L"cmd.exe" || name == L"cmd";
}

std::wstring command_line(const SpawnRequest& request) {
  std::wstring line;
  append_program(line, widen(request.program, "the program"));
  if (is_shell_command(request)) return line + L" /c \"" + widen(request.args[2], "the command") + L"\"";
  for (std::size_t i = 1; i < request.args.size(); ++i) {
    line += L' ';
    append_argument(line, widen(request.args[i], "an argument"));
  }
  return line;
}

// "A=1\0B=2\0\0", sorted by name without regard to case, as Windows
// documents environment blocks.
std::wstring environment_block(const std::vector<std::string>& env) {
  std::vector<std::wstring> entries;
  for (const std::string& entry : env) entries.push_back(widen(entry, "an environment entry"));
  auto name = [](const std::wstring& entry) { return lower(entry.substr(0, entry.find(L'=', 1))); };
  std::stable_sort(entries.begin(), entries.end(),
                   [&](const std::wstring& a, const std::wstring& b) { return name(a) < name(b); });
  std::wstring block;
  for (const std::wstring& entry : entries) block += entry + L'\0';
  if (entries.empty()) block += L'\0';
  block += L'\0';
  return block;
}

// A handle the child inherits: a copy of `source` made inheritable for the
// one CreateProcessW call (the original stays as it was).
UniqueHandle inheritable_copy(HANDLE source, const char* what) {
  HANDLE copy = nullptr;
  if (!DuplicateHandle(GetCurrentProcess(), source, GetCurrentProcess(), &copy, 0, TRUE, DUPLICATE_SAME_ACCESS))
    throw_last_error(std::string("subprocess: DuplicateHandle (the child's ") + what + ")");
  return UniqueHandle(copy);
}

UniqueHandle open_null(bool for_writing, bool inheritable) {
  SECURITY_ATTRIBUTES attributes{sizeof(SECURITY_ATTRIBUTES), nullptr, inheritable ? TRUE : FALSE};
  HANDLE null = CreateFileW(L"NUL", for_writing ? GENERIC_WRITE : GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE,
                            &attributes, OPEN_EXISTING, 0, nullptr);
  if (null == INVALID_HANDLE_VALUE) throw_last_error("subprocess: CreateFile NUL");
  return UniqueHandle(null);
}

// Spawns are serialised: while one call's inheritable copies exist, no other
// CreateProcessW of ours runs, so no child gets another's pipe end even
// where PROC_THREAD_ATTRIBUTE_HANDLE_LIST is not honoured (Wine 8.0).
std::mutex& spawn_mutex() {
  static std::mutex mutex;
  return mutex;
}

}  // namespace

SpawnedChild spawn(const SpawnRequest& request) {
  check_spawn_request(request);
  if (!request.pass_fds.empty())
    throw std::invalid_argument("subprocess: pass_fds is POSIX only (a Windows child inherits its 3 standard streams)");
  if (request.process_group && *request.process_group != 0)
    throw std::invalid_argument("subprocess: on Windows process_group can only be 0 (a new process group), not " +
                                std::to_string(*request.process_group));
  bool new_group = request.start_new_session || request.process_group == 0;

  std::wstring line = command_line(request);
  std::wstring cwd;
  if (request.cwd) {
    cwd = widen(*request.cwd, "cwd");
    DWORD attributes = GetFileAttributesW(cwd.c_str());
    if (attributes == INVALID_FILE_ATTRIBUTES) throw_last_error("subprocess: cwd '" + *request.cwd + "'");
    if (!(attributes & FILE_ATTRIBUTE_DIRECTORY))
      throw_os_error(ERROR_DIRECTORY, "subprocess: cwd '" + *request.cwd + "'");
  }
  std::wstring env;
  if (request.env) env = environment_block(*request.env);

  std::lock_guard<std::mutex> lock(spawn_mutex());
  static constexpr const char* names[3] = {"stdin", "stdout", "stderr"};
  static constexpr DWORD std_ids[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE};
  UniqueHandle copies[3];
  HANDLE handles[3] = {};
  std::vector<HANDLE> inherited;
  for (int i = 0; i < 3; ++i) {
    if (i == 2 && request.stderr_to_stdout) {
      handles[2] = handles[1];
      continue;
    }
    HANDLE source = request.stdio[i] != -1 ? as_handle(request.stdio[i]) : GetStdHandle(std_ids[i]);
    // A parent with no such stream (a GUI program) gives the child NUL.
    copies[i] = source == nullptr || source == INVALID_HANDLE_VALUE ? open_null(i != 0, true)
                                                                    : inheritable_copy(source, names[i]);
    handles[i] = copies[i].get();
    inherited.push_back(handles[i]);
  }

  SIZE_T size = 0;
  InitializeProcThreadAttributeList(nullptr, 1, 0, &size);
  std::vector<char> storage(size);
  auto* raw_list = reinterpret_cast<LPPROC_THREAD_ATTRIBUTE_LIST>(storage.data());
  if (!InitializeProcThreadAttributeList(raw_list, 1, 0, &size))
    throw_last_error("subprocess: InitializeProcThreadAttributeList");
  std::unique_ptr<std::remove_pointer_t<LPPROC_THREAD_ATTRIBUTE_LIST>, AttributeListDeleter> list(raw_list);
  if (!UpdateProcThreadAttribute(list.get(), 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, inherited.data(),
                                 inherited.size() * sizeof(HANDLE), nullptr, nullptr))
    throw_last_error("subprocess: UpdateProcThreadAttribute (the handle list)");

  STARTUPINFOEXW startup{};
  startup.StartupInfo.cb = sizeof startup;
  startup.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
  startup.StartupInfo.hStdInput = handles[0];
  startup.StartupInfo.hStdOutput = handles[1];
  startup.StartupInfo.hStdError = handles[2];
  startup.lpAttributeList = list.get();
  DWORD flags = EXTENDED_STARTUPINFO_PRESENT | CREATE_UNICODE_ENVIRONMENT | (new_group ? CREATE_NEW_PROCESS_GROUP : 0);
  PROCESS_INFORMATION info{};
  if (!CreateProcessW(nullptr, line.data(), nullptr, nullptr, TRUE, flags, request.env ? env.data() : nullptr,
                      request.cwd ? cwd.c_str() : nullptr, &startup.StartupInfo, &info))
    throw_last_error("subprocess: cannot run '" + request.program + "'");
  CloseHandle(info.hThread);
  SpawnedChild child;
  child.pid = static_cast<int>(info.dwProcessId);
  child.handle = as_fd(info.hProcess);
  child.new_group = new_group;
  return child;
}

std::optional<int> reap_child(const SpawnedChild& child, bool* reaped_elsewhere) {
  DWORD state = WaitForSingleObject(as_handle(child.handle), 0);
  if (state == WAIT_TIMEOUT) return std::nullopt;
  // Signalled: whatever GetExitCodeProcess says is the exit code, 259
  // (STILL_ACTIVE) included.
  DWORD code = 0;
  if (state != WAIT_OBJECT_0 || !GetExitCodeProcess(as_handle(child.handle), &code)) {
    if (reaped_elsewhere) *reaped_elsewhere = true;
    return 255;
  }
  return static_cast<int>(code);
}

int wait_child(const SpawnedChild& child) noexcept {
  WaitForSingleObject(as_handle(child.handle), INFINITE);
  return reap_child(child).value_or(255);
}

void signal_child(const SpawnedChild& child, int signal) {
  HANDLE process = as_handle(child.handle);
  std::string pid = std::to_string(child.pid);
  if (signal == SIGTERM) {
    if (TerminateProcess(process, 1)) return;
    DWORD err = GetLastError();
    // A process that has exited refuses with ERROR_ACCESS_DENIED: it is
    // gone, as asked (CPython's Popen.terminate).
    if (err == ERROR_ACCESS_DENIED && WaitForSingleObject(process, 0) == WAIT_OBJECT_0) return;
    throw_os_error(static_cast<int>(err), "TerminateProcess (pid " + pid + ")");
  }
  if (signal == CTRL_C_EVENT || signal == CTRL_BREAK_EVENT) {
    // The event goes to a process group: the child's own, or it would reach
    // every process on the console (group 0).
    if (!child.new_group)
      throw std::invalid_argument(
          "send_signal: CTRL_C_EVENT and CTRL_BREAK_EVENT reach only a child started in a new "
          "process group (start_new_session, or process_group 0); pid " +
          pid + " was not");
    if (!GenerateConsoleCtrlEvent(static_cast<DWORD>(signal), static_cast<DWORD>(child.pid)))
      throw_last_error("GenerateConsoleCtrlEvent (pid " + pid + ")");
    return;
  }
  throw std::invalid_argument(
      "send_signal: signal " + std::to_string(signal) +
      " cannot be sent on Windows; allowed are SIGTERM (15, TerminateProcess), CTRL_C_EVENT (0) "
      "and CTRL_BREAK_EVENT (1)");
}

int terminate_signal() noexcept { return SIGTERM; }
int kill_signal() noexcept { return SIGTERM; }

const char* child_watcher_name() { return "process handle"; }

std::pair<std::string, std::vector<std::string>> shell_command(std::string cmd) {
  const char* comspec = std::getenv("COMSPEC");
  return {comspec && *comspec ? comspec : "cmd.exe", {"/c", std::move(cmd)}};
}

std::pair<fd_t, fd_t> make_stdio_pipe(bool child_reads) {
  static std::atomic<unsigned> counter{0};
  for (int attempt = 0;; ++attempt) {
    unsigned random = 0;
    rand_s(&random);
    // \\.\pipe\aiocpp-<pid>-<n>-<random>, as asyncio's python-pipe-<pid>-<n>-<random>.
    std::wstring name = L"\\\\.\\pipe\\aiocpp-" + std::to_wstring(GetCurrentProcessId()) + L"-" +
                        std::to_wstring(++counter) + L"-" + std::to_wstring(random);
    // FILE_FLAG_FIRST_PIPE_INSTANCE: the name cannot be one another process
    // made first to be connected to instead. The child's stdin is duplex,
    // as asyncio's: the parent keeps a read posted on its write end, which
    // completes when the child closes its end (Windows has no POLLHUP).
    DWORD mode =
        (child_reads ? PIPE_ACCESS_DUPLEX : PIPE_ACCESS_INBOUND) | FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE;
    HANDLE server = CreateNamedPipeW(name.c_str(), mode, PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT, 1,
                                     pipe_buffer, pipe_buffer, 0, nullptr);
    if (server == INVALID_HANDLE_VALUE) {
      DWORD err = GetLastError();
      if ((err == ERROR_ACCESS_DENIED || err == ERROR_PIPE_BUSY) && attempt < 10) continue;  // the name is taken
      throw_os_error(static_cast<int>(err), "subprocess: CreateNamedPipe (a pipe for the child)");
    }
    UniqueHandle parent(server);
    // The child's end is synchronous: the child reads and writes it as any
    // standard stream.
    UniqueHandle child(
        CreateFileW(name.c_str(), child_reads ? GENERIC_READ : GENERIC_WRITE, 0, nullptr, OPEN_EXISTING, 0, nullptr));
    if (child.get() == INVALID_HANDLE_VALUE) throw_last_error("subprocess: CreateFile (a pipe for the child)");
    OVERLAPPED overlapped{};
    if (!ConnectNamedPipe(server, &overlapped)) {
      DWORD err = GetLastError();
      DWORD ignored = 0;
      if (err == ERROR_IO_PENDING ? !GetOverlappedResult(server, &overlapped, &ignored, TRUE)
                                  : err != ERROR_PIPE_CONNECTED)
        throw_os_error(static_cast<int>(err == ERROR_IO_PENDING ? GetLastError() : err),
                       "subprocess: ConnectNamedPipe (a pipe for the child)");
    }
    return {as_fd(parent.release()), as_fd(child.release())};
  }
}

fd_t open_devnull(bool for_writing) { return as_fd(open_null(for_writing, false).release()); }

void close_fd(fd_t fd) noexcept {
  if (fd != -1 && fd != 0) CloseHandle(as_handle(fd));
}

}  // namespace aio::detail
