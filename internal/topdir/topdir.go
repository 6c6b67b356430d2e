// Package topdir marks directories as the top of directory hierarchies
// (chattr +T, FS_TOPDIR_FL), so that ext4 places each directory made in
// them in a block group of its own choosing (the Orlov allocator) rather
// than next to its parent. Trees that are made and removed again and again
// in one place (image layers being unpacked, containers' native roots)
// otherwise allocate their inodes where the previous ones were freed, and
// on ext4 without a journal every inode freed in the last 60 s (360 s while
// its inode table block is dirty) is skipped one buffer lookup at a time:
// creating 30,000 files after deleting 30,000 took 14.3 s instead of 2.2 s,
// and 1.2 s with the mark (README "Data-science images").
package topdir

import "golang.org/x/sys/unix"

// fsTopdirFL is FS_TOPDIR_FL, not in x/sys/unix.
const fsTopdirFL = 0x00020000

// Mark sets the flag on dir. Other filesystems have no such flag (or no
// such problem): callers treat an error as something to log, not to fail on.
func Mark(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err == nil && flags&fsTopdirFL == 0 {
		err = unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags|fsTopdirFL))
	}
	return err
}

// Marked reports whether dir carries the flag.
func Marked(dir string) (bool, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	return flags&fsTopdirFL != 0, err
}
