package unpack

import (
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	whiteoutPrefix     = ".wh."
	whiteoutMetaPrefix = ".wh..wh."
	whiteoutOpaque     = ".wh..wh..opq"
	overlayOpaqueXattr = "trusted.overlay.opaque"
)

// whiteout converts an OCI whiteout into overlayfs form. Each layer has its
// own fresh directory, so nothing is deleted: the markers are what hide
// lower-layer content once the directory is stacked as a lowerdir.
func (a *applier) whiteout(parent, base string) error {
	pfd, err := openDir(a.root, parent, true)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)

	if base == whiteoutOpaque {
		if err := unix.Fsetxattr(pfd, overlayOpaqueXattr, []byte("y"), 0); err != nil {
			return fmt.Errorf("set %s on %q: %w", overlayOpaqueXattr, parent, err)
		}
		return nil
	}
	if strings.HasPrefix(base, whiteoutMetaPrefix) {
		return nil // see isAufsMeta
	}
	name := strings.TrimPrefix(base, whiteoutPrefix)
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("invalid whiteout name %q", base)
	}
	err = unix.Mknodat(pfd, name, unix.S_IFCHR, int(unix.Mkdev(0, 0)))
	if err == unix.EEXIST {
		// The OCI spec says a whiteout only hides lower layers; an entry of
		// the same name in this layer stays.
		return nil
	}
	if err != nil {
		return &os.PathError{Op: "mknodat whiteout", Path: path.Join(parent, name), Err: err}
	}
	return nil
}

// isAufsMeta reports AUFS bookkeeping (.wh..wh.plnk, .wh..wh.orph, ...) that
// old Docker layers carry at the top level; it means nothing to overlayfs and
// would otherwise show up as junk in the container.
func isAufsMeta(name string) bool {
	top, _, _ := strings.Cut(name, "/")
	return strings.HasPrefix(top, whiteoutMetaPrefix) && name != whiteoutOpaque
}
