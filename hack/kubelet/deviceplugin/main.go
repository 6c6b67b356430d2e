// Command deviceplugin is a kubelet device plugin for hack/e2e-kubelet.sh:
// it offers the devices of one CDI kind (vendor.example/gpu by default) and
// hands them to containers as CDI devices, the way GPU and NIC vendors'
// plugins do: the first device allocated through the CRI field
// (ContainerAllocateResponse.cdi_devices, which kubelet passes on as
// ContainerConfig.CDI_devices), every further one through a cdi.k8s.io/*
// annotation (which kubelet puts on the container's annotations). So one pod
// asking for two devices exercises both routes.
//
// It registers with kubelet once its own socket serves and exits on SIGTERM.
// It is built from kubelet's module (hack/kubelet/go.mod) because it speaks
// kubelet's device plugin API.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

type plugin struct {
	pluginapi.UnimplementedDevicePluginServer
	kind    string // CDI kind, also the extended resource name
	devices []string
	stop    chan struct{}
}

func (p *plugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{}, nil
}

func (p *plugin) ListAndWatch(_ *pluginapi.Empty, s grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	resp := &pluginapi.ListAndWatchResponse{}
	for _, d := range p.devices {
		resp.Devices = append(resp.Devices, &pluginapi.Device{ID: d, Health: pluginapi.Healthy})
	}
	if err := s.Send(resp); err != nil {
		return err
	}
	log.Printf("listed %d devices to kubelet", len(resp.Devices))
	select {
	case <-p.stop:
	case <-s.Context().Done():
	}
	return nil
}

func (p *plugin) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	out := &pluginapi.AllocateResponse{}
	for _, c := range req.GetContainerRequests() {
		r := &pluginapi.ContainerAllocateResponse{Annotations: map[string]string{}}
		for i, id := range c.GetDevicesIds() {
			name := p.kind + "=" + id
			if i == 0 {
				r.CdiDevices = append(r.CdiDevices, &pluginapi.CDIDevice{Name: name})
				continue
			}
			r.Annotations["cdi.k8s.io/crisp-e2e_"+id] = name
		}
		log.Printf("allocated %v: CDI field %v, annotations %v", c.GetDevicesIds(), r.CdiDevices, r.Annotations)
		out.ContainerResponses = append(out.ContainerResponses, r)
	}
	return out, nil
}

func main() {
	dir := flag.String("dir", pluginapi.DevicePluginPath, "kubelet's device plugin directory (kubelet.sock is there)")
	kind := flag.String("kind", "vendor.example/gpu", "CDI kind of the devices, also the resource name")
	devices := flag.String("devices", "gpu0,gpu1", "comma-separated device names")
	flag.Parse()
	log.SetPrefix("deviceplugin: ")

	p := &plugin{kind: *kind, devices: strings.Split(*devices, ","), stop: make(chan struct{})}
	endpoint := "crisp-e2e-" + strings.NewReplacer("/", "-", ".", "-").Replace(*kind) + ".sock"
	sock := filepath.Join(*dir, endpoint)
	os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(srv, p)
	go func() {
		if err := srv.Serve(l); err != nil {
			log.Print(err)
		}
	}()
	if err := register(filepath.Join(*dir, "kubelet.sock"), endpoint, *kind); err != nil {
		log.Fatal(err)
	}
	log.Printf("registered %s at %s", *kind, sock)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	close(p.stop)
	srv.Stop()
	os.Remove(sock)
}

func register(kubeletSock, endpoint, resource string) error {
	conn, err := grpc.NewClient("unix://"+kubeletSock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version: pluginapi.Version, Endpoint: endpoint, ResourceName: resource,
	}, grpc.WaitForReady(true))
	if err != nil {
		return fmt.Errorf("register with kubelet at %s: %w", kubeletSock, err)
	}
	return nil
}
