// execve(2) of the running Node process, so the emulated program becomes this
// process: same pid, terminal, stdio, exit status and signals, no supervisor.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "addon.h"

namespace xrun {

namespace {

bool StringArray(const Napi::Value& v, std::vector<std::string>* out) {
  if (!v.IsArray()) return false;
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value item = a.Get(i);
    if (!item.IsString()) return false;
    out->push_back(item.As<Napi::String>().Utf8Value());
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
// ignored dispositions and the signal mask survive execve, so the guest would
// inherit them (a shell pipeline `xrun prog | head` would never see SIGPIPE).
void ResetSignals() {
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

// Node marks every descriptor it inherited close-on-exec at start-up
// (uv_disable_stdio_inheritance), stdio included, and libuv may set O_NONBLOCK
// on stdio pipes and terminals (shared with the parent shell through the open
// file description). The guest must get plain, inherited stdio back.
void RestoreStdio() {
  for (int fd = 0; fd <= 2; fd++) {
    int fdflags = fcntl(fd, F_GETFD);
    if (fdflags >= 0 && (fdflags & FD_CLOEXEC)) fcntl(fd, F_SETFD, fdflags & ~FD_CLOEXEC);
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0 && (flags & O_NONBLOCK)) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  }
}

}  // namespace

// execve(path: string, argv: string[], env: string[]): never returns on success.
Napi::Value Execve(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<std::string> argv, envp;
  if (info.Length() != 3 || !info[0].IsString() || !StringArray(info[1], &argv) || !StringArray(info[2], &envp)) {
    Napi::TypeError::New(env, "execve(path: string, argv: string[], env: string[])").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  std::vector<char*> argvp = Pointers(argv);
  std::vector<char*> envpp = Pointers(envp);

  sigset_t all, saved;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &saved);
  RestoreStdio();
  ResetSignals();
  execve(path.c_str(), argvp.data(), envpp.data());
  int err = errno;
  // Failed: give Node back its signal mask; its handlers were reset above, but
  // the caller exits right after reporting the error.
  sigprocmask(SIG_SETMASK, &saved, nullptr);
  OpError(env, "execve", err, path.c_str()).ThrowAsJavaScriptException();
  return env.Undefined();
}

}  // namespace xrun
