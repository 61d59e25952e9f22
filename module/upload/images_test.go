package upload

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"image"
	"image/jpeg"
	"testing"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/sniff"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// bombPNG is a PNG signature and IHDR declaring w x h pixels, padded to a
// few hundred bytes: what a decompression bomb looks like to a verifier.
func bombPNG(w, h uint32) []byte {
	b := append([]byte("\x89PNG\r\n\x1a\n"), 0, 0, 0, 13)
	b = append(b, "IHDR"...)
	b = binary.BigEndian.AppendUint32(b, w)
	b = binary.BigEndian.AppendUint32(b, h)
	b = append(b, 8, 2, 0, 0, 0, 0, 0, 0, 0)
	return append(b, make([]byte, 300)...)
}

// jpegAfter is a w x h JPEG with pad bytes of APP1 segments before its
// frame header, like a photo with large EXIF and ICC data.
func jpegAfter(t *testing.T, w, h, pad int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, image.NewGray(image.Rect(0, 0, w, h)), nil); err != nil {
		t.Fatal(err)
	}
	j := buf.Bytes()
	out := append([]byte{}, j[:2]...)
	for pad > 0 {
		k := min(pad, 65533)
		out = append(out, 0xFF, 0xE1)
		out = binary.BigEndian.AppendUint16(out, uint16(k+2))
		out = append(out, make([]byte, k)...)
		pad -= k
	}
	return append(out, j[2:]...)
}

func imageEnv(t *testing.T, lim ImageLimits) *env {
	e := newEnv(t, s3srv.URL)
	e.profile.MaxSize = 4 << 20
	e.profile.Allowed["image/jpeg"] = sniff.TypeOf("image/jpeg")
	e.profile.Images = lim
	return e
}

func TestImageWithinLimitsRecordsDimensions(t *testing.T) {
	e := imageEnv(t, ImageLimits{MaxPixels: DefaultMaxPixels})
	ctx := context.Background()
	// The frame header lies beyond the first read: found by the second.
	data := jpegAfter(t, 40, 30, 200<<10)
	g := e.grant(t, "image/jpeg", int64(len(data)))
	post(t, g, "image/jpeg", data)
	in, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil)
	if err != nil || in.Status != store.StatusCompleted || in.Width != 40 || in.Height != 30 {
		t.Fatalf("got %+v, %v", in, err)
	}
	if evs := events(t, e.db); len(evs) != 1 || evs[0].Intent.Width != 40 || evs[0].Intent.Height != 30 {
		t.Fatalf("events = %+v", evs)
	}
}

func TestImageOverLimitRejectedAndDeleted(t *testing.T) {
	cases := []struct {
		name   string
		lim    ImageLimits
		ct     string
		data   []byte
		reason Reason
		w, h   int
	}{
		{"png bomb over the default pixels", ImageLimits{MaxPixels: DefaultMaxPixels}, "image/png", bombPNG(30000, 30000), ReasonImageTooLarge, 30000, 30000},
		{"jpeg too wide", ImageLimits{MaxWidth: 100}, "image/jpeg", jpegAfter(t, 101, 10, 0), ReasonImageTooLarge, 101, 10},
		{"jpeg too high", ImageLimits{MaxHeight: 9}, "image/jpeg", jpegAfter(t, 8, 10, 0), ReasonImageTooLarge, 8, 10},
		{"jpeg frame beyond the bound", ImageLimits{MaxPixels: 1000}, "image/jpeg", jpegAfter(t, 8, 8, 1100<<10), ReasonImageUnreadable, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := imageEnv(t, c.lim)
			ctx := context.Background()
			g := e.grant(t, c.ct, int64(len(c.data)))
			post(t, g, c.ct, c.data)
			in, err := e.svc.Complete(ctx, e.profile, "alice", g.Intent.ID, nil)
			if !errors.Is(err, ErrRejected) || in == nil || in.Reason != string(c.reason) || in.Width != c.w || in.Height != c.h {
				t.Fatalf("got %+v, %v", in, err)
			}
			if _, err := e.profile.Objects.Stat(ctx, g.Intent.Key); !errors.Is(err, bucket.ErrNotFound) {
				t.Fatalf("rejected image still in the bucket: %v", err)
			}
		})
	}
}

func TestImageLimitsOffStillRecordDimensions(t *testing.T) {
	e := imageEnv(t, ImageLimits{})
	data := bombPNG(30000, 30000)
	g := e.grant(t, "image/png", int64(len(data)))
	post(t, g, "image/png", data)
	in, err := e.svc.Complete(context.Background(), e.profile, "alice", g.Intent.ID, nil)
	if err != nil || in.Width != 30000 || in.Height != 30000 {
		t.Fatalf("got %+v, %v", in, err)
	}
}

func TestImageProfile(t *testing.T) {
	img := map[string]sniff.Type{"image/png": {}, "image/svg+xml": {}}
	mixed := map[string]sniff.Type{"image/png": {}, "application/pdf": {}}
	if !ImageProfile(img) || ImageProfile(mixed) || ImageProfile(nil) {
		t.Fatal("ImageProfile misjudged")
	}
}
