package idmap

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ProbeOverlay checks that the filesystem of dir takes what a container of a
// pod with its own user namespace needs: an overlay whose lower layer is an
// idmapped mount through userns, which maps 0 to hostID. It works in
// dir/lower, upper, work, merged and l, and removes dir when done.
func ProbeOverlay(dir string, userns *os.File, hostID uint32) (retErr error) {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	defer func() {
		if err := os.RemoveAll(dir); err != nil && retErr == nil {
			retErr = err
		}
	}()
	var lower, upper, work, merged = filepath.Join(dir, "lower"), filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []string{lower, upper, work, merged} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(lower, "f"), nil, 0o600); err != nil {
		return err
	}
	paths, release, err := BindLayers([]string{lower}, filepath.Join(dir, "l"), userns)
	defer func() { retErr = errors.Join(retErr, release()) }()
	if err != nil {
		return err
	}
	data := "lowerdir=" + paths[0] + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", merged, "overlay", 0, data); err != nil {
		return fmt.Errorf("overlay over an idmapped layer: %w", err)
	}
	defer func() {
		if err := unix.Unmount(merged, unix.MNT_DETACH); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(merged, "f"), &st); err != nil {
		return err
	}
	if st.Uid != hostID {
		return fmt.Errorf("a file of an idmapped layer shows uid %d, not %d", st.Uid, hostID)
	}
	return nil
}
