// Declarations shared by the addon's translation units.
#pragma once
#include <napi.h>

#include <string>
#include <vector>

namespace xrun {

// process.cc: helpers for every exec from Node. The two *ForExec functions
// are async-signal-safe: a forked child may call them.
// A string (as UTF-8) or a Buffer (its bytes, no NUL) as a std::string.
bool Bytes(const Napi::Value& v, std::string* out);
// An array of strings and Buffers, each as Bytes() reads it.
bool StringArray(const Napi::Value& v, std::vector<std::string>* out);
std::vector<char*> Pointers(std::vector<std::string>& strings);
void ResetSignalsForExec();
void RestoreStdioForExec();
void CloseStdioForExec(unsigned mask);
bool StdioMask(const Napi::Value& v, unsigned* mask);
void KeepFdsForExec(const std::vector<int>& fds);
bool FdList(const Napi::Value& v, std::vector<int>* out);

// exec.cc: replace this process with another program.
Napi::Value Execve(const Napi::CallbackInfo& info);

// sandbox.cc: run a plan in new user, mount and pid namespaces and wait for it.
Napi::Value RunSandbox(const Napi::CallbackInfo& info);
// Whether this build has a seccomp filter for the chown family on its host (see IgnoreChown).
bool HasChownFilter();

// Every export sets `op`, `errno` and `path` on the errors it throws.
Napi::Error OpError(Napi::Env env, const char* op, int err, const char* path);

}  // namespace xrun
