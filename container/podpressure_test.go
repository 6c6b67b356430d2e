package container

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/crisp-runtime/crisp/container/monitor"
)

func TestReadPressure(t *testing.T) {
	write := func(dir, name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("every file", func(t *testing.T) {
		dir := t.TempDir()
		write(dir, "cpu.pressure", "some avg10=1.50 avg60=0.25 avg300=0.05 total=123456\nfull avg10=0.50 avg60=0.00 avg300=0.00 total=65432\n")
		write(dir, "memory.pressure", "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
		write(dir, "io.pressure", "some avg10=12.25 avg60=3.00 avg300=1.00 total=99\nfull avg10=2.00 avg60=1.00 avg300=0.50 total=42\n")
		want := &Pressure{
			CPU: &monitor.PSI{
				Some: monitor.PSIData{Total: 123456, Avg10: 1.5, Avg60: 0.25, Avg300: 0.05},
				Full: monitor.PSIData{Total: 65432, Avg10: 0.5},
			},
			Memory: &monitor.PSI{},
			IO: &monitor.PSI{
				Some: monitor.PSIData{Total: 99, Avg10: 12.25, Avg60: 3, Avg300: 1},
				Full: monitor.PSIData{Total: 42, Avg10: 2, Avg60: 1, Avg300: 0.5},
			},
		}
		if got := readPressure(dir); !reflect.DeepEqual(got, want) {
			t.Errorf("readPressure = %+v, want %+v", got, want)
		}
	})
	t.Run("cpu.pressure of an old kernel, no io.pressure", func(t *testing.T) {
		dir := t.TempDir()
		write(dir, "cpu.pressure", "some avg10=0.10 avg60=0.00 avg300=0.00 total=7\n")
		got := readPressure(dir)
		want := &Pressure{CPU: &monitor.PSI{Some: monitor.PSIData{Total: 7, Avg10: 0.1}}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("readPressure = %+v, want %+v", got, want)
		}
	})
	t.Run("no files: no PSI rather than zero stall", func(t *testing.T) {
		if got := readPressure(t.TempDir()); got != nil {
			t.Errorf("readPressure of a directory without pressure files = %+v, want nil", got)
		}
	})
	t.Run("a garbled file is left out", func(t *testing.T) {
		dir := t.TempDir()
		write(dir, "cpu.pressure", "some avg10=x total=1\n")
		write(dir, "memory.pressure", "")
		write(dir, "io.pressure", "some avg10=0.00 avg60=0.00 avg300=0.00 total=5\n")
		got := readPressure(dir)
		want := &Pressure{IO: &monitor.PSI{Some: monitor.PSIData{Total: 5}}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("readPressure = %+v, want %+v", got, want)
		}
	})
	t.Run("no pod cgroup", func(t *testing.T) {
		if got := PodPressure(""); got != nil {
			t.Errorf("PodPressure(\"\") = %+v, want nil", got)
		}
	})
}
