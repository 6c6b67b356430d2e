//go:build isal

package unpack

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"math/rand"
	"testing"
	"testing/iotest"
)

// Built with the isal tag, the library must be there: hack/deps.sh
// installs libisal-dev, which depends on libisal2.
func openISAL(t *testing.T, src io.Reader) io.ReadCloser {
	t.Helper()
	zr := newISALReader(src)
	if zr == nil {
		t.Fatalf("%s could not be loaded (install libisal2, or build without the isal tag)", isalLibrary)
	}
	t.Cleanup(func() { zr.Close() })
	return zr
}

func gzipped(t *testing.T, level int, members ...[]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, m := range members {
		w, err := gzip.NewWriterLevel(&b, level)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(m)
		w.Close()
	}
	return b.Bytes()
}

// mixed is half text-like (compressible) and half random bytes, larger than
// the reader's buffers so that every refill and overflow path runs.
func mixed(n int, seed int64) []byte {
	r := rand.New(rand.NewSource(seed))
	b := make([]byte, n)
	words := []string{"usr/lib/python3/", "numpy", "import ", "\x00\x00\x00\x00", "def ", "return\n"}
	for i := 0; i < n/2; {
		i += copy(b[i:n/2], words[r.Intn(len(words))])
	}
	r.Read(b[n/2:])
	return b
}

func TestISALMatchesGo(t *testing.T) {
	a, b := mixed(3<<20, 1), mixed(100<<10, 2)
	cases := map[string]struct {
		in   []byte
		want []byte
		src  func([]byte) io.Reader
	}{
		"level 1":              {gzipped(t, gzip.BestSpeed, a), a, nil},
		"level 9":              {gzipped(t, gzip.BestCompression, a), a, nil},
		"stored":               {gzipped(t, gzip.NoCompression, a), a, nil},
		"empty member":         {gzipped(t, gzip.DefaultCompression, nil), nil, nil},
		"two members":          {gzipped(t, gzip.DefaultCompression, a, b), append(append([]byte{}, a...), b...), nil},
		"one byte at a time":   {gzipped(t, gzip.DefaultCompression, b, b), append(append([]byte{}, b...), b...), func(p []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(p)) }},
		"data with last chunk": {gzipped(t, gzip.DefaultCompression, b), b, func(p []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(p)) }},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var src io.Reader = bytes.NewReader(c.in)
			if c.src != nil {
				src = c.src(c.in)
			}
			got, err := io.ReadAll(iotest.HalfReader(openISAL(t, src)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, c.want) {
				t.Fatalf("inflated %d bytes that differ from the %d compressed", len(got), len(c.want))
			}
		})
	}
}

// Every damaged stream fails, never returns short or wrong data silently.
func TestISALRejectsDamage(t *testing.T) {
	a := mixed(600<<10, 3)
	good := gzipped(t, gzip.DefaultCompression, a)
	flip := func(off int) []byte {
		b := append([]byte{}, good...)
		b[off] ^= 0xff
		return b
	}
	cases := map[string]struct {
		in   []byte
		want error // nil: any error
	}{
		"truncated":        {good[:len(good)/2], io.ErrUnexpectedEOF},
		"truncated footer": {good[:len(good)-3], nil},
		"crc":              {flip(len(good) - 6), gzip.ErrChecksum},
		"size":             {flip(len(good) - 2), nil},
		"deflate data":     {flip(len(good) / 3), nil},
		"method":           {flip(2), gzip.ErrHeader},
		"trailing garbage": {append(append([]byte{}, good...), "garbage"...), gzip.ErrHeader},
		"trailing zeros":   {append(append([]byte{}, good...), make([]byte, 1024)...), gzip.ErrHeader},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := io.ReadAll(openISAL(t, bytes.NewReader(c.in)))
			if err == nil {
				t.Fatalf("no error; %d bytes inflated", len(got))
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

// A source error is passed on as it is.
func TestISALSourceError(t *testing.T) {
	boom := errors.New("boom")
	good := gzipped(t, gzip.DefaultCompression, mixed(600<<10, 4))
	_, err := io.ReadAll(openISAL(t, io.MultiReader(bytes.NewReader(good[:1000]), iotest.ErrReader(boom))))
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
}

func TestDecompressUsesISAL(t *testing.T) {
	rc, err := Decompress(bytes.NewReader(gzipped(t, gzip.DefaultCompression, []byte("x"))))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, ok := rc.(*isalReader); !ok {
		t.Fatalf("Decompress returned a %T; Inflater() = %s", rc, inflaterName())
	}
}
