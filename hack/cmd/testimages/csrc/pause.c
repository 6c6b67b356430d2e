/*
 * pause: the sandbox "infra" process for crisp's test pause images.
 * Same behaviour as Kubernetes' build/pause/linux/pause.c: sleep forever,
 * reap zombies, exit 0 on SIGINT/SIGTERM, "-v" prints the version.
 * Built statically; VERSION is passed with -DVERSION=... so every pause tag
 * is a distinct binary (and therefore a distinct image ID).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define STR_(x) #x
#define STR(x) STR_(x)
#ifndef VERSION
#define VERSION HEAD
#endif

static void sigdown(int signo) {
	psignal(signo, "Shutting down, got signal");
	exit(0);
}

static void sigreap(int signo) {
	(void)signo;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

int main(int argc, char **argv) {
	for (int i = 1; i < argc; ++i) {
		if (!strcasecmp(argv[i], "-v")) {
			printf("pause.c %s (crisp test image)\n", STR(VERSION));
			return 0;
		}
	}
	if (getpid() != 1)
		fprintf(stderr, "Warning: pause should be the first process\n");
	if (sigaction(SIGINT, &(struct sigaction){.sa_handler = sigdown}, NULL) < 0)
		return 1;
	if (sigaction(SIGTERM, &(struct sigaction){.sa_handler = sigdown}, NULL) < 0)
		return 2;
	if (sigaction(SIGCHLD, &(struct sigaction){.sa_handler = sigreap, .sa_flags = SA_NOCLDSTOP}, NULL) < 0)
		return 3;
	for (;;)
		pause();
	fprintf(stderr, "Error: infinite loop terminated\n");
	return 42;
}
