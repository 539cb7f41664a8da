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
 * Native stand-ins (src/provision/toolchains/, docs/native-tools.md): a program of the tree that
 * has a host-native build of the same source (a compiler's cc1, the
 * assembler, the linker) runs as that build instead, when the file executed
 * is the very one xrun verified:
 *   native-loader PATH         the stand-ins' own ELF loader, which runs them
 *   native-library-path DIRS   its --library-path
 *   native-record PATH         each stand-in started is appended to PATH (the
 *                              probe's own runs: what did run natively)
 *   tool IDENT STANDIN         the file executed, if stat() gives IDENT
 *                              ("INO:SIZE:MTIME:CTIME", times as SEC.NSEC;
 *                              a write changes the ctime), runs STANDIN; the
 *                              lines below, up to the next `tool`, are its own:
 *   tool-arg WORD              appended to its arguments
 *   tool-dir-arg OPTION DIR    OPTION DIR appended, while DIR is a directory
 *   tool-plain-arg WORD        with an argument WORD, nothing is appended
 *   tool-emulate-arg WORD      an argument WORD (WORD ending in '*': starting
 *                              so) runs the tree's own program, emulated
 *   tool-emulate-arg-unless OPTION VALUE
 *                              so does OPTION followed by anything but VALUE
 *   tool-emulate-env NAME      so does NAME set, not empty, in the environment
 *   tool-emulate-if PATH       and PATH existing
 *   tool-plugin IDENT PATH STANDIN
 *                              `-plugin PATH` (or --plugin, =PATH) is passed as
 *                              STANDIN while PATH has IDENT; any other plugin
 *                              runs the tree's own program, emulated
 * A stand-in is executed as
 *   NATIVE-LOADER --library-path DIRS --argv0 argv[2] STANDIN argv[3...] APPENDED...
 * through a link named like the program in "<argv[0]>.native/" where xrun
 * made one (comm, as below), else by the loader's own path. Should that fail
 * to start, the tree's program is emulated.
 *
 * The kernel names a process (comm: ps, pidof, start-stop-daemon --name) after
 * the last component of the path it was executed by. Under binfmt_misc that is
 * the program's own name; executing the emulator by its path would name every
 * process after the emulator. So the emulator is executed through a symlink
 * named like the program, in "<argv[0]>.names/", where xrun made one before
 * the guest started, on a file system the guest cannot write; for any other
 * name, the emulator's own path serves. None is made here: a link made on
 * demand is made where the guest could plant its own (issue 23).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { MAX_CONF = 65536, MAX_LINES = 128, MAX_TOOLS = 32, MAX_ITEMS = 512 };

static void put_to(int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

static void put(const char *s, size_t n) { put_to(2, s, n); }

static void put_fd(int fd, const char *s) { put_to(fd, s, strlen(s)); }

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

enum item_kind { ARG, DIR_ARG, PLAIN_ARG, EMULATE_ARG, EMULATE_UNLESS, EMULATE_ENV, EMULATE_IF, PLUGIN };

struct item {
  enum item_kind kind;
  const char *a, *b, *c;
};

struct tool {
  const char *ident, *standin;
  int first, count;
};

static struct item items[MAX_ITEMS];
static struct tool tools[MAX_TOOLS];
static int nitems, ntools;
static const char *native_loader, *native_libs, *native_record;

/* Splits "A B C" in place into at most `n` words; returns how many. */
static int words(char *s, char **out, int n) {
  int k = 0;
  while (*s && k < n) {
    out[k++] = s;
    if (k == n) break;
    char *sp = strchr(s, ' ');
    if (!sp) break;
    *sp = '\0';
    s = sp + 1;
  }
  return k;
}

/* Reads one `tool...` or `native-...` line; 0 when the keyword is not one of them. */
static int native_line(const char *key, char *value) {
  char *w[3];
  if (strcmp(key, "native-loader") == 0) {
    native_loader = value;
  } else if (strcmp(key, "native-library-path") == 0) {
    native_libs = value;
  } else if (strcmp(key, "native-record") == 0) {
    native_record = value;
  } else if (strcmp(key, "tool") == 0) {
    if (ntools < MAX_TOOLS && words(value, w, 2) == 2) tools[ntools++] = (struct tool){w[0], w[1], nitems, 0};
  } else if (strncmp(key, "tool-", 5) == 0) {
    if (ntools == 0 || nitems >= MAX_ITEMS) return 1;
    struct item it = {ARG, value, NULL, NULL};
    const char *k = key + 5;
    if (strcmp(k, "arg") == 0) it.kind = ARG;
    else if (strcmp(k, "plain-arg") == 0) it.kind = PLAIN_ARG;
    else if (strcmp(k, "emulate-arg") == 0) it.kind = EMULATE_ARG;
    else if (strcmp(k, "emulate-env") == 0) it.kind = EMULATE_ENV;
    else if (strcmp(k, "emulate-if") == 0) it.kind = EMULATE_IF;
    else if (strcmp(k, "emulate-arg-unless") == 0) {
      if (words(value, w, 2) != 2) return 1;
      it = (struct item){EMULATE_UNLESS, w[0], w[1], NULL};
    }
    else if (strcmp(k, "dir-arg") == 0) {
      if (words(value, w, 2) != 2) return 1;
      it = (struct item){DIR_ARG, w[0], w[1], NULL};
    } else if (strcmp(k, "plugin") == 0) {
      if (words(value, w, 3) != 3) return 1;
      it = (struct item){PLUGIN, w[0], w[1], w[2]};
    } else {
      return 1;
    }
    items[nitems++] = it;
    tools[ntools - 1].count++;
  } else {
    return 0;
  }
  return 1;
}

/* The identity a tool line names a file by: "INO:SIZE:MTIME:CTIME", following links as exec does. */
static int identity(const char *path, char *out, size_t size) {
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return -1;
  int n = snprintf(out, size, "%llu:%lld:%lld.%09ld:%lld.%09ld", (unsigned long long)st.st_ino, (long long)st.st_size,
                   (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
  return n > 0 && (size_t)n < size ? 0 : -1;
}

static int same_file(const char *path, const char *ident) {
  char mine[128];
  return identity(path, mine, sizeof mine) == 0 && strcmp(mine, ident) == 0;
}

static int word_matches(const char *arg, const char *word) {
  size_t n = strlen(word);
  if (n > 0 && word[n - 1] == '*') return strncmp(arg, word, n - 1) == 0;
  return strcmp(arg, word) == 0;
}

/* The stand-in for a plugin path, or NULL when the tool has none for it (or the file is not the one verified). */
static const char *plugin_standin(const struct tool *t, const char *path) {
  for (int i = t->first; i < t->first + t->count; i++) {
    if (items[i].kind == PLUGIN && strcmp(items[i].b, path) == 0 && same_file(path, items[i].a)) return items[i].c;
  }
  return NULL;
}

/*
 * Runs the program's native stand-in when one is configured for the very file
 * executed and nothing in its arguments or environment asks for the tree's
 * own; returns only when the program is to be emulated after all.
 */
static void run_native(int argc, char **argv, const char *self) {
  if (ntools == 0 || !native_loader || !native_libs) return;
  char ident[128];
  if (identity(argv[1], ident, sizeof ident) != 0) return;
  const struct tool *t = NULL;
  for (int i = 0; i < ntools && !t; i++) {
    if (strcmp(tools[i].ident, ident) == 0) t = &tools[i];
  }
  if (!t) return;
  int plain = 0, nextra = 0;
  for (int i = t->first; i < t->first + t->count; i++) {
    const struct item *it = &items[i];
    if (it->kind == EMULATE_ENV) {
      const char *v = getenv(it->a);
      if (v && *v) return;
    } else if (it->kind == EMULATE_IF) {
      struct stat st;
      if (lstat(it->a, &st) == 0) return;
    } else if (it->kind == EMULATE_UNLESS) {
      for (int j = 3; j < argc; j++) {
        if (strcmp(argv[j], it->a) == 0 && (j + 1 >= argc || strcmp(argv[j + 1], it->b) != 0)) return;
      }
    } else if (it->kind == EMULATE_ARG || it->kind == PLAIN_ARG) {
      for (int j = 3; j < argc; j++) {
        if (!word_matches(argv[j], it->a)) continue;
        if (it->kind == EMULATE_ARG) return;
        plain = 1;
      }
    } else if (it->kind == ARG || it->kind == DIR_ARG) {
      nextra += 2;
    }
  }
  const char **exec_args = malloc(sizeof(char *) * (size_t)(argc + nextra + 8));
  char **joined = malloc(sizeof(char *) * (size_t)(argc + 1));
  if (!exec_args || !joined) return;
  int k = 0;
  exec_args[k++] = native_loader;
  exec_args[k++] = "--library-path";
  exec_args[k++] = native_libs;
  exec_args[k++] = "--argv0";
  exec_args[k++] = argv[2];
  exec_args[k++] = t->standin;
  for (int j = 3; j < argc; j++) {
    const char *arg = argv[j];
    joined[j] = NULL;
    int sep = strcmp(arg, "-plugin") == 0 || strcmp(arg, "--plugin") == 0;
    const char *eq = strncmp(arg, "-plugin=", 8) == 0 ? arg + 8 : strncmp(arg, "--plugin=", 9) == 0 ? arg + 9 : NULL;
    if (sep) {
      if (j + 1 >= argc) return;
      const char *to = plugin_standin(t, argv[j + 1]);
      if (!to) return;
      exec_args[k++] = arg;
      exec_args[k++] = to;
      j++;
      continue;
    }
    if (eq) {
      const char *to = plugin_standin(t, eq);
      if (!to) return;
      size_t head = (size_t)(eq - arg), n = strlen(to);
      joined[j] = malloc(head + n + 1);
      if (!joined[j]) return;
      memcpy(joined[j], arg, head);
      memcpy(joined[j] + head, to, n + 1);
      arg = joined[j];
    }
    exec_args[k++] = arg;
  }
  if (!plain) {
    for (int i = t->first; i < t->first + t->count; i++) {
      const struct item *it = &items[i];
      struct stat st;
      if (it->kind == ARG) {
        exec_args[k++] = it->a;
      } else if (it->kind == DIR_ARG && stat(it->b, &st) == 0 && S_ISDIR(st.st_mode)) {
        exec_args[k++] = it->a;
        exec_args[k++] = it->b;
      }
    }
  }
  exec_args[k] = NULL;
  if (native_record) {
    // The probe's own runs: which stand-ins did run (a line each), so that it vouches for no more.
    int fd = open(native_record, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
      put_fd(fd, t->standin);
      put_fd(fd, "\n");
      close(fd);
    }
  }
  // Named like the program, as the kernel would have named it (see main).
  const char *name = strrchr(argv[1], '/');
  name = name ? name + 1 : argv[1];
  char link[PATH_MAX];
  size_t ns = strlen(self), nl = strlen(name);
  if (nl > 0 && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 && ns + sizeof ".native/" + nl <= sizeof link) {
    memcpy(link, self, ns);
    memcpy(link + ns, ".native/", sizeof ".native/" - 1);
    memcpy(link + ns + sizeof ".native/" - 1, name, nl + 1);
    execv(link, (char *const *)exec_args);
  }
  execv(native_loader, (char *const *)exec_args);
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
      else if (!debug_conf(&debug, line, value)) native_line(line, value);
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
  // The exec that takes the debugger runs emulated, under QEMU's gdbstub; any other may run as its stand-in.
  if (!debugged) run_native(argc, argv, argv[0]);

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
    execv(link, (char *const *)exec_args);
  }
  execv(emulator, (char *const *)exec_args);
  int err = errno;
  say(emulator, ": ", strerror(err));
  return err == ENOENT ? 127 : 126;
}
