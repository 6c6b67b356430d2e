package errdefs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// NoSpace turns an out-of-space error (ENOSPC, or EDQUOT of a quota) into
// ResourceExhausted that names what did not fit and the full filesystem, so
// that an operator knows what to clean up; other errors are returned as
// they are.
func NoSpace(what string, err error) error {
	if err == nil || errors.Is(err, ErrResourceExhausted) ||
		!(errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)) {
		return err
	}
	where := "a filesystem"
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		where = fmt.Sprintf("the filesystem mounted at %s", mountPoint(pe.Path))
	case errors.As(err, &le):
		where = fmt.Sprintf("the filesystem mounted at %s", mountPoint(le.New))
	}
	return wrap(ErrResourceExhausted, "%s does not fit: %s is full (%w)", []any{what, where, err})
}

// mountPoint is the top of the filesystem that holds path (or would, for a
// path that is gone): the highest ancestor on the same device.
func mountPoint(path string) string {
	p := filepath.Clean(path)
	var st syscall.Stat_t
	for syscall.Stat(p, &st) != nil {
		if p == "/" || p == "." {
			return p
		}
		p = filepath.Dir(p)
	}
	dev := st.Dev
	for p != "/" {
		parent := filepath.Dir(p)
		if syscall.Stat(parent, &st) != nil || st.Dev != dev {
			break
		}
		p = parent
	}
	return p
}
