/* iorec: an LD_PRELOAD library that records what a process writes under one
 * directory, and when it makes it durable — for the fault suite's
 * crash-point check (test/fault/crashpoints.py), which rebuilds the
 * directory as it would be after a power loss at each fsync.
 *
 *   SQRAFT_IOREC_DIR=/data/dir SQRAFT_IOREC_LOG=/tmp/io.log LD_PRELOAD=libiorec.so prog
 *
 * Recorded, for files under SQRAFT_IOREC_DIR: open/creat (path, flags),
 * write/pwrite/writev/pwritev (with the bytes), ftruncate, (posix_)fallocate,
 * fsync/fdatasync (after they return), rename, unlink, and io_submit's
 * PWRITE/PWRITEV/FSYNC/FDSYNC control blocks (libraft's libuv backend
 * writes its segments through kernel AIO via syscall(2), which is
 * interposed for that number only). Each record carries CLOCK_MONOTONIC
 * nanoseconds, so the harness can order it against what clients saw.
 *
 * Record: "T <ns> <op> <fd> <a> <b> <len>\n" then <len> raw bytes (a path or
 * data), then "\n". For pwrite, a is the offset and b has bit 0 set for a
 * kernel-AIO write and bit 1 for RWF_DSYNC (durable once complete); for
 * open, a is the flags. Everything else passes through unchanged. */
#define _GNU_SOURCE
/* The interposed names are the real symbols: no 64-bit renaming (off_t is
 * 64 bits on the platforms this runs on anyway). */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/aio_abi.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_FDS 65536

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int log_fd = -1;
static char root[PATH_MAX];
static size_t root_len;
static char tracked[MAX_FDS]; /* fd is a file under root */
static int ready;

static ssize_t (*real_write)(int, const void*, size_t);
static ssize_t (*real_pwrite)(int, const void*, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec*, int);
static ssize_t (*real_pwritev)(int, const struct iovec*, int, off_t);
static int (*real_open)(const char*, int, ...);
static int (*real_openat)(int, const char*, int, ...);
static int (*real_close)(int);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_ftruncate)(int, off_t);
static int (*real_fallocate)(int, int, off_t, off_t);
static int (*real_posix_fallocate)(int, off_t, off_t);
static int (*real_rename)(const char*, const char*);
static int (*real_renameat)(int, const char*, int, const char*);
static int (*real_unlink)(const char*);
static int (*real_unlinkat)(int, const char*, int);
static long (*real_syscall)(long, ...);

static void init(void) {
  if (ready) return;
  real_write = dlsym(RTLD_NEXT, "write");
  real_pwrite = dlsym(RTLD_NEXT, "pwrite64");
  real_writev = dlsym(RTLD_NEXT, "writev");
  real_pwritev = dlsym(RTLD_NEXT, "pwritev64");
  real_open = dlsym(RTLD_NEXT, "open64");
  real_openat = dlsym(RTLD_NEXT, "openat64");
  real_close = dlsym(RTLD_NEXT, "close");
  real_fsync = dlsym(RTLD_NEXT, "fsync");
  real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
  real_ftruncate = dlsym(RTLD_NEXT, "ftruncate64");
  real_fallocate = dlsym(RTLD_NEXT, "fallocate64");
  real_posix_fallocate = dlsym(RTLD_NEXT, "posix_fallocate64");
  real_rename = dlsym(RTLD_NEXT, "rename");
  real_renameat = dlsym(RTLD_NEXT, "renameat");
  real_unlink = dlsym(RTLD_NEXT, "unlink");
  real_unlinkat = dlsym(RTLD_NEXT, "unlinkat");
  real_syscall = dlsym(RTLD_NEXT, "syscall");
  const char* dir = getenv("SQRAFT_IOREC_DIR");
  const char* log = getenv("SQRAFT_IOREC_LOG");
  if (dir != NULL && log != NULL && realpath(dir, root) != NULL) {
    root_len = strlen(root);
    log_fd = real_open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  }
  ready = 1;
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void put(const void* p, size_t n) {
  const char* c = p;
  while (n > 0) {
    ssize_t w = real_write(log_fd, c, n);
    if (w <= 0) return;
    c += w;
    n -= (size_t)w;
  }
}

/* One record; `data` of `len` bytes (may be NULL with len 0). Caller holds mu. */
static void record(const char* op, int fd, int64_t a, int64_t b, const void* data, size_t len) {
  char head[160];
  int n = snprintf(head, sizeof head, "T %lld %s %d %lld %lld %zu\n", (long long)now_ns(), op, fd, (long long)a,
                   (long long)b, len);
  put(head, (size_t)n);
  if (len) put(data, len);
  put("\n", 1);
}

static void record_iov(const char* op, int fd, int64_t off, const struct iovec* iov, int cnt) {
  size_t total = 0;
  for (int i = 0; i < cnt; i++) total += iov[i].iov_len;
  char head[160];
  int n = snprintf(head, sizeof head, "T %lld %s %d %lld 0 %zu\n", (long long)now_ns(), op, fd, (long long)off,
                   total);
  put(head, (size_t)n);
  for (int i = 0; i < cnt; i++) put(iov[i].iov_base, iov[i].iov_len);
  put("\n", 1);
}

/* The absolute path of `path` (relative to `dirfd`) if it lies under root. */
static int under_root(int dirfd, const char* path, char* out) {
  char tmp[2 * PATH_MAX + 2];
  if (path[0] == '/') {
    snprintf(tmp, sizeof tmp, "%s", path);
  } else {
    char base[PATH_MAX];
    if (dirfd == AT_FDCWD) {
      if (getcwd(base, sizeof base) == NULL) return 0;
    } else {
      char link[64];
      snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
      ssize_t k = readlink(link, base, sizeof base - 1);
      if (k < 0) return 0;
      base[k] = '\0';
    }
    snprintf(tmp, sizeof tmp, "%s/%s", base, path);
  }
  if (strlen(tmp) >= PATH_MAX) return 0;
  if (strncmp(tmp, root, root_len) != 0 || (tmp[root_len] != '/' && tmp[root_len] != '\0')) return 0;
  memcpy(out, tmp + root_len, strlen(tmp + root_len) + 1);
  return 1;
}

static int active(void) {
  init();
  return log_fd >= 0;
}

static int is_tracked(int fd) { return fd >= 0 && fd < MAX_FDS && tracked[fd]; }

static void opened(int dirfd, const char* path, int flags, int fd) {
  char rel[PATH_MAX];
  if (fd < 0 || fd >= MAX_FDS || !under_root(dirfd, path, rel)) return;
  pthread_mutex_lock(&mu);
  tracked[fd] = 1;
  record("open", fd, flags, 0, rel, strlen(rel));
  pthread_mutex_unlock(&mu);
}

int open64(const char* path, int flags, ...) {
  init();
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) {
    va_list ap;
    va_start(ap, flags);
    mode = va_arg(ap, mode_t);
    va_end(ap);
  }
  int fd = real_open(path, flags, mode);
  if (active()) opened(AT_FDCWD, path, flags, fd);
  return fd;
}
int open(const char* path, int flags, ...) __attribute__((alias("open64")));

int openat64(int dirfd, const char* path, int flags, ...) {
  init();
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) {
    va_list ap;
    va_start(ap, flags);
    mode = va_arg(ap, mode_t);
    va_end(ap);
  }
  int fd = real_openat(dirfd, path, flags, mode);
  if (active()) opened(dirfd, path, flags, fd);
  return fd;
}
int openat(int dirfd, const char* path, int flags, ...) __attribute__((alias("openat64")));

int close(int fd) {
  init();
  if (active() && is_tracked(fd)) {
    pthread_mutex_lock(&mu);
    tracked[fd] = 0;
    record("close", fd, 0, 0, NULL, 0);
    pthread_mutex_unlock(&mu);
  }
  return real_close(fd);
}

ssize_t pwrite64(int fd, const void* buf, size_t n, off_t off) {
  init();
  if (!active() || !is_tracked(fd)) return real_pwrite(fd, buf, n, off);
  pthread_mutex_lock(&mu);
  ssize_t r = real_pwrite(fd, buf, n, off);
  if (r > 0) record("pwrite", fd, off, 0, buf, (size_t)r);
  pthread_mutex_unlock(&mu);
  return r;
}
ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) __attribute__((alias("pwrite64")));

ssize_t write(int fd, const void* buf, size_t n) {
  init();
  if (!active() || !is_tracked(fd)) return real_write(fd, buf, n);
  pthread_mutex_lock(&mu);
  off_t off = lseek(fd, 0, SEEK_CUR);
  ssize_t r = real_write(fd, buf, n);
  if (r > 0 && off >= 0) record("pwrite", fd, off, 0, buf, (size_t)r);
  pthread_mutex_unlock(&mu);
  return r;
}

ssize_t pwritev64(int fd, const struct iovec* iov, int cnt, off_t off) {
  init();
  if (!active() || !is_tracked(fd)) return real_pwritev(fd, iov, cnt, off);
  pthread_mutex_lock(&mu);
  ssize_t r = real_pwritev(fd, iov, cnt, off);
  if (r > 0) record_iov("pwrite", fd, off, iov, cnt);
  pthread_mutex_unlock(&mu);
  return r;
}
ssize_t pwritev(int fd, const struct iovec* iov, int cnt, off_t off) __attribute__((alias("pwritev64")));

ssize_t writev(int fd, const struct iovec* iov, int cnt) {
  init();
  if (!active() || !is_tracked(fd)) return real_writev(fd, iov, cnt);
  pthread_mutex_lock(&mu);
  off_t off = lseek(fd, 0, SEEK_CUR);
  ssize_t r = real_writev(fd, iov, cnt);
  if (r > 0 && off >= 0) record_iov("pwrite", fd, off, iov, cnt);
  pthread_mutex_unlock(&mu);
  return r;
}

static int synced(const char* op, int fd, int rv) {
  if (rv == 0 && active() && is_tracked(fd)) {
    pthread_mutex_lock(&mu);
    record(op, fd, 0, 0, NULL, 0);
    pthread_mutex_unlock(&mu);
  }
  return rv;
}

int fsync(int fd) {
  init();
  return synced("fsync", fd, real_fsync(fd));
}

int fdatasync(int fd) {
  init();
  return synced("fsync", fd, real_fdatasync(fd));
}

int ftruncate64(int fd, off_t len) {
  init();
  int rv = real_ftruncate(fd, len);
  if (rv == 0 && active() && is_tracked(fd)) {
    pthread_mutex_lock(&mu);
    record("truncate", fd, len, 0, NULL, 0);
    pthread_mutex_unlock(&mu);
  }
  return rv;
}
int ftruncate(int fd, off_t len) __attribute__((alias("ftruncate64")));

int fallocate64(int fd, int mode, off_t off, off_t len) {
  init();
  int rv = real_fallocate(fd, mode, off, len);
  if (rv == 0 && active() && is_tracked(fd)) {
    pthread_mutex_lock(&mu);
    record("fallocate", fd, off, len, NULL, 0);
    pthread_mutex_unlock(&mu);
  }
  return rv;
}
int fallocate(int fd, int mode, off_t off, off_t len) __attribute__((alias("fallocate64")));

int posix_fallocate64(int fd, off_t off, off_t len) {
  init();
  int rv = real_posix_fallocate(fd, off, len);
  if (rv == 0 && active() && is_tracked(fd)) {
    pthread_mutex_lock(&mu);
    record("fallocate", fd, off, len, NULL, 0);
    pthread_mutex_unlock(&mu);
  }
  return rv;
}
int posix_fallocate(int fd, off_t off, off_t len) __attribute__((alias("posix_fallocate64")));

static void moved(int olddir, const char* from, int newdir, const char* to) {
  char a[PATH_MAX], b[PATH_MAX];
  if (!under_root(olddir, from, a) || !under_root(newdir, to, b)) return;
  char both[2 * PATH_MAX + 2];
  int n = snprintf(both, sizeof both, "%s\n%s", a, b);
  pthread_mutex_lock(&mu);
  record("rename", -1, 0, 0, both, (size_t)n);
  pthread_mutex_unlock(&mu);
}

int rename(const char* from, const char* to) {
  init();
  int rv = real_rename(from, to);
  if (rv == 0 && active()) moved(AT_FDCWD, from, AT_FDCWD, to);
  return rv;
}

int renameat(int olddir, const char* from, int newdir, const char* to) {
  init();
  int rv = real_renameat(olddir, from, newdir, to);
  if (rv == 0 && active()) moved(olddir, from, newdir, to);
  return rv;
}

static void removed(int dirfd, const char* path) {
  char rel[PATH_MAX];
  if (!under_root(dirfd, path, rel)) return;
  pthread_mutex_lock(&mu);
  record("unlink", -1, 0, 0, rel, strlen(rel));
  pthread_mutex_unlock(&mu);
}

int unlink(const char* path) {
  init();
  int rv = real_unlink(path);
  if (rv == 0 && active()) removed(AT_FDCWD, path);
  return rv;
}

int unlinkat(int dirfd, const char* path, int flags) {
  init();
  int rv = real_unlinkat(dirfd, path, flags);
  if (rv == 0 && active() && !(flags & AT_REMOVEDIR)) removed(dirfd, path);
  return rv;
}

/* Kernel AIO: the control blocks are recorded when submitted (the data is
 * in the buffers then); completion order is not known here, which the
 * harness treats as "written at some time after submission, durable after
 * the next fsync of the file". */
long syscall(long nr, ...) {
  init();
  va_list ap;
  va_start(ap, nr);
  long a1 = va_arg(ap, long), a2 = va_arg(ap, long), a3 = va_arg(ap, long), a4 = va_arg(ap, long),
       a5 = va_arg(ap, long), a6 = va_arg(ap, long);
  va_end(ap);
  if (nr == SYS_close && active() && is_tracked((int)a1)) {
    /* libuv closes files with syscall(SYS_close) (no cancellation point). */
    pthread_mutex_lock(&mu);
    tracked[(int)a1] = 0;
    record("close", (int)a1, 0, 0, NULL, 0);
    pthread_mutex_unlock(&mu);
  }
  if (nr == SYS_io_submit && active()) {
    struct iocb** cbs = (struct iocb**)a3;
    pthread_mutex_lock(&mu);
    for (long i = 0; i < a2; i++) {
      struct iocb* cb = cbs[i];
      int fd = (int)cb->aio_fildes;
      if (!is_tracked(fd)) continue;
      if (cb->aio_lio_opcode == IOCB_CMD_PWRITE) {
        record("pwrite", fd, cb->aio_offset, 1 | ((cb->aio_rw_flags & RWF_DSYNC) ? 2 : 0),
               (const void*)(uintptr_t)cb->aio_buf, cb->aio_nbytes);
      } else if (cb->aio_lio_opcode == IOCB_CMD_PWRITEV) {
        record_iov("pwrite", fd, cb->aio_offset, (const struct iovec*)(uintptr_t)cb->aio_buf, (int)cb->aio_nbytes);
      } else if (cb->aio_lio_opcode == IOCB_CMD_FSYNC || cb->aio_lio_opcode == IOCB_CMD_FDSYNC) {
        record("aio-fsync", fd, 0, 0, NULL, 0);
      }
    }
    pthread_mutex_unlock(&mu);
  }
  long rv = real_syscall(nr, a1, a2, a3, a4, a5, a6);
  /* libuv writes multi-buffer requests with syscall(SYS_pwritev[2]). */
  if ((nr == SYS_pwritev || nr == SYS_pwritev2) && rv > 0 && active() && is_tracked((int)a1)) {
    pthread_mutex_lock(&mu);
    record_iov("pwrite", (int)a1, (int64_t)a4, (const struct iovec*)(uintptr_t)a2, (int)a3);
    pthread_mutex_unlock(&mu);
  }
  if (nr == SYS_pwrite64 && rv > 0 && active() && is_tracked((int)a1)) {
    pthread_mutex_lock(&mu);
    record("pwrite", (int)a1, (int64_t)a4, 0, (const void*)(uintptr_t)a2, (size_t)rv);
    pthread_mutex_unlock(&mu);
  }
  return rv;
}
