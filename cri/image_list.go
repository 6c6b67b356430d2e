package cri

import (
	"context"
	"errors"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/image"
)

// ListImages is served from the store's memory: kubelet calls it often.
func (s *Server) ListImages(_ context.Context, req *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	imgs, err := s.filteredImages(req.GetFilter())
	if err != nil {
		return nil, err
	}
	out := make([]*runtimeapi.Image, 0, len(imgs))
	for _, img := range imgs {
		out = append(out, toCRIImage(img))
	}
	return &runtimeapi.ListImagesResponse{Images: out}, nil
}

// StreamImages sends the same list in chunks so a node with many images stays
// under the gRPC message limit.
func (s *Server) StreamImages(req *runtimeapi.StreamImagesRequest, stream runtimeapi.ImageService_StreamImagesServer) error {
	imgs, err := s.filteredImages(req.GetFilter())
	if err != nil {
		return err
	}
	const chunk = 100
	for len(imgs) > 0 {
		n := min(chunk, len(imgs))
		batch := make([]*runtimeapi.Image, 0, n)
		for _, img := range imgs[:n] {
			batch = append(batch, toCRIImage(img))
		}
		if err := stream.Send(&runtimeapi.StreamImagesResponse{Images: batch}); err != nil {
			return err
		}
		imgs = imgs[n:]
	}
	return nil
}

func (s *Server) filteredImages(f *runtimeapi.ImageFilter) ([]*image.Image, error) {
	ref := f.GetImage().GetImage()
	if ref == "" {
		return s.images.List(), nil
	}
	img, err := s.images.Get(ref)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return []*image.Image{img}, nil
}
