package cri

import (
	"context"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/crisp-runtime/crisp/container"
)

// layersUsage is the container manager's optional report of its writable
// layers.
type layersUsage interface {
	WritableLayersUsage() container.LayersUsage
}

// ImageFsInfo feeds kubelet's image garbage collection and eviction.
//
// containerd reports one image filesystem, its snapshotter, whose usage
// includes the containers' writable layers, and no container filesystem;
// kubelet then uses the image filesystem for both. crisp does the same while
// its container root is on the image root's filesystem (the default: both
// are below root). Only when they are on different devices is the container
// root reported as a container filesystem of its own, which kubelet treats as
// a split image filesystem, as with CRI-O's split storage.
func (s *Server) ImageFsInfo(context.Context, *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	u, err := s.images.Usage()
	if err != nil {
		return nil, err
	}
	now := time.Now().UnixNano()
	imageFs := &runtimeapi.FilesystemUsage{
		Timestamp:  now,
		FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: u.Mountpoint},
		UsedBytes:  &runtimeapi.UInt64Value{Value: u.UsedBytes},
		InodesUsed: &runtimeapi.UInt64Value{Value: u.InodesUsed},
	}
	resp := &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{imageFs}}
	cm, ok := s.containers.(layersUsage)
	if !ok {
		return resp, nil
	}
	l := cm.WritableLayersUsage()
	same, err := sameDevice(u.Mountpoint, l.Root)
	if err != nil {
		klog.V(2).Infof("ImageFsInfo: %v; reporting container layers with the images", err)
		same = true
	}
	if same {
		imageFs.UsedBytes.Value += l.Bytes
		imageFs.InodesUsed.Value += l.Inodes
		return resp, nil
	}
	resp.ContainerFilesystems = []*runtimeapi.FilesystemUsage{{
		Timestamp:  l.Timestamp.UnixNano(),
		FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: l.Root},
		UsedBytes:  &runtimeapi.UInt64Value{Value: l.Bytes},
		InodesUsed: &runtimeapi.UInt64Value{Value: l.Inodes},
	}}
	return resp, nil
}

func sameDevice(a, b string) (bool, error) {
	var sa, sb unix.Stat_t
	if err := unix.Stat(a, &sa); err != nil {
		return false, err
	}
	if err := unix.Stat(b, &sb); err != nil {
		return false, err
	}
	return sa.Dev == sb.Dev, nil
}
