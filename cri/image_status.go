package cri

import (
	"context"
	"encoding/json"
	"errors"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/errdefs"
)

// ImageStatus answers an empty response, not an error, for an absent image:
// that is how kubelet learns it has to pull.
func (s *Server) ImageStatus(_ context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, errdefs.InvalidArgument("image.image is required")
	}
	img, err := s.images.Get(ref)
	if errors.Is(err, errdefs.ErrNotFound) {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	resp := &runtimeapi.ImageStatusResponse{Image: toCRIImage(img)}
	if req.GetVerbose() {
		info, err := json.Marshal(map[string]any{
			"config":  img.Config,
			"diffIDs": img.DiffIDs,
			"size":    img.Size,
		})
		if err == nil {
			resp.Info = map[string]string{"info": string(info)}
		}
	}
	return resp, nil
}
