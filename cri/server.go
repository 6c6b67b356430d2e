// Package cri serves the CRI RuntimeService and ImageService over gRPC. It only
// translates between CRI messages and crisp's packages: the work is done by the
// small interfaces below, so each can be tested and replaced on its own.
//
// cri only translates, and CRI types stop here: a request is converted into
// crisp's own types once, in the <object>_convert.go files (sandbox.Config,
// container.Config, container.Resources, the filters), and answers are built
// from crisp's records the same way. Below this package nothing imports the
// CRI API, so container, its spec generator, sandbox and nri read only
// crisp's types and cannot drift from what cri validated, and a second client
// (NRI, a test) builds the same types instead of CRI messages. Checks that
// only the CRI's shape can tell, such as an absent metadata message, belong
// here; every other rule belongs to the package that owns it. The one
// exception is package streaming, which serves the CRI streaming protocol
// itself (the URLs GetExec, GetAttach and GetPortForward return), as
// kubelet's streaming library does.
//
// Ids are the managers' to check too: an empty or unknown one is their
// InvalidArgument or NotFound. Handlers pass the request's context down
// unchanged; which operations finish after the client gave up and which
// roll back is one policy, written down in package internal/timeouts.
// Errors keep their errdefs kind up to here, and cri/errors.go maps them to
// gRPC codes in one place.
package cri

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/config"
	"github.com/crisp-runtime/crisp/image"
	"github.com/crisp-runtime/crisp/sandbox"
)

// Images is what the CRI image service needs from the image store.
type Images interface {
	Pull(ctx context.Context, ref string, auth *image.Auth) (*image.Image, error)
	Get(ref string) (*image.Image, error)
	List() []*image.Image
	Remove(ref string) error
	// Filesystems reports what ImageFsInfo returns, given the usage of the
	// containers' writable layers (nil without a container manager).
	Filesystems(writable *image.FilesystemUsage) (image.Filesystems, error)
	// Quarantined describes image leases start-up could not read.
	Quarantined() []string
}

// Network reports whether pod networking is configured.
type Network interface {
	Ready() error
}

// Sandboxes is what the CRI pod sandbox RPCs need from the sandbox manager.
type Sandboxes interface {
	Run(ctx context.Context, cfg sandbox.Config) (string, error)
	Stop(ctx context.Context, id string) error
	Remove(ctx context.Context, id string) error
	Get(id string) (*sandbox.Sandbox, error)
	List(f sandbox.Filter) []*sandbox.Sandbox
	UpdateResources(ctx context.Context, id string, overhead, resources *sandbox.Resources) error
	// UserNamespaces is nil when pods can have their own user namespace.
	UserNamespaces() error
	// Quarantined describes pod records start-up could not read.
	Quarantined() []string
}

// Server implements runtimeapi.RuntimeServiceServer and runtimeapi.ImageServiceServer.
// RPCs that crisp does not implement yet answer Unimplemented with their name,
// through the embedded defaults.
type Server struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	runtimeapi.UnimplementedImageServiceServer

	cfg       *config.Config
	version   string
	images    Images
	network   Network
	sandboxes Sandboxes
	streaming Streaming
	// containers may be nil: container RPCs then answer Unimplemented.
	containers Containers
	// closing ends the event streams, which never finish by themselves: a
	// graceful stop would otherwise wait for kubelet's GetContainerEvents
	// until its deadline.
	closing     chan struct{}
	closingOnce sync.Once
}

// EndStreams ends the open GetContainerEvents streams, before a graceful
// stop: kubelet keeps one open for good and subscribes again to the next
// daemon.
func (s *Server) EndStreams() { s.closingOnce.Do(func() { close(s.closing) }) }

// Deps are the parts a Server translates to.
type Deps struct {
	Config    *config.Config
	Version   string
	Images    Images
	Network   Network
	Sandboxes Sandboxes
	// Streaming may be nil: Exec, Attach and PortForward then answer Unimplemented.
	Streaming Streaming
	// Containers may be nil: container RPCs then answer Unimplemented.
	Containers Containers
}

// New returns a Server over deps.
func New(d Deps) *Server {
	return &Server{cfg: d.Config, version: d.Version, images: d.Images, network: d.Network, sandboxes: d.Sandboxes, streaming: d.Streaming, containers: d.Containers, closing: make(chan struct{})}
}

// Register adds both CRI services to g.
func (s *Server) Register(g *grpc.Server) {
	runtimeapi.RegisterRuntimeServiceServer(g, s)
	runtimeapi.RegisterImageServiceServer(g, s)
}
