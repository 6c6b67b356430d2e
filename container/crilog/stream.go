package crilog

import "bytes"

// Stream turns the raw output of one container stream into CRI log lines
// on a shared Writer. It is a push-style version of containerd's
// redirectLogs: the caller owns the read loop (the monitor also forwards the
// same bytes to attached clients) and feeds whatever it read to Write.
//
// A Stream is used by a single goroutine; the Writer it writes to is shared.
type Stream struct {
	w      *Writer
	name   StreamType
	maxLen int
	// pending holds the current, not yet terminated line. Its length never
	// exceeds maxLen, plus one held-back '\r' that may turn out to be part
	// of a "\r\n" line ending.
	pending []byte
	closed  bool
}

// NewStream returns a Stream writing lines tagged with name. maxLen <= 0
// means DefaultMaxLineSize.
func (w *Writer) NewStream(name StreamType, maxLen int) *Stream {
	if maxLen <= 0 {
		maxLen = DefaultMaxLineSize
	}
	return &Stream{w: w, name: name, maxLen: maxLen}
}

// Write consumes p, writing every completed line. It never fails: log write
// errors are accounted for by the Writer.
func (s *Stream) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.appendContent(p)
			break
		}
		s.appendContent(p[:i])
		line := s.pending
		// Like containerd, "\r\n" ends a line the same way "\n" does.
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		s.w.writeLine(s.name, TagFull, line)
		s.pending = s.pending[:0]
		p = p[i+1:]
	}
	s.shrink()
	return n, nil
}

// appendContent adds bytes that contain no newline to the pending line and
// writes maxLen-sized partial lines while it is too long. A trailing '\r'
// does not count: if a '\n' follows, it is part of the line ending.
func (s *Stream) appendContent(p []byte) {
	s.pending = append(s.pending, p...)
	for {
		content := len(s.pending)
		if content > 0 && s.pending[content-1] == '\r' {
			content--
		}
		if content <= s.maxLen {
			return
		}
		s.w.writeLine(s.name, TagPartial, s.pending[:s.maxLen])
		s.pending = append(s.pending[:0], s.pending[s.maxLen:]...)
	}
}

// Close flushes a line that did not end with a newline as a partial line,
// as containerd does at EOF.
func (s *Stream) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	// At EOF a held-back '\r' is content.
	for len(s.pending) > s.maxLen {
		s.w.writeLine(s.name, TagPartial, s.pending[:s.maxLen])
		s.pending = s.pending[s.maxLen:]
	}
	if len(s.pending) > 0 {
		s.w.writeLine(s.name, TagPartial, s.pending)
	}
	s.pending = nil
	return nil
}

// shrink releases the pending buffer after a long line so that an idle
// container does not pin maxLen bytes per stream.
func (s *Stream) shrink() {
	if len(s.pending) == 0 && cap(s.pending) > 4096 {
		s.pending = nil
	}
}
