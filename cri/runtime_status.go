package cri

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/container"
)

// Status reports the runtime and network conditions kubelet gates pod starts on.
func (s *Server) Status(_ context.Context, req *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	runtimeCond := &runtimeapi.RuntimeCondition{Type: runtimeapi.RuntimeReady, Status: true}
	networkCond := &runtimeapi.RuntimeCondition{Type: runtimeapi.NetworkReady, Status: true}
	var netErr error
	if s.network == nil {
		netErr = errNoNetworkManager
	} else {
		netErr = s.network.Ready()
	}
	if netErr != nil {
		networkCond.Status = false
		networkCond.Reason = "NetworkPluginNotReady"
		networkCond.Message = "crisp: network plugin is not ready: " + netErr.Error()
	}
	var features container.Features
	conds := []*runtimeapi.RuntimeCondition{runtimeCond, networkCond, s.unreadableRecordsCondition()}
	if s.containers != nil {
		features = s.containers.Features()
	}
	resp := &runtimeapi.StatusResponse{
		Status: &runtimeapi.RuntimeStatus{Conditions: conds},
		RuntimeHandlers: []*runtimeapi.RuntimeHandler{{
			Name: "",
			Features: &runtimeapi.RuntimeHandlerFeatures{
				RecursiveReadOnlyMounts: features.RecursiveReadOnlyMounts,
				// Pods and their containers, rootfs and volumes
				// alike, given the kernel's idmapped mounts.
				UserNamespaces: s.sandboxes != nil && s.containers != nil && s.sandboxes.UserNamespaces() == nil,
			},
		}},
		// Containers report the uid, gid and groups they really run with
		// (ContainerStatus.user), which the Merge/Strict policies need.
		Features: &runtimeapi.RuntimeFeatures{SupplementalGroupsPolicy: s.containers != nil},
	}
	if req.GetVerbose() {
		resp.Info = s.statusInfo(netErr)
	}
	return resp, nil
}

// ConditionUnreadableRecords is false while records that start-up could
// not read are kept untouched (a damaged file, or a newer crisp's schema
// after a rollback): what they own (namespaces, IPs, processes, image
// layers) is neither used nor cleaned up. The runtime still works, so
// RuntimeReady stays true; like containerd's
// ContainerdHasNoDeprecationWarnings, kubelet ignores the condition and
// crictl info shows it.
const ConditionUnreadableRecords = "CrispHasNoUnreadableRecords"

func (s *Server) unreadableRecordsCondition() *runtimeapi.RuntimeCondition {
	var bad []string
	if s.sandboxes != nil {
		bad = append(bad, s.sandboxes.Quarantined()...)
	}
	if s.containers != nil {
		bad = append(bad, s.containers.Quarantined()...)
	}
	if s.images != nil {
		bad = append(bad, s.images.Quarantined()...)
	}
	if len(bad) == 0 {
		return &runtimeapi.RuntimeCondition{Type: ConditionUnreadableRecords, Status: true}
	}
	return &runtimeapi.RuntimeCondition{
		Type: ConditionUnreadableRecords, Reason: "UnreadableRecords",
		Message: fmt.Sprintf("crisp: %d record(s) could not be read and are kept, with what they own, until repaired or removed (then restart crisp): %s",
			len(bad), strings.Join(bad, "; ")),
	}
}

// statusInfo is the verbose detail crictl info prints: each value is JSON.
func (s *Server) statusInfo(netErr error) map[string]string {
	info := map[string]string{}
	put := func(key string, v any) {
		if b, err := json.Marshal(v); err == nil {
			info[key] = string(b)
		}
	}
	// As the file spells it (TOML keys, "5m0s"), so it can be pasted back.
	if cfg, err := s.cfg.Map(); err == nil {
		put("config", cfg)
	} else {
		put("config", map[string]string{"error": err.Error()})
	}
	netInfo := map[string]any{"ready": netErr == nil, "confDir": s.cfg.CNI.ConfDir, "binDirs": s.cfg.CNI.BinDirs}
	if netErr != nil {
		netInfo["reason"] = netErr.Error()
	}
	put("network", netInfo)
	put("version", map[string]string{"runtime": runtimeName, "version": s.version, "apiVersion": apiVersion})
	return info
}
