package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2"
)

// Source reads what exists now from crisp's stores; each func runs once per
// scrape. A map should name every state, zeros included, so a state that
// empties reads 0 instead of vanishing.
type Source struct {
	Pods       func() map[string]int // by state
	Containers func() map[string]int // by state
	// Monitors counts the crisp-monitor processes alive.
	Monitors func() int
	// ImageStoreBytes is the disk the image store uses (blobs and layers).
	ImageStoreBytes func() (uint64, error)
}

var (
	podsDesc       = prometheus.NewDesc(namespace+"_pods", "Pod sandboxes, by state.", []string{"state"}, nil)
	containersDesc = prometheus.NewDesc(namespace+"_containers", "Containers, by state.", []string{"state"}, nil)
	monitorsDesc   = prometheus.NewDesc(namespace+"_monitors_running", "crisp-monitor processes alive, one per container that has not exited.", nil, nil)
	imageBytesDesc = prometheus.NewDesc(namespace+"_image_store_bytes", "Disk used by the image store: blobs and unpacked layers.", nil, nil)
)

// stateCollector turns a Source into gauges at scrape time.
type stateCollector struct{ src Source }

// RegisterSource makes /metrics report src. Call it once, at start-up.
func RegisterSource(src Source) error { return Registry.Register(stateCollector{src}) }

func (stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- podsDesc
	ch <- containersDesc
	ch <- monitorsDesc
	ch <- imageBytesDesc
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	for state, n := range c.src.Pods() {
		ch <- prometheus.MustNewConstMetric(podsDesc, prometheus.GaugeValue, float64(n), state)
	}
	for state, n := range c.src.Containers() {
		ch <- prometheus.MustNewConstMetric(containersDesc, prometheus.GaugeValue, float64(n), state)
	}
	ch <- prometheus.MustNewConstMetric(monitorsDesc, prometheus.GaugeValue, float64(c.src.Monitors()))
	n, err := c.src.ImageStoreBytes()
	if err != nil {
		// One missing sample beats a failed scrape that hides every other.
		klog.ErrorS(err, "Measuring the image store for /metrics")
		return
	}
	ch <- prometheus.MustNewConstMetric(imageBytesDesc, prometheus.GaugeValue, float64(n))
}
