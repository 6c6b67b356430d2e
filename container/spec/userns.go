package spec

import (
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/sandbox"
)

// userNamespace is the path of the user namespace the container joins, ""
// for the host's. A pod's user namespace is all or nothing: it owns the pod's
// network, IPC and UTS namespaces, so a container of such a pod cannot stay
// in the host's, and one of another pod cannot have it. kubelet repeats the
// pod's options in the container's; absent options mean "as the pod".
func userNamespace(in *Input) (string, error) {
	const field = "linux.security_context.namespace_options.userns_options"
	u := in.Config.Security.Namespaces.User
	pod := in.Pod.UserNS
	if u == nil {
		return pod, nil
	}
	switch u.Mode {
	case sandbox.ModeNode:
		if pod != "" {
			return "", errdefs.InvalidArgument("%s.mode is NODE but the pod has a user namespace of its own", field)
		}
		if len(u.UIDs)+len(u.GIDs) > 0 {
			return "", errdefs.InvalidArgument("%s: uids and gids are only valid with mode POD", field)
		}
		return "", nil
	case sandbox.ModePod, "":
		if pod == "" {
			return "", errdefs.InvalidArgument("%s.mode is POD but the pod has no user namespace of its own", field)
		}
		for _, m := range []struct {
			name      string
			got       []sandbox.IDMap
			podMapped []specs.LinuxIDMapping
		}{{"uids", u.UIDs, in.Pod.UIDMappings}, {"gids", u.GIDs, in.Pod.GIDMappings}} {
			if len(m.got) > 0 && !slices.Equal(ociIDMaps(m.got), m.podMapped) {
				return "", errdefs.InvalidArgument("%s.%s differ from the pod's mappings", field, m.name)
			}
		}
		return pod, nil
	}
	// Named as the CRI names it: the request said CONTAINER, not container.
	return "", errdefs.InvalidArgument("%s.mode %s is not supported: use POD or NODE", field, strings.ToUpper(string(u.Mode)))
}

// idmapMount gives a bind mount the id mapping kubelet asks for (the pod's,
// for volumes of a pod with its own user namespace): runc makes it an
// idmapped mount, so files the node's root owns appear owned by the pod's
// root instead of by nobody, and the pod's writes land with node ids.
func idmapMount(out *specs.Mount, m *Mount, in *Input) error {
	uids, gids := m.UIDMappings, m.GIDMappings
	if len(uids)+len(gids) == 0 || IsImageVolume(m) {
		// The caller mounts an image volume from idmapped layers; the
		// overlay itself cannot be idmapped.
		return nil
	}
	switch {
	case len(uids) == 0 || len(gids) == 0:
		return errdefs.InvalidArgument("uidMappings and gidMappings must be given together")
	case in.Pod.UserNS == "":
		// runc could make it, but kubelet asks only for pods with a user
		// namespace; elsewhere it is a client's mistake.
		return errdefs.InvalidArgument("id-mapped mounts are only supported in pods with a user namespace of their own")
	}
	for _, mm := range append(slices.Clone(uids), gids...) {
		if mm.Size == 0 {
			return errdefs.InvalidArgument("id mappings must not have length 0")
		}
	}
	out.UIDMappings, out.GIDMappings = ociIDMaps(uids), ociIDMaps(gids)
	return nil
}

func ociIDMaps(maps []sandbox.IDMap) []specs.LinuxIDMapping {
	out := make([]specs.LinuxIDMapping, 0, len(maps))
	for _, m := range maps {
		out = append(out, specs.LinuxIDMapping{ContainerID: m.ContainerID, HostID: m.HostID, Size: m.Size})
	}
	return out
}
