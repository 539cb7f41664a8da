// execve(2) of the running Node process, so the emulated program becomes this
// process: same pid, terminal, stdio, exit status and signals, no supervisor.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "addon.h"

namespace xrun {

// execve(path: string, argv: string[], env: string[], closeStdio?: number[]):
// never returns on success.
Napi::Value Execve(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<std::string> argv, envp;
  unsigned closeMask = 0;
  if (info.Length() < 3 || info.Length() > 4 || !info[0].IsString() || !StringArray(info[1], &argv) ||
      !StringArray(info[2], &envp) || !StdioMask(info[3], &closeMask)) {
    Napi::TypeError::New(env, "execve(path: string, argv: string[], env: string[], closeStdio?: number[])").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  std::vector<char*> argvp = Pointers(argv);
  std::vector<char*> envpp = Pointers(envp);

  sigset_t all, saved;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &saved);
  RestoreStdioForExec();
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
