package nri

import (
	"context"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/crisp-runtime/crisp/container"
)

// A hook a plugin failed is an error span, so a trace shows which plugin
// call refused a container; one that went through is not.
func TestFailedHookSpansAreErrors(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	n, sock := startNRI(t, &fakePods{}, newFakeContainers())
	p := &testPlugin{}
	connect(t, n, sock, p)
	ok := testContainer("ok", "pod1", container.StateUnknown)
	if err := n.CreateContainer(context.Background(), testPod("pod1", "web"), ok.Container, &specs.Spec{Process: &specs.Process{}}); err != nil {
		t.Fatal(err)
	}
	p.failCreate = true
	bad := testContainer("bad", "pod1", container.StateUnknown)
	if err := n.CreateContainer(context.Background(), testPod("pod1", "web"), bad.Container, &specs.Spec{Process: &specs.Process{}}); err == nil {
		t.Fatal("CreateContainer refused by the plugin succeeded")
	}

	var got []codes.Code
	for _, s := range rec.Ended() {
		if s.Name() == "nri.CreateContainer" {
			got = append(got, s.Status().Code)
		}
	}
	if len(got) != 2 || got[0] != codes.Unset || got[1] != codes.Error {
		t.Errorf("nri.CreateContainer span statuses %v, want [Unset Error]", got)
	}
}
