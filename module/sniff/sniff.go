// Package sniff tells what a file really is from its first bytes, and whether
// that agrees with the content type a client declared.
//
// A declared Content-Type is only a claim: a client that may upload
// "image/png" can send HTML, which a browser would run if it were ever served
// inline. The sidecar reads the first bytes of every uploaded object and
// compares them with the claim before it reports the upload as completed.
package sniff

import (
	"bytes"
	"net/http"
	"strings"
	"unicode/utf8"
)

// HeadLen is how many leading bytes of an object Detect needs.
const HeadLen = 512

// Kinds of content Detect reports besides concrete MIME types.
const (
	// Text is UTF-8 text without markup a browser would interpret.
	Text = "text/plain"
	// HTML is markup a browser renders as a page.
	HTML = "text/html"
	// XML is generic XML, which browsers can render with scripts.
	XML = "text/xml"
	// SVG is an SVG document, an image that can carry scripts.
	SVG = "image/svg+xml"
	// Unknown is binary content with no signature known here.
	Unknown = ""
)

// Type describes a content type the sidecar can allow.
type Type struct {
	// MIME is the exact content type, lowercase, without parameters.
	MIME string
	// Ext is the file extension given to object keys, with its dot.
	Ext string
	// Active marks content a browser may execute (HTML, SVG, XML): it is
	// refused unless a profile lists it explicitly.
	Active bool
	// Signed marks types Detect recognises by signature: the object's bytes
	// must then be exactly this type.
	Signed bool
	// Textual marks text formats: the object must be text without markup.
	Textual bool
}

var types = map[string]Type{
	"image/jpeg":       {MIME: "image/jpeg", Ext: ".jpg", Signed: true},
	"image/png":        {MIME: "image/png", Ext: ".png", Signed: true},
	"image/gif":        {MIME: "image/gif", Ext: ".gif", Signed: true},
	"image/webp":       {MIME: "image/webp", Ext: ".webp", Signed: true},
	"image/avif":       {MIME: "image/avif", Ext: ".avif", Signed: true},
	"image/heic":       {MIME: "image/heic", Ext: ".heic", Signed: true},
	"image/bmp":        {MIME: "image/bmp", Ext: ".bmp", Signed: true},
	"image/tiff":       {MIME: "image/tiff", Ext: ".tiff", Signed: true},
	"application/pdf":  {MIME: "application/pdf", Ext: ".pdf", Signed: true},
	"application/zip":  {MIME: "application/zip", Ext: ".zip", Signed: true},
	"application/gzip": {MIME: "application/gzip", Ext: ".gz", Signed: true},
	"video/mp4":        {MIME: "video/mp4", Ext: ".mp4", Signed: true},
	"video/webm":       {MIME: "video/webm", Ext: ".webm", Signed: true},
	"audio/mpeg":       {MIME: "audio/mpeg", Ext: ".mp3", Signed: true},
	"audio/ogg":        {MIME: "audio/ogg", Ext: ".ogg", Signed: true},
	"text/plain":       {MIME: "text/plain", Ext: ".txt", Textual: true},
	"text/csv":         {MIME: "text/csv", Ext: ".csv", Textual: true},
	"text/markdown":    {MIME: "text/markdown", Ext: ".md", Textual: true},
	"application/json": {MIME: "application/json", Ext: ".json", Textual: true},
	"text/html":        {MIME: "text/html", Ext: ".html", Active: true, Signed: true},
	"image/svg+xml":    {MIME: "image/svg+xml", Ext: ".svg", Active: true, Signed: true},
	"text/xml":         {MIME: "text/xml", Ext: ".xml", Active: true, Signed: true},
	"application/xml":  {MIME: "application/xml", Ext: ".xml", Active: true, Signed: true},
}

// Lookup returns what is known about a content type. Types not listed here
// can still be allowed: they get the extension ".bin" and are accepted as
// long as their bytes are not active content.
func Lookup(mime string) (Type, bool) {
	t, ok := types[strings.ToLower(mime)]
	return t, ok
}

// TypeOf returns the Type for mime, known or not.
func TypeOf(mime string) Type {
	if t, ok := Lookup(mime); ok {
		return t
	}
	return Type{MIME: strings.ToLower(mime), Ext: ".bin"}
}

// Detect returns the content type of data, given at least its first HeadLen
// bytes (or the whole object if it is shorter): a MIME type from the table,
// Text, HTML, XML, SVG, or Unknown.
func Detect(head []byte) string {
	b := head
	if len(b) > HeadLen {
		b = b[:HeadLen]
	}
	switch {
	case len(b) == 0:
		return Unknown
	case bytes.HasPrefix(b, []byte("\xFF\xD8\xFF")):
		return "image/jpeg"
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return "image/png"
	case bytes.HasPrefix(b, []byte("GIF87a")), bytes.HasPrefix(b, []byte("GIF89a")):
		return "image/gif"
	case len(b) >= 12 && bytes.Equal(b[:4], []byte("RIFF")) && bytes.Equal(b[8:12], []byte("WEBP")):
		return "image/webp"
	case len(b) >= 12 && bytes.Equal(b[4:8], []byte("ftyp")):
		return isoBMFF(b)
	case bytes.HasPrefix(b, []byte("BM")) && len(b) >= 14:
		return "image/bmp"
	case bytes.HasPrefix(b, []byte("II*\x00")), bytes.HasPrefix(b, []byte("MM\x00*")):
		return "image/tiff"
	case bytes.HasPrefix(b, []byte("%PDF-")):
		return "application/pdf"
	case bytes.HasPrefix(b, []byte("PK\x03\x04")):
		return "application/zip"
	case bytes.HasPrefix(b, []byte("\x1F\x8B\x08")):
		return "application/gzip"
	case bytes.HasPrefix(b, []byte("\x1A\x45\xDF\xA3")):
		return "video/webm"
	case bytes.HasPrefix(b, []byte("ID3")), len(b) >= 2 && b[0] == 0xFF && b[1]&0xE0 == 0xE0:
		return "audio/mpeg"
	case bytes.HasPrefix(b, []byte("OggS\x00")):
		return "audio/ogg"
	}
	return markupOrText(b)
}

// isoBMFF tells AVIF and HEIC images from MP4 video by the ftyp box brands.
func isoBMFF(b []byte) string {
	size := int(b[0])<<24 | int(b[1])<<16 | int(b[2])<<8 | int(b[3])
	if size < 16 || size > len(b) {
		size = len(b)
	}
	brands := [][]byte{b[8:12]}
	for i := 16; i+4 <= size; i += 4 {
		brands = append(brands, b[i:i+4])
	}
	for _, br := range brands {
		switch string(br) {
		case "avif", "avis":
			return "image/avif"
		}
	}
	for _, br := range brands {
		switch string(br) {
		case "heic", "heix", "heim", "heis", "mif1", "msf1":
			return "image/heic"
		}
	}
	return "video/mp4"
}

// markupOrText classifies content without a binary signature: markup that
// browsers interpret, plain text, or unknown binary.
func markupOrText(b []byte) string {
	if svgLike(b) {
		return SVG
	}
	switch ct := http.DetectContentType(b); {
	case strings.HasPrefix(ct, "text/html"):
		return HTML
	case strings.HasPrefix(ct, "text/xml"):
		return XML
	}
	if looksHTML(b) {
		return HTML
	}
	if isText(b) {
		return Text
	}
	return Unknown
}

// svgLike finds an <svg element near the start, after any XML declaration,
// comments or doctype: the signature browsers act on.
func svgLike(b []byte) bool {
	lower := bytes.ToLower(b)
	i := bytes.Index(lower, []byte("<svg"))
	if i < 0 {
		return false
	}
	rest := lower[i+4:]
	return len(rest) == 0 || rest[0] == ' ' || rest[0] == '>' || rest[0] == '\n' || rest[0] == '\t' || rest[0] == '\r' || rest[0] == '/'
}

// looksHTML catches markup that does not start the file, which
// http.DetectContentType misses but a sniffing browser might render.
func looksHTML(b []byte) bool {
	lower := bytes.ToLower(b)
	for _, tag := range []string{"<script", "<html", "<iframe", "<body", "<img", "<object", "<embed", "<!doctype html"} {
		if bytes.Contains(lower, []byte(tag)) {
			return true
		}
	}
	return false
}

func isText(b []byte) bool {
	// A cut may split the last rune: drop up to 3 trailing bytes of it.
	for i := 0; i < 3 && len(b) > 0 && !utf8.Valid(b); i++ {
		b = b[:len(b)-1]
	}
	if !utf8.Valid(b) {
		return false
	}
	for _, c := range b {
		if c < 0x20 && c != '\n' && c != '\r' && c != '\t' && c != '\f' {
			return false
		}
	}
	return true
}

// Match reports whether content detected from an object's bytes agrees with
// the content type the client declared.
func Match(declared, detected string) bool {
	t := TypeOf(declared)
	switch {
	case t.Signed:
		if t.MIME == "application/xml" {
			return detected == XML || detected == SVG
		}
		return detected == t.MIME
	case t.Textual:
		return detected == Text
	default:
		// Unknown types pass unless they are really active content.
		return detected != HTML && detected != SVG && detected != XML
	}
}
