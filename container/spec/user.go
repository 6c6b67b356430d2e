package spec

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/moby/sys/user"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/crisp-runtime/crisp/errdefs"
)

// maxUserDBBytes bounds how much of an image's /etc/passwd or /etc/group is
// read: the files come from an untrusted image and are parsed on every
// container create.
const maxUserDBBytes = 16 << 20

// resolveUser picks the user the way containerd does: run_as_username, else
// run_as_user, else the image's USER; run_as_group overrides the group. Names
// are resolved against the container's own /etc/passwd and /etc/group,
// opened inside RootfsPath so that a symlinked /etc/passwd in the image
// cannot make crisp read a host file. The default is 0:0.
func resolveUser(in *Input) (specs.User, error) {
	sc := &in.Config.Security
	fromImage := false
	var spec string
	switch {
	case sc.RunAsUsername != "":
		spec = sc.RunAsUsername
		if strings.ContainsRune(spec, ':') {
			return specs.User{}, errdefs.InvalidArgument("linux.security_context.run_as_username %q must not contain ':'", spec)
		}
	case sc.RunAsUser != nil:
		uid := *sc.RunAsUser
		if uid < 0 || uid > math.MaxInt32 {
			return specs.User{}, errdefs.InvalidArgument("linux.security_context.run_as_user %d is out of range", uid)
		}
		spec = strconv.FormatInt(uid, 10)
	default:
		spec = in.Image.User
		fromImage = true
	}
	if g := sc.RunAsGroup; g != nil {
		if *g < 0 || *g > math.MaxInt32 {
			return specs.User{}, errdefs.InvalidArgument("linux.security_context.run_as_group %d is out of range", *g)
		}
		// The CRI says run_as_group is only valid with run_as_user or
		// run_as_username (critest checks it, containerd enforces it): a
		// group alone would pair with an image user crisp cannot vouch for.
		if fromImage {
			return specs.User{}, errdefs.InvalidArgument("linux.security_context.run_as_group requires run_as_user or run_as_username")
		}
		name, _, _ := strings.Cut(spec, ":")
		spec = name + ":" + strconv.FormatInt(*g, 10)
	}

	name, _, _ := strings.Cut(spec, ":")
	if in.RunAsNonRoot && fromImage && name != "" {
		if _, err := strconv.Atoi(name); err != nil {
			// Kubelet's rule: a name could map to uid 0 in a later image
			// revision, so it cannot be verified.
			return specs.User{}, errdefs.InvalidArgument("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root", name)
		}
	}

	policy := sc.SupplementalGroupsPolicy
	if policy == "" {
		policy = GroupsMerge
	}
	if policy != GroupsMerge && policy != GroupsStrict {
		return specs.User{}, errdefs.InvalidArgument("linux.security_context.supplemental_groups_policy %s is not supported", policy)
	}

	passwd, err := openUserDB(in.RootfsPath, "/etc/passwd")
	if err != nil {
		return specs.User{}, err
	}
	if passwd != nil {
		defer passwd.Close()
	}
	group, err := openUserDB(in.RootfsPath, "/etc/group")
	if err != nil {
		return specs.User{}, err
	}
	if group != nil {
		defer group.Close()
	}
	eu, err := user.GetExecUser(spec, &user.ExecUser{Home: "/"}, readerOrNil(passwd), readerOrNil(group))
	if err != nil {
		return specs.User{}, userError(spec, err)
	}
	if in.RunAsNonRoot && eu.Uid == 0 {
		return specs.User{}, errdefs.InvalidArgument("container's runAsUser breaks non-root policy: user %q resolves to uid 0", spec)
	}

	gids := []uint32{uint32(eu.Gid)}
	// Merge (the default) adds the groups /etc/group lists the user in;
	// Strict uses only the request's. The primary gid is always listed: a
	// process whose supplementary list lacks it would keep no access through
	// it after a setgid (containerd's fix for CVE-2023-25173).
	if policy == GroupsMerge {
		for _, g := range eu.Sgids {
			gids = append(gids, uint32(g))
		}
	}
	for i, g := range sc.SupplementalGroups {
		if g < 0 || g > math.MaxInt32 {
			return specs.User{}, errdefs.InvalidArgument("linux.security_context.supplemental_groups[%d] %d is out of range", i, g)
		}
		gids = append(gids, uint32(g))
	}
	slices.Sort(gids)
	return specs.User{UID: uint32(eu.Uid), GID: uint32(eu.Gid), AdditionalGids: slices.Compact(gids)}, nil
}

// readerOrNil avoids handing GetExecUser a typed-nil io.Reader, which it
// would treat as a present but unreadable file.
func readerOrNil(f *os.File) io.Reader {
	if f == nil {
		return nil
	}
	return io.LimitReader(f, maxUserDBBytes)
}

// openUserDB opens name inside rootfs without following any symlink out of
// it. A missing file is not an error (distroless images have none; numeric
// users still work), but anything other than a regular file is.
func openUserDB(rootfs, name string) (*os.File, error) {
	h, err := pathrs.OpenInRoot(rootfs, name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("open the container's %s: %w", name, err)
	}
	defer h.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat the container's %s: %w", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, errdefs.InvalidArgument("the container's %s is not a regular file", name)
	}
	if st.Size > maxUserDBBytes {
		return nil, errdefs.InvalidArgument("the container's %s is %d bytes, at most %d are read", name, st.Size, maxUserDBBytes)
	}
	f, err := pathrs.Reopen(h, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("open the container's %s: %w", name, err)
	}
	return f, nil
}

// userError names the user or group and the file it was looked up in.
func userError(spec string, err error) error {
	name, grp, _ := strings.Cut(spec, ":")
	switch {
	case errors.Is(err, user.ErrNoPasswdEntries):
		return errdefs.InvalidArgument("user %q: no such user in the container's /etc/passwd", name)
	case errors.Is(err, user.ErrNoGroupEntries):
		return errdefs.InvalidArgument("group %q: no such group in the container's /etc/group", grp)
	case errors.Is(err, user.ErrRange):
		return errdefs.InvalidArgument("user %q: uid or gid out of range", spec)
	}
	return fmt.Errorf("resolve user %q in the container's /etc/passwd and /etc/group: %w", spec, err)
}
