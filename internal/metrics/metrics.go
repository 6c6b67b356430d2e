// Package metrics defines every Prometheus metric crisp serves, in one place
// and under one prefix (crisp_), so the list in the README has one source.
//
// It is a leaf: the packages that do the work (image, network, container,
// sandbox, streaming, cri) call the small functions below where the work
// happens, as containerd's and CRI-O's packages update their package-level
// collectors. Counts of things that exist (pods and containers by state,
// monitors, the image store's size) are not kept here at all: a Collector
// reads them from the stores at scrape time (see states.go), so they cannot
// drift from what List answers.
//
// The collectors live in this package's own Registry, not the global one:
// libraries crisp links cannot add metrics to /metrics behind its back.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const namespace = "crisp"

// Registry holds crisp's collectors plus the Go runtime and process ones.
var Registry = prometheus.NewRegistry()

// Bucket bounds in seconds. CRI calls range from microsecond list answers to
// pulls and pod starts of minutes; a pull is mostly network.
var (
	rpcBuckets  = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120}
	pullBuckets = []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
	cniBuckets  = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
)

var (
	criRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "cri", Name: "requests_total",
		Help: "CRI requests answered, by method and gRPC code.",
	}, []string{"method", "code"})
	criDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "cri", Name: "request_duration_seconds",
		Help: "Time to answer a CRI request, by method and gRPC code.", Buckets: rpcBuckets,
	}, []string{"method", "code"})

	containerStarts = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "container", Name: "starts_total",
		Help: "Containers started.",
	})
	containerExits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "container", Name: "exits_total",
		Help: "Container exits recorded, by reason (Completed, Error, OOMKilled).",
	}, []string{"reason"})

	imagePulls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "image", Name: "pulls_total",
		Help: "Image pulls, by result (success, failure).",
	}, []string{"result"})
	imagePullBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "image", Name: "pull_bytes_total",
		Help: "Bytes of image configs and compressed layers downloaded and verified.",
	})
	imagePullDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "image", Name: "pull_duration_seconds",
		Help: "Time a successful pull took.", Buckets: pullBuckets,
	})
	layersUnpacked = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "image", Name: "layers_unpacked_total",
		Help: "Image layers unpacked into the store.",
	})

	cniDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "cni", Name: "operation_duration_seconds",
		Help: "Time of a CNI operation on a pod (ADD, DEL), failed ones included.", Buckets: cniBuckets,
	}, []string{"operation"})
	cniErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "cni", Name: "operation_errors_total",
		Help: "CNI operations that failed, by operation (ADD, DEL).",
	}, []string{"operation"})

	streamingSessions = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: namespace, Subsystem: "streaming", Name: "sessions",
		Help: "Streaming sessions open, by kind (exec, attach, portforward).",
	}, []string{"kind"})
	streamingRefused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "streaming", Name: "sessions_refused_total",
		Help: "Streaming sessions and forwarded connections refused because streaming.max_streams were open, by kind.",
	}, []string{"kind"})

	recovery = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: "recovery", Name: "objects_total",
		Help: "What start-up did with the pods and containers a previous crisp recorded, by object (pod, container) and outcome (recovered, rolled_back, quarantined).",
	}, []string{"object", "outcome"})
)

func init() {
	Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		criRequests, criDuration,
		containerStarts, containerExits,
		imagePulls, imagePullBytes, imagePullDuration, layersUnpacked,
		cniDuration, cniErrors,
		streamingSessions, streamingRefused,
		recovery,
	)
	// Series that exist before anything happened: a rate() over a counter
	// that appears with its first event misses that event.
	for _, r := range []string{ReasonCompleted, ReasonError, ReasonOOMKilled} {
		containerExits.WithLabelValues(r)
	}
	for _, r := range []string{"success", "failure"} {
		imagePulls.WithLabelValues(r)
	}
	for _, op := range []string{CNIAdd, CNIDel} {
		cniDuration.WithLabelValues(op)
		cniErrors.WithLabelValues(op)
	}
	for _, k := range []string{StreamExec, StreamAttach, StreamPortForward} {
		streamingSessions.WithLabelValues(k)
		streamingRefused.WithLabelValues(k)
	}
	for _, o := range []string{RecoveryPod, RecoveryContainer} {
		for _, out := range []string{Recovered, RolledBack, Quarantined} {
			recovery.WithLabelValues(o, out)
		}
	}
}

// CRIRequest counts one answered CRI request; code is the gRPC code's name.
func CRIRequest(method, code string, d time.Duration) {
	criRequests.WithLabelValues(method, code).Inc()
	criDuration.WithLabelValues(method, code).Observe(d.Seconds())
}

// Exit reasons, as the CRI reports them.
const (
	ReasonCompleted = "Completed"
	ReasonError     = "Error"
	ReasonOOMKilled = "OOMKilled"
)

// ContainerStarted counts a started container.
func ContainerStarted() { containerStarts.Inc() }

// ContainerExited counts an exit the first time it is recorded.
func ContainerExited(reason string) {
	switch reason {
	case ReasonCompleted, ReasonOOMKilled:
	default:
		reason = ReasonError // one series per CRI reason, whatever the monitor wrote
	}
	containerExits.WithLabelValues(reason).Inc()
}

// ImagePulled counts a finished pull; only successful ones have a duration
// worth comparing.
func ImagePulled(err error, d time.Duration) {
	if err != nil {
		imagePulls.WithLabelValues("failure").Inc()
		return
	}
	imagePulls.WithLabelValues("success").Inc()
	imagePullDuration.Observe(d.Seconds())
}

// ImageBytesPulled counts n bytes of a blob that was downloaded and verified.
func ImageBytesPulled(n int64) { imagePullBytes.Add(float64(n)) }

// LayerUnpacked counts a layer committed to the store.
func LayerUnpacked() { layersUnpacked.Inc() }

// CNI operations.
const (
	CNIAdd = "ADD"
	CNIDel = "DEL"
)

// CNIOperation records one CNI ADD or DEL of a pod.
func CNIOperation(op string, d time.Duration, err error) {
	cniDuration.WithLabelValues(op).Observe(d.Seconds())
	if err != nil {
		cniErrors.WithLabelValues(op).Inc()
	}
}

// Streaming session kinds, as the first element of their URL path.
const (
	StreamExec        = "exec"
	StreamAttach      = "attach"
	StreamPortForward = "portforward"
)

// StreamingSession counts an open session of kind; call the result when it ends.
func StreamingSession(kind string) (end func()) {
	g := streamingSessions.WithLabelValues(kind)
	g.Inc()
	return g.Dec
}

// StreamingRefused counts a session or forwarded connection refused for lack of slots.
func StreamingRefused(kind string) { streamingRefused.WithLabelValues(kind).Inc() }

// Recovery objects and outcomes.
const (
	RecoveryPod       = "pod"
	RecoveryContainer = "container"

	Recovered   = "recovered"   // back under management as it was
	RolledBack  = "rolled_back" // an interrupted create undone
	Quarantined = "quarantined" // a record start-up could not use, set aside for a person
)

// Recovery counts what start-up did with one recorded object.
func Recovery(object, outcome string) { recovery.WithLabelValues(object, outcome).Inc() }
