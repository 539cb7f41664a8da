// Runs a sandbox plan: fork, new user + mount namespaces, id maps written by
// the parent, then the plan's operations (mount, write, mkdir, chroot, chdir)
// and execve in the child, and wait in the parent.
//
// Node is multithreaded and unshare(CLONE_NEWUSER) refuses a multithreaded
// caller, so the namespaces are made in a forked child. After fork the child
// runs only async-signal-safe code on data prepared before the fork (no
// allocation, no JavaScript) and reports a failure as (step, errno) through a
// close-on-exec pipe: EOF on that pipe means execve succeeded.
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "addon.h"

namespace xrun {

namespace {

enum OpKind { kMount, kWrite, kMkdir, kChroot, kChdir };

struct Op {
  OpKind kind;
  std::string a, b, c, d;  // mount: source, target, fstype, data; write: path, data; others: path
  unsigned long flags = 0;  // mount flags; mkdir mode
  bool optional = false;
};

struct Spec {
  std::vector<Op> ops;
  std::vector<std::string> candidates;  // execve tried on each in turn, as execvp does
  std::vector<std::string> argv, env;
  std::vector<std::string> uidHelper, gidHelper;  // newuidmap/newgidmap argv; the pid goes in as argv[1]
  std::string uidMap, gidMap, setgroups;  // written by the parent when there is no helper
  bool ignoreChown = false;
};

struct Report {
  int step;  // index into ops; ops.size() = execve; -1 = unshare
  int err;
};

volatile sig_atomic_t g_child = 0;

// Signals sent to xrun with kill(2) go on to the guest. Signals from the
// terminal (si_code SI_KERNEL) reached the guest already: it is in the same
// foreground process group.
void Forward(int sig, siginfo_t* info, void*) {
  if (g_child > 0 && info != nullptr && info->si_code <= 0) kill(g_child, sig);
}

const int kForwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

bool Str(const Napi::Object& o, const char* key, std::string* out) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return true;
  if (!v.IsString()) return false;
  *out = v.As<Napi::String>().Utf8Value();
  return true;
}

bool Strings(const Napi::Object& o, const char* key, std::vector<std::string>* out) {
  Napi::Value v = o.Get(key);
  return v.IsUndefined() || v.IsNull() || StringArray(v, out);
}

bool ParseSpec(const Napi::Object& o, Spec* spec, std::string* why) {
  Napi::Value opsValue = o.Get("ops");
  if (!opsValue.IsArray()) return *why = "ops must be an array", false;
  Napi::Array ops = opsValue.As<Napi::Array>();
  for (uint32_t i = 0; i < ops.Length(); i++) {
    if (!ops.Get(i).IsObject()) return *why = "op must be an object", false;
    Napi::Object op = ops.Get(i).As<Napi::Object>();
    std::string kind;
    Str(op, "op", &kind);
    Op out;
    if (kind == "mount") {
      out.kind = kMount;
      if (!Str(op, "source", &out.a) || !Str(op, "target", &out.b) || !Str(op, "fstype", &out.c) || !Str(op, "data", &out.d))
        return *why = "bad mount op", false;
    } else if (kind == "write") {
      out.kind = kWrite;
      if (!Str(op, "path", &out.a) || !Str(op, "data", &out.b)) return *why = "bad write op", false;
    } else if (kind == "mkdir") {
      out.kind = kMkdir;
      if (!Str(op, "path", &out.a)) return *why = "bad mkdir op", false;
      out.flags = 0755;
    } else if (kind == "chroot") {
      out.kind = kChroot;
      if (!Str(op, "path", &out.a)) return *why = "bad chroot op", false;
    } else if (kind == "chdir") {
      out.kind = kChdir;
      if (!Str(op, "path", &out.a)) return *why = "bad chdir op", false;
    } else {
      return *why = "unknown op '" + kind + "'", false;
    }
    Napi::Value flags = op.Get("flags");
    if (flags.IsNumber()) out.flags = static_cast<unsigned long>(flags.As<Napi::Number>().Int64Value());
    out.optional = op.Get("optional").ToBoolean().Value();
    spec->ops.push_back(std::move(out));
  }
  if (!Strings(o, "candidates", &spec->candidates) || spec->candidates.empty()) return *why = "candidates", false;
  if (!Strings(o, "argv", &spec->argv) || !Strings(o, "env", &spec->env)) return *why = "argv/env", false;
  if (!Strings(o, "uidHelper", &spec->uidHelper) || !Strings(o, "gidHelper", &spec->gidHelper)) return *why = "helpers", false;
  spec->ignoreChown = o.Get("ignoreChown").ToBoolean().Value();
  if (!Str(o, "uidMap", &spec->uidMap) || !Str(o, "gidMap", &spec->gidMap) || !Str(o, "setgroups", &spec->setgroups))
    return *why = "maps", false;
  return true;
}

void WriteAll(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= static_cast<size_t>(w);
  }
}

bool ReadByte(int fd) {
  char c;
  for (;;) {
    ssize_t r = read(fd, &c, 1);
    if (r < 0 && errno == EINTR) continue;
    return r == 1;
  }
}

#if defined(__x86_64__)
constexpr uint32_t kAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr uint32_t kAuditArch = AUDIT_ARCH_AARCH64;
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
constexpr uint32_t kAuditArch = AUDIT_ARCH_PPC64LE;
#elif defined(__s390x__)
constexpr uint32_t kAuditArch = AUDIT_ARCH_S390X;
#elif defined(__riscv) && __riscv_xlen == 64
constexpr uint32_t kAuditArch = AUDIT_ARCH_RISCV64;
#else
constexpr uint32_t kAuditArch = 0;
#endif

// With only one id mapped, chown to any other id fails (EINVAL) and package
// managers stop at their first chown. This filter makes the chown family
// return success without effect, the way fakeroot would, for this process
// and everything it execs (QEMU's host syscalls included).
int IgnoreChown() {
  if (kAuditArch == 0) return ENOSYS;
#define XRUN_ERRNO0(nr) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 0)
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
#ifdef __NR_chown
      XRUN_ERRNO0(__NR_chown),
#endif
#ifdef __NR_lchown
      XRUN_ERRNO0(__NR_lchown),
#endif
      XRUN_ERRNO0(__NR_fchown),
      XRUN_ERRNO0(__NR_fchownat),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
#undef XRUN_ERRNO0
  struct sock_fprog prog = {static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) return errno;
  return 0;
}

[[noreturn]] void Fail(int fd, int step, int err) {
  Report r{step, err};
  WriteAll(fd, &r, sizeof r);
  _exit(127);
}

// The child, after fork: async-signal-safe calls only.
[[noreturn]] void Child(const Spec& spec, char* const* argv, char* const* envp, int ready, int go, int report) {
  ResetSignalsForExec();
  RestoreStdioForExec();

  if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) Fail(report, -1, errno);
  WriteAll(ready, "u", 1);
  close(ready);
  // The parent writes our id maps, then releases us. EOF: it gave up.
  if (!ReadByte(go)) _exit(127);
  close(go);

  for (size_t i = 0; i < spec.ops.size(); i++) {
    const Op& op = spec.ops[i];
    int rc = 0;
    switch (op.kind) {
      case kMount:
        rc = mount(op.a.empty() ? nullptr : op.a.c_str(), op.b.c_str(), op.c.empty() ? nullptr : op.c.c_str(), op.flags,
                   op.d.empty() ? nullptr : op.d.c_str());
        break;
      case kWrite: {
        int fd = open(op.a.c_str(), O_WRONLY | O_CLOEXEC);
        if (fd < 0) {
          rc = -1;
          break;
        }
        // binfmt_misc's register takes one rule per write(2).
        ssize_t w = write(fd, op.b.data(), op.b.size());
        int err = errno;
        close(fd);
        if (w != static_cast<ssize_t>(op.b.size())) {
          errno = w < 0 ? err : EIO;
          rc = -1;
        }
        break;
      }
      case kMkdir:
        rc = mkdir(op.a.c_str(), static_cast<mode_t>(op.flags));
        if (rc != 0 && errno == EEXIST) rc = 0;
        break;
      case kChroot:
        // chroot(2) leaves the working directory outside the new root: without
        // chdir("/") a relative path in the next op resolves on the host.
        rc = chroot(op.a.c_str());
        if (rc == 0) rc = chdir("/");
        break;
      case kChdir:
        rc = chdir(op.a.c_str());
        break;
    }
    if (rc != 0 && !op.optional) Fail(report, static_cast<int>(i), errno);
  }

  if (spec.ignoreChown) {
    int e = IgnoreChown();
    if (e != 0) Fail(report, -3, e);
  }

  int err = ENOENT;
  for (const std::string& path : spec.candidates) {
    execve(path.c_str(), argv, envp);
    // As execvp: keep looking past "not there", remember anything else.
    if (errno != ENOENT && errno != ENOTDIR) err = errno;
  }
  Fail(report, static_cast<int>(spec.ops.size()), err);
}

// Runs a map helper (newuidmap/newgidmap) with the child's pid; returns 0 or an errno.
int RunHelper(const std::vector<std::string>& helper, pid_t child) {
  std::vector<std::string> args = helper;
  args.insert(args.begin() + 1, std::to_string(child));
  std::vector<char*> argv = Pointers(args);
  pid_t pid = fork();
  if (pid < 0) return errno;
  if (pid == 0) {
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return errno;
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : EPERM;
}

int WriteProc(pid_t child, const char* file, const std::string& data) {
  if (data.empty()) return 0;
  std::string path = "/proc/" + std::to_string(child) + "/" + file;
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t w = write(fd, data.data(), data.size());
  int err = errno;
  close(fd);
  return w == static_cast<ssize_t>(data.size()) ? 0 : (w < 0 ? err : EIO);
}

const char* StepName(int step) {
  return step == -1 ? "unshare" : step == -3 ? "seccomp" : "op";
}

Napi::Object Result(Napi::Env env, int status, const char* failedStep, int err, int stepIndex) {
  Napi::Object r = Napi::Object::New(env);
  if (failedStep != nullptr) {
    r.Set("failed", Napi::String::New(env, failedStep));
    r.Set("errno", Napi::Number::New(env, err));
    r.Set("step", Napi::Number::New(env, stepIndex));
    return r;
  }
  if (WIFSIGNALED(status)) {
    r.Set("signal", Napi::Number::New(env, WTERMSIG(status)));
  } else {
    r.Set("exitCode", Napi::Number::New(env, WEXITSTATUS(status)));
  }
  return r;
}

void KillAndReap(pid_t pid) {
  kill(pid, SIGKILL);
  while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace

// runSandbox(spec): { exitCode } | { signal } | { failed, errno, step }.
// Blocks until the guest exits; signals sent to xrun meanwhile are forwarded.
Napi::Value RunSandbox(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Spec spec;
  std::string why;
  if (info.Length() != 1 || !info[0].IsObject() || !ParseSpec(info[0].As<Napi::Object>(), &spec, &why)) {
    Napi::TypeError::New(env, "runSandbox: invalid spec: " + why).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::vector<char*> argv = Pointers(spec.argv);
  std::vector<char*> envp = Pointers(spec.env);

  int ready[2], go[2], report[2];
  if (pipe2(ready, O_CLOEXEC) != 0 || pipe2(go, O_CLOEXEC) != 0 || pipe2(report, O_CLOEXEC) != 0) {
    return Result(env, 0, "pipe", errno, -2);
  }

  // Forwarding handlers go in before fork, so no signal can kill xrun and
  // orphan the guest in between; g_child is 0 until the pid is known.
  struct sigaction forward = {}, saved[4];
  forward.sa_sigaction = Forward;
  forward.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&forward.sa_mask);
  for (int i = 0; i < 4; i++) sigaction(kForwarded[i], &forward, &saved[i]);
  auto restore = [&]() {
    g_child = 0;
    for (int i = 0; i < 4; i++) sigaction(kForwarded[i], &saved[i], nullptr);
  };

  pid_t pid = fork();
  if (pid < 0) {
    int err = errno;
    restore();
    return Result(env, 0, "fork", err, -2);
  }
  if (pid == 0) {
    // The parent's ends: held open here, they would hide the parent's exit.
    close(ready[0]);
    close(go[1]);
    close(report[0]);
    Child(spec, argv.data(), envp.data(), ready[1], go[0], report[1]);
  }
  g_child = pid;
  close(ready[1]);
  close(go[0]);
  close(report[1]);

  auto childFailure = [&](const char* fallbackStep) -> Napi::Value {
    Report r{-2, 0};
    ssize_t n;
    do {
      n = read(report[0], &r, sizeof r);
    } while (n < 0 && errno == EINTR);
    close(report[0]);
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    restore();
    if (n != sizeof r) return Result(env, 0, fallbackStep, EIO, -2);
    return Result(env, 0, StepName(r.step), r.err, r.step);
  };

  if (!ReadByte(ready[0])) {
    close(ready[0]);
    close(go[1]);
    return childFailure("unshare");
  }
  close(ready[0]);

  int err = 0;
  const char* step = nullptr;
  if (!spec.uidHelper.empty()) {
    if ((err = RunHelper(spec.uidHelper, pid)) != 0) step = "uid_map";
    else if ((err = RunHelper(spec.gidHelper, pid)) != 0) step = "gid_map";
  } else {
    if ((err = WriteProc(pid, "setgroups", spec.setgroups)) != 0) step = "setgroups";
    else if ((err = WriteProc(pid, "uid_map", spec.uidMap)) != 0) step = "uid_map";
    else if ((err = WriteProc(pid, "gid_map", spec.gidMap)) != 0) step = "gid_map";
  }
  if (step != nullptr) {
    close(go[1]);
    close(report[0]);
    KillAndReap(pid);
    restore();
    return Result(env, 0, step, err, -2);
  }
  WriteAll(go[1], "g", 1);
  close(go[1]);

  // Wait for the report pipe to close (execve succeeded) or carry a failure.
  Report r;
  ssize_t n;
  do {
    n = read(report[0], &r, sizeof r);
  } while (n < 0 && errno == EINTR);
  if (n == sizeof r) {
    close(report[0]);
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    restore();
    return Result(env, 0, StepName(r.step), r.err, r.step);
  }
  close(report[0]);

  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      err = errno;
      restore();
      return Result(env, 0, "waitpid", err, -2);
    }
  }
  restore();
  return Result(env, status, nullptr, 0, 0);
}

}  // namespace xrun
