// Runs a sandbox plan: a child cloned into new user, mount and pid
// namespaces, its id maps written by xrun, then the plan's operations (mount,
// bind, layer, write, mkdir, file, symlink, links, readonly, root, enter,
// chdir) in that child, which is the namespace's init: it forks the guest,
// forwards signals, reaps, and exits with the guest's status. xrun waits for
// it. With a `nest` op the guest first enters user and mount namespaces of
// its own, nested in the init's, whose maps the init writes.
//
// Node is multithreaded and unshare(CLONE_NEWUSER) refuses a multithreaded
// caller, so the namespaces come with the clone. After it the child runs only
// async-signal-safe code on data prepared before (no allocation, no
// JavaScript) and reports a failure as (step, errno) through a close-on-exec
// pipe: EOF on that pipe means the guest's execve succeeded.
#include <dirent.h>
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
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <pthread.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "addon.h"

namespace xrun {

namespace {

enum OpKind { kMount, kBind, kLayer, kWrite, kMkdir, kFile, kSymlink, kLinks, kReadonly, kRoot, kEnter, kChdir, kNest };

// Paths named by an op (target, path) are inside the current root: the host's
// '/' until a `root` op names the new root. They are resolved by the child,
// relative to that root's descriptor, and no symlink or '..' can leave it.
// Bind sources are host paths.
struct Op {
  OpKind kind;
  std::string source, target, fstype, data;  // target: mount point, or the path to write/create/enter; nest: uid map, gid map in source, data
  std::string parent, leaf;                  // target split, for the ops that create `leaf` in `parent`
  unsigned long flags = 0;                   // mount flags
  unsigned mode = 0;                         // mkdir/file mode
  bool recursive = false, readonly = false;  // bind
  bool nofollow = false;                     // bind: onto a symlink itself, not where it leads
  bool sourceInRoot = false;                 // bind: the source is a path inside the root, resolved there
  std::vector<std::string> make;             // layer: paths made on it, relative to it, parents first; links: their names
  std::vector<bool> makeFile;                // layer: make[i] is an empty file, else a directory
  bool byMount = false;                      // layer: attached by mount(2), not fsmount
  bool optional = false;
  bool fallback = false;  // runs only when the op before it failed, which is then no error
};

struct Spec {
  std::vector<Op> ops;
  std::vector<std::string> candidates;  // execve tried on each in turn, as execvp does
  std::vector<std::string> argv, env;
  std::vector<std::string> uidHelper, gidHelper;  // newuidmap/newgidmap argv; the pid goes in as argv[1]
  std::string uidMap, gidMap, setgroups;  // written by the parent when there is no helper
  bool ignoreChown = false;
  bool walk = false;  // resolve by an O_NOFOLLOW walk, not openat2
  unsigned closeStdioMask = 0;  // of fds 0-2, closed right before execve
  long hangupGraceMs = 0;       // after a hang-up, how long the guest has before everything inside is killed
  std::vector<int> keepFds;     // above 2: the caller's, made inheritable again right before execve
};

struct Report {
  int step;  // index into ops; ops.size() = execve; -3 = seccomp; -4 = fork of the guest
  int err;
};

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

// Where forwarded signals go: in xrun, the sandbox's init; in the init, the
// guest. The same variables serve both, as the init is a copy of xrun's
// memory. g_child stays set until just before the child is reaped, so the
// pid cannot have been recycled when kill(2) uses it; a pidfd, where the
// kernel has them (Linux >= 5.3), names the process itself.
pid_t g_child = 0;
int g_childfd = -1;
unsigned g_pending = 0;  // signals that came before g_child was known, one bit each
bool g_isInit = false;   // set in the init: a hang-up there goes to every process inside
int g_hangup = 0;        // xrun: its terminal hung up (1), and the init was told (2)
long g_hangupGraceMs = 0;  // xrun: how long the guest has to end after a hang-up

// How xrun tells the init that its terminal hung up: SIGHUP queued with this
// value (SI_QUEUE), unlike a SIGHUP someone sent xrun with kill(1), which
// goes on to the guest as it came.
constexpr int kHangupMark = 0x68757021;

void Send(int sig) {
  int fd = __atomic_load_n(&g_childfd, __ATOMIC_SEQ_CST);
  pid_t pid = __atomic_load_n(&g_child, __ATOMIC_SEQ_CST);
  if (pid <= 0) return;
  if (fd >= 0 && syscall(SYS_pidfd_send_signal, fd, sig, nullptr, 0) == 0) return;
  kill(pid, sig);
}

// SIGHUP to the init, marked as a hang-up.
void SendHangup() {
  int fd = __atomic_load_n(&g_childfd, __ATOMIC_SEQ_CST);
  pid_t pid = __atomic_load_n(&g_child, __ATOMIC_SEQ_CST);
  if (pid <= 0) return;
  siginfo_t si;
  std::memset(&si, 0, sizeof si);
  si.si_signo = SIGHUP;
  si.si_code = SI_QUEUE;
  si.si_pid = getpid();
  si.si_uid = getuid();
  si.si_value.sival_int = kHangupMark;
  if (fd >= 0 && syscall(SYS_pidfd_send_signal, fd, SIGHUP, &si, 0) == 0) return;
  syscall(SYS_rt_sigqueueinfo, pid, SIGHUP, &si);
}

// Delivers what is pending once the target is known. The handler and the
// thread that sets g_child both set-then-check, so no signal is lost between.
void Flush() {
  if (__atomic_load_n(&g_child, __ATOMIC_SEQ_CST) <= 0) return;
  int one = 1;
  if (__atomic_compare_exchange_n(&g_hangup, &one, 2, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) SendHangup();
  unsigned bits = __atomic_exchange_n(&g_pending, 0u, __ATOMIC_SEQ_CST);
  for (int sig = 0; bits != 0; sig++, bits >>= 1) {
    if (bits & 1u) Send(sig);
  }
}

// The terminal went away. A terminal and a shell would give every process
// of the session a SIGHUP (and a SIGCONT, so that stopped ones see it): in
// xrun, tell the init and give the guest the plan's grace to end; in the
// init, pid 1 of the sandbox, kill(-1) reaches every process inside.
void HangUp() {
  if (__atomic_load_n(&g_isInit, __ATOMIC_SEQ_CST)) {
    kill(-1, SIGHUP);
    kill(-1, SIGCONT);
    return;
  }
  int none = 0;
  if (!__atomic_compare_exchange_n(&g_hangup, &none, 1, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return;
  long ms = __atomic_load_n(&g_hangupGraceMs, __ATOMIC_SEQ_CST);
  struct itimerval grace = {};
  grace.it_value.tv_sec = ms / 1000;
  grace.it_value.tv_usec = (ms % 1000) * 1000 + (ms <= 0 ? 1 : 0);
  setitimer(ITIMER_REAL, &grace, nullptr);
  Flush();
}

// The grace after a hang-up is over and the guest still runs (it ignores
// SIGHUP, or a process it left does): xrun ends the sandbox as if xrun had
// died, which ends everything inside.
void GraceOver(int) {
  int saved = errno;
  __atomic_fetch_or(&g_pending, 1u << SIGKILL, __ATOMIC_SEQ_CST);
  Flush();
  errno = saved;
}

// Signals sent with kill(2) go on to the child. Signals from the terminal
// (si_code SI_KERNEL) reached the guest already: it is in the same
// foreground process group. SIGHUP from the kernel is the exception: the
// terminal's hang-up goes to the session leader alone, or to the foreground
// process group when the leader exits, and then every process inside must
// hear of it (issue 16).
void Forward(int sig, siginfo_t* info, void*) {
  if (info == nullptr) return;
  int saved = errno;
  if (sig == SIGHUP && (info->si_code == SI_KERNEL || (info->si_code == SI_QUEUE && info->si_value.sival_int == kHangupMark))) {
    HangUp();
  } else if (info->si_code <= 0) {
    __atomic_fetch_or(&g_pending, 1u << sig, __ATOMIC_SEQ_CST);
    Flush();
  }
  errno = saved;
}

void SetChild(pid_t pid, int fd) {
  __atomic_store_n(&g_childfd, fd, __ATOMIC_SEQ_CST);
  __atomic_store_n(&g_child, pid, __ATOMIC_SEQ_CST);
  if (pid > 0) Flush();
}

const int kForwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

void InstallForwarding(struct sigaction (*saved)[4]) {
  struct sigaction forward = {};
  forward.sa_sigaction = Forward;
  forward.sa_flags = SA_SIGINFO | SA_RESTART;
  sigfillset(&forward.sa_mask);
  for (int i = 0; i < 4; i++) sigaction(kForwarded[i], &forward, saved != nullptr ? &(*saved)[i] : nullptr);
}

// fork(2) by the raw system call, with namespace flags: glibc's fork() would
// take its internal locks, which another thread of xrun may hold, and a
// forked copy of a multithreaded process may not unshare a user namespace.
// The child only makes system calls until it execs.
pid_t CloneProcess(unsigned long flags) {
#if defined(__s390__) || defined(__CRIS__)
  return static_cast<pid_t>(syscall(SYS_clone, 0, flags | SIGCHLD));
#else
  return static_cast<pid_t>(syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0));
#endif
}

int PidFd(pid_t pid) {
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
}

// Waits for `pid` to end without reaping it, forgets it as the signal
// target, then reaps it: a signal handled meanwhile cannot reach a recycled pid.
int WaitChild(pid_t pid, int* status) {
  siginfo_t info;
  for (;;) {
    info.si_pid = 0;
    if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) == 0) break;
    if (errno != EINTR) return errno;
  }
  SetChild(0, -1);
  while (waitpid(pid, status, 0) < 0) {
    if (errno != EINTR) return errno;
  }
  return 0;
}

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

// A layer's `make` list: [{ path, kind: 'directory' | 'file' }], paths
// relative to the layer, each component a plain name.
bool ParseMake(const Napi::Value& v, Op* out) {
  if (v.IsUndefined()) return true;
  if (!v.IsArray()) return false;
  Napi::Array list = v.As<Napi::Array>();
  for (uint32_t i = 0; i < list.Length(); i++) {
    if (!list.Get(i).IsObject()) return false;
    Napi::Object item = list.Get(i).As<Napi::Object>();
    std::string path, kind;
    if (!Str(item, "path", &path) || !Str(item, "kind", &kind) || (kind != "directory" && kind != "file")) return false;
    size_t start = 0;
    for (;;) {
      size_t end = path.find('/', start);
      std::string c = path.substr(start, end == std::string::npos ? std::string::npos : end - start);
      if (c.empty() || c == "." || c == "..") return false;
      if (end == std::string::npos) break;
      start = end + 1;
    }
    out->make.push_back(path);
    out->makeFile.push_back(kind == "file");
  }
  return true;
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
    bool ok = true;
    if (kind == "mount") {
      out.kind = kMount;
      ok = Str(op, "source", &out.source) && Str(op, "target", &out.target) && Str(op, "fstype", &out.fstype) && Str(op, "data", &out.data);
    } else if (kind == "bind") {
      out.kind = kBind;
      ok = Str(op, "source", &out.source) && Str(op, "target", &out.target) && !out.source.empty();
      out.recursive = op.Get("recursive").ToBoolean().Value();
      out.readonly = op.Get("readonly").ToBoolean().Value();
      out.nofollow = op.Get("nofollow").ToBoolean().Value();
      out.sourceInRoot = op.Get("sourceInRoot").ToBoolean().Value();
    } else if (kind == "layer") {
      out.kind = kLayer;
      std::string attach;
      ok = Str(op, "path", &out.target) && ParseMake(op.Get("make"), &out) && Str(op, "attach", &attach) && (attach.empty() || attach == "fsmount" || attach == "mount");
      out.byMount = attach == "mount";
    } else if (kind == "write") {
      out.kind = kWrite;
      ok = Str(op, "path", &out.target) && Str(op, "data", &out.data);
    } else if (kind == "mkdir" || kind == "file") {
      out.kind = kind == "mkdir" ? kMkdir : kFile;
      ok = Str(op, "path", &out.target);
      out.mode = kind == "mkdir" ? 0755 : 0644;
    } else if (kind == "symlink") {
      out.kind = kSymlink;
      ok = Str(op, "path", &out.target) && Str(op, "linkTarget", &out.data) && !out.data.empty();
    } else if (kind == "root") {
      out.kind = kRoot;
      ok = Str(op, "path", &out.target);
    } else if (kind == "enter") {
      out.kind = kEnter;
    } else if (kind == "chdir") {
      out.kind = kChdir;
      ok = Str(op, "path", &out.target);
    } else if (kind == "links") {
      out.kind = kLinks;
      ok = Str(op, "path", &out.target) && Str(op, "linkTarget", &out.data) && !out.data.empty() && Strings(op, "names", &out.make);
      for (const std::string& n : out.make) {
        if (n.empty() || n == "." || n == ".." || n.find('/') != std::string::npos) return *why = "links: '" + n + "' is not a name", false;
      }
    } else if (kind == "readonly") {
      out.kind = kReadonly;
      ok = Str(op, "path", &out.target);
    } else if (kind == "nest") {
      out.kind = kNest;
      ok = Str(op, "uidMap", &out.source) && Str(op, "gidMap", &out.data) && !out.source.empty() && !out.data.empty();
      if (ok && i + 1 != ops.Length()) return *why = "nest must be the last op", false;
    } else {
      return *why = "unknown op '" + kind + "'", false;
    }
    if (!ok) return *why = "bad " + kind + " op", false;
    if (kind != "enter" && kind != "nest" && (out.target.empty() || out.target[0] != '/')) return *why = kind + ": paths are absolute", false;
    size_t slash = out.target.find_last_of('/');
    if (slash != std::string::npos) {
      out.parent = slash == 0 ? "/" : out.target.substr(0, slash);
      out.leaf = out.target.substr(slash + 1);
    }
    if ((out.kind == kMkdir || out.kind == kFile || out.kind == kSymlink) && (out.leaf.empty() || out.leaf == "." || out.leaf == ".."))
      return *why = kind + ": no name to create in " + out.target, false;
    Napi::Value flags = op.Get("flags");
    if (flags.IsNumber()) out.flags = static_cast<unsigned long>(flags.As<Napi::Number>().Int64Value());
    Napi::Value mode = op.Get("mode");
    if (mode.IsNumber()) out.mode = static_cast<unsigned>(mode.As<Napi::Number>().Uint32Value());
    out.optional = op.Get("optional").ToBoolean().Value();
    out.fallback = op.Get("fallback").ToBoolean().Value();
    if (out.fallback && spec->ops.empty()) return *why = "a fallback op needs an op before it", false;
    spec->ops.push_back(std::move(out));
  }
  if (!Strings(o, "candidates", &spec->candidates) || spec->candidates.empty()) return *why = "candidates", false;
  if (!Strings(o, "argv", &spec->argv) || !Strings(o, "env", &spec->env)) return *why = "argv/env", false;
  if (!Strings(o, "uidHelper", &spec->uidHelper) || !Strings(o, "gidHelper", &spec->gidHelper)) return *why = "helpers", false;
  spec->ignoreChown = o.Get("ignoreChown").ToBoolean().Value();
  std::string resolve;
  if (!Str(o, "resolve", &resolve) || (!resolve.empty() && resolve != "openat2" && resolve != "walk")) return *why = "resolve", false;
  spec->walk = resolve == "walk";
  if (!StdioMask(o.Get("closeStdio"), &spec->closeStdioMask)) return *why = "closeStdio", false;
  Napi::Value grace = o.Get("hangupGraceMs");
  if (!grace.IsUndefined() && !grace.IsNumber()) return *why = "hangupGraceMs", false;
  if (grace.IsNumber()) spec->hangupGraceMs = static_cast<long>(grace.As<Napi::Number>().Int64Value());
  if (!FdList(o.Get("keepFds"), &spec->keepFds)) return *why = "keepFds", false;
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

// The chown family, per syscall ABI a process on this host can use: the
// host's own (numbers from its headers) and the compat ABIs its kernel may
// run natively (i386 and x32 on x86_64, arm on aarch64), whose calls reach
// seccomp with their own audit arch and numbers. A call of an ABI not listed
// here passes unfiltered: a build for an unlisted host reports ENOSYS (and
// the TypeScript side knows from kChownFilter that it has none).
struct ChownAbi {
  uint32_t arch;
  int nrs[8];
  int count;
};

#define XRUN_NATIVE_NRS_PART1 __NR_fchown, __NR_fchownat
#if defined(__NR_chown) && defined(__NR_lchown)
#define XRUN_NATIVE_NRS_PART2 , __NR_chown, __NR_lchown
#define XRUN_NATIVE_PART2_COUNT 2
#else
#define XRUN_NATIVE_NRS_PART2
#define XRUN_NATIVE_PART2_COUNT 0
#endif
#if defined(__NR_chown32) && defined(__NR_lchown32) && defined(__NR_fchown32)
#define XRUN_NATIVE_NRS_PART3 , __NR_chown32, __NR_lchown32, __NR_fchown32
#define XRUN_NATIVE_PART3_COUNT 3
#else
#define XRUN_NATIVE_NRS_PART3
#define XRUN_NATIVE_PART3_COUNT 0
#endif
#define XRUN_NATIVE_ABI(audit) \
  {(audit), {XRUN_NATIVE_NRS_PART1 XRUN_NATIVE_NRS_PART2 XRUN_NATIVE_NRS_PART3}, 2 + XRUN_NATIVE_PART2_COUNT + XRUN_NATIVE_PART3_COUNT}

// i386 (arch/x86/entry/syscalls/syscall_32.tbl) and ARM EABI (arch/arm/tools/syscall.tbl):
// lchown 16, fchown 95, chown 182, lchown32 198, fchown32 207, chown32 212; fchownat 298 / 325.
constexpr ChownAbi kI386 = {AUDIT_ARCH_I386, {16, 95, 182, 198, 207, 212, 298}, 7};
constexpr ChownAbi kArm = {AUDIT_ARCH_ARM, {16, 95, 182, 198, 207, 212, 325}, 7};
// x32 shares x86_64's audit arch and numbers, with bit 30 set (__X32_SYSCALL_BIT).
constexpr int kX32 = 0x40000000;

constexpr ChownAbi kChownAbis[] = {
#if defined(__x86_64__) && !defined(__ILP32__)
    // One block per audit arch: x32's numbers join x86_64's.
    {AUDIT_ARCH_X86_64, {__NR_chown, __NR_lchown, __NR_fchown, __NR_fchownat, kX32 | 92, kX32 | 94, kX32 | 93, kX32 | 260}, 8},
    kI386,
#elif defined(__x86_64__)
    {AUDIT_ARCH_X86_64, {kX32 | 92, kX32 | 93, kX32 | 94, kX32 | 260, 92, 93, 94, 260}, 8},
    kI386,
#elif defined(__i386__)
    kI386,
#elif defined(__aarch64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    XRUN_NATIVE_ABI(AUDIT_ARCH_AARCH64),
    kArm,
#elif defined(__arm__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    kArm,
#elif defined(__arm__)
    XRUN_NATIVE_ABI(AUDIT_ARCH_ARMEB),
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    XRUN_NATIVE_ABI(AUDIT_ARCH_PPC64LE),
#elif defined(__powerpc64__)
    XRUN_NATIVE_ABI(AUDIT_ARCH_PPC64),
#elif defined(__powerpc__)
    XRUN_NATIVE_ABI(AUDIT_ARCH_PPC),
#elif defined(__s390x__)
    XRUN_NATIVE_ABI(AUDIT_ARCH_S390X),
#elif defined(__s390__)
    XRUN_NATIVE_ABI(AUDIT_ARCH_S390),
#elif defined(__riscv) && __riscv_xlen == 64
    XRUN_NATIVE_ABI(AUDIT_ARCH_RISCV64),
#elif defined(__riscv) && __riscv_xlen == 32
    XRUN_NATIVE_ABI(AUDIT_ARCH_RISCV32),
#elif defined(__loongarch64) && defined(AUDIT_ARCH_LOONGARCH64)
    XRUN_NATIVE_ABI(AUDIT_ARCH_LOONGARCH64),
#elif defined(__mips__) && defined(_ABIO32) && _MIPS_SIM == _ABIO32
    XRUN_NATIVE_ABI(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? AUDIT_ARCH_MIPSEL : AUDIT_ARCH_MIPS),
#elif defined(__mips__) && defined(_ABIN32) && _MIPS_SIM == _ABIN32
    XRUN_NATIVE_ABI(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? AUDIT_ARCH_MIPSEL64N32 : AUDIT_ARCH_MIPS64N32),
#elif defined(__mips__)
    XRUN_NATIVE_ABI(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? AUDIT_ARCH_MIPSEL64 : AUDIT_ARCH_MIPS64),
#elif defined(__sparc__) && defined(__arch64__)
    XRUN_NATIVE_ABI(AUDIT_ARCH_SPARC64),
#elif defined(__sparc__)
    XRUN_NATIVE_ABI(AUDIT_ARCH_SPARC),
#elif defined(__m68k__)
    XRUN_NATIVE_ABI(AUDIT_ARCH_M68K),
#elif defined(__alpha__)
    XRUN_NATIVE_ABI(AUDIT_ARCH_ALPHA),
#elif defined(__hppa__) && defined(__LP64__)
    XRUN_NATIVE_ABI(AUDIT_ARCH_PARISC64),
#elif defined(__hppa__)
    XRUN_NATIVE_ABI(AUDIT_ARCH_PARISC),
#elif defined(__sh__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    XRUN_NATIVE_ABI(AUDIT_ARCH_SHEL),
#elif defined(__sh__)
    XRUN_NATIVE_ABI(AUDIT_ARCH_SH),
#endif
    {0, {}, 0},  // end
};

constexpr bool kChownFilter = kChownAbis[0].count != 0;

// Instructions per ABI: load arch, compare, load nr, two per number, allow.
constexpr size_t kMaxFilter = (sizeof kChownAbis / sizeof kChownAbis[0]) * (4 + 2 * 8) + 1;

// With only one id mapped, chown to any other id fails (EINVAL) and package
// managers stop at their first chown. This filter makes the chown family
// return success without effect, the way fakeroot would, for this process
// and everything it execs (QEMU's host syscalls and native compat programs
// included). Built on the stack: this runs in the forked child.
int IgnoreChown() {
  if (!kChownFilter) return ENOSYS;
  struct sock_filter filter[kMaxFilter];
  unsigned short n = 0;
  for (const ChownAbi& abi : kChownAbis) {
    if (abi.count == 0) continue;
    // Not this ABI: skip its block (compare, load nr, numbers, allow).
    const unsigned char skip = static_cast<unsigned char>(2 * abi.count + 2);
    filter[n++] = BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    filter[n++] = BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, abi.arch, 0, skip);
    filter[n++] = BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    for (int i = 0; i < abi.count; i++) {
      filter[n++] = BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(abi.nrs[i]), 0, 1);
      filter[n++] = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 0);
    }
    filter[n++] = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  }
  filter[n++] = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  struct sock_fprog prog = {n, filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) return errno;
  return 0;
}

// From <linux/openat2.h> and <linux/mount.h>, which clash with glibc's
// headers on some systems; the values are kernel ABI.
struct OpenHow {
  uint64_t flags, mode, resolve;
};
constexpr uint64_t kResolveNoMagicLinks = 0x02, kResolveInRoot = 0x10;
struct MountAttr {
  uint64_t attr_set, attr_clr, propagation, userns_fd;
};
constexpr uint64_t kMountAttrRdonly = 0x1;
constexpr unsigned kAtRecursive = 0x8000;
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif

// Without openat2 (Linux < 5.6): one component at a time, refusing every
// symlink, so nothing can lead out of `root`. The plan's paths hold no '..'.
int WalkNoFollow(int root, const char* path, int flags) {
  int dir = fcntl(root, F_DUPFD_CLOEXEC, 3);
  const char* p = path;
  while (dir >= 0) {
    while (*p == '/') p++;
    if (*p == '\0') {
      int fd = openat(dir, ".", flags | O_CLOEXEC);
      int err = errno;
      close(dir);
      errno = err;
      return fd;
    }
    char name[256];
    size_t n = 0;
    while (p[n] != '\0' && p[n] != '/') {
      if (n == sizeof name - 1) return close(dir), errno = ENAMETOOLONG, -1;
      name[n] = p[n];
      n++;
    }
    name[n] = '\0';
    p += n;
    const char* rest = p;
    while (*rest == '/') rest++;
    bool last = *rest == '\0';
    if (std::strcmp(name, "..") == 0) return close(dir), errno = EXDEV, -1;
    int next = openat(dir, name, (last ? flags : O_PATH | O_DIRECTORY) | O_NOFOLLOW | O_CLOEXEC);
    int err = errno;
    close(dir);
    if (next < 0) return errno = err, -1;
    struct stat st;
    // A symlink only where the caller asked for the link itself (O_NOFOLLOW), and only at the end.
    if (fstat(next, &st) != 0 || (S_ISLNK(st.st_mode) && !(last && (flags & O_NOFOLLOW)))) return close(next), errno = ELOOP, -1;
    if (last) return next;
    dir = next;
  }
  return -1;
}

// Opens `path` inside the tree at `root` as if `root` were '/': symlinks are
// followed but clamped to it, '..' stops at it (RESOLVE_IN_ROOT), so no name
// in the tree, however it changes meanwhile, resolves outside. `walk` (the
// plan's choice where the kernel has no openat2) refuses symlinks instead.
int OpenIn(int root, const char* path, int flags, bool walk) {
  if (walk) return WalkNoFollow(root, path, flags);
  OpenHow how = {static_cast<uint64_t>(flags | O_CLOEXEC), 0, kResolveInRoot | kResolveNoMagicLinks};
  int fd = static_cast<int>(syscall(SYS_openat2, root, path, &how, sizeof how));
  if (fd >= 0 || errno != ENOSYS) return fd;
  return WalkNoFollow(root, path, flags);
}

// "/proc/self/fd/N": a name for what a descriptor holds, for the calls
// (mount, umount) that take only names.
void FdName(int fd, char (&buf)[32]) {
  const char prefix[] = "/proc/self/fd/";
  std::memcpy(buf, prefix, sizeof prefix - 1);
  char digits[12];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + fd % 10);
    fd /= 10;
  } while (fd > 0);
  size_t at = sizeof prefix - 1;
  while (n > 0) buf[at++] = digits[--n];
  buf[at] = '\0';
}

// Mounts onto `target` inside `root`, through the descriptor the resolution
// gave; with O_NOFOLLOW in `open`, onto a final symlink itself (a file can be
// mounted over a link, dangling or not: its target is then never looked at).
int MountAt(int root, const char* target, const char* source, const char* fstype, unsigned long flags, const char* data, bool walk, int open = O_PATH) {
  int fd = OpenIn(root, target, open, walk);
  if (fd < 0) return errno;
  char name[32];
  FdName(fd, name);
  int rc = mount(source, name, fstype, flags, data);
  int err = errno;
  close(fd);
  return rc == 0 ? 0 : err;
}

// Makes the mount at `fd` read-only, with its submounts when `recursive`.
int ReadOnlyFd(int fd, bool recursive) {
  MountAttr attr = {kMountAttrRdonly, 0, 0, 0};
  int err = 0;
  if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | (recursive ? kAtRecursive : 0), &attr, sizeof attr) != 0) {
    err = errno;
    if (err == ENOSYS) {
      // Linux < 5.12: remount the top mount only, keeping the flags the
      // kernel locked when the mount namespace was made (EPERM otherwise).
      struct statvfs sv;
      char name[32];
      FdName(fd, name);
      unsigned long keep = 0;
      if (fstatvfs(fd, &sv) == 0) {
        if (sv.f_flag & ST_NOSUID) keep |= MS_NOSUID;
        if (sv.f_flag & ST_NODEV) keep |= MS_NODEV;
        if (sv.f_flag & ST_NOEXEC) keep |= MS_NOEXEC;
        if (sv.f_flag & ST_NOATIME) keep |= MS_NOATIME;
        if (sv.f_flag & ST_NODIRATIME) keep |= MS_NODIRATIME;
        if (sv.f_flag & ST_RELATIME) keep |= MS_RELATIME;
      }
      err = mount(nullptr, name, nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | keep, nullptr) == 0 ? 0 : errno;
    }
  }
  return err;
}

// Makes the mount now at `target` read-only, with its submounts when `recursive`.
int ReadOnly(int root, const char* target, bool recursive, bool walk) {
  int fd = OpenIn(root, target, O_PATH, walk);
  if (fd < 0) return errno;
  int err = ReadOnlyFd(fd, recursive);
  close(fd);
  return err;
}

// From <linux/mount.h> (which clashes with <sys/mount.h> on older glibc); kernel ABI.
constexpr unsigned kFsopenCloexec = 0x1, kFsmountCloexec = 0x1, kFsconfigSetString = 1, kFsconfigCmdCreate = 6;
constexpr unsigned kMountAttrNosuid = 0x2, kMountAttrNodev = 0x4;
constexpr unsigned kMoveMountFEmptyPath = 0x4, kMoveMountTEmptyPath = 0x40;
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif
#ifndef SYS_fsconfig
#define SYS_fsconfig 431
#endif
#ifndef SYS_fsmount
#define SYS_fsmount 432
#endif

struct Dirent64 {
  uint64_t ino;
  int64_t off;
  unsigned short reclen;
  unsigned char type;
  char name[1];
};

// Calls fn(name, d_type) for each entry of the directory `dir` but . and ..,
// from its start; stops at the first non-zero return and returns it.
template <typename F>
int EachEntry(int dir, F fn) {
  if (lseek(dir, 0, SEEK_SET) < 0) return errno;
  alignas(8) char buf[4096];
  for (;;) {
    long n = syscall(SYS_getdents64, dir, buf, sizeof buf);
    if (n < 0) return errno;
    if (n == 0) return 0;
    for (long at = 0; at < n;) {
      const Dirent64* d = reinterpret_cast<const Dirent64*>(buf + at);
      at += d->reclen;
      const char* name = d->name;
      if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) continue;
      int err = fn(name, d->type);
      if (err != 0) return err;
    }
  }
}

// Creates `rel` (a path inside the layer) on the layer `mnt`: its parents
// must be directories there, no symlink on the way (one copied from the tree
// could lead anywhere, the host's root included, as this process still has it).
int MakeOnLayer(int mnt, const std::string& rel, bool file) {
  size_t slash = rel.find_last_of('/');
  int dir = mnt;
  const char* leaf = rel.c_str();
  if (slash != std::string::npos) {
    char parent[4096];
    if (slash >= sizeof parent) return ENAMETOOLONG;
    std::memcpy(parent, rel.data(), slash);
    parent[slash] = '\0';
    dir = WalkNoFollow(mnt, parent, O_PATH | O_DIRECTORY);
    if (dir < 0) return errno;
    leaf = rel.c_str() + slash + 1;
  }
  int rc = file ? mknodat(dir, leaf, S_IFREG | 0644, 0) : mkdirat(dir, leaf, 0755);
  int err = rc == 0 || errno == EEXIST ? 0 : errno;
  if (dir != mnt) close(dir);
  return err;
}

// Whether `name` is an entry the plan makes on the layer itself (the first
// component of one of its paths): a link the tree has there (debootstrap's
// `proc -> /proc`) is then left out, and a directory made in its place.
bool MadeOnLayer(const Op& op, const char* name) {
  size_t n = std::strlen(name);
  for (const std::string& rel : op.make) {
    if (rel.compare(0, n, name) == 0 && (rel.size() == n || rel[n] == '/')) return true;
  }
  return false;
}

// The layer's own entries, before it is attached: a directory, an empty file
// or a copy of the link for each entry of `orig` (the directory it covers),
// then the paths the plan makes.
int PopulateLayer(int orig, int mnt, const Op& op) {
  int err = EachEntry(orig, [&](const char* name, unsigned char type) -> int {
    if (MadeOnLayer(op, name)) return 0;
    if (type == DT_UNKNOWN) {
      struct stat st;
      if (fstatat(orig, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return 0;  // gone meanwhile
      type = IFTODT(st.st_mode);
    }
    int rc;
    if (type == DT_DIR) {
      rc = mkdirat(mnt, name, 0755);
    } else if (type == DT_LNK) {
      // A link cannot be bound back: it is copied (the layer is read-only, so it cannot change either way).
      char target[4096];
      ssize_t n = readlinkat(orig, name, target, sizeof target - 1);
      if (n < 0) return 0;
      target[n] = '\0';
      rc = symlinkat(target, mnt, name);
    } else {
      rc = mknodat(mnt, name, S_IFREG | 0600, 0);
    }
    return rc == 0 || errno == EEXIST ? 0 : errno;
  });
  for (size_t i = 0; err == 0 && i < op.make.size(); i++) err = MakeOnLayer(mnt, op.make[i], op.makeFile[i]);
  return err;
}

// Binds each entry of `orig` onto its place on the attached layer `mnt`,
// with whatever is mounted below it. An entry that came or went since the
// layer was populated is left out of the guest's view.
int BindBack(int orig, int mnt) {
  return EachEntry(orig, [&](const char* name, unsigned char) -> int {
    int src = openat(orig, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (src < 0) return 0;
    struct stat st;
    int dst = fstat(src, &st) == 0 && !S_ISLNK(st.st_mode) ? openat(mnt, name, O_PATH | O_NOFOLLOW | O_CLOEXEC) : -1;
    int err = 0;
    if (dst >= 0) {
      char from[32], to[32];
      FdName(src, from);
      FdName(dst, to);
      if (mount(from, to, nullptr, MS_BIND | MS_REC, nullptr) != 0) err = errno;
      close(dst);
    }
    close(src);
    return err;
  });
}

// The host path of the root (the `root` op's), for reaching a layer over it by name.
const char* g_rootPath = nullptr;

constexpr long kTmpfsMagic = 0x01021994;

// A new tmpfs built detached (fsopen/fsmount) and attached over `orig` once
// `populate` has filled it; its descriptor, or -1 with errno set.
template <typename F>
int AttachByFsmount(int orig, const char* mode, F populate) {
  int fs = static_cast<int>(syscall(SYS_fsopen, "tmpfs", kFsopenCloexec));
  if (fs < 0) return -1;
  int mnt = -1;
  if (syscall(SYS_fsconfig, fs, kFsconfigSetString, "mode", mode, 0) == 0 && syscall(SYS_fsconfig, fs, kFsconfigCmdCreate, nullptr, nullptr, 0) == 0) {
    mnt = static_cast<int>(syscall(SYS_fsmount, fs, kFsmountCloexec, kMountAttrNosuid | kMountAttrNodev));
  }
  int err = errno;
  close(fs);
  if (mnt < 0) return errno = err, -1;
  err = populate(mnt);
  if (err == 0 && syscall(SYS_move_mount, mnt, "", orig, "", kMoveMountFEmptyPath | kMoveMountTEmptyPath) != 0) err = errno;
  if (err != 0) return close(mnt), errno = err, -1;
  return mnt;
}

// A new tmpfs mounted over `orig` by mount(2) (Linux < 5.2, or where a
// seccomp profile refuses the new mount API), then reached again by its name
// `leaf` in `parent`, which crosses into the newest mount there. Used only if
// it is an empty tmpfs on another device than `orig`: a name swapped
// meanwhile leads elsewhere, and nothing is then made there (EAGAIN).
template <typename F>
int AttachByMount(int orig, int parent, const char* leaf, const char* mode, F populate) {
  char name[32], data[16] = "mode=";
  FdName(orig, name);
  std::memcpy(data + 5, mode, 5);
  if (mount("tmpfs", name, "tmpfs", MS_NOSUID | MS_NODEV, data) != 0) return -1;
  int top = openat(parent, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (top < 0) return -1;
  struct stat a, b;
  struct statfs fs;
  bool empty = EachEntry(top, [](const char*, unsigned char) { return 1; }) == 0;
  if (!empty || fstat(top, &a) != 0 || fstat(orig, &b) != 0 || fstatfs(top, &fs) != 0 || fs.f_type != kTmpfsMagic || a.st_dev == b.st_dev) {
    close(top);
    return errno = EAGAIN, -1;
  }
  int err = populate(top);
  if (err != 0) return close(top), errno = err, -1;
  return top;
}

// A private layer over the directory `op.target` inside the root, so that
// mount points the tree lacks can be made without writing into it: a new
// tmpfs holding a place for each of the directory's entries and the paths
// the plan makes, attached over the directory, each entry bound back from
// the directory (the guest reads and writes the tree's own files there),
// then made read-only, so a new entry the guest makes right in it fails
// instead of vanishing with the sandbox. The tmpfs is built detached
// (fsopen/fsmount) and reached only through its descriptor, never by a name
// someone could swap; by mount(2) where the plan says so or the new mount API
// is refused. A layer over the root becomes the root later ops resolve in.
int Layer(int* root, const Op& op, bool walk) {
  bool top = op.target == "/";
  if (top && g_rootPath == nullptr) return EINVAL;
  // The directory and its parent: for the root, the host directory above it ('..' from a mount's root leaves it).
  int parent = top ? openat(*root, "..", O_PATH | O_DIRECTORY | O_CLOEXEC) : OpenIn(*root, op.parent.c_str(), O_PATH | O_DIRECTORY, walk);
  if (parent < 0) return errno;
  const char* leaf = top ? std::strrchr(g_rootPath, '/') + 1 : op.leaf.c_str();
  int orig = top ? openat(*root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : openat(parent, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (orig < 0 || fstat(orig, &st) != 0) {
    int err = errno;
    if (orig >= 0) close(orig);
    close(parent);
    return err;
  }
  // The mode of the directory it covers, as 4 octal digits.
  char mode[5];
  for (int i = 3; i >= 0; i--) mode[3 - i] = static_cast<char>('0' + ((st.st_mode >> (3 * i)) & 7));
  mode[4] = '\0';
  auto populate = [&](int mnt) {
    // Its owner too, where that id is mapped here (else it stays root's).
    fchownat(mnt, "", st.st_uid, st.st_gid, AT_EMPTY_PATH);
    return PopulateLayer(orig, mnt, op);
  };
  int mnt = -1;
  if (!op.byMount) {
    mnt = AttachByFsmount(orig, mode, populate);
    if (mnt < 0 && errno != ENOSYS && errno != EPERM) {
      int err = errno;
      close(orig);
      close(parent);
      return err;
    }
  }
  if (mnt < 0) mnt = AttachByMount(orig, parent, leaf, mode, populate);
  int err = mnt < 0 ? errno : BindBack(orig, mnt);
  if (err == 0) err = ReadOnlyFd(mnt, false);
  close(orig);
  close(parent);
  if (err == 0 && top) {
    close(*root);
    *root = mnt;
    return 0;
  }
  if (mnt >= 0) close(mnt);
  return err;
}

// Creates op.leaf in op.parent (inside `root`); something already there is kept.
int Create(int root, const Op& op, bool walk) {
  int dir = OpenIn(root, op.parent.c_str(), O_PATH | O_DIRECTORY, walk);
  if (dir < 0) return errno;
  int rc;
  switch (op.kind) {
    case kMkdir:
      rc = mkdirat(dir, op.leaf.c_str(), op.mode);
      break;
    case kFile:
      rc = mknodat(dir, op.leaf.c_str(), S_IFREG | op.mode, 0);
      break;
    default:
      rc = symlinkat(op.data.c_str(), dir, op.leaf.c_str());
      break;
  }
  int err = errno;
  close(dir);
  return rc == 0 || err == EEXIST ? 0 : err;
}

// Creates each of `op.make` in the directory `op.target` as a link to
// `op.data`; what is already there is kept.
int Links(int root, const Op& op, bool walk) {
  int dir = OpenIn(root, op.target.c_str(), O_PATH | O_DIRECTORY, walk);
  if (dir < 0) return errno;
  int err = 0;
  for (size_t i = 0; err == 0 && i < op.make.size(); i++) {
    if (symlinkat(op.data.c_str(), dir, op.make[i].c_str()) != 0 && errno != EEXIST) err = errno;
  }
  close(dir);
  return err;
}

// One op; returns 0 or an errno. `root` is the current root's descriptor.
int RunOp(const Op& op, int* root, bool walk) {
  const char* target = op.target.c_str();
  switch (op.kind) {
    case kMount:
      return MountAt(*root, target, op.source.empty() ? nullptr : op.source.c_str(), op.fstype.empty() ? nullptr : op.fstype.c_str(),
                     op.flags, op.data.empty() ? nullptr : op.data.c_str(), walk);
    case kBind: {
      // A source inside the root is reached through its descriptor too, before the root is entered.
      char from[32];
      int src = op.sourceInRoot ? OpenIn(*root, op.source.c_str(), O_PATH, walk) : -1;
      if (op.sourceInRoot && src < 0) return errno;
      if (src >= 0) FdName(src, from);
      int err = MountAt(*root, target, src >= 0 ? from : op.source.c_str(), nullptr, MS_BIND | (op.recursive ? MS_REC : 0), nullptr, walk,
                        op.nofollow ? O_PATH | O_NOFOLLOW : O_PATH);
      if (src >= 0) close(src);
      return err != 0 || !op.readonly ? err : ReadOnly(*root, target, op.recursive, walk);
    }
    case kLayer:
      return Layer(root, op, walk);
    case kWrite: {
      int fd = OpenIn(*root, target, O_WRONLY, walk);
      if (fd < 0) return errno;
      // binfmt_misc's register takes one rule per write(2).
      ssize_t w = write(fd, op.data.data(), op.data.size());
      int err = w < 0 ? errno : EIO;
      close(fd);
      return w == static_cast<ssize_t>(op.data.size()) ? 0 : err;
    }
    case kMkdir:
    case kFile:
    case kSymlink:
      return Create(*root, op, walk);
    case kRoot: {
      // A mount point of its own, so that it can become the root; the
      // descriptor is taken after the bind, on the new mount.
      if (mount(target, target, nullptr, MS_BIND | MS_REC, nullptr) != 0) return errno;
      int fd = open(target, O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0) return errno;
      close(*root);
      *root = fd;
      g_rootPath = target;
      return 0;
    }
    case kEnter:
      // pivot_root, then the old root detached: unlike chroot(2), nothing
      // is left above the new root, so a guest that is root in its
      // namespace and chroots again cannot climb back to the host's tree.
      // pivot_root(".", ".") stacks the old root on the new one (Linux >= 3.10
      // allows the same directory twice); umount2 takes it off.
      if (fchdir(*root) != 0) return errno;
      if (syscall(SYS_pivot_root, ".", ".") != 0) return errno;
      if (umount2(".", MNT_DETACH) != 0 || chdir("/") != 0) return errno;
      return 0;
    case kChdir:
      return chdir(target) == 0 ? 0 : errno;
    case kLinks:
      return Links(*root, op, walk);
    case kReadonly:
      return ReadOnly(*root, target, false, walk);
    case kNest:
      return 0;  // done by the guest as it starts (Guest, WriteNestMaps)
  }
  return EINVAL;
}

[[noreturn]] void Fail(int fd, int step, int err) {
  Report r{step, err};
  WriteAll(fd, &r, sizeof r);
  _exit(127);
}

// What the guest and the init share for a `nest` op: the init's descriptor
// for a /proc where the guest can be named (the one it started with: the
// host's, in the host's pid namespace), and a pipe each way.
struct Nest {
  int step = -1;  // the op's index, for failures
  const Op* op = nullptr;
  int proc = -1;
  int up[2] = {-1, -1};    // guest -> init: its pid as that /proc names it
  int down[2] = {-1, -1};  // init -> guest: its maps are written
};

// In the guest, first of all: user and mount namespaces of its own, nested in
// the init's (issue 23). The guest keeps its ids (the init maps each of its own
// namespace's ids to itself) and its root's powers over everything it makes,
// mounts included; but the namespaces that hold the sandbox's mounts, its
// binfmt_misc instance and its pid namespace belong to the init's, over
// which it has none, and the mounts it inherits are locked as the kernel
// locks them for a less privileged namespace: one xrun made read-only (the
// emulators, the launcher and its settings, binfmt_misc) cannot be made
// writable again (MNT_LOCK_READONLY), nor unmounted to show what is below
// (MNT_LOCKED). A process that has just entered a user namespace cannot map
// ranges there itself: the init, still outside, writes the maps.
void EnterNest(const Nest& n, int report) {
  close(n.up[0]);
  close(n.down[1]);
  if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) Fail(report, n.step, errno);
  // Dumpable while the init writes the maps, so that its /proc files are this process's ids', not the host root's.
  prctl(PR_SET_DUMPABLE, 1);
  char self[24];
  ssize_t len = readlinkat(n.proc, "self", self, sizeof self);
  if (len <= 0 || len == static_cast<ssize_t>(sizeof self)) Fail(report, n.step, len < 0 ? errno : EIO);
  WriteAll(n.up[1], self, static_cast<size_t>(len));
  close(n.up[1]);
  // EOF: the init could not write the maps, and has said why.
  if (!ReadByte(n.down[0])) _exit(127);
  close(n.down[0]);
  close(n.proc);
  prctl(PR_SET_DUMPABLE, 0);
}

// Writes `data` to /proc/PID/`file` through the /proc descriptor `proc`.
int WriteProcAt(int proc, const char* pid, const char* file, const std::string& data) {
  char path[64];
  size_t np = std::strlen(pid), nf = std::strlen(file);
  if (np + nf + 2 > sizeof path) return ENAMETOOLONG;
  std::memcpy(path, pid, np);
  path[np] = '/';
  std::memcpy(path + np + 1, file, nf + 1);
  int fd = openat(proc, path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t w = write(fd, data.data(), data.size());
  int err = w < 0 ? errno : EIO;
  close(fd);
  return w == static_cast<ssize_t>(data.size()) ? 0 : err;
}

// In the init, once the guest has entered its namespaces: its maps. Returns 0,
// an errno, or -1 when the guest failed first (it has said why).
int WriteNestMaps(const Nest& n) {
  close(n.up[1]);
  close(n.down[0]);
  char pid[24];
  ssize_t len;
  do {
    len = read(n.up[0], pid, sizeof pid - 1);
  } while (len < 0 && errno == EINTR);
  close(n.up[0]);
  if (len <= 0) return -1;
  pid[len] = '\0';
  int err = WriteProcAt(n.proc, pid, "uid_map", n.op->source);
  if (err == 0) err = WriteProcAt(n.proc, pid, "gid_map", n.op->data);
  close(n.proc);
  if (err == 0) WriteAll(n.down[1], "g", 1);
  close(n.down[1]);
  return err;
}

// The guest, forked by the init: its signals as a fresh process has them, then exec.
[[noreturn]] void Guest(const Spec& spec, char* const* argv, char* const* envp, int report, const Nest& nest) {
  ResetSignalsForExec();
  if (nest.op != nullptr) EnterNest(nest, report);
  if (spec.ignoreChown) {
    int e = IgnoreChown();
    if (e != 0) Fail(report, -3, e);
  }
  CloseStdioForExec(spec.closeStdioMask);
  KeepFdsForExec(spec.keepFds);
  int err = ENOENT;
  for (const std::string& path : spec.candidates) {
    execve(path.c_str(), argv, envp);
    // As execvp: keep looking past "not there", remember anything else.
    if (errno != ENOENT && errno != ENOTDIR) err = errno;
  }
  Fail(report, static_cast<int>(spec.ops.size()), err);
}

// The sandbox's init, pid 1 of its pid namespace, cloned from xrun with every
// signal blocked. It runs the plan's ops, forks the guest, forwards the
// signals xrun passes on, reaps orphans, and exits with the guest's status
// (128+N for signal N) as soon as the guest ends: the kernel then kills
// whatever else is left in the namespace. System calls only: no allocation.
[[noreturn]] void Init(const Spec& spec, char* const* argv, char* const* envp, int go, int report) {
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++) {
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, nullptr);
  }
  SetChild(0, -1);
  __atomic_store_n(&g_pending, 0u, __ATOMIC_SEQ_CST);
  __atomic_store_n(&g_hangup, 0, __ATOMIC_SEQ_CST);
  __atomic_store_n(&g_isInit, true, __ATOMIC_SEQ_CST);
  InstallForwarding(nullptr);
  // If xrun dies, even by SIGKILL, the init is killed and the namespace
  // with it.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  prctl(PR_SET_NAME, "xrun-init");
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  RestoreStdioForExec();

  // xrun writes our id maps, then releases us. EOF: it gave up, or died
  // before PR_SET_PDEATHSIG took hold.
  if (!ReadByte(go)) _exit(127);
  close(go);
  // Not dumpable, now that the maps are written (that makes /proc/PID
  // root's): the guest may not ptrace or read the memory of this copy of xrun.
  prctl(PR_SET_DUMPABLE, 0);

  // The guest's nested namespaces: /proc as it is now, before any op changes the view.
  Nest nest;
  if (!spec.ops.empty() && spec.ops.back().kind == kNest) {
    nest.step = static_cast<int>(spec.ops.size() - 1);
    nest.op = &spec.ops.back();
    nest.proc = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (nest.proc < 0 || pipe2(nest.up, O_CLOEXEC) != 0 || pipe2(nest.down, O_CLOEXEC) != 0) Fail(report, nest.step, errno);
  }

  int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) Fail(report, 0, errno);
  bool failed = false;
  for (size_t i = 0; i < spec.ops.size(); i++) {
    const Op& op = spec.ops[i];
    if (op.fallback && !failed) continue;
    int err = RunOp(op, &root, spec.walk);
    failed = err != 0;
    bool rescued = i + 1 < spec.ops.size() && spec.ops[i + 1].fallback;
    if (failed && !op.optional && !rescued) Fail(report, static_cast<int>(i), err);
  }
  close(root);

  sigset_t forwarded;
  sigemptyset(&forwarded);
  for (int sig : kForwarded) sigaddset(&forwarded, sig);
  sigprocmask(SIG_BLOCK, &forwarded, nullptr);
  pid_t guest = CloneProcess(0);
  if (guest == 0) Guest(spec, argv, envp, report, nest);
  if (guest < 0) Fail(report, -4, errno);
  if (nest.op != nullptr) {
    int err = WriteNestMaps(nest);
    if (err > 0) Fail(report, nest.step, err);
  }
  // The guest holds the report pipe until its execve closes it.
  close(report);
  SetChild(guest, PidFd(guest));
  sigprocmask(SIG_UNBLOCK, &forwarded, nullptr);

  for (;;) {
    siginfo_t info;
    info.si_pid = 0;
    if (waitid(P_ALL, 0, &info, WEXITED | WNOWAIT) != 0) {
      if (errno == EINTR) continue;
      _exit(127);
    }
    if (info.si_pid != guest) {
      waitpid(info.si_pid, nullptr, 0);
      continue;
    }
    int status = 0;
    WaitChild(guest, &status);
    _exit(WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status));
  }
}

// Runs a map helper (newuidmap/newgidmap) with the child's pid; returns 0 or
// an errno, and what the helper wrote on stderr: its own reason ("uid range
// ... not allowed") says more than any errno.
int RunHelper(const std::vector<std::string>& helper, pid_t child, std::string* said) {
  std::vector<std::string> args = helper;
  args.insert(args.begin() + 1, std::to_string(child));
  std::vector<char*> argv = Pointers(args);
  std::string cannot = helper[0] + ": cannot execute it\n";
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return errno;
  pid_t pid = fork();
  if (pid < 0) {
    int err = errno;
    close(out[0]);
    close(out[1]);
    return err;
  }
  if (pid == 0) {
    dup2(out[1], 2);
    execv(argv[0], argv.data());
    WriteAll(2, cannot.data(), cannot.size());
    _exit(127);
  }
  close(out[1]);
  char buf[512];
  for (;;) {
    ssize_t n = read(out[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (said->size() < 4096) said->append(buf, static_cast<size_t>(n));
  }
  close(out[0]);
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
  return step == -1 ? "unshare" : step == -3 ? "seccomp" : step == -4 ? "fork" : "op";
}

Napi::Object Result(Napi::Env env, int status, const char* failedStep, int err, int stepIndex, const std::string& message = "") {
  Napi::Object r = Napi::Object::New(env);
  if (failedStep != nullptr) {
    r.Set("failed", Napi::String::New(env, failedStep));
    r.Set("errno", Napi::Number::New(env, err));
    r.Set("step", Napi::Number::New(env, stepIndex));
    if (!message.empty()) r.Set("message", Napi::String::New(env, message));
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

bool HasChownFilter() {
  return kChownFilter;
}

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

  int go[2], report[2];
  if (pipe2(go, O_CLOEXEC) != 0) return Result(env, 0, "pipe", errno, -2);
  if (pipe2(report, O_CLOEXEC) != 0) {
    int err = errno;
    close(go[0]);
    close(go[1]);
    return Result(env, 0, "pipe", err, -2);
  }

  // Forwarding handlers go in before the clone, so no signal can kill xrun
  // and orphan the guest in between; one that comes before the pid is known
  // waits in g_pending. Every signal is blocked across the clone, so none
  // runs xrun's handlers in the child before it has reset them.
  struct sigaction saved[4], savedAlarm;
  SetChild(0, -1);
  __atomic_store_n(&g_hangup, 0, __ATOMIC_SEQ_CST);
  __atomic_store_n(&g_hangupGraceMs, spec.hangupGraceMs, __ATOMIC_SEQ_CST);
  struct sigaction grace = {};
  grace.sa_handler = GraceOver;
  grace.sa_flags = SA_RESTART;
  sigfillset(&grace.sa_mask);
  sigaction(SIGALRM, &grace, &savedAlarm);
  InstallForwarding(&saved);
  sigset_t all, mask;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &mask);
  pid_t pid = CloneProcess(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID);
  if (pid == 0) {
    // xrun's ends: held open here, they would hide xrun's exit.
    close(go[1]);
    close(report[0]);
    Init(spec, argv.data(), envp.data(), go[0], report[1]);
  }
  int cloneErr = errno;
  pthread_sigmask(SIG_SETMASK, &mask, nullptr);
  close(go[0]);
  close(report[1]);
  int pidfd = pid > 0 ? PidFd(pid) : -1;
  auto restore = [&]() {
    SetChild(0, -1);
    for (int i = 0; i < 4; i++) sigaction(kForwarded[i], &saved[i], nullptr);
    struct itimerval off = {};
    setitimer(ITIMER_REAL, &off, nullptr);
    sigaction(SIGALRM, &savedAlarm, nullptr);
    if (pidfd >= 0) close(pidfd);
  };
  if (pid < 0) {
    close(go[1]);
    close(report[0]);
    restore();
    return Result(env, 0, "unshare", cloneErr, -1);
  }
  SetChild(pid, pidfd);

  int err = 0;
  const char* step = nullptr;
  std::string said;
  if (!spec.uidHelper.empty()) {
    if ((err = RunHelper(spec.uidHelper, pid, &said)) != 0) step = "uid_map";
    else if ((err = RunHelper(spec.gidHelper, pid, &(said = ""))) != 0) step = "gid_map";
  } else {
    if ((err = WriteProc(pid, "setgroups", spec.setgroups)) != 0) step = "setgroups";
    else if ((err = WriteProc(pid, "uid_map", spec.uidMap)) != 0) step = "uid_map";
    else if ((err = WriteProc(pid, "gid_map", spec.gidMap)) != 0) step = "gid_map";
  }
  if (step != nullptr) {
    close(go[1]);
    close(report[0]);
    SetChild(0, -1);
    KillAndReap(pid);
    restore();
    return Result(env, 0, step, err, -2, said);
  }
  WriteAll(go[1], "g", 1);
  close(go[1]);

  // The report pipe closes when the guest's execve succeeds, or carries a failure.
  Report r;
  ssize_t n;
  do {
    n = read(report[0], &r, sizeof r);
  } while (n < 0 && errno == EINTR);
  close(report[0]);

  int status = 0;
  err = WaitChild(pid, &status);
  restore();
  if (n == sizeof r) return Result(env, 0, StepName(r.step), r.err, r.step);
  if (err != 0) return Result(env, 0, "waitpid", err, -2);
  // Ended after its terminal hung up, by xrun when the grace was over: as a
  // program that dies of the hang-up.
  if (__atomic_load_n(&g_hangup, __ATOMIC_SEQ_CST) != 0 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) status = SIGHUP;
  return Result(env, status, nullptr, 0, 0);
}

}  // namespace xrun
