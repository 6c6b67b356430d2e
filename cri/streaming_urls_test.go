package cri

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/errdefs"
	"github.com/crisp-runtime/crisp/sandbox"
)

type fakeStreaming struct{}

func (fakeStreaming) GetExec(*runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	return &runtimeapi.ExecResponse{Url: "exec"}, nil
}
func (fakeStreaming) GetAttach(*runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	return &runtimeapi.AttachResponse{Url: "attach"}, nil
}
func (fakeStreaming) GetPortForward(*runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	return &runtimeapi.PortForwardResponse{Url: "pf"}, nil
}

// The ids are the managers' to check (internal/index): an empty one is
// InvalidArgument there, not here.
func TestStreamingRPCsValidate(t *testing.T) {
	s := New(Deps{Streaming: fakeStreaming{}})
	ctx := context.Background()
	for name, tc := range map[string]struct {
		call func() error
		code codes.Code
		msg  string
	}{
		"exec ok": {func() error {
			_, err := s.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: "c", Cmd: []string{"sh"}, Stdin: true})
			return err
		}, codes.OK, ""},
		"exec no cmd": {func() error {
			_, err := s.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: "c", Stdout: true})
			return err
		}, codes.InvalidArgument, "cmd"},
		"exec no stream": {func() error {
			_, err := s.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: "c", Cmd: []string{"sh"}})
			return err
		}, codes.InvalidArgument, "stdin"},
		"exec tty stderr": {func() error {
			_, err := s.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: "c", Cmd: []string{"sh"}, Tty: true, Stdout: true, Stderr: true})
			return err
		}, codes.InvalidArgument, "tty"},
		"attach ok": {func() error {
			_, err := s.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: "c", Stdout: true})
			return err
		}, codes.OK, ""},
		"portforward ok": {func() error {
			_, err := s.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: "p", Port: []int32{80}})
			return err
		}, codes.OK, ""},
		"portforward bad port": {func() error {
			_, err := s.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: "p", Port: []int32{70000}})
			return err
		}, codes.InvalidArgument, "70000"},
	} {
		err := tc.call()
		if got := grpcCode(err); got != tc.code || (err != nil && !strings.Contains(err.Error(), tc.msg)) {
			t.Errorf("%s: %v (code %v), want %v naming %q", name, err, got, tc.code, tc.msg)
		}
	}

	// Without a streaming server the RPCs say which one is missing.
	s = New(Deps{})
	_, err := s.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: "c", Cmd: []string{"sh"}, Stdout: true})
	if grpcCode(err) != codes.Unimplemented || !strings.Contains(err.Error(), "Exec") {
		t.Errorf("exec without streaming: %v", err)
	}
}

type fakeSandboxes struct {
	Sandboxes
	pods map[string]*sandbox.Sandbox
}

func (f fakeSandboxes) Get(id string) (*sandbox.Sandbox, error) {
	if sb, ok := f.pods[id]; ok {
		return sb, nil
	}
	return nil, errdefs.NotFound("pod sandbox %q", id)
}

func TestStreamingPods(t *testing.T) {
	pods := StreamingPods(fakeSandboxes{pods: map[string]*sandbox.Sandbox{
		"ready": {ID: "ready-full", State: sandbox.StateReady, Namespaces: map[string]string{sandbox.NSNet: "/run/crisp/pods/x/net"},
			Network: sandbox.PodNetwork{IPs: []string{"10.88.0.2"}}},
		"host": {ID: "host-full", State: sandbox.StateReady,
			Config: sandbox.Config{Namespaces: sandbox.NamespaceOptions{Network: sandbox.ModeNode}}},
		"stopped":  {ID: "stopped-full", State: sandbox.StateNotReady},
		"unpinned": {ID: "unpinned-full", State: sandbox.StateReady},
	}})
	pn, err := pods.Network("ready")
	if err != nil || pn.ID != "ready-full" || pn.NetNS != "/run/crisp/pods/x/net" || len(pn.IPs) != 1 {
		t.Errorf("ready pod: %+v, %v", pn, err)
	}
	if pn, err := pods.Network("host"); err != nil || pn.NetNS != "" {
		t.Errorf("host-network pod: %+v, %v", pn, err)
	}
	if _, err := pods.Network("stopped"); grpcCode(err) != codes.FailedPrecondition {
		t.Errorf("stopped pod: %v", err)
	}
	// A pod network without its namespace must not fall back to the host's.
	if _, err := pods.Network("unpinned"); grpcCode(err) != codes.FailedPrecondition {
		t.Errorf("pod without namespace: %v", err)
	}
	if _, err := pods.Network("nope"); grpcCode(err) != codes.NotFound {
		t.Errorf("unknown pod: %v", err)
	}
}
