package image

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand"
	"testing"
	"testing/iotest"
	"time"
)

// Read returns, and the hash sees, exactly the source's bytes in order.
func TestReadAheadCopiesInOrder(t *testing.T) {
	data := make([]byte, 3*aheadBufSize*aheadBufs+12345)
	rand.New(rand.NewSource(1)).Read(data)
	for name, src := range map[string]func() io.Reader{
		"whole":    func() io.Reader { return bytes.NewReader(data) },
		"one byte": func() io.Reader { return iotest.HalfReader(iotest.OneByteReader(bytes.NewReader(data[:70000]))) },
		"data+EOF": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) },
	} {
		want := data
		if name == "one byte" {
			want = data[:70000]
		}
		h := sha256.New()
		a := readAhead(src(), h)
		// Odd-sized reads cross the buffers' boundaries.
		got, err := io.ReadAll(iotest.HalfReader(a))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: read %d bytes that differ from the %d written", name, len(got), len(want))
		}
		a.Close()
		if sum := sha256.Sum256(want); !bytes.Equal(h.Sum(nil), sum[:]) {
			t.Fatalf("%s: the hash saw other bytes than Read returned", name)
		}
	}
}

// A source error (a digest mismatch from the verifier, say) comes after
// every byte read before it, like the source's own.
func TestReadAheadErrorAfterData(t *testing.T) {
	boom := errors.New("boom")
	data := bytes.Repeat([]byte("x"), aheadBufSize+10)
	a := readAhead(io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom)), nil)
	defer a.Close()
	got, err := io.ReadAll(a)
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if len(got) != len(data) {
		t.Fatalf("read %d bytes before the error, want %d", len(got), len(data))
	}
	if n, err := a.Read(make([]byte, 1)); n != 0 || !errors.Is(err, boom) {
		t.Fatalf("a Read after the error: %d, %v", n, err)
	}
}

// gate blocks each Read until it is let through, as a follower does while
// the download has not yet written the bytes.
type gate struct {
	open chan struct{}
	in   chan struct{}
}

func (g *gate) Read(p []byte) (int, error) {
	g.in <- struct{}{}
	<-g.open
	return len(p), nil
}

// Close must not return while the goroutine is inside the source's Read:
// the caller reads the source itself next (blame) or closes it.
func TestReadAheadCloseWaitsForSource(t *testing.T) {
	g := &gate{open: make(chan struct{}), in: make(chan struct{})}
	a := readAhead(g, nil)
	<-g.in // the goroutine is in Read
	closed := make(chan struct{})
	go func() {
		a.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while the source's Read was still running")
	case <-time.After(50 * time.Millisecond):
	}
	close(g.open)
	go func() { // the goroutine may start another Read before it sees stop
		for range g.in {
		}
	}()
	<-closed
	close(g.in)
	if _, err := a.Read(make([]byte, 1)); err == nil {
		t.Fatal("Read after Close succeeded")
	}
}

// A consumer that stops early (a bad tar entry) leaves the goroutine
// blocked on a full channel; Close releases it.
func TestReadAheadCloseUnblocksFullPipe(t *testing.T) {
	a := readAhead(iotest.HalfReader(bytes.NewReader(make([]byte, 10*aheadBufSize*aheadBufs))), nil)
	if _, err := a.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	a.Close()
	a.Close() // twice is harmless
}
