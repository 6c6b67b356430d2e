package libct

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

func TestTrace(t *testing.T) {
	var out bytes.Buffer
	orig := logrus.StandardLogger().Out
	logrus.SetOutput(&out)
	defer logrus.SetOutput(orig)
	stop, ok := Trace([]Step{{"reading sync", "a"}, {"read sync type:procReady", "b"}, {"sync pipe closed", "c"}})
	if !ok {
		t.Fatal("first trace refused")
	}
	if _, ok := Trace(nil); ok {
		t.Fatal("a second trace ran at the same time")
	}
	logrus.Debug("unrelated")
	logrus.Debug("reading sync")
	logrus.Debug("read sync type:procReady")
	logrus.Debug("reading sync") // a's message again: not a new step
	logrus.Warn("kept")
	marks := stop()
	logrus.Debug("sync pipe closed") // after stop: not traced, not logged
	if len(marks) != 2 || marks[0].Name != "a" || marks[1].Name != "b" || marks[1].At.Before(marks[0].At) {
		t.Fatalf("marks %+v", marks)
	}
	if s := out.String(); !strings.Contains(s, "kept") || strings.Contains(s, "unrelated") || strings.Contains(s, "reading sync") {
		t.Fatalf("log %q", s)
	}
	if logrus.GetLevel() != logrus.InfoLevel {
		t.Fatalf("level %v after stop", logrus.GetLevel())
	}
	if stop, ok := Trace(nil); !ok {
		t.Fatal("trace refused after stop")
	} else {
		stop()
	}
}
