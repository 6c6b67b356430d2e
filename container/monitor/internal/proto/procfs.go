package proto

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// ProcStat holds the /proc/<pid>/stat fields the records and the daemon use.
type ProcStat struct {
	State     byte
	PPid      int
	Session   int
	StartTime uint64 // clock ticks after boot
}

// ReadProcStat reads /proc/pid/stat. StartTime is how the records tell a
// live process from a reuse of its pid.
func ReadProcStat(pid int) (ProcStat, error) {
	var st ProcStat
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
