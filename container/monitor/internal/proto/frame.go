package monitor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The attach socket speaks a small framed protocol: every frame is a type
// byte, a big-endian uint32 payload length and the payload.
//
// A client opens with either a hello frame (it wants the container's live
// output, and may send stdin/resize frames), or a control frame (one
// command, answered by one reply frame, then the monitor closes).
const (
	frameHello    byte = 'A' // client: payload = flags (helloStdin)
	frameControl  byte = 'C' // client: payload = command
	frameStdin    byte = 'i' // client: data for the container's stdin
	frameStdinEOF byte = 'E' // client: no more stdin from this client
	frameResize   byte = 'r' // client: width, height as 2 big-endian uint16
	frameStdout   byte = 'o' // monitor: container stdout (or the tty)
	frameStderr   byte = 'e' // monitor: container stderr
	frameReply    byte = 'R' // monitor: replyOK/replyErr + text
)

const (
	helloStdin byte = 1

	cmdStart     = "start"
	cmdReopenLog = "reopen-log"

	replyOK  byte = 0
	replyErr byte = 1
)

const (
	frameHeaderLen  = 5
	maxFramePayload = 1 << 20
)

var errFrameTooLarge = errors.New("attach protocol: frame too large")

// appendFrame appends an encoded frame to b.
func appendFrame(b []byte, typ byte, payload []byte) []byte {
	var h [frameHeaderLen]byte
	h[0] = typ
	binary.BigEndian.PutUint32(h[1:], uint32(len(payload)))
	b = append(b, h[:]...)
	return append(b, payload...)
}

// writeFrame writes a frame with a single Write so that frames written by
// different goroutines under the caller's lock are never torn.
func writeFrame(w io.Writer, typ byte, payload []byte) error {
	_, err := w.Write(appendFrame(make([]byte, 0, frameHeaderLen+len(payload)), typ, payload))
	return err
}

// readFrame reads one frame; buf is reused for the payload when it is big
// enough.
func readFrame(r io.Reader, buf []byte) (byte, []byte, error) {
	var h [frameHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > maxFramePayload {
		return 0, nil, errFrameTooLarge
	}
	if int(n) > cap(buf) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, fmt.Errorf("attach protocol: short frame: %w", err)
	}
	return h[0], buf, nil
}

func replyPayload(err error, text string) []byte {
	if err != nil {
		return append([]byte{replyErr}, err.Error()...)
	}
	return append([]byte{replyOK}, text...)
}

func parseReply(typ byte, p []byte) (string, error) {
	if typ != frameReply || len(p) == 0 {
		return "", errors.New("attach protocol: unexpected frame from monitor")
	}
	if p[0] != replyOK {
		return "", errors.New(string(p[1:]))
	}
	return string(p[1:]), nil
}
