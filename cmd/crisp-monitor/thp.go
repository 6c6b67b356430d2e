package main

// Transparent huge pages are switched off for crisp-monitor before the Go
// runtime starts: by the time main runs, the runtime has already mapped and
// touched its first heap arena and stacks, which THP "always" backs with
// 2 MiB pages. The flag is inherited by everything the monitor starts; the
// container's init clears it (container/monitor/internal/thp.Allow) before
// it executes the user's program. See package thp for why.

/*
#include <sys/prctl.h>

#ifndef PR_SET_THP_DISABLE
#define PR_SET_THP_DISABLE 41
#endif

__attribute__((constructor)) static void crisp_monitor_disable_thp(void)
{
	prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
}
*/
import "C"
