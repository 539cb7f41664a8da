// The addon's exports. It runs syscall-level operations that Node cannot
// (execve of this process, namespaces); every policy lives in TypeScript.
#include <cerrno>
#include <cstring>

#include "addon.h"

namespace xrun {

Napi::Error OpError(Napi::Env env, const char* op, int err, const char* path) {
  Napi::Error e = Napi::Error::New(env, std::string(op) + ": " + strerror(err));
  e.Set("op", Napi::String::New(env, op));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("path", path ? Napi::Value(Napi::String::New(env, path)) : env.Null());
  return e;
}

}  // namespace xrun

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("execve", Napi::Function::New(env, xrun::Execve, "execve"));
  exports.Set("runSandbox", Napi::Function::New(env, xrun::RunSandbox, "runSandbox"));
  exports.Set("chownFilter", Napi::Boolean::New(env, xrun::HasChownFilter()));
  return exports;
}

NODE_API_MODULE(xrun, Init)
