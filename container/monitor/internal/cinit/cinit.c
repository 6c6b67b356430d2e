// The C init of an exec'd process: what libcontainer's Go init does for
// `runc exec`, without starting a Go runtime. See cinit.go for the
// protocol; this runs as a constructor, before the Go runtime of the
// binary it is linked into, and only when the monitor started the binary
// for it (CRISP_CINIT_ENV set). It never returns then.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include "cinit.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif
#define KEYCTL_JOIN_SESSION_KEYRING 1

struct req {
	char **argv;
	int argc;
	char **envp;
	int envc;
	char *cwd;
	uint32_t uid, gid;
	gid_t *groups;
	int ngroups;
	uint64_t caps[5]; // bounding, effective, inheritable, permitted, ambient
	int has_caps;
	struct { uint32_t res; uint64_t soft, hard; } rlimits[32];
	int nrlimits;
	int nnp;
	int has_umask;
	uint32_t umask;
	char *oom;
	uint32_t nsflags;
	uint32_t seccomp_flags;
	struct sock_filter *bpf;
	int bpf_len;
	char *keyring;
};

// fail reports msg to the monitor and exits: nothing was started.
static void fail(const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	buf[0] = CINIT_ERROR;
	va_start(ap, fmt);
	int n = vsnprintf(buf + 1, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	if (write(CINIT_REPORT_FD, buf, n + 1) < 0) {
		// The monitor is gone: nobody to tell.
	}
	_exit(CINIT_FAIL_EXIT);
}

// errstr is strerror as Go spells it: lower case, so that messages read
// the same whichever init started the process.
static const char *errstr(int e)
{
	static char buf[4][128];
	static int next;
	char *b = buf[next++ % 4];
	snprintf(b, sizeof(buf[0]), "%s", strerror(e));
	if (b[0] >= 'A' && b[0] <= 'Z')
		b[0] += 'a' - 'A';
	return b;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		fail("cinit: out of memory");
	return p;
}

static char *read_all(int fd, size_t *len)
{
	size_t cap = 16384, n = 0;
	char *b = xmalloc(cap);
	for (;;) {
		if (n == cap) {
			cap *= 2;
			b = realloc(b, cap);
			if (!b)
				fail("cinit: out of memory");
		}
		ssize_t r = read(fd, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			fail("cinit: read request: %s", errstr(errno));
		if (r == 0)
			break;
		n += r;
	}
	*len = n;
	return b;
}

static char *dupstr(const char *p, uint32_t n)
{
	char *s = xmalloc(n + 1);
	memcpy(s, p, n);
	s[n] = 0;
	return s;
}

static uint32_t u32(const char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t u64(const char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

// parse decodes the request: records of a 4-byte tag, a 4-byte length and
// the value, in host byte order (the monitor is on the same machine).
static void parse(char *b, size_t len, struct req *r)
{
	size_t off = 0;
	int end = 0;
	memset(r, 0, sizeof(*r));
	r->argv = xmalloc(sizeof(char *) * (len / 8 + 2));
	r->envp = xmalloc(sizeof(char *) * (len / 8 + 2));
	r->groups = xmalloc(sizeof(gid_t) * (len / 8 + 1));
	while (off + 8 <= len && !end) {
		uint32_t tag = u32(b + off), n = u32(b + off + 4);
		const char *v = b + off + 8;
		if (n > len - off - 8)
			fail("cinit: truncated request");
		static const uint32_t size[] = {
			[CINIT_UID] = 4, [CINIT_GID] = 4, [CINIT_GROUP] = 4, [CINIT_CAPS] = 40,
			[CINIT_RLIMIT] = 20, [CINIT_UMASK] = 4, [CINIT_NSFLAGS] = 4, [CINIT_SECCOMP] = 4,
		};
		if (tag < sizeof(size) / sizeof(size[0]) && n < size[tag])
			fail("cinit: short request record %u", tag);
		switch (tag) {
		case CINIT_ARG: r->argv[r->argc++] = dupstr(v, n); break;
		case CINIT_ENV_VAR: r->envp[r->envc++] = dupstr(v, n); break;
		case CINIT_CWD: r->cwd = dupstr(v, n); break;
		case CINIT_UID: r->uid = u32(v); break;
		case CINIT_GID: r->gid = u32(v); break;
		case CINIT_GROUP: r->groups[r->ngroups++] = u32(v); break;
		case CINIT_CAPS:
			for (int i = 0; i < 5; i++)
				r->caps[i] = u64(v + 8 * i);
			r->has_caps = 1;
			break;
		case CINIT_RLIMIT:
			if (r->nrlimits == 32)
				fail("cinit: too many rlimits");
			r->rlimits[r->nrlimits].res = u32(v);
			r->rlimits[r->nrlimits].soft = u64(v + 4);
			r->rlimits[r->nrlimits].hard = u64(v + 12);
			r->nrlimits++;
			break;
		case CINIT_NNP: r->nnp = 1; break;
		case CINIT_UMASK: r->has_umask = 1; r->umask = u32(v); break;
		case CINIT_OOM: r->oom = dupstr(v, n); break;
		case CINIT_NSFLAGS: r->nsflags = u32(v); break;
		case CINIT_SECCOMP:
			if ((n - 4) % sizeof(struct sock_filter) || n - 4 > 65535 * sizeof(struct sock_filter))
				fail("cinit: bad seccomp program of %u bytes", n - 4);
			r->seccomp_flags = u32(v);
			r->bpf_len = (n - 4) / sizeof(struct sock_filter);
			r->bpf = xmalloc(n);
			memcpy(r->bpf, v + 4, n - 4);
			break;
		case CINIT_KEYRING: r->keyring = dupstr(v, n); break;
		case CINIT_END: end = 1; break;
		default: fail("cinit: unknown request tag %u", tag);
		}
		off += 8 + n;
	}
	if (!end)
		fail("cinit: incomplete request");
	if (r->argc == 0)
		fail("cinit: no arguments");
	r->argv[r->argc] = NULL;
	r->envp[r->envc] = NULL;
}

static void write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		fail("open %s: %s", path, errstr(errno));
	if (write(fd, s, strlen(s)) < 0)
		fail("write %s: %s", path, errstr(errno));
	close(fd);
}

static void load_seccomp(struct req *r)
{
	struct sock_fprog prog = { .len = r->bpf_len, .filter = r->bpf };
	long rc;
	if (r->seccomp_flags == 0)
		rc = prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
	else
		rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, r->seccomp_flags, &prog);
	if (rc < 0)
		fail("error loading seccomp filter: %s", errstr(errno));
}

// home is the home directory of uid in the container's /etc/passwd, "/" if
// it has none (libcontainer's prepareEnv).
static char *home(uint32_t uid)
{
	static char line[4096];
	char *res = "/";
	FILE *f = fopen("/etc/passwd", "re");
	if (!f)
		return res;
	while (fgets(line, sizeof(line), f)) {
		char *fields[7];
		int n = 0;
		char *p = line;
		line[strcspn(line, "\n")] = 0;
		while (n < 7) {
			fields[n++] = p;
			p = strchr(p, ':');
			if (!p)
				break;
			*p++ = 0;
		}
		if (n < 6)
			continue;
		char *endp;
		errno = 0;
		unsigned long u = strtoul(fields[2], &endp, 10);
		if (errno || *endp || endp == fields[2] || u != uid)
			continue;
		res = fields[5];
		break;
	}
	fclose(f);
	return res;
}

static const char *getenv_req(struct req *r, const char *key)
{
	size_t k = strlen(key);
	for (int i = 0; i < r->envc; i++)
		if (!strncmp(r->envp[i], key, k) && r->envp[i][k] == '=')
			return r->envp[i] + k + 1;
	return NULL;
}

static int executable(const char *path, int *err)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		*err = errno;
		return 0;
	}
	if (S_ISDIR(st.st_mode)) {
		*err = EISDIR;
		return 0;
	}
	if (faccessat(AT_FDCWD, path, X_OK, AT_EACCESS) < 0) {
		*err = errno;
		return 0;
	}
	return 1;
}

// lookpath finds argv[0] as Go's exec.LookPath does, with the exec's PATH,
// and fails with its messages.
static char *lookpath(struct req *r)
{
	const char *file = r->argv[0];
	int err = 0;
	if (strchr(file, '/')) {
		if (!executable(file, &err)) {
			if (err == ENOENT || err == ENOTDIR)
				fail("exec: \"%s\": stat %s: %s", file, file, errstr(err));
			fail("exec: \"%s\": %s", file, errstr(err));
		}
		return (char *)file;
	}
	const char *path = getenv_req(r, "PATH");
	if (path) {
		const char *p = path;
		for (;;) {
			const char *e = strchrnul(p, ':');
			size_t n = e - p;
			char *cand = xmalloc(n + strlen(file) + 3);
			if (n == 0)
				strcpy(cand, ".");
			else
				memcpy(cand, p, n), cand[n] = 0;
			int rel = cand[0] != '/';
			strcat(cand, "/");
			strcat(cand, file);
			if (executable(cand, &err)) {
				if (rel)
					fail("exec: \"%s\": cannot run executable found relative to current directory", file);
				return cand;
			}
			free(cand);
			if (!*e)
				break;
			p = e + 1;
		}
	}
	fail("exec: \"%s\": executable file not found in $PATH", file);
	return NULL;
}

static void apply_caps(struct req *r)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2];
	memset(d, 0, sizeof(d));
	for (int i = 0; i < 2; i++) {
		d[i].effective = (uint32_t)(r->caps[1] >> (32 * i));
		d[i].inheritable = (uint32_t)(r->caps[2] >> (32 * i));
		d[i].permitted = (uint32_t)(r->caps[3] >> (32 * i));
	}
	if (syscall(SYS_capset, &h, d) < 0)
		fail("can't apply capabilities: capset: %s", errstr(errno));
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		fail("can't reset ambient capabilities: %s", errstr(errno));
	for (int c = 0; c < 64; c++)
		if (r->caps[4] & (1ULL << c))
			prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0); // runc only warns
}

static void drop_bounding(struct req *r)
{
	for (int c = 0; c < 64; c++) {
		if (r->caps[0] & (1ULL << c))
			continue;
		if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) <= 0)
			continue; // not in the set, or past the kernel's last cap
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0)
			fail("unable to apply bounding set: %s", errstr(errno));
	}
}

// fix_stdio makes the stdio the user's, as libcontainer does for a
// console it created; /dev/null and what cannot be changed stay as they are.
static void fix_stdio(uint32_t uid)
{
	for (int fd = 0; fd < 3; fd++) {
		struct stat st;
		if (fstat(fd, &st) < 0) {
			if (errno == EBADF)
				continue;
			fail("fstat stdio %d: %s", fd, errstr(errno));
		}
		if (st.st_uid == uid || (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3)))
			continue;
		if (fchown(fd, uid, -1) < 0 && errno != EPERM && errno != EROFS)
			fail("chown stdio %d: %s", fd, errstr(errno));
	}
}

static int setgroups_allowed(void)
{
	char buf[16] = { 0 };
	int fd = open("/proc/self/setgroups", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return !(n >= 4 && !strncmp(buf, "deny", 4));
}

// child is the exec'd process from its clone in the container's pid
// namespace to its execve: libcontainer's setns init, step by step.
static void child(struct req *r)
{
	if (setsid() < 0)
		fail("setsid failed: %s", errstr(errno));
	// Root of the container's user namespace, if it joined one (the
	// host's root is not mapped there), as nsexec's stage 2 does.
	if (setuid(0) < 0)
		fail("setuid failed: %s", errstr(errno));
	if (setgid(0) < 0)
		fail("setgid failed: %s", errstr(errno));
	if (r->keyring) {
		if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, r->keyring, 0, 0, 0) < 0 && errno != ENOSYS)
			fail("unable to join session keyring: %s", errstr(errno));
	}
	if (r->nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fail("no_new_privs: %s", errstr(errno));
	if (r->has_umask)
		umask(r->umask);
	// Without no_new_privs loading a filter needs CAP_SYS_ADMIN: before
	// the capabilities go. With it, as late as possible.
	if (r->bpf && !r->nnp)
		load_seccomp(r);

	if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		fail("error closing exec fds: %s", errstr(errno));
	int chdir_later = 0;
	if (r->cwd && *r->cwd) {
		if (chdir(r->cwd) < 0) {
			if (errno != EACCES && errno != EPERM)
				fail("chdir to cwd (\"%s\") set in config.json failed: %s", r->cwd, errstr(errno));
			chdir_later = 1;
		}
	}
	if (!getenv_req(r, "HOME")) {
		const char *h = home(r->uid);
		char *kv = xmalloc(strlen(h) + 6);
		strcpy(kv, "HOME=");
		strcat(kv, h);
		r->envp[r->envc++] = kv;
		r->envp[r->envc] = NULL;
	}
	if (r->has_caps)
		drop_bounding(r);
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		fail("unable to set keep caps: %s", errstr(errno));
	fix_stdio(r->uid);
	if (setgroups_allowed() && setgroups(r->ngroups, r->groups) < 0)
		fail("unable to setup user: setgroups: %s", errstr(errno));
	if (setgid(r->gid) < 0) {
		if (errno == EINVAL)
			fail("unable to setup user: cannot setgid to unmapped gid %u in user namespace", r->gid);
		fail("unable to setup user: setgid: %s", errstr(errno));
	}
	if (setuid(r->uid) < 0) {
		if (errno == EINVAL)
			fail("unable to setup user: cannot setuid to unmapped uid %u in user namespace", r->uid);
		fail("unable to setup user: setuid: %s", errstr(errno));
	}
	if (chdir_later && chdir(r->cwd) < 0)
		fail("chdir to cwd (\"%s\") set in config.json failed: %s", r->cwd, errstr(errno));
	// getcwd fails, or does not start with "/", if the working directory
	// is outside the container's root (CVE-2024-21626).
	char wd[PATH_MAX];
	if (!getcwd(wd, sizeof(wd)) || wd[0] != '/')
		fail("current working directory is outside of container mount namespace root -- possible container breakout detected");
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		fail("unable to clear keep caps: %s", errstr(errno));
	if (r->has_caps)
		apply_caps(r);

	char *path = lookpath(r);
	if (r->bpf && r->nnp)
		load_seccomp(r);
	// Nothing of the monitor's may reach the program but its stdio and
	// the report pipe, which closes on exec.
	syscall(SYS_close_range, 3, CINIT_REPORT_FD - 1, 0);
	syscall(SYS_close_range, CINIT_REPORT_FD + 1, ~0U, 0);
	execve(path, r->argv, r->envp);
	fail("exec %s: %s", path, errstr(errno));
}

__attribute__((constructor)) static void crisp_cinit(void)
{
	const char *v = getenv(CINIT_ENV);
	if (!v || strcmp(v, "1"))
		return;
	// Nothing in the container may open this process's /proc/PID/exe, the
	// host's binary, before it has exec'd the container's program.
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		fail("prctl dumpable: %s", errstr(errno));
	close(CINIT_EXE_FD);
	size_t len;
	char *b = read_all(CINIT_REQUEST_FD, &len);
	close(CINIT_REQUEST_FD);
	struct req r;
	parse(b, len, &r);

	// The monitor's opt-out of transparent huge pages (package thp) is
	// inherited across fork and execve: the workload gets the system's
	// policy, as the container's init does.
	prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0);
	// Nor does it get the monitor's CPU affinity: every CPU, which the
	// container's cpuset (joined before the request came) narrows.
	// libcontainer does the same and only warns when it cannot.
	static unsigned char all_cpus[64 * 1024 / 8];
	memset(all_cpus, 0xff, sizeof(all_cpus));
	syscall(SYS_sched_setaffinity, 0, sizeof(all_cpus), all_cpus);
	// As host root, before the namespaces: the container's user namespace
	// would take the right to raise them.
	if (r.oom)
		write_file("/proc/self/oom_score_adj", r.oom);
	for (int i = 0; i < r.nrlimits; i++) {
		struct rlimit rl = { .rlim_cur = r.rlimits[i].soft, .rlim_max = r.rlimits[i].hard };
		if (setrlimit(r.rlimits[i].res, &rl) < 0)
			fail("error setting rlimit type %u: %s", r.rlimits[i].res, errstr(errno));
	}
	if (r.nsflags && setns(CINIT_PIDFD, r.nsflags) < 0)
		fail("cinit: setns into the container's namespaces: %s", errstr(errno));
	close(CINIT_PIDFD);

	// The pid namespace applies to children only. CLONE_PARENT makes the
	// exec'd process the monitor's child, which waits for it.
	pid_t pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
	if (pid < 0) {
		if (errno == EAGAIN)
			fail(CINIT_CLONE_REFUSED "%s", errstr(errno));
		fail("cinit: clone: %s", errstr(errno));
	}
	if (pid == 0)
		child(&r);
	char rec[5];
	rec[0] = CINIT_PID;
	int32_t p = pid;
	memcpy(rec + 1, &p, 4);
	if (write(CINIT_REPORT_FD, rec, sizeof(rec)) != sizeof(rec)) {
		kill(pid, SIGKILL);
		_exit(CINIT_FAIL_EXIT);
	}
	_exit(0);
}
