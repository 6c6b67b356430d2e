package unpack

import (
	"archive/tar"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

const paxXattrPrefix = "SCHILY.xattr."

// setXattrs applies the entry's PAX xattr records. Overlay's own control
// xattrs are dropped: OCI layers express whiteouts and opaque dirs as
// files, and honouring a layer-supplied redirect or metacopy attribute would
// let it splice arbitrary lower-layer paths into the merged view.
func setXattrs(hdr *tar.Header, set func(string, []byte) error) error {
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, paxXattrPrefix)
		if !ok || strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.") {
			continue
		}
		err := set(name, []byte(v))
		switch {
		case err == nil:
		case err == unix.ENOTSUP:
			// The filesystem or LSM does not support this namespace
			// (e.g. security.selinux without SELinux); the file is
			// still usable, so this is best effort.
		case err == unix.EPERM && strings.HasPrefix(name, "user.") && hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeDir:
			// The kernel only allows user.* on regular files and
			// directories.
		default:
			return fmt.Errorf("setxattr %s: %w", name, err)
		}
	}
	return nil
}
