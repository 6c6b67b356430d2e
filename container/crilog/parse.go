package crilog

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"time"
)

// Entry is one parsed CRI log line.
type Entry struct {
	Time    time.Time
	Stream  StreamType
	Partial bool
	Content []byte
}

// Parse reads a CRI log and returns its entries in file order. It is strict:
// a malformed line is an error, which is what tests want.
func Parse(r io.Reader) ([]Entry, error) {
	var out []Entry
	br := bufio.NewReader(r)
	for lineNo := 1; ; lineNo++ {
		line, err := br.ReadBytes('\n')
		if len(line) == 0 && err == io.EOF {
			return out, nil
		}
		if err != nil && err != io.EOF {
			return out, err
		}
		if line[len(line)-1] != '\n' {
			return out, fmt.Errorf("line %d: missing newline", lineNo)
		}
		e, perr := parseLine(line[:len(line)-1])
		if perr != nil {
			return out, fmt.Errorf("line %d: %w", lineNo, perr)
		}
		out = append(out, e)
	}
}

func parseLine(line []byte) (Entry, error) {
	var e Entry
	fields := bytes.SplitN(line, []byte{' '}, 4)
	if len(fields) != 4 {
		return e, fmt.Errorf("want 4 fields, got %d in %q", len(fields), line)
	}
	t, err := time.Parse(timestampFormat, string(fields[0]))
	if err != nil {
		return e, err
	}
	e.Time = t
	switch s := StreamType(fields[1]); s {
	case Stdout, Stderr:
		e.Stream = s
	default:
		return e, fmt.Errorf("unknown stream %q", fields[1])
	}
	switch string(fields[2]) {
	case TagFull:
	case TagPartial:
		e.Partial = true
	default:
		return e, fmt.Errorf("unknown tag %q", fields[2])
	}
	e.Content = fields[3]
	return e, nil
}

// Lines joins partial entries into whole lines per stream, the way the
// kubelet presents them. A trailing partial run (stream ended without a
// newline) is returned as a line too.
func Lines(entries []Entry, stream StreamType) []string {
	var (
		out []string
		cur []byte
		has bool
	)
	for _, e := range entries {
		if e.Stream != stream {
			continue
		}
		cur = append(cur, e.Content...)
		has = true
		if !e.Partial {
			out = append(out, string(cur))
			cur, has = cur[:0], false
		}
	}
	if has {
		out = append(out, string(cur))
	}
	return out
}
