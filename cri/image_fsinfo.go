package cri

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/image"
)

// ImageFsInfo feeds kubelet's image garbage collection and eviction. The
// image store decides where the containers' writable layers are counted
// (see image.Store.Filesystems).
func (s *Server) ImageFsInfo(context.Context, *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	var writable *image.FilesystemUsage
	if s.containers != nil {
		u := s.containers.WritableLayersUsage()
		writable = &u
	}
	fs, err := s.images.Filesystems(writable)
	if err != nil {
		return nil, err
	}
	resp := &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{toCRIFilesystemUsage(fs.Image)}}
	if fs.Containers != nil {
		resp.ContainerFilesystems = []*runtimeapi.FilesystemUsage{toCRIFilesystemUsage(*fs.Containers)}
	}
	return resp, nil
}

func toCRIFilesystemUsage(u image.FilesystemUsage) *runtimeapi.FilesystemUsage {
	return &runtimeapi.FilesystemUsage{
		Timestamp:  u.Timestamp.UnixNano(),
		FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: u.Mountpoint},
		UsedBytes:  &runtimeapi.UInt64Value{Value: u.UsedBytes},
		InodesUsed: &runtimeapi.UInt64Value{Value: u.InodesUsed},
	}
}
