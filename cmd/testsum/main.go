// Command testsum reads `go test -json` on stdin and prints what a person
// needs from a long run: one line per package as it finishes, the full
// output of every failed test (and of a package that failed outside any
// test: a build error, a TestMain setup error, a timeout), then the names of
// the failed tests and a final count line:
//
//	312 passed, 1 failed, 0 skipped
//
// It exits 1 when anything failed.
//
//	set -o pipefail; go test -json ./... | go run ./cmd/testsum
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	Test       string
	Elapsed    float64
	Output     string
	ImportPath string // build-output and build-fail
}

// With -notes DIR, the *.txt files in DIR (counts the tests wrote there,
// such as the fault matrix's) are printed just before the count line.
func main() {
	dir := flag.String("notes", "", "directory of *.txt notes to print before the count line")
	flag.Parse()
	if !summarize(os.Stdin, os.Stdout, func() []string { return readNotes(*dir) }) {
		os.Exit(1)
	}
}

// readNotes reads the *.txt files of dir, in name order.
func readNotes(dir string) []string {
	if dir == "" {
		return nil
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.txt"))
	var out []string
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && len(b) > 0 {
			if b[len(b)-1] != '\n' {
				b = append(b, '\n')
			}
			out = append(out, string(b))
		}
	}
	return out
}

type pkgState struct {
	output  strings.Builder             // package-level output
	tests   map[string]*strings.Builder // output of tests still running
	running map[string]bool
}

// summarize copies the summary of the JSON stream r to w and reports
// whether everything passed.
// notes, if given, is called once the stream has ended (the tests wrote
// their notes by then) for the notes to print before the count line.
func summarize(r io.Reader, w io.Writer, notes ...func() []string) bool {
	var (
		pkgs                    = map[string]*pkgState{}
		builds                  = map[string]*strings.Builder{}
		passed, failed, skipped int
		pkgCount, pkgFailed     int
		failedNames             []string
		sawEvent                bool
	)
	state := func(p string) *pkgState {
		s, ok := pkgs[p]
		if !ok {
			s = &pkgState{tests: map[string]*strings.Builder{}, running: map[string]bool{}}
			pkgs[p] = s
		}
		return s
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			fmt.Fprintf(w, "%s\n", line) // not JSON: go's own messages
			continue
		}
		sawEvent = true
		switch e.Action {
		case "build-output":
			b, ok := builds[e.ImportPath]
			if !ok {
				b = new(strings.Builder)
				builds[e.ImportPath] = b
			}
			b.WriteString(e.Output)
			continue
		case "build-fail":
			fmt.Fprintf(w, "BUILD FAIL %s\n%s", e.ImportPath, builds[e.ImportPath])
			continue
		}
		s := state(e.Package)
		if e.Test == "" {
			switch e.Action {
			case "output":
				s.output.WriteString(e.Output)
			case "pass":
				pkgCount++
				fmt.Fprintf(w, "ok    %s (%s)\n", e.Package, dur(e.Elapsed))
			case "skip":
				pkgCount++ // no test files
			case "fail":
				pkgCount++
				pkgFailed++
				fmt.Fprintf(w, "FAIL  %s (%s)\n", e.Package, dur(e.Elapsed))
				if len(s.running) > 0 {
					names := make([]string, 0, len(s.running))
					for n := range s.running {
						names = append(names, n)
						fmt.Fprintf(w, "%s", s.tests[n])
					}
					sort.Strings(names)
					fmt.Fprintf(w, "    still running when the package ended: %s\n", strings.Join(names, ", "))
					for _, n := range names {
						failedNames = append(failedNames, e.Package+" "+n+" (did not finish)")
						failed++
					}
				}
				fmt.Fprintf(w, "%s", indent(s.output.String()))
			}
			continue
		}
		switch e.Action {
		case "run":
			s.running[e.Test] = true
			s.tests[e.Test] = new(strings.Builder)
		case "output":
			if b := s.tests[e.Test]; b != nil {
				b.WriteString(e.Output)
			}
		case "pass", "skip", "fail":
			out := s.tests[e.Test]
			delete(s.running, e.Test)
			delete(s.tests, e.Test)
			switch e.Action {
			case "pass":
				passed++
			case "skip":
				skipped++
			case "fail":
				failed++
				failedNames = append(failedNames, e.Package+" "+e.Test)
				fmt.Fprintf(w, "--- FAIL %s %s (%s)\n", e.Package, e.Test, dur(e.Elapsed))
				if out != nil {
					fmt.Fprintf(w, "%s", indent(out.String()))
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(w, "testsum: reading the test output: %v\n", err)
		return false
	}
	if len(failedNames) > 0 {
		fmt.Fprintf(w, "\nFailed:\n")
		for _, n := range failedNames {
			fmt.Fprintf(w, "    %s\n", n)
		}
	}
	fmt.Fprintf(w, "\n%d packages", pkgCount)
	if pkgFailed > 0 {
		fmt.Fprintf(w, ", %d failed", pkgFailed)
	}
	fmt.Fprintf(w, "\n")
	for _, read := range notes {
		for _, n := range read() {
			fmt.Fprint(w, n)
		}
	}
	// Alone on the last line, in the plain form CI reads.
	fmt.Fprintf(w, "%d passed, %d failed, %d skipped\n", passed, failed, skipped)
	if !sawEvent {
		fmt.Fprintf(w, "testsum: no `go test -json` events on stdin\n")
		return false
	}
	return failed == 0 && pkgFailed == 0
}

func dur(sec float64) string {
	return time.Duration(sec * float64(time.Second)).Round(10 * time.Millisecond).String()
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n    ") + "\n"
}
