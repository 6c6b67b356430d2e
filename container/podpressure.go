package container

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/opencontainers/cgroups"

	"github.com/crisp-runtime/crisp/container/monitor"
)

// Pressure is a cgroup's PSI by resource (nil where a file is missing).
type Pressure = monitor.Pressure

// cgroupRoot is where the unified hierarchy is mounted.
const cgroupRoot = "/sys/fs/cgroup"

// PodPressure reads the pressure files of a pod's cgroup (its cgroupfs
// path, as the sandbox records it). The pod's own files, not a sum of its
// containers': a stall is a share of time, and the shares of two containers
// stalling at once do not add up. nil on cgroup v1, for a pod without a
// cgroup and on kernels without PSI.
func PodPressure(podCgroup string) *Pressure {
	if podCgroup == "" || !cgroups.IsCgroup2UnifiedMode() {
		return nil
	}
	return readPressure(filepath.Join(cgroupRoot, podCgroup))
}

// readPressure reads cpu.pressure, memory.pressure and io.pressure in dir.
func readPressure(dir string) *Pressure {
	p := &Pressure{
		CPU:    readPSIFile(filepath.Join(dir, "cpu.pressure")),
		Memory: readPSIFile(filepath.Join(dir, "memory.pressure")),
		IO:     readPSIFile(filepath.Join(dir, "io.pressure")),
	}
	if p.CPU == nil && p.Memory == nil && p.IO == nil {
		return nil
	}
	return p
}

// readPSIFile is nil when the file is missing or unreadable (a kernel booted
// with psi=0 answers EOPNOTSUPP): no PSI is not zero stall.
func readPSIFile(path string) *monitor.PSI {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	p, err := parsePSI(bufio.NewScanner(f))
	if err != nil {
		return nil
	}
	return p
}

// parsePSI parses a pressure file:
//
//	some avg10=0.00 avg60=0.00 avg300=0.00 total=0
//	full avg10=0.00 avg60=0.00 avg300=0.00 total=0
//
// A cpu.pressure without a "full" line (kernels before 5.13) leaves Full zero.
func parsePSI(sc *bufio.Scanner) (*monitor.PSI, error) {
	p := &monitor.PSI{}
	seen := false
	for sc.Scan() {
		kind, rest, _ := strings.Cut(sc.Text(), " ")
		var d *monitor.PSIData
		switch kind {
		case "some":
			d = &p.Some
		case "full":
			d = &p.Full
		default:
			continue
		}
		for _, kv := range strings.Fields(rest) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, fmt.Errorf("pressure line %q: field %q is not key=value", sc.Text(), kv)
			}
			var err error
			switch k {
			case "avg10":
				d.Avg10, err = strconv.ParseFloat(v, 64)
			case "avg60":
				d.Avg60, err = strconv.ParseFloat(v, 64)
			case "avg300":
				d.Avg300, err = strconv.ParseFloat(v, 64)
			case "total":
				d.Total, err = strconv.ParseUint(v, 10, 64)
			}
			if err != nil {
				return nil, fmt.Errorf("pressure line %q: %w", sc.Text(), err)
			}
		}
		seen = true
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if !seen {
		return nil, errors.New("pressure file without a some or full line")
	}
	return p, nil
}
