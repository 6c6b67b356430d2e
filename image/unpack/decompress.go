package unpack

import (
	"bufio"
	"bytes"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// goInflater is the gzip decoder when ISA-L is not loaded (isal.go).
const goInflater = "Go (klauspost/compress)"

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// Decompress returns a reader that decompresses gzip, zstd or plain tar, detected by magic bytes.
// Detection is by content rather than media type because registries and
// manifests are not reliable about the latter. Closing the result does not
// close r.
func Decompress(r io.Reader) (io.ReadCloser, error) { return decompress(r, true) }

// decompress with isal false is Go's inflater even where ISA-L is loaded:
// the tests run both.
func decompress(r io.Reader, isal bool) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	// A short or failed peek just means "not compressed"; a real read
	// error will surface again from the tar reader.
	magic, _ := br.Peek(len(zstdMagic))
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		if isal {
			if zr := newISALReader(br); zr != nil {
				return zr, nil
			}
		}
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip layer: %w", err)
		}
		return zr, nil
	case bytes.HasPrefix(magic, zstdMagic):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("zstd layer: %w", err)
		}
		return zstdReadCloser{zr}, nil
	default:
		return io.NopCloser(br), nil
	}
}

// zstdReadCloser adapts Decoder.Close, which returns nothing; closing is
// still required to stop the decoder's goroutines.
type zstdReadCloser struct{ *zstd.Decoder }

func (z zstdReadCloser) Close() error {
	z.Decoder.Close()
	return nil
}
