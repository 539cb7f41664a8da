/*
 * xrun-launcher: the binfmt_misc interpreter xrun registers, with flags F and
 * P, for an architecture whose emulator needs options (the emulated CPU,
 * `-cpu MODEL`). A binfmt entry can name an interpreter but pass it nothing,
 * and QEMU_CPU in the environment is lost in every child started with a
 * cleared environment (`env -i`, sudo, daemons), so the options live in a file
 * beside this program instead, which every exec reads.
 *
 * With flag P the kernel starts this program with
 *   argv[0] = the interpreter path as registered,
 *   argv[1] = the path of the program being executed,
 *   argv[2] = that program's own argv[0], argv[3...] = its arguments,
 * and this program executes
 *   EMULATOR OPTIONS... -0 argv[2] argv[1] argv[3...]
 * where "<argv[0]>.conf" holds EMULATOR and OPTIONS, one per line. The
 * environment passes through untouched. Statically linked: it runs inside any
 * root file system, where the host's libraries are not.
 *
 * The kernel names a process (comm: ps, pidof, start-stop-daemon --name) after
 * the last component of the path it was executed by. Under binfmt_misc that is
 * the program's own name; executing the emulator by its path would name every
 * process after the emulator. So the emulator is executed through a symlink
 * named like the program, in "<argv[0]>.names/" (made on first use; where this
 * process may not write there, the emulator's own path serves).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { MAX_CONF = 4096, MAX_OPTIONS = 64 };

static void say(const char *a, const char *b, const char *c) {
  const char *parts[] = {"xrun-launcher: ", a, b, c, "\n"};
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    if (parts[i] && write(2, parts[i], strlen(parts[i])) < 0) return;
  }
}

int main(int argc, char **argv) {
  if (argc < 3) {
    say("started by binfmt_misc only (flags F and P)", NULL, NULL);
    return 126;
  }
  char path[PATH_MAX];
  size_t n = strlen(argv[0]);
  if (n + sizeof ".conf" > sizeof path) {
    say(argv[0], ": path too long", NULL);
    return 126;
  }
  memcpy(path, argv[0], n);
  memcpy(path + n, ".conf", sizeof ".conf");

  static char conf[MAX_CONF];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    say(path, ": ", strerror(errno));
    return 126;
  }
  size_t len = 0;
  for (;;) {
    ssize_t r = read(fd, conf + len, sizeof conf - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      say(path, ": ", strerror(errno));
      return 126;
    }
    if (r == 0 || (len += (size_t)r) == sizeof conf - 1) break;
  }
  close(fd);
  conf[len] = '\0';

  // One word per line: the emulator, then its options.
  char *words[MAX_OPTIONS + 1];
  int nwords = 0;
  for (char *line = conf; *line && nwords <= MAX_OPTIONS;) {
    char *end = strchr(line, '\n');
    if (end) *end = '\0';
    if (*line) words[nwords++] = line;
    if (!end) break;
    line = end + 1;
  }
  if (nwords == 0) {
    say(path, ": names no emulator", NULL);
    return 126;
  }

  char **args = malloc(sizeof(char *) * (size_t)(nwords + argc + 2));
  if (!args) return 126;
  int k = 0;
  for (int i = 0; i < nwords; i++) args[k++] = words[i];
  args[k++] = "-0";
  args[k++] = argv[2];
  args[k++] = argv[1];
  for (int i = 3; i < argc; i++) args[k++] = argv[i];
  args[k] = NULL;
  // The program's name, as the kernel would have taken it.
  const char *name = strrchr(argv[1], '/');
  name = name ? name + 1 : argv[1];
  char link[PATH_MAX];
  size_t nl = strlen(name);
  if (nl > 0 && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 && n + sizeof ".names/" + nl <= sizeof link) {
    memcpy(link, argv[0], n);
    memcpy(link + n, ".names/", sizeof ".names/" - 1);
    memcpy(link + n + sizeof ".names/" - 1, name, nl + 1);
    if (symlink(words[0], link) == 0 || errno == EEXIST) execv(link, args);
  }
  execv(words[0], args);
  int err = errno;
  say(words[0], ": ", strerror(err));
  return err == ENOENT ? 127 : 126;
}
