package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	var b bytes.Buffer
	for _, f := range []struct {
		typ     byte
		payload string
	}{{FrameHello, "\x01"}, {FrameStdout, "out"}, {FrameStdinEOF, ""}} {
		if err := WriteFrame(&b, f.typ, []byte(f.payload)); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 1)
	for _, want := range []string{"A\x01", "oout", "E"} {
		typ, p, err := ReadFrame(&b, buf)
		if err != nil || string(typ)+string(p) != want {
			t.Fatalf("read %q %q %v, want %q", typ, p, err, want)
		}
	}
	if _, _, err := ReadFrame(&b, nil); err != io.EOF {
		t.Fatalf("at end: %v", err)
	}
}

func TestReadFrameRejects(t *testing.T) {
	var h [FrameHeaderLen]byte
	h[0] = FrameStdin
	binary.BigEndian.PutUint32(h[1:], maxFramePayload+1)
	if _, _, err := ReadFrame(bytes.NewReader(h[:]), nil); err != errFrameTooLarge {
		t.Fatalf("oversized frame: %v", err)
	}
	short := AppendFrame(nil, FrameStdin, []byte("abc"))
	if _, _, err := ReadFrame(bytes.NewReader(short[:len(short)-1]), nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short frame: %v", err)
	}
}

func TestReply(t *testing.T) {
	if text, err := ParseReply(FrameReply, ReplyPayload(nil, "2026-01-01T00:00:00Z")); err != nil || text != "2026-01-01T00:00:00Z" {
		t.Fatalf("ok reply: %q %v", text, err)
	}
	if _, err := ParseReply(FrameReply, ReplyPayload(errors.New("boom"), "ignored")); err == nil || err.Error() != "boom" {
		t.Fatalf("error reply: %v", err)
	}
	if _, err := ParseReply(FrameStdout, []byte{0}); err == nil {
		t.Fatal("a non-reply frame was accepted as a reply")
	}
}
