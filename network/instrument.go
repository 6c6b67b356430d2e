package network

import (
	"context"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"go.opentelemetry.io/otel/attribute"

	"github.com/crisp-runtime/crisp/internal/metrics"
	"github.com/crisp-runtime/crisp/internal/tracing"
)

// Every CNI ADD and DEL of a pod goes through these two, so each is timed,
// counted when it fails and traced the same way.

func (m *Manager) addList(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) (types.Result, error) {
	ctx, span := tracing.Start(ctx, "cni.add", attribute.String("cni.network", list.Name), attribute.String("crisp.pod", rt.ContainerID))
	start := time.Now()
	res, err := m.cni.AddNetworkList(ctx, list, rt)
	metrics.CNIOperation(metrics.CNIAdd, time.Since(start), err)
	tracing.End(span, err)
	return res, err
}

func (m *Manager) delList(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	ctx, span := tracing.Start(ctx, "cni.del", attribute.String("cni.network", list.Name), attribute.String("crisp.pod", rt.ContainerID))
	start := time.Now()
	err := m.cni.DelNetworkList(ctx, list, rt)
	metrics.CNIOperation(metrics.CNIDel, time.Since(start), err)
	tracing.End(span, err)
	return err
}
