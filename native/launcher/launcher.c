/*
 * xrun-launcher: the binfmt_misc interpreter xrun registers, with flags F and
 * P, where a foreign exec needs more than the bare emulator (src/sandbox/
 * launcher.ts). A binfmt entry can name an interpreter but pass it nothing,
 * and QEMU_CPU in the environment is lost in every child started with a
 * cleared environment (`env -i`, sudo, daemons), so what to do lives in a
 * file beside this program instead, which every exec reads.
 *
 * With flag P the kernel starts this program with
 *   argv[0] = the interpreter path as registered,
 *   argv[1] = the path of the program being executed,
 *   argv[2] = that program's own argv[0], argv[3...] = its arguments,
 * and "<argv[0]>.conf" says, one keyword and its value per line:
 *   emulator PATH        the emulator to execute
 *   arg WORD             one of its options, in order (the emulated CPU)
 *   sysroot DIR          for a program with a dynamic loader (PT_INTERP): the
 *                        first DIR holding it is passed as `-L DIR` ("/", the
 *                        host itself: no -L), in the order listed
 *   unless-env NAME      when NAME is set in the environment, no sysroot is
 *                        chosen (QEMU reads it itself)
 *   missing-loader LINE  printed when no DIR holds the loader; exit 127
 *   refuse LINE          printed instead of running anything; exit 126
 *   debug-...            --gdb and --gdb-port: which one exec takes the
 *                        debugger, and its options (see debug_take)
 * In LINE, "{program}" is the program's path and "{loader}" its loader.
 * It then executes
 *   EMULATOR ARGS... [DEBUG-ARGS...] -0 argv[2] [-L DIR] argv[1] argv[3...]
 * with the environment untouched. Every choice and every word comes from the
 * configuration: this program only executes it. Statically linked: it runs
 * inside any root file system, where the host's libraries are not.
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
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { MAX_CONF = 16384, MAX_LINES = 128 };

static void put(const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = write(2, s, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

static void say(const char *a, const char *b, const char *c) {
  const char *parts[] = {"xrun-launcher: ", a, b, c, "\n"};
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    if (parts[i]) put(parts[i], strlen(parts[i]));
  }
}

/* Prints a configured line, "{program}" and "{loader}" filled in. */
static void tell(const char *line, const char *program, const char *loader) {
  while (*line) {
    const char *brace = strchr(line, '{');
    if (!brace) break;
    put(line, (size_t)(brace - line));
    if (strncmp(brace, "{program}", 9) == 0) {
      put(program, strlen(program));
      line = brace + 9;
    } else if (strncmp(brace, "{loader}", 8) == 0) {
      put(loader ? loader : "", loader ? strlen(loader) : 0);
      line = brace + 8;
    } else {
      put(brace, 1);
      line = brace + 1;
    }
  }
  put(line, strlen(line));
  put("\n", 1);
}

static uint64_t field(const unsigned char *p, int size, int big) {
  uint64_t v = 0;
  for (int i = 0; i < size; i++) v |= (uint64_t)p[big ? size - 1 - i : i] << (8 * i);
  return v;
}

static int read_at(int fd, void *buf, size_t n, uint64_t off) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return 0;
}

/* The program's PT_INTERP into `out`; 0 when it has one, -1 when not (static, or unreadable: QEMU will say). */
static int interpreter_of(const char *path, char *out, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  unsigned char eh[64];
  int found = -1;
  if (read_at(fd, eh, sizeof eh, 0) == 0 && memcmp(eh, "\177ELF", 4) == 0 && (eh[4] == 1 || eh[4] == 2)) {
    int wide = eh[4] == 2, big = eh[5] == 2;
    uint64_t phoff = wide ? field(eh + 0x20, 8, big) : field(eh + 0x1c, 4, big);
    uint64_t phentsize = field(eh + (wide ? 0x36 : 0x2a), 2, big);
    uint64_t phnum = field(eh + (wide ? 0x38 : 0x2c), 2, big);
    unsigned char ph[56];
    for (uint64_t i = 0; i < phnum && phentsize >= (wide ? 56u : 32u) && found < 0; i++) {
      if (read_at(fd, ph, wide ? 56 : 32, phoff + i * phentsize) != 0) break;
      if (field(ph, 4, big) != 3) continue;  // PT_INTERP
      uint64_t off = wide ? field(ph + 8, 8, big) : field(ph + 4, 4, big);
      uint64_t len = wide ? field(ph + 32, 8, big) : field(ph + 16, 4, big);
      if (len == 0 || len >= size || read_at(fd, out, (size_t)len, off) != 0) break;
      out[len] = '\0';
      found = out[0] == '/' ? 0 : -1;
    }
  }
  close(fd);
  return found;
}

/* Whether DIR + loader is a file, links followed as QEMU's -L follows them. */
static int holds(const char *dir, const char *loader) {
  char path[PATH_MAX];
  size_t nd = strcmp(dir, "/") == 0 ? 0 : strlen(dir);
  if (nd + strlen(loader) + 1 > sizeof path) return 0;
  memcpy(path, dir, nd);
  strcpy(path + nd, loader);
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/*
 * --gdb and --gdb-port inside a root or under --transparent: of all the
 * foreign execs, exactly one runs under QEMU's gdbstub. The configuration says
 *   debug-marker PATH    the exec that creates PATH (O_EXCL) takes the
 *                        debugger: the kernel decides which is first, so two
 *                        execs at once cannot both take it
 *   debug-name NAME      only an exec whose file is named NAME (the last
 *                        component of argv[1], as ps shows it) may; absent: any
 *   debug-arg WORD       the emulator's options for that exec (-g SOCKET|PORT)
 *   debug-record LINE    written into the marker: what gdb needs to know
 *   debug-tell LINE      printed for that exec (how to attach)
 * and in a LINE, "{program}" is the program's path made absolute with its
 * links resolved, "{sysroot}" the -L chosen (or the unless-env value).
 */
struct debug {
  const char *marker, *name;
  const char *args[MAX_LINES], *record[MAX_LINES], *tell[MAX_LINES];
  int nargs, nrecord, ntell;
};

static int debug_conf(struct debug *d, const char *key, const char *value) {
  if (strcmp(key, "debug-marker") == 0) d->marker = value;
  else if (strcmp(key, "debug-name") == 0) d->name = value;
  else if (strcmp(key, "debug-arg") == 0 && d->nargs < MAX_LINES) d->args[d->nargs++] = value;
  else if (strcmp(key, "debug-record") == 0 && d->nrecord < MAX_LINES) d->record[d->nrecord++] = value;
  else if (strcmp(key, "debug-tell") == 0 && d->ntell < MAX_LINES) d->tell[d->ntell++] = value;
  else return 0;
  return 1;
}

static void debug_write(int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

/* Writes `line` to `fd` in one write (so that no other process's output lands inside it), "{program}" and "{sysroot}" filled in. */
static void debug_line(int fd, const char *line, const char *program, const char *sysroot) {
  static char out[4 * PATH_MAX];
  size_t n = 0;
  for (const char *p = line; *p && n < sizeof out - 1;) {
    const char *value = strncmp(p, "{program}", 9) == 0 ? program : strncmp(p, "{sysroot}", 9) == 0 ? sysroot : NULL;
    if (!value) {
      out[n++] = *p++;
      continue;
    }
    size_t len = strlen(value);
    if (len > sizeof out - 1 - n) len = sizeof out - 1 - n;
    memcpy(out + n, value, len);
    n += len;
    p += 9;
  }
  out[n++] = '\n';
  debug_write(fd, out, n);
}

/* Whether this exec takes the debugger; the one that does records itself in the marker and tells how to attach. */
static int debug_take(const struct debug *d, const char *path, const char *sysroot) {
  if (!d->marker) return 0;
  const char *name = strrchr(path, '/');
  if (d->name && strcmp(name ? name + 1 : path, d->name) != 0) return 0;
  int fd = open(d->marker, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return 0;
  static char resolved[PATH_MAX];
  const char *program = realpath(path, resolved) ? resolved : path;
  for (int i = 0; i < d->nrecord; i++) debug_line(fd, d->record[i], program, sysroot ? sysroot : "");
  close(fd);
  for (int i = 0; i < d->ntell; i++) debug_line(2, d->tell[i], program, sysroot ? sysroot : "");
  return 1;
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

  const char *emulator = NULL, *unless_env = NULL;
  static struct debug debug;
  const char *args[MAX_LINES], *sysroots[MAX_LINES], *missing[MAX_LINES], *refuse[MAX_LINES];
  int nargs = 0, nsysroots = 0, nmissing = 0, nrefuse = 0;
  for (char *line = conf; *line;) {
    char *end = strchr(line, '\n');
    if (end) *end = '\0';
    char *value = strchr(line, ' ');
    if (value) {
      *value++ = '\0';
      if (strcmp(line, "emulator") == 0) emulator = value;
      else if (strcmp(line, "unless-env") == 0) unless_env = value;
      else if (strcmp(line, "arg") == 0 && nargs < MAX_LINES) args[nargs++] = value;
      else if (strcmp(line, "sysroot") == 0 && nsysroots < MAX_LINES) sysroots[nsysroots++] = value;
      else if (strcmp(line, "missing-loader") == 0 && nmissing < MAX_LINES) missing[nmissing++] = value;
      else if (strcmp(line, "refuse") == 0 && nrefuse < MAX_LINES) refuse[nrefuse++] = value;
      else debug_conf(&debug, line, value);
    }
    if (!end) break;
    line = end + 1;
  }
  if (nrefuse > 0) {
    for (int i = 0; i < nrefuse; i++) tell(refuse[i], argv[1], NULL);
    return 126;
  }
  if (!emulator) {
    say(path, ": names no emulator", NULL);
    return 126;
  }

  const char *sysroot = NULL;
  char loader[PATH_MAX];
  const char *env = unless_env ? getenv(unless_env) : NULL;
  if (nsysroots > 0 && !(env && *env) && interpreter_of(argv[1], loader, sizeof loader) == 0) {
    for (int i = 0; i < nsysroots && !sysroot; i++) {
      if (holds(sysroots[i], loader)) sysroot = sysroots[i];
    }
    if (!sysroot) {
      for (int i = 0; i < nmissing; i++) tell(missing[i], argv[1], loader);
      return 127;
    }
    if (strcmp(sysroot, "/") == 0) sysroot = NULL;
  }
  int debugged = debug_take(&debug, argv[1], sysroot ? sysroot : env && *env ? env : NULL);

  const char **exec_args = malloc(sizeof(char *) * (size_t)(nargs + debug.nargs + argc + 6));
  if (!exec_args) return 126;
  int k = 0;
  exec_args[k++] = emulator;
  for (int i = 0; i < nargs; i++) exec_args[k++] = args[i];
  for (int i = 0; debugged && i < debug.nargs; i++) exec_args[k++] = debug.args[i];
  exec_args[k++] = "-0";
  exec_args[k++] = argv[2];
  if (sysroot) {
    exec_args[k++] = "-L";
    exec_args[k++] = sysroot;
  }
  exec_args[k++] = argv[1];
  for (int i = 3; i < argc; i++) exec_args[k++] = argv[i];
  exec_args[k] = NULL;
  // The program's name, as the kernel would have taken it.
  const char *name = strrchr(argv[1], '/');
  name = name ? name + 1 : argv[1];
  char link[PATH_MAX];
  size_t nl = strlen(name);
  if (nl > 0 && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 && n + sizeof ".names/" + nl <= sizeof link) {
    memcpy(link, argv[0], n);
    memcpy(link + n, ".names/", sizeof ".names/" - 1);
    memcpy(link + n + sizeof ".names/" - 1, name, nl + 1);
    if (symlink(emulator, link) == 0 || errno == EEXIST) execv(link, (char *const *)exec_args);
  }
  execv(emulator, (char *const *)exec_args);
  int err = errno;
  say(emulator, ": ", strerror(err));
  return err == ENOENT ? 127 : 126;
}
