package cri

import (
	"context"
	"errors"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/errdefs"
)

// RemoveImage removes the whole image a reference resolves to, with all its
// tags: the CRI contract says so (critest checks "removing image by one tag
// should remove all tags"). Removing an absent image succeeds.
func (s *Server) RemoveImage(_ context.Context, req *runtimeapi.RemoveImageRequest) (*runtimeapi.RemoveImageResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, errdefs.InvalidArgument("image.image is required")
	}
	img, err := s.images.Get(ref)
	if err == nil {
		err = s.images.Remove(img.ID)
	}
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return nil, err
	}
	return &runtimeapi.RemoveImageResponse{}, nil
}
