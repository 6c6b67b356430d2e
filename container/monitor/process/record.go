package process

import (
	"fmt"
	"time"

	"github.com/crisp-runtime/crisp/container/monitor/internal/proto"
)

// record writes the record name (status.json, exit.json) to the bundle or,
// when the bundle's filesystem refuses it (full), to the state dir, which
// the daemon reads first (proto.ReadRecord).
// status.json describes the monitor's and the init's processes, which a
// crash of the node ends: it is written without fsync (proto.ReplaceJSON),
// and the daemon takes a bundle without a readable one after a reboot for a
// container that died with the node (Load). exit.json, the exit code, is
// made durable.
func (m *monitor) record(name string, v any) error {
	write := proto.WriteJSONAtomic
	if name == proto.StatusFile {
		write = proto.ReplaceJSON
	}
	err := write(m.cfg.Path(name), v)
	if err == nil {
		return nil
	}
	m.logf("record %s in the bundle: %v; recording it in the state dir", name, err)
	if verr := write(m.cfg.VolatilePath(name), v); verr != nil {
		return fmt.Errorf("%w; in the state dir: %v", err, verr)
	}
	return nil
}

// maxRecordRetry bounds the pause between attempts to record on full disks.
const maxRecordRetry = 5 * time.Second

// recordExit records the exit, retrying while no filesystem takes it: the
// monitor alone knows the exit code and the OOM kill, and the daemon takes
// a monitor gone without a record for a crash.
func (m *monitor) recordExit(e *proto.ExitRecord) {
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, maxRecordRetry) {
		err := m.record(proto.ExitFile, e)
		if err == nil {
			return
		}
		m.logf("record exit (code %d, reason %s): %v; retrying in %v", e.ExitCode, e.Reason, err, delay)
		time.Sleep(delay)
	}
}

// recordStarted records the start of a released init. Failing is no reason
// to fail the start, which would report a running process as not started:
// the daemon has the start time from the reply, and the record is retried
// until it is written or the init exits.
func (m *monitor) recordStarted() {
	st := m.status
	if m.record(proto.StatusFile, &st) == nil {
		return
	}
	go func() {
		for delay := 100 * time.Millisecond; ; delay = min(2*delay, maxRecordRetry) {
			select {
			case <-m.initExited:
				return
			case <-time.After(delay):
			}
			if err := m.record(proto.StatusFile, &st); err == nil {
				return
			}
		}
	}()
}
