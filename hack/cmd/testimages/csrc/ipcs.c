/*
 * ipcs: minimal util-linux compatible "ipcs" for the busybox test image
 * (Debian's busybox has no ipcs applet). Reads /proc/sysvipc/{msg,shm,sem},
 * which the kernel scopes to the caller's IPC namespace.
 *   ipcs [-m] [-q] [-s] [-a]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXCOLS 32

static const char *owner(unsigned long uid, char *buf, size_t len) {
	FILE *f = fopen("/etc/passwd", "r");
	char line[1024];
	if (f) {
		while (fgets(line, sizeof line, f)) {
			char *name = strtok(line, ":");
			strtok(NULL, ":");
			char *u = strtok(NULL, ":");
			if (name && u && strtoul(u, NULL, 10) == uid) {
				snprintf(buf, len, "%s", name);
				fclose(f);
				return buf;
			}
		}
		fclose(f);
	}
	snprintf(buf, len, "%lu", uid);
	return buf;
}

static int split(char *line, char **cols) {
	int n = 0;
	for (char *t = strtok(line, " \t\n"); t && n < MAXCOLS; t = strtok(NULL, " \t\n"))
		cols[n++] = t;
	return n;
}

static int col(char **hdr, int nh, const char *name) {
	for (int i = 0; i < nh; i++)
		if (!strcmp(hdr[i], name))
			return i;
	return -1;
}

/* kind: 'q', 'm' or 's' */
static void show(char kind) {
	const char *file, *title;
	switch (kind) {
	case 'q':
		file = "/proc/sysvipc/msg";
		title = "Message Queues";
		break;
	case 'm':
		file = "/proc/sysvipc/shm";
		title = "Shared Memory Segments";
		break;
	default:
		file = "/proc/sysvipc/sem";
		title = "Semaphore Arrays";
		break;
	}
	printf("\n------ %s --------\n", title);
	if (kind == 'q')
		printf("%-10s %-10s %-10s %-10s %-12s %-12s\n", "key", "msqid", "owner", "perms", "used-bytes", "messages");
	else if (kind == 'm')
		printf("%-10s %-10s %-10s %-10s %-10s %-10s %-12s\n", "key", "shmid", "owner", "perms", "bytes", "nattch", "status");
	else
		printf("%-10s %-10s %-10s %-10s %-10s\n", "key", "semid", "owner", "perms", "nsems");

	FILE *f = fopen(file, "r");
	if (!f)
		return;
	char hline[1024], line[1024], *hdr[MAXCOLS], *c[MAXCOLS], ob[64];
	if (!fgets(hline, sizeof hline, f)) {
		fclose(f);
		return;
	}
	int nh = split(hline, hdr);
	int ikey = col(hdr, nh, "key");
	int iid = col(hdr, nh, kind == 'q' ? "msqid" : kind == 'm' ? "shmid" : "semid");
	int iperm = col(hdr, nh, "perms");
	int iuid = col(hdr, nh, "uid");
	int ia = col(hdr, nh, kind == 'q' ? "cbytes" : kind == 'm' ? "size" : "nsems");
	int ib = col(hdr, nh, kind == 'q' ? "qnum" : "nattch");
	while (fgets(line, sizeof line, f)) {
		int n = split(line, c);
		if (n < nh || ikey < 0 || iid < 0 || iperm < 0 || iuid < 0)
			continue;
		long key = strtol(c[ikey], NULL, 10);
		unsigned long perms = strtoul(c[iperm], NULL, 8) & 0777;
		owner(strtoul(c[iuid], NULL, 10), ob, sizeof ob);
		printf("0x%08x %-10s %-10s %-10lo ", (unsigned int)key, c[iid], ob, perms);
		if (kind == 'q')
			printf("%-12s %-12s\n", ia >= 0 ? c[ia] : "0", ib >= 0 ? c[ib] : "0");
		else if (kind == 'm')
			printf("%-10s %-10s %-12s\n", ia >= 0 ? c[ia] : "0", ib >= 0 ? c[ib] : "0", "");
		else
			printf("%-10s\n", ia >= 0 ? c[ia] : "0");
	}
	fclose(f);
}

int main(int argc, char **argv) {
	int q = 0, m = 0, s = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("Usage: ipcs [-m] [-q] [-s] [-a]\n\nShow SysV IPC facilities\n");
			return 0;
		}
		if (argv[i][0] != '-') {
			fprintf(stderr, "ipcs: unexpected argument %s\n", argv[i]);
			return 1;
		}
		for (const char *p = argv[i] + 1; *p; p++) {
			switch (*p) {
			case 'q': q = 1; break;
			case 'm': m = 1; break;
			case 's': s = 1; break;
			case 'a': q = m = s = 1; break;
			default:
				fprintf(stderr, "ipcs: invalid option -- '%c'\n", *p);
				return 1;
			}
		}
	}
	if (!q && !m && !s)
		q = m = s = 1;
	if (q)
		show('q');
	if (m)
		show('m');
	if (s)
		show('s');
	printf("\n");
	return 0;
}
