// Command xbuild builds Caddy with xcaddy from the manifest xcaddy.json,
// which has the JSON shape of xcaddy.Builder (caddy_version, plugins,
// replacements). xcaddy itself reads no config file; this turns the
// manifest into its command line.
//
//	go run ./cmd/xbuild [-manifest xcaddy.json] [-xcaddy xcaddy] [-output caddy]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// manifest mirrors the fields of xcaddy.Builder that xbuild uses.
type manifest struct {
	CaddyVersion string `json:"caddy_version"`
	Plugins      []struct {
		ModulePath string `json:"module_path"`
		Version    string `json:"version"`
	} `json:"plugins"`
	Replacements []struct {
		Old string `json:"old"`
		New string `json:"new"`
	} `json:"replacements"`
}

func main() {
	path := flag.String("manifest", "xcaddy.json", "build manifest")
	xcaddy := flag.String("xcaddy", "xcaddy", "xcaddy binary")
	output := flag.String("output", "caddy", "binary to write")
	flag.Parse()

	args, err := buildArgs(*path, *output)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(*xcaddy, strings.Join(args, " "))
	cmd := exec.Command(*xcaddy, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		log.Fatalf("xcaddy: %v", err)
	}
}

// buildArgs turns the manifest into xcaddy's arguments. A plugin with a
// local replacement becomes --with module@version=/abs/path, which is the
// form the module proxy here accepts for modules it does not know.
func buildArgs(path, output string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m manifest
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if m.CaddyVersion == "" {
		return nil, fmt.Errorf("%s: caddy_version is required", path)
	}
	base := filepath.Dir(path)
	repl := map[string]string{}
	for _, r := range m.Replacements {
		dir := r.New
		if strings.HasPrefix(dir, ".") || strings.HasPrefix(dir, "/") {
			abs, err := filepath.Abs(filepath.Join(base, dir))
			if err != nil {
				return nil, err
			}
			dir = abs
		}
		repl[r.Old] = dir
	}
	outAbs, err := filepath.Abs(output)
	if err != nil {
		return nil, err
	}
	args := []string{"build", m.CaddyVersion, "--output", outAbs}
	for _, p := range m.Plugins {
		with := p.ModulePath
		if p.Version != "" {
			with += "@" + p.Version
		}
		if dir, ok := repl[p.ModulePath]; ok {
			with += "=" + dir
			delete(repl, p.ModulePath)
		}
		args = append(args, "--with", with)
	}
	for old, dir := range repl {
		args = append(args, "--replace", old+"="+dir)
	}
	return args, nil
}
