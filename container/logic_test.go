package container

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/crisp-runtime/crisp/container/spec"
	"github.com/crisp-runtime/crisp/errdefs"
)

var specsProcess = specs.Process{Args: []string{"sh"}, Cwd: "/", Env: []string{"A=b"}}

func TestStoreRoundTrip(t *testing.T) {
	s := &store{root: t.TempDir()}
	c := &Container{ID: "abc", PodID: "p", Name: "n", Phase: PhaseCreated, CreatedAt: time.Now().UTC(), Process: &specsProcess,
		Config: Config{
			Name: "n", Attempt: 2,
			Labels:      map[string]string{"a": "b"},
			Annotations: map[string]string{"x": "y=z"},
			Mounts:      []spec.Mount{{ContainerPath: "/d", HostPath: "/h", Readonly: true}},
			Security:    spec.SecurityContext{MaskedPaths: []string{}},
		}}
	if err := s.save(c); err != nil {
		t.Fatal(err)
	}
	// No temporary files are left next to the record.
	ents, _ := os.ReadDir(s.dir("abc"))
	if len(ents) != 1 || ents[0].Name() != recordName {
		t.Fatalf("dir holds %v", ents)
	}
	got, err := s.load("abc")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Config, c.Config) || got.Process.Args[0] != "sh" || !got.CreatedAt.Equal(c.CreatedAt) {
		t.Fatalf("round trip: %+v", got)
	}
	// Newer schema: refused, not misread.
	os.WriteFile(filepath.Join(s.dir("abc"), recordName), []byte(`{"version":99,"container":{"id":"abc"}}`), 0o600)
	if _, err := s.load("abc"); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("newer schema: %v", err)
	}
	// A record for another id is refused.
	os.WriteFile(filepath.Join(s.dir("abc"), recordName), []byte(`{"version":1,"container":{"id":"zzz"}}`), 0o600)
	if _, err := s.load("abc"); err == nil {
		t.Fatal("foreign record accepted")
	}
	if err := s.deleteRecord("abc"); err != nil {
		t.Fatal(err)
	}
	cs, orphans, errs := s.loadAll()
	if len(cs) != 0 || len(orphans) != 1 || len(errs) != 0 {
		t.Fatalf("after delete: %v %v %v", cs, orphans, errs)
	}
}

// A record of schema version 1 holds the CRI config as protojson; loading
// converts it with the decoder package cri provides, and the next save
// writes the current form.
func TestStoreUpgradesVersion1(t *testing.T) {
	s := &store{root: t.TempDir()}
	v1 := `{"version":1,"container":{"id":"abc","podId":"p","name":"n","phase":"created",` +
		`"config":{"metadata":{"name":"n","attempt":2},"labels":{"a":"b"}}}}`
	if err := os.MkdirAll(s.dir("abc"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.dir("abc"), recordName), []byte(v1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.load("abc"); err == nil || !strings.Contains(err.Error(), "no decoder") {
		t.Fatalf("without a decoder: %v", err)
	}
	var got []byte
	s.decodeCRIConfig = func(b []byte) (*Config, error) {
		got = b
		return &Config{Name: "n", Attempt: 2, Labels: map[string]string{"a": "b"}}, nil
	}
	c, err := s.load("abc")
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"metadata":{"name":"n","attempt":2},"labels":{"a":"b"}}`; string(got) != want {
		t.Fatalf("decoder got %s, want %s", got, want)
	}
	if c.Config.Attempt != 2 || c.Config.Labels["a"] != "b" || c.CRIConfig != nil {
		t.Fatalf("upgraded record: %+v", c)
	}
	if err := s.save(c); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(s.dir("abc"), recordName))
	if !strings.Contains(string(b), `"version":2`) || strings.Contains(string(b), `"config"`) {
		t.Fatalf("saved again as %s", b)
	}
	s.decodeCRIConfig = func([]byte) (*Config, error) { return nil, errors.New("bad") }
	if _, err := s.load("abc"); err != nil {
		t.Fatalf("a version 2 record needs no decoder: %v", err)
	}
}

func TestLogPath(t *testing.T) {
	for _, tc := range []struct {
		dir, rel, want string
		bad            bool
	}{
		{"/var/log/pods/x", "c/0.log", "/var/log/pods/x/c/0.log", false},
		{"", "c/0.log", "", false},
		{"/var/log/pods/x", "", "", false},
		{"/var/log/pods/x", "../escape.log", "", true},
		{"/var/log/pods/x", "/abs.log", "", true},
		{"relative", "c/0.log", "", true},
	} {
		got, err := containerLogPath(tc.dir, tc.rel)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("containerLogPath(%q, %q) = %q, %v", tc.dir, tc.rel, got, err)
		}
		if err != nil && !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("error kind: %v", err)
		}
	}
}

func TestImageInfo(t *testing.T) {
	// kubelet: the id, plus what the user wrote.
	got := imageInfo(spec.ImageSpec{Image: testImage.ID, UserSpecifiedImage: "busybox:1"}, testImage)
	if got.Name != "busybox:1" || got.ID != testImage.ID || got.Ref != testImage.RepoDigests[0] {
		t.Fatalf("%+v", got)
	}
	// The id alone: the tag is friendlier.
	if got := imageInfo(spec.ImageSpec{Image: testImage.ID}, testImage); got.Name != testImage.RepoTags[0] {
		t.Fatalf("%+v", got)
	}
	// A name: kept as given.
	if got := imageInfo(spec.ImageSpec{Image: "busybox"}, testImage); got.Name != "busybox" {
		t.Fatalf("%+v", got)
	}
	// No digest (a locally built image): ref is the id.
	noDigest := *testImage
	noDigest.RepoDigests = nil
	if got := imageInfo(spec.ImageSpec{Image: "busybox"}, &noDigest); got.Ref != testImage.ID {
		t.Fatalf("%+v", got)
	}
}

func TestOverlayData(t *testing.T) {
	d, err := overlayData([]string{"/l2", "/l1"}, "/u", "/w")
	if err != nil || d != "lowerdir=/l2:/l1,upperdir=/u,workdir=/w" {
		t.Fatalf("%q %v", d, err)
	}
	if _, err := overlayData(nil, "/u", "/w"); err == nil {
		t.Fatal("no layers accepted")
	}
	if _, err := overlayData([]string{"/a:b"}, "/u", "/w"); err == nil {
		t.Fatal("colon accepted")
	}
	long := make([]string, 100)
	for i := range long {
		long[i] = "/var/lib/crisp/images/layers/sha256/" + strings.Repeat("a", 64)
	}
	if _, err := overlayData(long, "/u", "/w"); err == nil {
		t.Fatal("over-long options accepted")
	}
}

func TestCappedBuffer(t *testing.T) {
	budget := &outputBudget{left: 7}
	a, b := &cappedBuffer{budget: budget}, &cappedBuffer{budget: budget}
	for i, s := range []string{"abc", "de", "fgh", "ij"} {
		w := a
		if i%2 == 1 {
			w = b
		}
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("write %q: %d %v", s, n, err)
		}
	}
	// The two streams share one budget.
	if string(a.b) != "abcfg" || string(b.b) != "de" {
		t.Fatalf("%q %q", a.b, b.b)
	}
}

func TestBroadcasterDropsOldest(t *testing.T) {
	m := &Manager{events: newBroadcaster()}
	sub := m.Subscribe()
	defer sub.Close()
	for i := 0; i < eventBuffer+10; i++ {
		m.events.publish(Event{ContainerID: string(rune('a' + i%26)), Time: time.Unix(int64(i), 0)})
	}
	first := <-sub.C()
	if first.Time.Unix() != 10 {
		t.Fatalf("oldest kept event is %d, want 10", first.Time.Unix())
	}
	if len(sub.C()) != eventBuffer-1 {
		t.Fatalf("%d buffered", len(sub.C()))
	}
	sub.Close()
	m.events.publish(Event{}) // no subscriber: must not block
}

func TestCPURate(t *testing.T) {
	s := newSampler(&Manager{})
	t0 := time.Now()
	if r := s.rate("c", t0, 1e9); r != nil {
		t.Fatal("rate from one sample")
	}
	if r := s.rate("c", t0.Add(100*time.Millisecond), 1.05e9); r != nil {
		t.Fatal("rate over a sliver")
	}
	r := s.rate("c", t0.Add(2*time.Second), 2e9)
	if r == nil || *r != 5e8 {
		t.Fatalf("rate %v, want half a core", r)
	}
	if r2 := s.rate("c", t0.Add(2100*time.Millisecond), 2.01e9); r2 == nil || *r2 != *r {
		t.Fatalf("rate within window %v, want the last one", r2)
	}
	if r := s.rate("c", t0.Add(3*time.Second), 10); r != nil {
		t.Fatal("rate across a counter reset")
	}
}

func TestParseNetDev(t *testing.T) {
	in := `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0
  net1: 5 1 0 0 0 0 0 0 6 1 0 0 0 0 0 0
  eth0:   1234      10    2    0    0     0          0         0     5678      20    3    0    0     0       0          0
`
	n, err := parseNetDev(bufio.NewScanner(strings.NewReader(in)))
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Interfaces) != 2 || n.Interfaces[0].Name != "eth0" {
		t.Fatalf("%+v", n.Interfaces)
	}
	if e := n.Interfaces[0]; e.RxBytes != 1234 || e.RxErrors != 2 || e.TxBytes != 5678 || e.TxErrors != 3 {
		t.Fatalf("%+v", e)
	}
}
