package sniff

import (
	"bytes"
	"testing"
)

// FuzzDetect: the sniffer reads untrusted bytes (the head of an uploaded
// object). It must not panic, must answer a known result, must look at
// no more than HeadLen bytes, and Match must accept what it detects for
// the type it detected.
func FuzzDetect(f *testing.F) {
	for _, s := range [][]byte{
		nil, []byte("\xFF\xD8\xFF\xE0"), []byte("\x89PNG\r\n\x1a\n\x00\x00"), []byte("GIF89a"),
		[]byte("RIFF\x00\x00\x00\x00WEBPVP8 "), []byte("\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1"),
		[]byte("\x00\x00\x00\x18ftypheic"), []byte("\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"),
		[]byte("\x00\x00\x00\x00ftyp"), []byte("\xff\xff\xff\xffftypmp42"),
		[]byte("BM\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"), []byte("II*\x00"), []byte("%PDF-1.7\n"),
		[]byte("PK\x03\x04"), []byte("\x1F\x8B\x08"), []byte("\x1A\x45\xDF\xA3"), []byte("ID3"), []byte("\xFF\xFB"),
		[]byte("OggS\x00"), []byte("hello, world\n"), []byte("<html><script>alert(1)</script>"),
		[]byte("\xEF\xBB\xBF<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"/>"),
		[]byte("<!DOCTYPE html>"), []byte("  \t\n<svg"), []byte("\xff\xfe<\x00h\x00t\x00m\x00l\x00"),
		[]byte("a,b,c\n1,2,3\n"), []byte("{\"a\":1}"), bytes.Repeat([]byte("x"), HeadLen+10),
		append(bytes.Repeat([]byte(" "), HeadLen-3), []byte("<html>")...),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := Detect(data)
		switch got {
		case Unknown, Text, HTML, XML, SVG:
		default:
			if _, ok := Lookup(got); !ok {
				t.Fatalf("Detect answered %q, which is not a known type", got)
			}
		}
		if len(data) > HeadLen {
			if head := Detect(data[:HeadLen]); head != got {
				t.Fatalf("Detect looked past HeadLen: %q on the head, %q on all", head, got)
			}
		}
		if again := Detect(append([]byte(nil), data...)); again != got {
			t.Fatalf("Detect is not deterministic: %q then %q", got, again)
		}
		if _, ok := Lookup(got); ok && !Match(got, got) {
			t.Fatalf("Match(%q, %q) is false", got, got)
		}
		for _, declared := range []string{"image/png", "text/plain", "application/octet-stream", "image/svg+xml", ""} {
			Match(declared, got) // must not panic
		}
	})
}
