// The protocol between the monitor (cinit.go) and the C init (cinit.c).
#ifndef CRISP_CINIT_H
#define CRISP_CINIT_H

#define CINIT_ENV "_CRISP_CINIT"

// The C init's descriptors besides its stdio.
#define CINIT_REQUEST_FD 3 // the request, read to EOF
#define CINIT_REPORT_FD 4  // records to the monitor; closes on the exec
#define CINIT_PIDFD 5      // the container's init, whose namespaces it joins
#define CINIT_EXE_FD 6     // the sealed binary it was executed from

// Report records: a byte, then a 4-byte pid or the error text.
#define CINIT_PID 'P'
#define CINIT_ERROR 'E'
#define CINIT_CLONE_REFUSED "cinit: clone into the container refused: "

#define CINIT_FAIL_EXIT 255

// Request records: tag, length, value (see cinit.go).
enum {
	CINIT_ARG = 1,
	CINIT_ENV_VAR,
	CINIT_CWD,
	CINIT_UID,
	CINIT_GID,
	CINIT_GROUP,
	CINIT_CAPS,
	CINIT_RLIMIT,
	CINIT_NNP,
	CINIT_UMASK,
	CINIT_OOM,
	CINIT_NSFLAGS,
	CINIT_SECCOMP,
	CINIT_KEYRING,
	CINIT_END,
};
#endif
