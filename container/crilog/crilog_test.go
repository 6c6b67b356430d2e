package crilog

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func newTestWriter(t *testing.T) (*Writer, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.log")
	w, err := Open(path, func(err error) { t.Logf("log error: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w, path
}

func parseFile(t *testing.T, path string) []Entry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	es, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

type want struct {
	partial bool
	content string
}

func check(t *testing.T, es []Entry, stream StreamType, ws []want) {
	t.Helper()
	var got []want
	for _, e := range es {
		if e.Stream == stream {
			got = append(got, want{e.Partial, string(e.Content)})
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(ws) {
		t.Fatalf("%s entries:\n got  %+v\n want %+v", stream, got, ws)
	}
}

func TestLineSplitting(t *testing.T) {
	long := strings.Repeat("x", 10)
	for _, tc := range []struct {
		name   string
		chunks []string
		want   []want
	}{
		{"simple", []string{"a\nb\n"}, []want{{false, "a"}, {false, "b"}}},
		{"empty lines", []string{"\n\na\n"}, []want{{false, ""}, {false, ""}, {false, "a"}}},
		{"split across writes", []string{"he", "llo", "\nwor", "ld\n"}, []want{{false, "hello"}, {false, "world"}}},
		{"partial at EOF", []string{"a\nno nl"}, []want{{false, "a"}, {true, "no nl"}}},
		{"crlf", []string{"a\r\nb\r", "\nc\rd\n"}, []want{{false, "a"}, {false, "b"}, {false, "c\rd"}}},
		{"lone cr at EOF", []string{"a\r"}, []want{{true, "a\r"}}},
		{"exactly max", []string{long[:8] + "\n"}, []want{{false, long[:8]}}},
		{"exactly max with crlf", []string{long[:8] + "\r", "\n"}, []want{{false, long[:8]}}},
		{"max+1", []string{long[:9] + "\n"}, []want{{true, long[:8]}, {false, "x"}}},
		{"long line", []string{long, long, "\n"}, []want{{true, long[:8]}, {true, long[:8]}, {false, "xxxx"}}},
		{"long at EOF", []string{long + long}, []want{{true, long[:8]}, {true, long[:8]}, {true, "xxxx"}}},
		{"two max lines", []string{long[:8] + long[:8] + "\n"}, []want{{true, long[:8]}, {false, long[:8]}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, path := newTestWriter(t)
			s := w.NewStream(Stdout, 8)
			for _, c := range tc.chunks {
				s.Write([]byte(c))
			}
			s.Close()
			check(t, parseFile(t, path), Stdout, tc.want)
		})
	}
}

func TestByteAtATime(t *testing.T) {
	w, path := newTestWriter(t)
	s := w.NewStream(Stderr, 4)
	for _, b := range []byte("abcdefg\r\nhi\n\nxyz") {
		s.Write([]byte{b})
	}
	s.Close()
	check(t, parseFile(t, path), Stderr, []want{{true, "abcd"}, {false, "efg"}, {false, "hi"}, {false, ""}, {true, "xyz"}})
}

func TestFormat(t *testing.T) {
	w, path := newTestWriter(t)
	fixed := time.Date(2024, 1, 2, 3, 4, 5, 600, time.UTC)
	w.now = func() time.Time { return fixed }
	s := w.NewStream(Stdout, 0)
	s.Write([]byte("hello world\n"))
	s.Write([]byte("tail"))
	s.Close()
	b, _ := os.ReadFile(path)
	exp := "2024-01-02T03:04:05.0000006Z stdout F hello world\n2024-01-02T03:04:05.0000006Z stdout P tail\n"
	if string(b) != exp {
		t.Fatalf("got %q want %q", b, exp)
	}
}

func TestDefaultMaxLine(t *testing.T) {
	w, path := newTestWriter(t)
	s := w.NewStream(Stdout, 0)
	line := bytes.Repeat([]byte("y"), DefaultMaxLineSize*2+5)
	s.Write(append(line, '\n'))
	s.Close()
	es := parseFile(t, path)
	if len(es) != 3 || !es[0].Partial || !es[1].Partial || es[2].Partial || len(es[0].Content) != DefaultMaxLineSize || len(es[2].Content) != 5 {
		t.Fatalf("unexpected split: %d entries", len(es))
	}
	if got := Lines(es, Stdout); len(got) != 1 || got[0] != string(line) {
		t.Fatalf("Lines did not rejoin")
	}
}

func TestInterleavedStreams(t *testing.T) {
	w, path := newTestWriter(t)
	out, errs := w.NewStream(Stdout, 0), w.NewStream(Stderr, 0)
	out.Write([]byte("o1 start "))
	errs.Write([]byte("e1\n"))
	out.Write([]byte("end\n"))
	errs.Write([]byte("e2"))
	out.Close()
	errs.Close()
	es := parseFile(t, path)
	check(t, es, Stdout, []want{{false, "o1 start end"}})
	check(t, es, Stderr, []want{{false, "e1"}, {true, "e2"}})
	if es[0].Stream != Stderr {
		t.Fatalf("stderr line should come first (its newline arrived first)")
	}
}

func TestReopenAfterRename(t *testing.T) {
	w, path := newTestWriter(t)
	s := w.NewStream(Stdout, 0)
	s.Write([]byte("before\n"))
	rotated := path + ".1"
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	s.Write([]byte("still old\n"))
	if err := w.Reopen(); err != nil {
		t.Fatal(err)
	}
	s.Write([]byte("after\n"))
	check(t, parseFile(t, rotated), Stdout, []want{{false, "before"}, {false, "still old"}})
	check(t, parseFile(t, path), Stdout, []want{{false, "after"}})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Fatalf("mode %v, want 0640", fi.Mode().Perm())
	}
}

func TestDiscardAndErrors(t *testing.T) {
	w, err := Open("", nil)
	if err != nil {
		t.Fatal(err)
	}
	w.NewStream(Stdout, 0).Write([]byte("x\n"))
	if err := w.Reopen(); err != nil {
		t.Fatal(err)
	}

	// A write error is counted, reported once, and does not fail Write.
	var reported int
	full, err := Open("/dev/full", func(error) { reported++ })
	if err != nil {
		t.Skip("no /dev/full")
	}
	s := full.NewStream(Stdout, 0)
	for i := 0; i < 3; i++ {
		if _, err := s.Write([]byte("x\n")); err != nil {
			t.Fatal(err)
		}
	}
	if full.Errors() != 3 || reported != 1 {
		t.Fatalf("errors=%d reported=%d", full.Errors(), reported)
	}
}

func TestConcurrentWriters(t *testing.T) {
	w, path := newTestWriter(t)
	const n = 500
	var wg sync.WaitGroup
	for _, st := range []StreamType{Stdout, Stderr} {
		wg.Add(1)
		go func(st StreamType) {
			defer wg.Done()
			s := w.NewStream(st, 64)
			for i := 0; i < n; i++ {
				// Odd-sized chunks so that lines span writes.
				fmt.Fprintf(s, "%s line %d %s\n", st, i, strings.Repeat("z", i%100))
			}
			s.Close()
		}(st)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			w.Reopen()
		}
	}()
	wg.Wait()
	es := parseFile(t, path)
	for _, st := range []StreamType{Stdout, Stderr} {
		lines := Lines(es, st)
		if len(lines) != n {
			t.Fatalf("%s: %d lines, want %d", st, len(lines), n)
		}
		for i, l := range lines {
			if exp := fmt.Sprintf("%s line %d %s", st, i, strings.Repeat("z", i%100)); l != exp {
				t.Fatalf("%s line %d = %q, want %q", st, i, l, exp)
			}
		}
	}
}

// A log path is under directories a container may write (a hostPath of
// the pod's log directory): a symlink or a fifo planted there must not
// redirect crisp's writes elsewhere, nor block it. Open and Reopen refuse.
func TestLogPathPlantedByContainer(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("keep\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "0.log")
	if err := os.Symlink(victim, link); err != nil {
		t.Fatal(err)
	}
	if w, err := Open(link, nil); err == nil {
		w.Close()
		t.Fatal("Open followed a symlink")
	}
	fifo := filepath.Join(dir, "1.log")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		w, err := Open(fifo, nil)
		if err == nil {
			w.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Open accepted a fifo")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Open blocked on a fifo")
	}

	// Rotation: the kubelet renames the file; a symlink put in its place
	// before the reopen is refused and the old file stays in use.
	path := filepath.Join(dir, "2.log")
	w, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, path); err != nil {
		t.Fatal(err)
	}
	if err := w.Reopen(); err == nil {
		t.Fatal("Reopen followed a symlink")
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep\n" {
		t.Fatalf("victim written: %q", b)
	}
}

// Under the pod's log directory, a directory on the way to the log file
// may be a symlink a container planted: it must not lead crisp's writes
// out of the log directory. Symlinks that stay inside are followed.
func TestLogPathLeavingLogDirectory(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "ctr")); err != nil {
		t.Fatal(err)
	}
	if w, err := OpenBeneath(root, filepath.Join(root, "ctr", "0.log"), nil); err == nil {
		w.Close()
		t.Fatal("OpenBeneath followed a symlink out of the log directory")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("created outside the log directory: %v", ents)
	}
	if err := os.Mkdir(filepath.Join(root, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(root, "inside")); err != nil {
		t.Fatal(err)
	}
	w, err := OpenBeneath(root, filepath.Join(root, "inside", "0.log"), nil)
	if err != nil {
		t.Fatalf("symlink inside the log directory: %v", err)
	}
	w.NewStream(Stdout, 0).Write([]byte("hello\n"))
	w.Close()
	if b, err := os.ReadFile(filepath.Join(root, "real", "0.log")); err != nil || !strings.Contains(string(b), "stdout F hello") {
		t.Fatalf("log: %q, %v", b, err)
	}
}
