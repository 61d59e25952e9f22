// Package directupload is a Caddy v2 plugin that lets browsers upload files
// straight to S3-compatible storage while the backend behind Caddy stays
// untouched: Caddy grants each upload (a presigned POST with an exact key,
// type, size range and short expiry), records the upload intent in Badger,
// verifies what arrived, and tells the backend.
//
// Importing this package registers the Caddy modules:
//
//	direct_upload                 app: the intent store and webhook dispatcher
//	http.handlers.direct_upload   handler and Caddyfile directive direct_upload
//	admin.api.direct_upload       admin routes: webhook deliveries, redelivery
//	caddy direct-upload           subcommand: secret, check (see docs/doctor.md)
package directupload

import (
	_ "github.com/caddy-direct-upload/caddy-direct-upload/module/app"
	_ "github.com/caddy-direct-upload/caddy-direct-upload/module/command"
	_ "github.com/caddy-direct-upload/caddy-direct-upload/module/console"
	_ "github.com/caddy-direct-upload/caddy-direct-upload/module/handler"
)
