/*
 * pgrep: minimal procps-compatible pgrep for the busybox test image (Debian's
 * busybox has no pgrep applet). Matches an extended regex against the
 * process name (/proc/PID/comm) or, with -f, the full command line, and
 * prints matching PIDs (never its own). Exit 0 if something matched, 1 if
 * not, 2 on usage errors.
 *   pgrep [-f] [-x] [-l] [-c] [-d DELIM] PATTERN
 */
#include <ctype.h>
#include <dirent.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
	fprintf(f,
		"Usage: pgrep [-flxc] [-d DELIM] PATTERN\n"
		"\n"
		"List PIDs of processes whose name matches PATTERN (extended regex)\n"
		"\n"
		"\t-f\tMatch against the full command line\n"
		"\t-x\tRequire the whole name (or command line) to match\n"
		"\t-l\tList the process name too\n"
		"\t-c\tPrint the number of matches only\n"
		"\t-d DELIM\tOutput delimiter (default newline)\n");
}

static int readfile(const char *path, char *buf, size_t len) {
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = 0;
	return (int)n;
}

int main(int argc, char **argv) {
	int full = 0, exact = 0, list = 0, count = 0, i;
	const char *delim = "\n", *pattern = NULL;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(a, "-d") && i + 1 < argc) {
			delim = argv[++i];
			continue;
		}
		if (a[0] == '-' && a[1]) {
			for (const char *p = a + 1; *p; p++) {
				switch (*p) {
				case 'f': full = 1; break;
				case 'x': exact = 1; break;
				case 'l': list = 1; break;
				case 'c': count = 1; break;
				default:
					fprintf(stderr, "pgrep: invalid option -- '%c'\n", *p);
					usage(stderr);
					return 2;
				}
			}
			continue;
		}
		if (pattern) {
			fprintf(stderr, "pgrep: only one pattern can be provided\n");
			return 2;
		}
		pattern = a;
	}
	if (!pattern) {
		fprintf(stderr, "pgrep: no matching criteria specified\n");
		usage(stderr);
		return 2;
	}
	char *re_src = malloc(strlen(pattern) + 8);
	if (exact)
		sprintf(re_src, "^(%s)$", pattern);
	else
		strcpy(re_src, pattern);
	regex_t re;
	if (regcomp(&re, re_src, REG_EXTENDED | REG_NOSUB) != 0) {
		fprintf(stderr, "pgrep: invalid regular expression\n");
		return 2;
	}
	DIR *d = opendir("/proc");
	if (!d) {
		perror("pgrep: /proc");
		return 3;
	}
	long self = (long)getpid();
	int matches = 0;
	struct dirent *e;
	char path[64], name[4096];
	while ((e = readdir(d))) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		long pid = strtol(e->d_name, NULL, 10);
		if (pid == self)
			continue;
		snprintf(path, sizeof path, "/proc/%ld/comm", pid);
		char comm[64];
		if (readfile(path, comm, sizeof comm) < 0)
			continue;
		comm[strcspn(comm, "\n")] = 0;
		const char *subject = comm;
		if (full) {
			snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
			int n = readfile(path, name, sizeof name);
			if (n <= 0)
				continue;
			for (int k = 0; k < n - 1; k++)
				if (!name[k])
					name[k] = ' ';
			subject = name;
		}
		if (regexec(&re, subject, 0, NULL, 0) != 0)
			continue;
		if (!count) {
			if (matches)
				fputs(delim, stdout);
			if (list)
				printf("%ld %s", pid, full ? subject : comm);
			else
				printf("%ld", pid);
		}
		matches++;
	}
	closedir(d);
	if (count)
		printf("%d\n", matches);
	else if (matches)
		fputs("\n", stdout);
	return matches ? 0 : 1;
}
