//go:build integration

package test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/crisp-runtime/crisp/internal/testutil"
	"github.com/crisp-runtime/crisp/test/harness"
)

// TestEveryRPCSurvivesBadRequests sends every unary CRI RPC an empty
// request, then requests whose fields hold random and hostile values
// (path escapes, huge strings, invalid enums, negative sizes): no answer is
// Internal (a recovered panic) or Unknown (an error nobody classified), the
// daemon keeps serving, and whatever the requests managed to create can be
// removed again.
func TestEveryRPCSurvivesBadRequests(t *testing.T) {
	d := harness.Start(t)
	clients := []any{d.Runtime, d.Images}
	rng := rand.New(rand.NewPCG(seed(t), 2))
	const randomRounds = 30

	var calls int
	codesSeen := map[codes.Code]int{}
	for _, c := range clients {
		cv := reflect.ValueOf(c)
		for i := 0; i < cv.NumMethod(); i++ {
			name := cv.Type().Method(i).Name
			m := cv.Method(i)
			mt := m.Type()
			// Unary methods: (ctx, *Request, ...CallOption) (*Response, error).
			if mt.NumIn() != 3 || mt.NumOut() != 2 || mt.Out(0).Kind() != reflect.Pointer {
				continue
			}
			if _, ok := reflect.New(mt.Out(0).Elem()).Interface().(proto.Message); !ok {
				continue // a stream (GetContainerEvents)
			}
			for round := 0; round <= randomRounds; round++ {
				req := reflect.New(mt.In(1).Elem()).Interface().(proto.Message)
				if round > 0 {
					fill(rng, req.ProtoReflect(), 0)
				}
				keepOffline(req)
				ctx, cancel := context.WithTimeout(context.Background(), testutil.Scaled(30*time.Second))
				out := m.Call([]reflect.Value{reflect.ValueOf(ctx), reflect.ValueOf(req)})
				cancel()
				calls++
				err, _ := out[1].Interface().(error)
				codesSeen[status.Code(err)]++
				if code := status.Code(err); code == codes.Internal || code == codes.Unknown {
					t.Errorf("%s (round %d) = %v\nrequest: %s", name, round, err, clip(fmt.Sprint(req), 2000))
				}
			}
		}
	}
	t.Logf("%d calls, answers by code: %v", calls, codesSeen)

	if _, err := d.Runtime.Version(harness.Ctx(t), &runtimeapi.VersionRequest{}); err != nil {
		t.Fatalf("daemon not serving after the bad requests: %v\n%s", err, d.LogTail(30))
	}
	// Whatever got created goes away through the normal RPCs.
	pods, err := d.Runtime.ListPodSandbox(harness.Ctx(t), &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		stopPod(t, d, p.Id)
		removePod(t, d, p.Id)
	}
	if pods, _ := d.Runtime.ListPodSandbox(harness.Ctx(t), &runtimeapi.ListPodSandboxRequest{}); len(pods.GetItems()) != 0 {
		t.Errorf("pods left: %v", pods.Items)
	}
	if m := podMounts(d); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
	// The daemon still answers and still knows nothing after a restart.
	d.Restart(t)
	if pods, err := d.Runtime.ListPodSandbox(harness.Ctx(t), &runtimeapi.ListPodSandboxRequest{}); err != nil || len(pods.GetItems()) != 0 {
		t.Errorf("after restart: %v, %v", pods, err)
	}
}

// TestMutatedPodAndContainerConfigs starts from valid RunPodSandbox and
// CreateContainer requests and changes one field at a time to a random or
// hostile value, so that the requests get past the first checks into
// namespace, cgroup, mount and spec code: the answers are never Internal or
// Unknown, what succeeds is a pod or container crisp can report, start,
// stop and remove, and nothing is left behind. Log paths stay pinned to the
// test's directory (kubelet owns them; a hostile one would have crisp write
// where told).
func TestMutatedPodAndContainerConfigs(t *testing.T) {
	harness.RequireRegistry(t)
	d := harness.Start(t)
	pull(t, d, ctrImage)
	rng := rand.New(rand.NewPCG(seed(t), 4))
	logDir := t.TempDir()
	check := func(what string, i int, req proto.Message, err error) bool {
		t.Helper()
		if code := status.Code(err); code == codes.Internal || code == codes.Unknown {
			t.Errorf("%s mutation %d = %v\nrequest: %s", what, i, err, clip(fmt.Sprint(req), 2000))
		}
		return err == nil
	}
	var pods, ctrs, started int
	for i := range 80 {
		cfg := podConfig("mut")
		cfg.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
		mutate(rng, cfg.ProtoReflect(), 0)
		cfg.LogDirectory = logDir
		req := &runtimeapi.RunPodSandboxRequest{Config: cfg}
		resp, err := d.Runtime.RunPodSandbox(harness.Ctx(t), req)
		if !check("RunPodSandbox", i, req, err) {
			continue
		}
		pods++
		_, err = d.Runtime.PodSandboxStatus(harness.Ctx(t), &runtimeapi.PodSandboxStatusRequest{PodSandboxId: resp.PodSandboxId, Verbose: true})
		check("PodSandboxStatus of a mutated pod", i, req, err)
		stopPod(t, d, resp.PodSandboxId)
		removePod(t, d, resp.PodSandboxId)
	}

	pod, podCfg := ctrPod(t, d, "mutctr")
	for i := range 80 {
		cfg := ctrConfig(fmt.Sprintf("m%d", i), "sleep 3600")
		mutate(rng, cfg.ProtoReflect(), 0)
		keepOffline(cfg)
		cfg.LogPath = fmt.Sprintf("m%d.log", i)
		req := &runtimeapi.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: podCfg}
		resp, err := d.Runtime.CreateContainer(harness.Ctx(t), req)
		if !check("CreateContainer", i, req, err) {
			continue
		}
		ctrs++
		_, err = d.Runtime.ContainerStatus(harness.Ctx(t), &runtimeapi.ContainerStatusRequest{ContainerId: resp.ContainerId, Verbose: true})
		check("ContainerStatus of a mutated container", i, req, err)
		if _, err := d.Runtime.StartContainer(harness.Ctx(t), &runtimeapi.StartContainerRequest{ContainerId: resp.ContainerId}); check("StartContainer of a mutated container", i, req, err) {
			started++
			_, err = d.Runtime.StopContainer(harness.Ctx(t), &runtimeapi.StopContainerRequest{ContainerId: resp.ContainerId})
			check("StopContainer of a mutated container", i, req, err)
		}
		if _, err := d.Runtime.RemoveContainer(harness.Ctx(t), &runtimeapi.RemoveContainerRequest{ContainerId: resp.ContainerId}); err != nil {
			t.Errorf("RemoveContainer of mutated container %d: %v", i, err)
		}
	}
	t.Logf("mutated requests accepted: %d of 80 pods, %d of 80 containers (%d started)", pods, ctrs, started)
	if pods == 0 || ctrs == 0 {
		t.Errorf("no mutated request was accepted: the mutations never get past validation")
	}
	if resp, err := d.Runtime.ListContainers(harness.Ctx(t), &runtimeapi.ListContainersRequest{}); err != nil || len(resp.Containers) != 0 {
		t.Errorf("containers left: %v %v", resp, err)
	}
	stopPod(t, d, pod)
	removePod(t, d, pod)
	if m := podMounts(d); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
	if m := harness.MountsBelow(d.State + "/containers"); len(m) != 0 {
		t.Errorf("container mounts left: %v", m)
	}
}

// mutate changes one field somewhere below m: a scalar to a random or
// hostile value, a message or list to random content.
func mutate(rng *rand.Rand, m protoreflect.Message, depth int) {
	fields := m.Descriptor().Fields()
	fd := fields.Get(rng.IntN(fields.Len()))
	if fd.Message() != nil && !fd.IsList() && !fd.IsMap() && depth < 4 && rng.IntN(3) > 0 {
		mutate(rng, m.Mutable(fd).Message(), depth+1)
		return
	}
	m.Clear(fd)
	switch {
	case fd.IsList() || fd.IsMap() || fd.Message() != nil:
		tmp := m.New()
		for range 10 { // fill sets each field with probability 2/3
			fill(rng, tmp, depth)
			if tmp.Has(fd) {
				m.Set(fd, tmp.Get(fd))
				return
			}
		}
	default:
		m.Set(fd, scalar(rng, fd))
	}
}

// seed is fixed so that a failure replays; CRISP_TEST_SEED explores others.
func seed(t *testing.T) uint64 {
	if v := os.Getenv("CRISP_TEST_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CRISP_TEST_SEED: %v", err)
		}
		return n
	}
	return 1
}

// keepOffline points image references at a mirrored registry: a random
// reference naming some host would make crisp reach for it, and tests talk
// only to loopback.
func keepOffline(req proto.Message) {
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		if spec, ok := m.Interface().(*runtimeapi.ImageSpec); ok && spec.Image != "" && !mirrored(spec.Image) {
			spec.Image = "registry.k8s.io/" + strings.Map(func(r rune) rune {
				if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
					return r
				}
				return -1
			}, strings.ToLower(spec.Image)) + "x"
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.IsList() && fd.Message() != nil:
				for i := 0; i < v.List().Len(); i++ {
					walk(v.List().Get(i).Message())
				}
			case fd.IsMap() && fd.MapValue().Message() != nil:
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool { walk(mv.Message()); return true })
			case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
				walk(v.Message())
			}
			return true
		})
	}
	walk(req.ProtoReflect())
}

func mirrored(ref string) bool {
	host, _, ok := strings.Cut(ref, "/")
	return ok && slices.Contains(harness.MirroredRegistries, host)
}

// hostile are string values that have broken runtimes before.
var hostile = []string{
	"", " ", "..", "../../../../etc/passwd", "/", "/etc", "/proc/self/root", "a/../../b",
	"sha256:", "sha256:" + strings.Repeat("0", 64), "\x00", "ünïcödé", "-1", "9999999999999999999999",
	"docker.io/library/busybox:1.36", "NODE", "%s%n", strings.Repeat("x", 70000),
}

func fill(rng *rand.Rand, m protoreflect.Message, depth int) {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if fd.ContainingOneof() != nil && rng.IntN(2) == 0 {
			continue
		}
		if rng.IntN(3) == 0 {
			continue // unset
		}
		switch {
		case fd.IsList():
			l := m.Mutable(fd).List()
			for n := rng.IntN(4); n > 0; n-- {
				if fd.Message() != nil {
					if depth >= 4 {
						break
					}
					e := l.NewElement()
					fill(rng, e.Message(), depth+1)
					l.Append(e)
				} else {
					l.Append(scalar(rng, fd))
				}
			}
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			for n := rng.IntN(4); n > 0; n-- {
				k := scalar(rng, fd.MapKey()).MapKey()
				if fd.MapValue().Message() != nil {
					if depth >= 4 {
						break
					}
					v := mp.NewValue()
					fill(rng, v.Message(), depth+1)
					mp.Set(k, v)
				} else {
					mp.Set(k, scalar(rng, fd.MapValue()))
				}
			}
		case fd.Message() != nil:
			if depth < 4 {
				fill(rng, m.Mutable(fd).Message(), depth+1)
			}
		default:
			m.Set(fd, scalar(rng, fd))
		}
	}
}

func scalar(rng *rand.Rand, fd protoreflect.FieldDescriptor) protoreflect.Value {
	ints := []int64{0, 1, -1, math.MaxInt64, math.MinInt64, 1 << 40, int64(rng.Uint32())}
	switch fd.Kind() {
	case protoreflect.StringKind:
		if rng.IntN(2) == 0 {
			return protoreflect.ValueOfString(hostile[rng.IntN(len(hostile))])
		}
		b := make([]byte, rng.IntN(20))
		for i := range b {
			b[i] = "abcdefghijklmnopqrstuvwxyz0123456789-_./:"[rng.IntN(41)]
		}
		return protoreflect.ValueOfString(string(b))
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte(hostile[rng.IntN(len(hostile))]))
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(rng.IntN(2) == 0)
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		if rng.IntN(4) == 0 {
			return protoreflect.ValueOfEnum(protoreflect.EnumNumber(99))
		}
		return protoreflect.ValueOfEnum(vals.Get(rng.IntN(vals.Len())).Number())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(ints[rng.IntN(len(ints))]))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(ints[rng.IntN(len(ints))])
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(ints[rng.IntN(len(ints))]))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(uint64(ints[rng.IntN(len(ints))]))
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(float32(rng.NormFloat64()))
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(rng.NormFloat64())
	}
	panic(fmt.Sprintf("unhandled kind %v", fd.Kind()))
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
