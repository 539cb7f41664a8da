// xrun-view: lays directories of a tree over the host's, read-only, in a
// private mount namespace, then execs a program in its own place (same pid,
// argv, stdio, exit status and signals).
//
// Node cannot make the namespaces itself: unshare(CLONE_NEWUSER) fails in a
// multithreaded process, and Node always is. xrun execs this helper in its
// place instead, and the helper, single-threaded:
//   1. enters a private mount namespace: as root alone (identity untouched);
//      as a user inside a new user namespace where the user's own uid and gid
//      map to themselves, so the program sees the ids it had;
//   2. opens every layer and the program first, so later mounts change
//      neither (and no overlay is stacked on another);
//   3. mounts each overlay (layers topmost first) read-only on its target,
//      in the order given; nothing is written anywhere;
//   4. execs the program through its descriptor.
// Everything goes when the process ends: the mounts live in its namespace.
// Policy (which directories, what to run, what to say) is xrun's: this program
// does what its argv says.
//
// Usage: xrun-view MESSAGE HINT EXIT-CODE|continue N [TARGET need|may K LAYER*K]*N EXEC [ARGS...]
//   EXEC is also the program's argv[0]. On failure prints
//   "MESSAGE: OP PATH: ERROR" and HINT, and exits with EXIT-CODE; with
//   `continue` for EXIT-CODE, a failure of the view itself is only said, and
//   the program runs without the view. A `may` overlay that cannot be mounted
//   (a user namespace may not take a host directory with mounts of a more
//   privileged namespace below it as a layer, as /etc in a container) is left
//   out with a warning; a `need` one is a failure of the view.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char** environ;

static const char* message = "xrun: cannot set up the view";
static const char* hint = "";
// -1: on failure, say so and run the program without the (rest of the) view.
static int fail_code = 125;
static int viewing = 1;

static void say(const char* op, const char* path, int err) {
  fprintf(stderr, "%s: %s%s%s: %s\n", message, op, path ? " " : "", path ? path : "", strerror(err));
  if (hint[0] != '\0') fprintf(stderr, "%s\n", hint);
}

static void fail(const char* op, const char* path, int err) {
  say(op, path, err);
  _exit(fail_code < 0 ? 125 : fail_code);
}

// A failure of the view itself: fatal, or with `continue` the program runs without it.
static int view_failed(const char* op, const char* path, int err) {
  if (fail_code >= 0) fail(op, path, err);
  say(op, path, err);
  viewing = 0;
  return 0;
}

static int write_file(const char* path, const char* data) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return view_failed("open", path, errno);
  size_t len = strlen(data);
  if (write(fd, data, len) != (ssize_t)len) {
    close(fd);
    return view_failed("write", path, errno);
  }
  close(fd);
  return 1;
}

// A private mount namespace, keeping the caller's identity.
static int enter_namespace(void) {
  uid_t uid = geteuid();
  gid_t gid = getegid();
  if (uid == 0 && unshare(CLONE_NEWNS) == 0) return 1;
  if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) return view_failed("cannot make a private mount namespace", NULL, errno);
  char map[64];
  // An unprivileged process may map only its own ids, and gid_map needs setgroups denied first.
  if (!write_file("/proc/self/setgroups", "deny")) return 0;
  snprintf(map, sizeof map, "%u %u 1\n", (unsigned)uid, (unsigned)uid);
  if (!write_file("/proc/self/uid_map", map)) return 0;
  snprintf(map, sizeof map, "%u %u 1\n", (unsigned)gid, (unsigned)gid);
  return write_file("/proc/self/gid_map", map);
}

static long number(const char* s) {
  char* end;
  long n = strtol(s, &end, 10);
  if (*s == '\0' || *end != '\0' || n < 0) fail("arguments", s, EINVAL);
  return n;
}

int main(int argc, char** argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: xrun-view MESSAGE HINT EXIT-CODE N [TARGET need|may K LAYER...]... EXEC [ARGS...]\n");
    return 2;
  }
  message = argv[1];
  hint = argv[2];
  fail_code = strcmp(argv[3], "continue") == 0 ? -1 : (int)number(argv[3]);
  long n = number(argv[4]);

  // Nothing mounted here may reach the parent namespace's mounts.
  if (enter_namespace() && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) view_failed("make / private", NULL, errno);

  // Every layer opened now, before anything is mounted over it, and inside the
  // new namespace: overlayfs takes private clones of its layers' mounts only
  // from the caller's own namespace.
  int pos = 5;
  int* fds = calloc((size_t)argc, sizeof(int));  // by argv index; 0 = not opened
  if (fds == NULL) fail("calloc", NULL, ENOMEM);
  for (long i = 0; i < n; i++) {
    if (pos + 3 > argc) fail("arguments", NULL, EINVAL);
    long k = number(argv[pos + 2]);
    // A read-only overlay needs two layers at least: the tree's and the host's own.
    if (k < 2 || pos + 3 + k >= argc) fail("arguments", NULL, EINVAL);
    for (long j = 0; j < k && viewing; j++) {
      const char* layer = argv[pos + 3 + j];
      fds[pos + 3 + j] = open(layer, O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (fds[pos + 3 + j] < 0) view_failed("open", layer, errno);
    }
    pos += 3 + (int)k;
  }
  if (pos >= argc) fail("arguments", NULL, EINVAL);
  const char* exec_path = argv[pos];
  char** exec_argv = argv + pos;
  // The program by descriptor: the tree may hold a file of the same name.
  int exec_fd = open(exec_path, O_RDONLY | O_CLOEXEC);
  if (exec_fd < 0) fail("open", exec_path, errno);

  pos = 5;
  for (long i = 0; i < n && viewing; i++) {
    const char* target = argv[pos];
    int need = strcmp(argv[pos + 1], "need") == 0;
    long k = number(argv[pos + 2]);
    char data[4096] = "lowerdir=";
    size_t used = strlen(data);
    for (long j = 0; j < k; j++) {
      int w = snprintf(data + used, sizeof data - used, "%s/proc/self/fd/%d", j ? ":" : "", fds[pos + 3 + j]);
      if (w < 0 || (size_t)w >= sizeof data - used) fail("mount overlay on", target, E2BIG);
      used += (size_t)w;
    }
    if (mount("xrun-view", target, "overlay", MS_RDONLY, data) != 0) {
      if (need) {
        view_failed("mount overlay on", target, errno);
      } else {
        fprintf(stderr, "xrun: warning: the view leaves out %s: mount overlay: %s\n", target, strerror(errno));
      }
    }
    pos += 3 + (int)k;
  }
  for (int i = 0; i < argc; i++) {
    if (fds[i] > 0) close(fds[i]);
  }
  free(fds);

  syscall(SYS_execveat, exec_fd, "", exec_argv, environ, AT_EMPTY_PATH);
  int err = errno;
  fprintf(stderr, "xrun: cannot execute %s: %s\n", exec_path, strerror(err));
  return err == ENOENT ? 127 : 126;
}
