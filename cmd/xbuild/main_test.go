package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestBuildArgsFromManifest(t *testing.T) {
	args, err := buildArgs("../../xcaddy.json", "/tmp/out/caddy")
	if err != nil {
		t.Fatal(err)
	}
	root, _ := filepath.Abs("../..")
	want := []string{"build", "v2.11.9", "--output", "/tmp/out/caddy",
		"--with", "github.com/caddy-direct-upload/caddy-direct-upload@v0.0.0=" + root}
	if !reflect.DeepEqual(args, want) {
		t.Fatalf("args = %q\nwant %q", args, want)
	}
}

func TestBuildArgsRefusesUnknownFields(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.json")
	os.WriteFile(p, []byte(`{"caddy_version":"v2.11.9","plugin":[]}`), 0o644)
	if _, err := buildArgs(p, "caddy"); err == nil {
		t.Fatal("a misspelt field was accepted")
	}
}
