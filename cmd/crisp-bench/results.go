package main

import (
	"fmt"
	"io"
	"math"
	"sort"
	"sync"
	"time"
)

// results holds every latency sample in milliseconds, per metric and
// runtime, and single values (memory in MiB, counts) likewise.
type results struct {
	mu       sync.Mutex
	Started  time.Time
	Finished time.Time
	Runtimes []string
	Versions []string
	Order    []string                        // metrics in the order first recorded
	Samples  map[string]map[string][]float64 // metric -> runtime -> ms
	Values   map[string]map[string]float64   // metric -> runtime -> value
	Units    map[string]string               `json:"Units,omitempty"` // metric -> unit of Values
	Notes    []string
	Phases   []*phaseStats `json:"Phases,omitempty"` // crisp's steps per scenario (-phase-log)
}

func (r *results) add(metric, runtime string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Samples[metric] == nil {
		r.Samples[metric] = map[string][]float64{}
		r.Order = append(r.Order, metric)
	}
	r.Samples[metric][runtime] = append(r.Samples[metric][runtime], float64(d.Microseconds())/1000)
}

func (r *results) set(metric, unit, runtime string, v float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Values[metric] == nil {
		r.Values[metric] = map[string]float64{}
		r.Order = append(r.Order, metric)
	}
	if r.Units == nil {
		r.Units = map[string]string{}
	}
	r.Units[metric] = unit
	r.Values[metric][runtime] = v
}

func (r *results) note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// percentile uses the nearest-rank method: with 30 samples p95 is the 29th.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	rank := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(rank, len(s)-1))]
}

func (r *results) printTable(w io.Writer) {
	for _, v := range r.Versions {
		fmt.Fprintln(w, v)
	}
	if len(r.Runtimes) == 0 {
		return
	}
	a := r.Runtimes[0]
	b := a
	if len(r.Runtimes) > 1 {
		b = r.Runtimes[1]
	}
	fmt.Fprintf(w, "\n%-44s %4s %10s %10s %10s %10s %7s %7s\n", "metric", "n", a+" p50", a+" p95", b+" p50", b+" p95", "p50 ×", "p95 ×")
	for _, m := range r.Order {
		if s, ok := r.Samples[m]; ok {
			a50, a95 := percentile(s[a], 50), percentile(s[a], 95)
			b50, b95 := percentile(s[b], 50), percentile(s[b], 95)
			fmt.Fprintf(w, "%-44s %4d %8.1fms %8.1fms %8.1fms %8.1fms %7.2f %7.2f\n", m, len(s[a]), a50, a95, b50, b95, a50/b50, a95/b95)
			continue
		}
		v := r.Values[m]
		fmt.Fprintf(w, "%-44s %4s %8.1f%-2s %10s %8.1f%-2s %10s %7.2f\n", m, "", v[a], r.Units[m], "", v[b], r.Units[m], "", v[a]/v[b])
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	r.printPhases(w)
}
