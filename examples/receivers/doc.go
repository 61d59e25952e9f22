// Package receivers holds example webhook receivers for caddy-direct-upload,
// one per language, and a test that runs each of them as a separate process:
//
//	go/main.go         Go, with the Standard Webhooks Go library
//	node/server.mjs    Node 20, node:http and the standardwebhooks package
//	python/receiver.py Python 3, standard library only, verification by hand
//
// Each one serves POST /webhooks/uploads and GET /healthz on 127.0.0.1,
// reads its secret ("whsec_" + base64) from WEBHOOK_SECRET, verifies the
// Standard Webhooks signature against the raw body (any v1 signature may
// match, so secrets can be rotated; the timestamp must be within 5 minutes
// of now), deduplicates on webhook-id, answers {"ok":true,"message":...}
// and prints one JSON line per new verified event to stdout:
//
//	{"webhook_id":"evt_…","type":"upload.completed","intent_id":"01m8…","status":"completed"}
//
// The test needs go, node and python3 on PATH, and the Node receiver's
// dependencies installed first:
//
//	npm ci --prefix examples/receivers/node
package receivers
