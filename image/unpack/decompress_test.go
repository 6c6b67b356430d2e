package unpack

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestDecompress(t *testing.T) {
	plain := buildTar(t, file("a", "hello"), dir("d"), file("d/b", string(bytes.Repeat([]byte("z"), 100<<10))))

	var gz bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(plain)
	gw.Close()

	var zs bytes.Buffer
	zw, err := zstd.NewWriter(&zs)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(plain)
	zw.Close()

	tests := []struct {
		name string
		in   []byte
		want []byte
	}{
		{"plain tar", plain, plain},
		{"gzip", gz.Bytes(), plain},
		{"zstd", zs.Bytes(), plain},
		{"empty", nil, nil},
		{"short", []byte{0x1f}, []byte{0x1f}},
	}
	for _, tt := range tests {
		for _, isal := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/isal=%v", tt.name, isal), func(t *testing.T) {
				rc, err := decompress(bytes.NewReader(tt.in), isal)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(rc)
				if err != nil {
					t.Fatal(err)
				}
				if err := rc.Close(); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, tt.want) {
					t.Errorf("got %d bytes, want %d", len(got), len(tt.want))
				}
			})
		}
	}
}

// A bad header fails Decompress (Go's inflater reads it at once) or the
// first Read (ISA-L reads it with the data).
func TestDecompressCorruptGzip(t *testing.T) {
	for _, isal := range []bool{true, false} {
		rc, err := decompress(bytes.NewReader([]byte{0x1f, 0x8b, 0xff, 0xff}), isal)
		if err != nil {
			continue
		}
		if _, err := io.ReadAll(rc); err == nil {
			t.Errorf("corrupt gzip header accepted (isal=%v, %s)", isal, inflaterName())
		}
		rc.Close()
	}
}

func inflaterName() string {
	name, _ := Inflater()
	return name
}
