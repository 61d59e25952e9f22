package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSummarizeRealGoTest runs `go test -json` on a throwaway module with
// passing, failing, skipped and sub-tests, a package that does not build
// and one whose TestMain fails, and checks the summary.
func TestSummarizeRealGoTest(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/m\n\ngo 1.22\n",
		"a/a_test.go": `package a
import "testing"
func TestOK(t *testing.T) {}
func TestBroken(t *testing.T) { t.Log("the detail of the failure"); t.Fatal("boom") }
func TestSkipped(t *testing.T) { t.Skip("not here") }
func TestParent(t *testing.T) {
	t.Run("fine", func(t *testing.T) {})
	t.Run("bad", func(t *testing.T) { t.Error("sub boom") })
}
`,
		"b/b_test.go": `package b
import "testing"
func TestNothing(t *testing.T) { undefined() }
`,
		"c/c_test.go": `package c
import ("fmt"; "os"; "testing")
func TestMain(m *testing.M) { fmt.Println("setup: the S3 server did not start"); os.Exit(1) }
func TestNeverRuns(t *testing.T) {}
`,
		"d/d_test.go": `package d
import "testing"
func TestFine(t *testing.T) {}
`,
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "test", "-json", "-count=1", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	raw, _ := cmd.Output() // fails: some tests do
	var out bytes.Buffer
	if summarize(bytes.NewReader(raw), &out) {
		t.Errorf("summarize reported success:\n%s", out.String())
	}
	got := out.String()
	for _, want := range []string{
		"--- FAIL example.com/m/a TestBroken",
		"the detail of the failure",
		"--- FAIL example.com/m/a TestParent/bad",
		"sub boom",
		"example.com/m/b", "undefined",
		"FAIL  example.com/m/c", "setup: the S3 server did not start",
		"ok    example.com/m/d",
		"Failed:\n",
		"\n3 passed, 3 failed, 1 skipped\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "TestOK") {
		t.Errorf("a passing test's output is shown:\n%s", got)
	}
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if last := lines[len(lines)-1]; last != "3 passed, 3 failed, 1 skipped" {
		t.Errorf("last line is %q, want the count", last)
	}
}

func TestSummarizeAllPassed(t *testing.T) {
	in := `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"pass","Package":"p","Test":"TestA","Elapsed":0.1}
{"Action":"pass","Package":"p","Elapsed":0.2}
`
	var out bytes.Buffer
	if !summarize(strings.NewReader(in), &out) {
		t.Errorf("failure reported:\n%s", out.String())
	}
	if !strings.HasSuffix(out.String(), "\n1 packages\n1 passed, 0 failed, 0 skipped\n") {
		t.Errorf("summary:\n%s", out.String())
	}
	if summarize(strings.NewReader(""), &out) {
		t.Error("no input counted as success")
	}
}

// TestNotesBeforeCount: notes the tests wrote are printed, and the count
// line stays the last line.
func TestNotesBeforeCount(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "crash.txt"), []byte("crash loop: 32 cycles"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := `{"Action":"pass","Package":"p","Test":"TestA","Elapsed":0.1}
{"Action":"pass","Package":"p","Elapsed":0.2}
`
	// The note is written while the tests run, after testsum started.
	r, w := io.Pipe()
	go func() {
		io.WriteString(w, in)
		os.WriteFile(filepath.Join(dir, "late.txt"), []byte("fleet: 150 intents\n"), 0o644)
		w.Close()
	}()
	var out bytes.Buffer
	summarize(r, &out, func() []string { return readNotes(dir) })
	if !strings.HasSuffix(out.String(), "crash loop: 32 cycles\nfleet: 150 intents\n1 passed, 0 failed, 0 skipped\n") {
		t.Errorf("summary:\n%s", out.String())
	}
}
