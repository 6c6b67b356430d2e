package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"time"

	"github.com/crisp-runtime/crisp/internal/phase"
)

// phaseLog follows one runtime's log, in which crisp at -v=4 writes one
// "Phases" line per start-path RPC (internal/phase): the steps of each
// scenario's calls become the phase table.
type phaseLog struct {
	runtime, path string
	offset        int64
}

// phaseLine matches klog's text form of phase.Timer.Log.
var phaseLine = regexp.MustCompile(`"Phases" method="([A-Za-z]+)".* ms="([^"]*)"`)

// phaseStats are the steps of one RPC in one scenario.
type phaseStats struct {
	Scenario, Method string
	Order            []string
	Steps            map[string][]float64 // ms
	Total            []float64
}

// mark remembers where the log ends now: the next collect reads from here.
func (p *phaseLog) mark() {
	if fi, err := os.Stat(p.path); err == nil {
		p.offset = fi.Size()
	}
}

// collect reads the Phases lines written since mark.
func (p *phaseLog) collect(scenario string) []*phaseStats {
	f, err := os.Open(p.path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(p.offset, io.SeekStart); err != nil {
		return nil
	}
	byMethod := map[string]*phaseStats{}
	var out []*phaseStats
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := phaseLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		st := byMethod[m[1]]
		if st == nil {
			st = &phaseStats{Scenario: scenario, Method: m[1], Steps: map[string][]float64{}}
			byMethod[m[1]] = st
			out = append(out, st)
		}
		steps, total := phase.Parse(m[2])
		seen := map[string]bool{}
		for _, s := range steps {
			if _, ok := st.Steps[s.Name]; !ok {
				st.Order = append(st.Order, s.Name)
			}
			// A step that repeats within one call (none do today) adds up.
			if seen[s.Name] {
				xs := st.Steps[s.Name]
				xs[len(xs)-1] += ms(s.D)
				continue
			}
			seen[s.Name] = true
			st.Steps[s.Name] = append(st.Steps[s.Name], ms(s.D))
		}
		st.Total = append(st.Total, ms(total))
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (r *results) printPhases(w io.Writer) {
	if len(r.Phases) == 0 {
		return
	}
	fmt.Fprintf(w, "\nphases: the steps of crisp's start-path RPCs from its -v=4 log, ms p50 / p95 (a step's p50s need not add up to the total's)\n")
	for _, st := range r.Phases {
		fmt.Fprintf(w, "%-10s %-16s n=%-4d total %7.2f / %7.2f\n", st.Scenario, st.Method, len(st.Total), percentile(st.Total, 50), percentile(st.Total, 95))
		for _, name := range st.Order {
			xs := st.Steps[name]
			fmt.Fprintf(w, "    %-30s %7.2f / %7.2f\n", name, percentile(xs, 50), percentile(xs, 95))
		}
	}
}
