// Command junit-summary reads a JUnit XML report written by ginkgo (for
// example critest's -ginkgo.junit-report) and prints one line:
//
//	<prefix>: N passed, N failed, N skipped
//
// It exits 1 when any spec failed, 2 when the report cannot be read, and 0
// otherwise. With -failed it also lists the names of the failed specs (before
// the summary line, so that the summary stays the last line of output).
//
// With -specs, the argument is a ginkgo JSON report instead (for example of a
// critest -ginkgo.dry-run -ginkgo.json-report=FILE run) and the command lists
// every spec grouped by its top-level container, with per-group counts and
// whether each spec would run ("run") or is skipped ("skip").
//
// Suite-level setup nodes that ginkgo reports as test cases
// ([BeforeSuite], [SynchronizedAfterSuite], [ReportAfterSuite], ...) are not
// counted as passed or skipped specs, but their failures are counted as
// failures, since a failed setup node means the run is broken.
package main

import (
	"encoding/json"
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

type testsuites struct {
	Suites []testsuite `xml:"testsuite"`
}

type testsuite struct {
	Name   string      `xml:"name,attr"`
	Cases  []testcase  `xml:"testcase"`
	Suites []testsuite `xml:"testsuite"`
}

type testcase struct {
	Name    string    `xml:"name,attr"`
	Status  string    `xml:"status,attr"`
	Failure *struct{} `xml:"failure"`
	Error   *struct{} `xml:"error"`
	Skipped *struct{} `xml:"skipped"`
}

type counts struct {
	passed, failed, skipped int
	failedNames             []string
}

func isSuiteNode(name string) bool {
	for _, p := range []string{
		"[BeforeSuite]", "[AfterSuite]",
		"[SynchronizedBeforeSuite]", "[SynchronizedAfterSuite]",
		"[ReportBeforeSuite]", "[ReportAfterSuite]",
		"[DeferCleanup (Suite)]",
	} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func (c *counts) add(tc testcase) {
	status := strings.ToLower(tc.Status)
	failed := tc.Failure != nil || tc.Error != nil
	switch status {
	case "failed", "panicked", "interrupted", "aborted", "timedout":
		failed = true
	}
	switch {
	case failed:
		c.failed++
		c.failedNames = append(c.failedNames, tc.Name)
	case isSuiteNode(tc.Name):
		// setup node that did not fail: not a spec
	case status == "skipped" || status == "pending" || tc.Skipped != nil:
		c.skipped++
	default:
		c.passed++
	}
}

func (c *counts) walk(s testsuite) {
	for _, tc := range s.Cases {
		c.add(tc)
	}
	for _, sub := range s.Suites {
		c.walk(sub)
	}
}

func parse(r io.Reader) (*counts, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	c := &counts{}
	// The root is either <testsuites> or a single <testsuite>.
	var root struct {
		XMLName xml.Name
	}
	if err := xml.Unmarshal(data, &root); err != nil {
		return nil, err
	}
	switch root.XMLName.Local {
	case "testsuites":
		var ts testsuites
		if err := xml.Unmarshal(data, &ts); err != nil {
			return nil, err
		}
		for _, s := range ts.Suites {
			c.walk(s)
		}
	case "testsuite":
		var s testsuite
		if err := xml.Unmarshal(data, &s); err != nil {
			return nil, err
		}
		c.walk(s)
	default:
		return nil, fmt.Errorf("unexpected root element <%s>", root.XMLName.Local)
	}
	return c, nil
}

func main() {
	prefix := flag.String("prefix", "critest", "word printed before the counts")
	listFailed := flag.Bool("failed", false, "list the names of failed specs")
	specs := flag.Bool("specs", false, "list the specs of a ginkgo JSON report, grouped")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s [-prefix WORD] [-failed] junit.xml\n       %s -specs ginkgo-report.json\n", os.Args[0], os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	f, err := os.Open(flag.Arg(0))
	if err != nil {
		fmt.Fprintf(os.Stderr, "junit-summary: %v\n", err)
		os.Exit(2)
	}
	defer f.Close()
	if *specs {
		if err := listSpecs(f, os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "junit-summary: %s: %v\n", flag.Arg(0), err)
			os.Exit(2)
		}
		return
	}
	c, err := parse(f)
	if err != nil {
		fmt.Fprintf(os.Stderr, "junit-summary: %s: %v\n", flag.Arg(0), err)
		os.Exit(2)
	}
	if *listFailed {
		for _, n := range c.failedNames {
			fmt.Printf("FAILED: %s\n", n)
		}
	}
	fmt.Printf("%s: %d passed, %d failed, %d skipped\n", *prefix, c.passed, c.failed, c.skipped)
	if c.failed > 0 {
		os.Exit(1)
	}
}

type ginkgoSuite struct {
	SuiteDescription string
	SpecReports      []struct {
		LeafNodeType            string
		LeafNodeText            string
		ContainerHierarchyTexts []string
		LeafNodeLabels          []string
		State                   string
	}
}

func listSpecs(r io.Reader, w io.Writer) error {
	var suites []ginkgoSuite
	if err := json.NewDecoder(r).Decode(&suites); err != nil {
		return err
	}
	type spec struct{ text, state string }
	groups := map[string][]spec{}
	total, run := 0, 0
	for _, s := range suites {
		for _, sr := range s.SpecReports {
			if sr.LeafNodeType != "It" {
				continue
			}
			group, rest := "(top level)", sr.ContainerHierarchyTexts
			if len(rest) > 0 {
				group, rest = rest[0], rest[1:]
			}
			text := strings.Join(append(append([]string{}, rest...), sr.LeafNodeText), " ")
			if len(sr.LeafNodeLabels) > 0 {
				text += " [" + strings.Join(sr.LeafNodeLabels, ", ") + "]"
			}
			state := "skip"
			if sr.State == "passed" {
				state = "run"
				run++
			}
			total++
			groups[group] = append(groups[group], spec{text, state})
		}
	}
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "%d specs, %d would run, %d skipped\n", total, run, total-run)
	fmt.Fprintf(w, "(\"run\": selected by focus/skip; a spec may still skip itself at run time)\n\n")
	fmt.Fprintf(w, "%5s %5s  %s\n", "specs", "run", "top-level group")
	for _, g := range names {
		n := 0
		for _, s := range groups[g] {
			if s.state == "run" {
				n++
			}
		}
		fmt.Fprintf(w, "%5d %5d  %s\n", len(groups[g]), n, g)
	}
	for _, g := range names {
		fmt.Fprintf(w, "\n%s (%d)\n", g, len(groups[g]))
		sort.Slice(groups[g], func(i, j int) bool { return groups[g][i].text < groups[g][j].text })
		for _, s := range groups[g] {
			fmt.Fprintf(w, "  %-4s  %s\n", s.state, s.text)
		}
	}
	return nil
}
