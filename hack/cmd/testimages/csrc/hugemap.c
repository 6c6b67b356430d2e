/*
 * hugemap N [hold]: maps N huge pages of the default size (MAP_HUGETLB),
 * touches each and prints "mapped N"; with "hold" it then keeps them until
 * killed. A hugetlb cgroup limit below N shows up as a
 * failed mmap (reservation refused: "mmap: ...", exit 1) or, where only
 * faults are limited, as SIGBUS on the first page over the limit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc != 2 && !(argc == 3 && strcmp(argv[2], "hold") == 0)) {
		fprintf(stderr, "usage: hugemap N [hold]\n");
		return 2;
	}
	long n = atol(argv[1]);
	size_t page = 2UL << 20;
	char *p = mmap(NULL, n * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (p == MAP_FAILED) {
		printf("mmap of %ld pages: %s\n", n, strerror(errno));
		return 1;
	}
	for (long i = 0; i < n; i++) {
		p[i * page] = 1;
		printf("touched %ld\n", i + 1);
		fflush(stdout);
	}
	printf("mapped %ld\n", n);
	fflush(stdout);
	while (argc == 3)
		pause();
	return 0;
}
