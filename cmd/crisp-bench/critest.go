package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// critestSet is the part of critest -benchmark's result files
// (<output dir>/*_benchmark_data.json) that the summary needs.
type critestSet struct {
	OperationsNames []string `json:"operationsNames"`
	Datapoints      []struct {
		OperationsDurationsNs []int64 `json:"operationsDurationsNs"`
	} `json:"datapoints"`
}

// critestSummary prints critest's per-operation samples from one output
// directory per runtime (the runtime is named after the directory's last
// dash-separated word) as the same p50/p95/ratio table as the main run.
func critestSummary(dirs []string) error {
	res := &results{Samples: map[string]map[string][]float64{}, Values: map[string]map[string]float64{}}
	for _, dir := range dirs {
		name := filepath.Base(dir)
		if i := strings.LastIndex(name, "-"); i >= 0 {
			name = name[i+1:]
		}
		res.Runtimes = append(res.Runtimes, name)
		files, err := filepath.Glob(filepath.Join(dir, "*_data.json"))
		if err != nil {
			return err
		}
		if len(files) == 0 {
			res.note("%s: no critest results in %s", name, dir)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			var set critestSet
			if err := json.Unmarshal(data, &set); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			bench := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(f), "_data.json"), "_benchmark")
			for _, dp := range set.Datapoints {
				for i, ns := range dp.OperationsDurationsNs {
					if i < len(set.OperationsNames) {
						res.add("critest "+bench+": "+set.OperationsNames[i], name, time.Duration(ns))
					}
				}
			}
		}
	}
	res.printTable(os.Stdout)
	return nil
}
