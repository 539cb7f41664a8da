// execve(2) of the running Node process, so the emulated program becomes this
// process: same pid, terminal, stdio, exit status and signals, no supervisor.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "addon.h"

namespace xrun {

// execve(path, argv, env, closeStdio?: number[], keepFds?: number[]): path and
// each argv and env item a string or a Buffer (bytes as given); never returns on success.
Napi::Value Execve(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<std::string> argv, envp;
  std::string path;
  unsigned closeMask = 0;
  std::vector<int> keep;
  if (info.Length() < 3 || info.Length() > 5 || !Bytes(info[0], &path) || !StringArray(info[1], &argv) ||
      !StringArray(info[2], &envp) || !StdioMask(info[3], &closeMask) || !FdList(info[4], &keep)) {
    Napi::TypeError::New(env, "execve(path, argv, env, closeStdio?: number[], keepFds?: number[]): strings or Buffers").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::vector<char*> argvp = Pointers(argv);
  std::vector<char*> envpp = Pointers(envp);

  sigset_t all, saved;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &saved);
  RestoreStdioForExec();
  KeepFdsForExec(keep);
  ResetSignalsForExec();
  // Closed only now: a failed execve is reported on a stderr that may be one of them.
  CloseStdioForExec(closeMask);
  execve(path.c_str(), argvp.data(), envpp.data());
  int err = errno;
  // Failed: give Node back its signal mask; its handlers were reset above, but
  // the caller exits right after reporting the error.
  sigprocmask(SIG_SETMASK, &saved, nullptr);
  OpError(env, "execve", err, path.c_str()).ThrowAsJavaScriptException();
  return env.Undefined();
}

}  // namespace xrun
