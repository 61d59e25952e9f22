package sniff

import "testing"

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		name, head, want string
	}{
		{"png", "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"},
		{"jpeg", "\xFF\xD8\xFF\xE0\x00\x10JFIF", "image/jpeg"},
		{"gif", "GIF89a\x01\x00", "image/gif"},
		{"webp", "RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"},
		{"avif", "\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", "image/avif"},
		{"avif compatible brand", "\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avifmiaf", "image/avif"},
		{"heic", "\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "image/heic"},
		{"mp4", "\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2", "video/mp4"},
		{"pdf", "%PDF-1.7\n", "application/pdf"},
		{"zip", "PK\x03\x04\x14\x00", "application/zip"},
		{"html", "<!DOCTYPE html><html><script>alert(1)</script>", HTML},
		{"html after text", "hello\n<script>alert(1)</script>", HTML},
		{"html with spaces", "  \n <html>", HTML},
		{"svg", `<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)">`, SVG},
		{"svg bare", `<svg onload=alert(1)>`, SVG},
		{"xml", `<?xml version="1.0"?><root/>`, XML},
		{"text", "name,age\nalice,30\n", Text},
		{"utf8 text cut mid-rune", "caf\xc3", Text},
		{"binary", "\x00\x01\x02\x03\x04garbage", Unknown},
		{"empty", "", Unknown},
	} {
		if got := Detect([]byte(tc.head)); got != tc.want {
			t.Errorf("%s: Detect = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		declared, detected string
		want               bool
	}{
		{"image/png", "image/png", true},
		{"image/png", HTML, false},
		{"image/png", "image/jpeg", false},
		{"image/png", Unknown, false},
		{"image/jpeg", SVG, false},
		{"text/plain", Text, true},
		{"text/csv", HTML, false},
		{"application/json", Text, true},
		{"image/svg+xml", SVG, true},
		{"image/svg+xml", "image/png", false},
		{"application/octet-stream", Unknown, true},
		{"application/octet-stream", "image/png", true},
		{"application/octet-stream", HTML, false},
		{"application/vnd.ms-excel", SVG, false},
	} {
		if got := Match(tc.declared, tc.detected); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.declared, tc.detected, got, tc.want)
		}
	}
}

func TestActiveTypesMarked(t *testing.T) {
	for _, mt := range []string{"text/html", "image/svg+xml", "text/xml", "application/xml"} {
		if !TypeOf(mt).Active {
			t.Errorf("%s is not marked active", mt)
		}
	}
	if TypeOf("image/png").Active || TypeOf("application/x-whatever").Ext != ".bin" {
		t.Error("wrong defaults")
	}
}
