package cri

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/image"
)

// usageImages answers Filesystems with fs and records what it was given.
type usageImages struct {
	Images
	fs  image.Filesystems
	got *image.FilesystemUsage
}

func (f *usageImages) Filesystems(writable *image.FilesystemUsage) (image.Filesystems, error) {
	f.got = writable
	return f.fs, nil
}

func TestImageFsInfo(t *testing.T) {
	t0, t1 := time.Unix(1700000000, 1), time.Unix(1700000010, 2)
	imgFs := image.FilesystemUsage{Timestamp: t1, Mountpoint: "/var/lib/crisp/images", UsedBytes: 1500, InodesUsed: 15}
	layers := image.FilesystemUsage{Timestamp: t0, Mountpoint: "/var/lib/crisp/containers", UsedBytes: 500, InodesUsed: 5}
	criFs := func(u image.FilesystemUsage) *runtimeapi.FilesystemUsage {
		return &runtimeapi.FilesystemUsage{
			Timestamp: u.Timestamp.UnixNano(), FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: u.Mountpoint},
			UsedBytes: &runtimeapi.UInt64Value{Value: u.UsedBytes}, InodesUsed: &runtimeapi.UInt64Value{Value: u.InodesUsed},
		}
	}
	for _, tc := range []struct {
		name         string
		containers   Containers
		fs           image.Filesystems
		wantWritable *image.FilesystemUsage
		want         *runtimeapi.ImageFsInfoResponse
	}{
		{
			name: "no container manager",
			fs:   image.Filesystems{Image: imgFs},
			want: &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{criFs(imgFs)}},
		},
		{
			name:         "writable layers with the images",
			containers:   &usageContainers{writable: layers},
			fs:           image.Filesystems{Image: imgFs},
			wantWritable: &layers,
			want:         &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{criFs(imgFs)}},
		},
		{
			name:         "split image filesystem",
			containers:   &usageContainers{writable: layers},
			fs:           image.Filesystems{Image: imgFs, Containers: &layers},
			wantWritable: &layers,
			want: &runtimeapi.ImageFsInfoResponse{
				ImageFilesystems:     []*runtimeapi.FilesystemUsage{criFs(imgFs)},
				ContainerFilesystems: []*runtimeapi.FilesystemUsage{criFs(layers)},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			imgs := &usageImages{fs: tc.fs}
			s := New(Deps{Images: imgs, Containers: tc.containers})
			got, err := s.ImageFsInfo(t.Context(), &runtimeapi.ImageFsInfoRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, tc.want) {
				t.Errorf("got %v\nwant %v", got, tc.want)
			}
			if (imgs.got == nil) != (tc.wantWritable == nil) || imgs.got != nil && *imgs.got != *tc.wantWritable {
				t.Errorf("image store given writable layers %+v, want %+v", imgs.got, tc.wantWritable)
			}
		})
	}
}
