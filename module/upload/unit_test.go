package upload

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestKeyTemplate(t *testing.T) {
	tpl, err := ParseKeyTemplate("{profile}/{identity}/{year}/{month}/{day}/{hour}/{id}{ext}")
	if err != nil {
		t.Fatal(err)
	}
	got := tpl.Render(KeyValues{ID: "01abc", Ext: ".png", Profile: "avatars", Identity: "../../etc/pass wd\u202e",
		Time: time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("x", 3600))})
	if got != "avatars/______etc_pass_wd_/2026/03/04/04/01abc.png" {
		t.Fatalf("rendered %q", got)
	}
	for _, bad := range []string{"", "uploads/{ext}", "/{id}", "a//{id}", "../{id}", "{id}{filename}", "{id", "a b/{id}", "{id}?x"} {
		if _, err := ParseKeyTemplate(bad); err == nil {
			t.Errorf("template %q accepted", bad)
		}
	}
}

func TestIDs(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	for i := 0; i < 1000; i++ {
		id := newIDAt(time.UnixMilli(int64(1700000000000 + i)))
		if !ValidID(id) || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		if id <= prev {
			t.Fatalf("ids not time-ordered: %q after %q", id, prev)
		}
		seen[id], prev = true, id
	}
	for _, bad := range []string{"", "short", strings.Repeat("z", 26), "01m8h0g1saxzbz711pavtr43x/", "01M8H0G1SAXZBZ711PAVTR43XF", "../../../../../../../../../"} {
		if ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}

func TestCleanFilename(t *testing.T) {
	for in, want := range map[string]string{
		"photo.png":           "photo.png",
		"../../etc/passwd":    "passwd",
		`C:\Users\me\cat.jpg`: "cat.jpg",
		"":                    "",
		"..":                  "",
		"résumé 2026.pdf":     "résumé 2026.pdf",
	} {
		got, err := cleanFilename(in)
		if err != nil || got != want {
			t.Errorf("cleanFilename(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"a\x00.png", "a\r\nSet-Cookie: x.png", "gpj.\u202eevil.exe", "\xff\xfe.png", "x\u2066.png", strings.Repeat("a", 300)} {
		if _, err := cleanFilename(bad); !errors.Is(err, ErrInvalidFilename) {
			t.Errorf("cleanFilename(%q) accepted (err %v)", bad, err)
		}
	}
}

func TestCleanMetadata(t *testing.T) {
	got, err := cleanMetadata([]byte(`{ "a" : [1, 2] }`), 100)
	if err != nil || string(got) != `{"a":[1,2]}` {
		t.Fatalf("got %s, %v", got, err)
	}
	if _, err := cleanMetadata([]byte(`[1]`), 100); !errors.Is(err, ErrInvalidMetadata) {
		t.Errorf("array accepted: %v", err)
	}
	if _, err := cleanMetadata([]byte(`{"a":"`+strings.Repeat("x", 200)+`"}`), 100); !errors.Is(err, ErrMetadataTooLarge) {
		t.Errorf("large metadata accepted: %v", err)
	}
	if got, err := cleanMetadata([]byte(`null`), 100); err != nil || got != nil {
		t.Errorf("null: %s %v", got, err)
	}
}

func TestNormalizeType(t *testing.T) {
	if got, err := normalizeType("Image/PNG; charset=x"); err != nil || got != "image/png" {
		t.Fatalf("got %q %v", got, err)
	}
	for _, bad := range []string{"", "not a type", "image/png\r\nx: y"} {
		if _, err := normalizeType(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestAppendPaddedMatchesFmt: the key's dates are written as fmt's %0Nd
// wrote them before Render stopped using fmt.
func TestAppendPaddedMatchesFmt(t *testing.T) {
	for _, n := range []int{-10000, -999, -5, 0, 1, 9, 10, 99, 100, 999, 2026, 9999, 10000, 123456789} {
		for _, w := range []int{2, 4} {
			if got, want := string(appendPadded(nil, n, w)), fmt.Sprintf("%0*d", w, n); got != want {
				t.Errorf("appendPadded(%d, %d) = %q, want %q", n, w, got, want)
			}
		}
	}
}
