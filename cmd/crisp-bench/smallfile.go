package main

import (
	"encoding/json"
	"fmt"
	"os"
	goruntime "runtime"
	"time"

	"golang.org/x/sys/unix"
)

// smallfileRates is one run of the small-file workload, in operations per
// second: create (open O_CREAT, write 4 KiB, close), stat, and open + read
// 4 KiB + close with the page cache hot (the files were just written).
type smallfileRates struct {
	Create float64 `json:"create"`
	Stat   float64 `json:"stat"`
	Read   float64 `json:"read"`
	// Lookup is the first stat of files that already existed (an image's
	// files in a container that was just mounted): no dentry cached yet.
	Lookup float64 `json:"lookup,omitempty"`
	// CopyUp sets the times of a tenth of the files that already existed,
	// which copies an image file up into the container's writable layer.
	CopyUp float64 `json:"copyup,omitempty"`
}

// smallfileRun is one run's rates per second of wall time and per second
// of the thread's CPU time.
type smallfileRun struct {
	Wall smallfileRates `json:"wall"`
	CPU  smallfileRates `json:"cpu"`
}

// smallfileWorkload runs the workload on n files in a new directory under
// dir and leaves them there: ext4 without a journal skips inodes deleted in
// the last minute when it allocates, so deleting between runs would make the
// next run's creates measure that search instead (seen with perf: 60 % of
// the time in recently_deleted). The caller removes dir at the end.
// With existing, dir itself already holds the n files (f000000 ...):
// nothing is created, the first stat pass is reported as Lookup, and the
// files' times are set at the end (CopyUp).
//
// It calls the system directly (no os.File) so that what is timed is the
// filesystem, not Go's file bookkeeping; the same static binary runs on the
// host and, bind-mounted, inside a container.
func smallfileWorkload(dir string, n int, existing bool) (smallfileRun, error) {
	var r smallfileRun
	work := dir
	if !existing {
		var err error
		if work, err = os.MkdirTemp(dir, "smallfile-"); err != nil {
			return r, err
		}
	}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("f%06d", i)
	}
	// Names relative to the directory: one path component per call, so a
	// longer path on one side (the host's) does not weigh in the ratio.
	dirfd, err := unix.Open(work, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return r, err
	}
	defer unix.Close(dirfd)
	page := make([]byte, 4096)
	// The thread's CPU time is what the filesystem code costs; wall time
	// adds whatever else the machine runs meanwhile.
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	timed := func(step int, op func(name string) error) error {
		names := names
		if step == 3 {
			// Each copy-up without "volatile" is an fsync: a tenth is
			// plenty to measure it.
			names = names[:max(1, n/10)]
		}
		t, c := time.Now(), threadCPU()
		for _, name := range names {
			if err := op(name); err != nil {
				return err
			}
		}
		*r.Wall.field(step, existing) = float64(len(names)) / time.Since(t).Seconds()
		*r.CPU.field(step, existing) = float64(len(names)) / (threadCPU() - c).Seconds()
		return nil
	}
	create := func(name string) error {
		fd, err := unix.Openat(dirfd, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		defer unix.Close(fd)
		if _, err := unix.Write(fd, page); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		return nil
	}
	var st unix.Stat_t
	stat := func(name string) error {
		if err := unix.Fstatat(dirfd, name, &st, 0); err != nil {
			return fmt.Errorf("stat %s: %w", name, err)
		}
		return nil
	}
	read := func(name string) error {
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", name, err)
		}
		defer unix.Close(fd)
		if got, err := unix.Read(fd, page); err != nil || got != len(page) {
			return fmt.Errorf("read %s: %d bytes, %v", name, got, err)
		}
		return nil
	}
	touch := func(name string) error {
		if err := unix.UtimesNanoAt(dirfd, name, nil, 0); err != nil {
			return fmt.Errorf("touch %s: %w", name, err)
		}
		return nil
	}
	steps := []func(string) error{create, stat, read}
	if existing {
		steps = []func(string) error{stat, stat, read, touch}
	}
	for step, op := range steps {
		if err := timed(step, op); err != nil {
			return r, err
		}
	}
	return r, nil
}

// field is where step (0: create or, for existing files, lookup; 1: stat;
// 2: read; 3: copy-up) goes.
func (r *smallfileRates) field(step int, existing bool) *float64 {
	switch {
	case step == 3:
		return &r.CopyUp
	case step == 0 && existing:
		return &r.Lookup
	case step == 0:
		return &r.Create
	case step == 1:
		return &r.Stat
	}
	return &r.Read
}

func threadCPU() time.Duration {
	var ts unix.Timespec
	must(unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts))
	return time.Duration(ts.Nano())
}

// smallfileMain is `crisp-bench -smallfile DIR`: one run, as JSON on stdout.
func smallfileMain(dir string, n int, existing bool) {
	r, err := smallfileWorkload(dir, n, existing)
	must(err)
	must(json.NewEncoder(os.Stdout).Encode(r))
}
