package unpack

import (
	"bytes"

	"golang.org/x/sys/unix"
)

// holeBlock is the granularity of holes: a filesystem block.
const holeBlock = 4096

var zeroBlock [holeBlock]byte

// holeWriter writes a file's content at increasing offsets, skipping whole
// blocks of zeros so they stay holes. The tar reader expands a sparse
// entry's holes to zeros (and does not say where they were), so this is
// how a sparse file stays sparse; a run of zeros in an ordinary entry
// becomes a hole too, which reads the same.
type holeWriter struct {
	fd  int
	off int64
}

func (w *holeWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		// Blocks are aligned to the file offset, as holes are.
		k := min(holeBlock-int(w.off%holeBlock), len(p))
		if k == holeBlock && bytes.Equal(p[:k], zeroBlock[:]) {
			w.off += int64(k)
			p = p[k:]
			continue
		}
		// A run of data up to the next whole block of zeros.
		j := k
		for j < len(p) {
			m := min(holeBlock, len(p)-j)
			if m == holeBlock && bytes.Equal(p[j:j+m], zeroBlock[:]) {
				break
			}
			j += m
		}
		for done := 0; done < j; {
			n, err := unix.Pwrite(w.fd, p[done:j], w.off)
			if err != nil {
				return total - len(p) + done, err
			}
			done += n
			w.off += int64(n)
		}
		p = p[j:]
	}
	return total, nil
}

// finish gives the file its full size: trailing holes were not written.
func (w *holeWriter) finish() error {
	return unix.Ftruncate(w.fd, w.off)
}
