// What every exec from Node needs, shared by exec.cc and sandbox.cc.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include "addon.h"

namespace xrun {

bool Bytes(const Napi::Value& v, std::string* out) {
  if (v.IsString()) {
    *out = v.As<Napi::String>().Utf8Value();
    return true;
  }
  // A Buffer carries bytes that are not UTF-8 (an argument, a file name) unchanged.
  if (!v.IsBuffer()) return false;
  Napi::Buffer<char> b = v.As<Napi::Buffer<char>>();
  out->assign(b.Data(), b.Length());
  // execve takes C strings: a NUL inside would cut this one short silently.
  return out->find('\0') == std::string::npos;
}

bool StringArray(const Napi::Value& v, std::vector<std::string>* out) {
  if (!v.IsArray()) return false;
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    std::string item;
    if (!Bytes(a.Get(i), &item)) return false;
    out->push_back(std::move(item));
  }
  return true;
}

std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> p;
  for (auto& s : strings) p.push_back(&s[0]);
  p.push_back(nullptr);
  return p;
}

// Node ignores SIGPIPE and SIGXFSZ and may leave others caught or blocked;
// ignored dispositions and the signal mask survive execve, so the program
// would inherit them (`xrun prog | head` would never see SIGPIPE).
void ResetSignalsForExec() {
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (int sig = 1; sig < NSIG; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    sigaction(sig, &dfl, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

// Makes `fd` inheritable across exec.
static void ClearCloexec(int fd) {
  int fdflags = fcntl(fd, F_GETFD);
  if (fdflags >= 0 && (fdflags & FD_CLOEXEC)) fcntl(fd, F_SETFD, fdflags & ~FD_CLOEXEC);
}

// Node marks every descriptor it inherited close-on-exec at start-up
// (uv_disable_stdio_inheritance), stdio included, and libuv may set O_NONBLOCK
// on stdio pipes and terminals (shared with the parent shell through the open
// file description). The program must get plain, inherited stdio back.
void RestoreStdioForExec() {
  for (int fd = 0; fd <= 2; fd++) {
    ClearCloexec(fd);
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0 && (flags & O_NONBLOCK)) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  }
}

// Node opens /dev/null on each of fds 0-2 that it finds closed at start-up,
// before any JavaScript runs; bin/xrun records which were closed. Closing them
// again right before execve gives the program what the caller gave xrun: a
// closed stdout makes its writes fail (EBADF) as they would without xrun.
void CloseStdioForExec(unsigned mask) {
  for (int fd = 0; fd <= 2; fd++) {
    if (mask & (1u << fd)) close(fd);
  }
}

// A JavaScript array of descriptors, each within [lo, hi] (absent: none).
static bool FdArray(const Napi::Value& v, int64_t lo, int64_t hi, std::vector<int>* out) {
  out->clear();
  if (v.IsUndefined() || v.IsNull()) return true;
  if (!v.IsArray()) return false;
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value item = a.Get(i);
    if (!item.IsNumber()) return false;
    int64_t fd = item.As<Napi::Number>().Int64Value();
    if (fd < lo || fd > hi) return false;
    out->push_back(static_cast<int>(fd));
  }
  return true;
}

// A JavaScript array of descriptors among 0-2 (absent: none) as a bit mask.
bool StdioMask(const Napi::Value& v, unsigned* mask) {
  std::vector<int> fds;
  *mask = 0;
  if (!FdArray(v, 0, 2, &fds)) return false;
  for (int fd : fds) *mask |= 1u << fd;
  return true;
}

// Node marks every descriptor it inherited close-on-exec at start-up (fds 0-15,
// then on up to the first closed one); bin/xrun records which of those above 2
// the caller passed, and exactly those are made inheritable again, so `3>file`,
// make's jobserver pipe and socket activation reach the program.
void KeepFdsForExec(const std::vector<int>& fds) {
  for (int fd : fds) {
    ClearCloexec(fd);
  }
}

// A JavaScript array of descriptors above 2 (absent: none).
bool FdList(const Napi::Value& v, std::vector<int>* out) {
  return FdArray(v, 3, 0x7fffffff, out);
}

}  // namespace xrun
