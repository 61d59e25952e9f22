// Package integration holds the end-to-end tests: the custom Caddy binary
// running Caddyfile.example in front of the example backend, against a real
// versitygw that checks signatures and POST policies.
package integration
