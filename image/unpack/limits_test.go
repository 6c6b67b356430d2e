package unpack

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/crisp-runtime/crisp/errdefs"
)

func applyLimited(t *testing.T, lim Limits, tarball []byte) error {
	t.Helper()
	layer := filepath.Join(t.TempDir(), "layer")
	if err := os.Mkdir(layer, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Apply(context.Background(), bytes.NewReader(tarball), layer, lim)
	return err
}

// A hostile layer (millions of entries, or a small compressed stream that
// expands to terabytes) stops at the limit with ResourceExhausted and a
// message naming the limit; within the limits it applies.
func TestLayerLimits(t *testing.T) {
	three := buildTar(t, file("a", "x"), file("b", "y"), file("c", "z"))
	if err := applyLimited(t, Limits{MaxEntries: 3}, three); err != nil {
		t.Fatalf("3 entries within a limit of 3: %v", err)
	}
	err := applyLimited(t, Limits{MaxEntries: 2}, three)
	if !errors.Is(err, errdefs.ErrResourceExhausted) || !strings.Contains(err.Error(), "max_layer_entries") {
		t.Fatalf("3 entries over a limit of 2: %v", err)
	}

	big := buildTar(t, file("big", strings.Repeat("b", 64<<10)))
	if err := applyLimited(t, Limits{MaxBytes: int64(len(big))}, big); err != nil {
		t.Fatalf("a layer at the byte limit: %v", err)
	}
	err = applyLimited(t, Limits{MaxBytes: 32 << 10}, big)
	if !errors.Is(err, errdefs.ErrResourceExhausted) || !strings.Contains(err.Error(), "max_layer_bytes") {
		t.Fatalf("64 KiB file over a 32 KiB limit: %v", err)
	}
	// Bytes after the tar's end marker count too: they are decompressed
	// (and digested) like the rest.
	padded := append(buildTar(t, file("a", "x")), make([]byte, 1<<20)...)
	err = applyLimited(t, Limits{MaxBytes: 64 << 10}, padded)
	if !errors.Is(err, errdefs.ErrResourceExhausted) {
		t.Fatalf("1 MiB of padding over a 64 KiB limit: %v", err)
	}
}

// Sparse files stay sparse: the tar reader expands their holes to zeros,
// which are not written (a 256 MiB sparse entry must not take 256 MiB), and
// runs of zeros in ordinary entries become holes too.
func TestSparseFilesStaySparse(t *testing.T) {
	src := t.TempDir()
	sparse := filepath.Join(src, "sparse")
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	const size = 256 << 20
	for _, off := range []int64{0, size / 2, size - 5} {
		if _, err := f.WriteAt([]byte("data!"), off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	// GNU tar writes the hole map (PAX sparse 1.0); Go's writer cannot.
	out, err := exec.Command("tar", "--sparse", "--format=posix", "-C", src, "-cf", "-", "sparse").Output()
	if err != nil {
		t.Skipf("GNU tar cannot build the sparse test layer: %v", err)
	}
	zeros := buildTar(t, file("zeros", strings.Repeat("\x00", 1<<20)+"end"))

	for name, tarball := range map[string][]byte{"sparse": out, "zeros": zeros} {
		layer := filepath.Join(t.TempDir(), "layer")
		if err := os.Mkdir(layer, 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := Apply(context.Background(), bytes.NewReader(tarball), layer, Limits{}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(layer, name), &st); err != nil {
			t.Fatal(err)
		}
		if allocated := st.Blocks * 512; allocated > 256<<10 {
			t.Errorf("%s: size %d, %d bytes allocated: holes were written as zeros", name, st.Size, allocated)
		} else {
			t.Logf("%s: size %d, %d bytes allocated", name, st.Size, allocated)
		}
		at := func(off int64, n int) string {
			f, err := os.Open(filepath.Join(layer, name))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b := make([]byte, n)
			if _, err := f.ReadAt(b, off); err != nil {
				t.Fatalf("%s: read at %d: %v", name, off, err)
			}
			return string(b)
		}
		switch name {
		case "sparse":
			if st.Size != size || at(0, 6) != "data!\x00" || at(size/2, 5) != "data!" || at(size-5, 5) != "data!" {
				t.Errorf("sparse content wrong (size %d)", st.Size)
			}
		case "zeros":
			if st.Size != 1<<20+3 || at(0, 1<<20) != strings.Repeat("\x00", 1<<20) || at(1<<20, 3) != "end" {
				t.Errorf("zeros content wrong (size %d)", st.Size)
			}
		}
	}
}
