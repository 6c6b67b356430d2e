package proto

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
	FrameHello    byte = 'A' // client: payload = flags (HelloStdin)
	FrameControl  byte = 'C' // client: payload = command
	FrameStdin    byte = 'i' // client: data for the container's stdin
	FrameStdinEOF byte = 'E' // client: no more stdin from this client
	FrameResize   byte = 'r' // client: width, height as 2 big-endian uint16
	FrameStdout   byte = 'o' // monitor: container stdout (or the tty)
	FrameStderr   byte = 'e' // monitor: container stderr
	FrameReply    byte = 'R' // monitor: replyOK/replyErr + text
)

const (
	HelloStdin byte = 1

	CmdStart     = "start"
	CmdReopenLog = "reopen-log"

	replyOK  byte = 0
	replyErr byte = 1
)

const (
	FrameHeaderLen  = 5
	maxFramePayload = 1 << 20
)

var errFrameTooLarge = errors.New("attach protocol: frame too large")

// AppendFrame appends an encoded frame to b.
func AppendFrame(b []byte, typ byte, payload []byte) []byte {
	var h [FrameHeaderLen]byte
	h[0] = typ
	binary.BigEndian.PutUint32(h[1:], uint32(len(payload)))
	b = append(b, h[:]...)
	return append(b, payload...)
}

// WriteFrame writes a frame with a single Write so that frames written by
// different goroutines under the caller's lock are never torn.
func WriteFrame(w io.Writer, typ byte, payload []byte) error {
	_, err := w.Write(AppendFrame(make([]byte, 0, FrameHeaderLen+len(payload)), typ, payload))
	return err
}

// ReadFrame reads one frame; buf is reused for the payload when it is big
// enough.
func ReadFrame(r io.Reader, buf []byte) (byte, []byte, error) {
	var h [FrameHeaderLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	return readPayload(r, h, buf)
}

// readPayload reads the payload of the frame whose header is h.
func readPayload(r io.Reader, h [FrameHeaderLen]byte, buf []byte) (byte, []byte, error) {
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

// ReplyPayload encodes the monitor's answer to a control command (or to a
// hello): err's text, or text on success.
func ReplyPayload(err error, text string) []byte {
	if err != nil {
		return append([]byte{replyErr}, err.Error()...)
	}
	return append([]byte{replyOK}, text...)
}

// ParseReply decodes a reply frame made by ReplyPayload.
func ParseReply(typ byte, p []byte) (string, error) {
	if typ != FrameReply || len(p) == 0 {
		return "", errors.New("attach protocol: unexpected frame from monitor")
	}
	if p[0] != replyOK {
		return "", errors.New(string(p[1:]))
	}
	return string(p[1:]), nil
}
