//go:build integration

package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/internal/testutil"
	"github.com/crisp-runtime/crisp/test/harness"
)

// otlpReceiver is an OTLP/gRPC collector in the test process: it keeps
// every span crisp exports.
type otlpReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	mu       sync.Mutex
	spans    []*tracepb.Span
	services map[string]bool // service.name of every exporting resource
}

func (r *otlpReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				r.services[kv.GetValue().GetStringValue()] = true
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			r.spans = append(r.spans, ss.GetSpans()...)
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

// trace returns the spans received so far of one trace.
func (r *otlpReceiver) trace(id []byte) []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range r.spans {
		if bytes.Equal(s.GetTraceId(), id) {
			out = append(out, s)
		}
	}
	return out
}

func startOTLPReceiver(t *testing.T) (*otlpReceiver, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &otlpReceiver{services: map[string]bool{}}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, r)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return r, lis.Addr().String()
}

// kubeletTrace is the trace context a tracing kubelet sends: a W3C
// traceparent naming its own span as the parent.
type kubeletTrace struct{ traceID, spanID []byte }

func newKubeletTrace(t *testing.T) kubeletTrace {
	k := kubeletTrace{make([]byte, 16), make([]byte, 8)}
	if _, err := rand.Read(k.traceID); err != nil {
		t.Fatal(err)
	}
	rand.Read(k.spanID)
	return k
}

func (k kubeletTrace) ctx(t *testing.T, sampled bool) context.Context {
	flags := "00"
	if sampled {
		flags = "01"
	}
	return metadata.AppendToOutgoingContext(harness.Ctx(t), "traceparent",
		fmt.Sprintf("00-%s-%s-%s", hex.EncodeToString(k.traceID), hex.EncodeToString(k.spanID), flags))
}

// spanTree indexes one trace's spans by name and by parent.
type spanTree struct {
	byName   map[string][]*tracepb.Span
	children map[string][]*tracepb.Span // by parent span id (hex)
}

func treeOf(spans []*tracepb.Span) spanTree {
	tr := spanTree{byName: map[string][]*tracepb.Span{}, children: map[string][]*tracepb.Span{}}
	for _, s := range spans {
		tr.byName[s.GetName()] = append(tr.byName[s.GetName()], s)
		tr.children[hex.EncodeToString(s.GetParentSpanId())] = append(tr.children[hex.EncodeToString(s.GetParentSpanId())], s)
	}
	return tr
}

func (tr spanTree) childrenNamed(parent *tracepb.Span, name string) []*tracepb.Span {
	var out []*tracepb.Span
	for _, c := range tr.children[hex.EncodeToString(parent.GetSpanId())] {
		if c.GetName() == name {
			out = append(out, c)
		}
	}
	return out
}

// serverSpan returns the one span of the CRI method, checking that it
// continues the caller's span.
func (tr spanTree) serverSpan(t *testing.T, k kubeletTrace, name string) *tracepb.Span {
	t.Helper()
	ss := tr.byName[name]
	if len(ss) != 1 {
		t.Fatalf("%d spans named %s, want 1", len(ss), name)
	}
	s := ss[0]
	if !bytes.Equal(s.GetParentSpanId(), k.spanID) {
		t.Errorf("%s: parent %x, want the caller's span %x", name, s.GetParentSpanId(), k.spanID)
	}
	if s.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("%s: kind %v, want server", name, s.GetKind())
	}
	return s
}

// TestTracing exports to an in-process OTLP receiver and checks the span
// trees of a PullImage, a RunPodSandbox and a CreateContainer that carry a
// kubelet's trace context, that an unsampled caller gets no spans, and
// that a request without trace context starts its own trace.
func TestTracing(t *testing.T) {
	harness.RequireRegistry(t)
	rcv, addr := startOTLPReceiver(t)
	pn := harness.PodNetwork(t)
	d := harness.Start(t, harness.WithCNI(pn.ConfDir), harness.WithTOML(fmt.Sprintf("[tracing]\nendpoint = %q\n", "http://"+addr)))

	unsampled := newKubeletTrace(t)
	if _, err := d.Runtime.Version(unsampled.ctx(t, false), &runtimeapi.VersionRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Images.ImageFsInfo(harness.Ctx(t), &runtimeapi.ImageFsInfoRequest{}); err != nil {
		t.Fatal(err)
	}

	pullTrace := newKubeletTrace(t)
	if _, err := d.Images.PullImage(pullTrace.ctx(t, true), &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: busybox}}); err != nil {
		t.Fatal(err)
	}
	runTrace := newKubeletTrace(t)
	podCfg := podConfig("traced")
	podCfg.LogDirectory = t.TempDir()
	resp, err := d.Runtime.RunPodSandbox(runTrace.ctx(t, true), &runtimeapi.RunPodSandboxRequest{Config: podCfg})
	if err != nil {
		t.Fatal(err)
	}
	pod := resp.PodSandboxId
	t.Cleanup(func() {
		d.Runtime.RemovePodSandbox(context.Background(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: pod})
	})
	createTrace := newKubeletTrace(t)
	if _, err := d.Runtime.CreateContainer(createTrace.ctx(t, true), &runtimeapi.CreateContainerRequest{
		PodSandboxId: pod, Config: ctrConfig("traced", "exec sleep 1000"), SandboxConfig: podCfg,
	}); err != nil {
		t.Fatal(err)
	}

	// Spans leave in batches about a second apart.
	testutil.WaitFor(t, "the spans of the traced requests", time.Minute, func() bool {
		return len(rcv.trace(pullTrace.traceID)) > 0 && len(rcv.trace(runTrace.traceID)) > 0 && len(rcv.trace(createTrace.traceID)) > 0
	})
	// The batch that carried the last spans carried everything before them.
	time.Sleep(2 * time.Second)

	pull := treeOf(rcv.trace(pullTrace.traceID))
	root := pull.serverSpan(t, pullTrace, "runtime.v1.ImageService/PullImage")
	layers := pull.childrenNamed(root, "image.pull_layer")
	if len(layers) == 0 {
		t.Fatalf("PullImage has no image.pull_layer children; spans: %v", pull.byName)
	}
	for _, l := range layers {
		if n := len(pull.childrenNamed(l, "image.unpack")); n != 1 {
			t.Errorf("layer span %x has %d image.unpack children, want 1", l.GetSpanId(), n)
		}
	}

	run := treeOf(rcv.trace(runTrace.traceID))
	root = run.serverSpan(t, runTrace, "runtime.v1.RuntimeService/RunPodSandbox")
	if n := len(run.childrenNamed(root, "cni.add")); n != 1 {
		t.Errorf("RunPodSandbox has %d cni.add children, want 1; spans: %v", n, run.byName)
	}

	create := treeOf(rcv.trace(createTrace.traceID))
	root = create.serverSpan(t, createTrace, "runtime.v1.RuntimeService/CreateContainer")
	if n := len(create.childrenNamed(root, "container.monitor_create")); n != 1 {
		t.Errorf("CreateContainer has %d container.monitor_create children, want 1; spans: %v", n, create.byName)
	}

	for _, tr := range []spanTree{pull, run, create} {
		names := map[string]int{}
		for n, ss := range tr.byName {
			names[n] = len(ss)
		}
		t.Logf("trace: %v", names)
	}
	if s := rcv.trace(unsampled.traceID); len(s) != 0 {
		t.Errorf("a caller that did not sample its trace got %d spans exported", len(s))
	}
	rcv.mu.Lock()
	var ownRoot bool
	for _, s := range rcv.spans {
		if s.GetName() == "runtime.v1.ImageService/ImageFsInfo" && len(s.GetParentSpanId()) == 0 {
			ownRoot = true
		}
	}
	named := rcv.services["crisp"]
	rcv.mu.Unlock()
	if !ownRoot {
		t.Error("a request without trace context did not start its own trace (sampling_ratio 1)")
	}
	if !named {
		t.Error("spans do not come from service.name=crisp")
	}
}
