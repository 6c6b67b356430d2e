package monitor

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// procStat holds the /proc/<pid>/stat fields we use.
type procStat struct {
	State     byte
	PPid      int
	Session   int
	StartTime uint64 // clock ticks after boot
}

func readProcStat(pid int) (procStat, error) {
	var st procStat
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return st, err
	}
	// The command name (field 2) may contain spaces and parentheses: the
	// fields we want follow its last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return st, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := bytes.Fields(b[i+2:])
	// f[0] is field 3 (state); field n is f[n-3].
	if len(f) < 20 {
		return st, fmt.Errorf("short /proc/%d/stat", pid)
	}
	st.State = f[0][0]
	st.PPid, _ = strconv.Atoi(string(f[1]))
	st.Session, _ = strconv.Atoi(string(f[3]))
	st.StartTime, err = strconv.ParseUint(string(f[19]), 10, 64)
	return st, err
}

// aliveWithStartTime reports whether pid is a live (not zombie) process that
// started at startTime, i.e. the same process as recorded, not a reused pid.
func aliveWithStartTime(pid int, startTime uint64) bool {
	if pid <= 0 {
		return false
	}
	st, err := readProcStat(pid)
	return err == nil && st.StartTime == startTime && st.State != 'Z' && st.State != 'X'
}
