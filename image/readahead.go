package image

import (
	"hash"
	"io"
	"sync"
)

// An unpack's stages, one goroutine each, overlap on the node's cores
// instead of adding up: the decompressor (with the compressed digest), the
// uncompressed digest, and the tar extraction that writes the files. For a
// 548 MB scipy layer of 1.9 GB they take 3.2 s, 1.6 s and ~3.5 s of CPU
// with ISA-L (8.5 s for the first with Go's inflater).
const (
	aheadBufSize = 128 << 10
	aheadBufs    = 4 // 512 KiB in flight per unpacking layer
)

// aheadReader reads its source on its own goroutine into a few fixed
// buffers, hashes them on a second one, and hands them to Read in order.
// The source's error (io.EOF included) is returned after the bytes read
// before it, as from the source itself.
type aheadReader struct {
	hashed chan []byte // from fill to hash
	full   chan []byte // from hash to Read
	free   chan []byte
	stop   chan struct{}
	wg     sync.WaitGroup // both goroutines
	err    error          // the source's error; read only after full is closed
	cur    []byte         // what Read has yet to hand out of the buffer it holds
	buf    []byte         // that buffer, whole, to give back
	// closed is the consumer's own: Read and Close are called by it alone.
	closed bool
}

// readAhead starts reading src; h, if not nil, is written every byte read,
// and may be summed once the reader reached the source's end and was closed.
func readAhead(src io.Reader, h hash.Hash) *aheadReader {
	a := &aheadReader{
		hashed: make(chan []byte, aheadBufs),
		full:   make(chan []byte, aheadBufs),
		free:   make(chan []byte, aheadBufs),
		stop:   make(chan struct{}),
	}
	for i := 0; i < aheadBufs; i++ {
		a.free <- make([]byte, aheadBufSize)
	}
	a.wg.Add(2)
	go a.fill(src)
	go a.hash(h)
	return a
}

func (a *aheadReader) hash(h hash.Hash) {
	defer a.wg.Done()
	defer close(a.full)
	for buf := range a.hashed {
		if h != nil {
			h.Write(buf)
		}
		select {
		case a.full <- buf:
		case <-a.stop:
			return
		}
	}
}

func (a *aheadReader) fill(src io.Reader) {
	defer a.wg.Done()
	defer close(a.hashed)
	for {
		var buf []byte
		select {
		case buf = <-a.free:
		case <-a.stop:
			return
		}
		n, err := readFull(src, buf)
		if n > 0 {
			select {
			case a.hashed <- buf[:n]:
			case <-a.stop:
				return
			}
		}
		if err != nil {
			a.err = err
			return
		}
	}
}

// readFull fills p unless the source ends or fails first; unlike
// io.ReadFull it reports a short last buffer with the source's own error.
func readFull(r io.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := r.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (a *aheadReader) Read(p []byte) (int, error) {
	if a.closed {
		return 0, io.ErrClosedPipe
	}
	if len(a.cur) == 0 {
		if a.buf != nil {
			a.free <- a.buf[:cap(a.buf)]
			a.buf = nil
		}
		buf, ok := <-a.full
		if !ok {
			return 0, a.err
		}
		a.buf, a.cur = buf, buf
	}
	n := copy(p, a.cur)
	a.cur = a.cur[n:]
	return n, nil
}

// Close stops the goroutines and waits for them, so that the caller may
// read the source itself or sum the hash afterwards. A source blocked in Read keeps Close waiting
// until that Read returns.
func (a *aheadReader) Close() error {
	if !a.closed {
		a.closed = true
		close(a.stop)
	}
	a.wg.Wait()
	return nil
}
