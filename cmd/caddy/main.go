// Command caddy is Caddy with its standard modules and the direct_upload plugin.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-direct-upload/caddy-direct-upload"
)

func main() {
	caddycmd.Main()
}
