package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	var xs []float64
	for i := 30; i >= 1; i-- {
		xs = append(xs, float64(i))
	}
	for _, c := range []struct{ p, want float64 }{{50, 15}, {95, 29}, {100, 30}, {0, 1}} {
		if got := percentile(xs, c.p); got != c.want {
			t.Errorf("p%v of 1..30 = %v, want %v", c.p, got, c.want)
		}
	}
	if xs[0] != 30 {
		t.Error("percentile sorted its input in place")
	}
	if !math.IsNaN(percentile(nil, 50)) {
		t.Error("percentile of no samples is not NaN")
	}
}

func TestTableAndPlot(t *testing.T) {
	r := &results{Runtimes: []string{"a", "b"}, Samples: map[string]map[string][]float64{}, Values: map[string]map[string]float64{}}
	for i := 1; i <= 10; i++ {
		r.add("op", "a", time.Duration(i)*time.Millisecond)
		r.add("op", "b", time.Duration(2*i)*time.Millisecond)
	}
	r.set("rss", "Mi", "a", 10)
	r.set("rss", "Mi", "b", 40)
	var out bytes.Buffer
	r.printTable(&out)
	for _, want := range []string{"op", "5.0ms", "10.0ms", "0.50", "rss", "0.25"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	png := filepath.Join(t.TempDir(), "p.png")
	if err := writeBoxPlot(png, r); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(png); err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Fatalf("plot is not a PNG: %v", err)
	}
}
