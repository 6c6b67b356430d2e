package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPhaseLogCollect(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crisp.log")
	old := `I1204 22:00:00.000000 1 instrument.go:60] "Phases" method="CreateContainer" pod="p" ms="record=9.00 total=9.00"` + "\n"
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	pl := &phaseLog{runtime: "crisp", path: path}
	pl.mark() // the line above is of an earlier scenario
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`I1204 22:00:01.000000 1 instrument.go:60] "Phases" method="CreateContainer" pod="p" ms="record=1.00 spawn=3.00 total=4.00"` + "\n")
	f.WriteString(`I1204 22:00:01.000000 1 instrument.go:60] "RPC done" method="CreateContainer" duration="4ms"` + "\n")
	f.WriteString(`I1204 22:00:02.000000 1 instrument.go:60] "Phases" method="CreateContainer" pod="p" ms="record=2.00 spawn=5.00 total=7.00"` + "\n")
	f.WriteString(`I1204 22:00:02.000000 1 instrument.go:60] "Phases" method="ExecSync" container="c" ms="libct-run=2.00 total=2.00"` + "\n")
	f.Close()
	got := pl.collect("container")
	if len(got) != 2 || got[0].Method != "CreateContainer" || got[1].Method != "ExecSync" {
		t.Fatalf("collect = %+v", got)
	}
	c := got[0]
	if len(c.Total) != 2 || c.Total[1] != 7 || len(c.Order) != 2 || c.Order[1] != "spawn" || c.Steps["spawn"][0] != 3 || c.Steps["record"][1] != 2 {
		t.Fatalf("CreateContainer steps = %+v", c)
	}
}
