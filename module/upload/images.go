package upload

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/caddy-direct-upload/caddy-direct-upload/module/bucket"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/sniff"
	"github.com/caddy-direct-upload/caddy-direct-upload/module/store"
)

// DefaultMaxPixels is the pixel limit of image profiles that set none:
// 50 megapixels, above any camera's photo and far below a decompression
// bomb (a few hundred bytes of PNG declaring 30000 x 30000 pixels).
const DefaultMaxPixels = 50_000_000

// maxDimsRead bounds the second, larger read for an image whose header
// lies beyond sniff.DimsLen (a JPEG behind large EXIF or ICC segments).
const maxDimsRead = 1 << 20

// ImageLimits bound an image's size in pixels, read from its header
// without decoding it. Zero means no limit.
type ImageLimits struct {
	MaxWidth  int
	MaxHeight int
	MaxPixels int64
}

// Set reports whether any limit is set.
func (l ImageLimits) Set() bool { return l.MaxWidth > 0 || l.MaxHeight > 0 || l.MaxPixels > 0 }

// ImageProfile reports whether every allowed type is an image: such
// profiles get DefaultMaxPixels unless they set a pixel limit.
func ImageProfile(allowed map[string]sniff.Type) bool {
	for mt := range allowed {
		if !strings.HasPrefix(mt, "image/") {
			return false
		}
	}
	return len(allowed) > 0
}

// headLen is how many leading bytes verification reads: enough to sniff
// the type, and for images whose size is read, their header.
func headLen(in *store.Intent) int64 {
	if sniff.HasDimensions(in.ContentType) {
		return sniff.DimsLen
	}
	return sniff.HeadLen
}

// checkImage reads the dimensions of an image whose bytes matched its
// type, records them on the verdict and rejects it when they break the
// profile's limits. A header beyond the first read is looked for once more
// in a larger bounded read of the same object version.
func checkImage(ctx context.Context, p *Profile, in *store.Intent, v *verdict, head []byte) error {
	if !sniff.HasDimensions(v.sniffed) {
		return nil
	}
	w, h, err := sniff.Dimensions(head)
	if errors.Is(err, sniff.ErrNeedMore) && v.obj.Size > int64(len(head)) && len(head) < maxDimsRead {
		obj, more, ierr := p.objects().Inspect(ctx, UploadKey(in), maxDimsRead)
		if ierr != nil {
			return ierr
		}
		if obj.ETag != v.obj.ETag {
			return bucket.ErrChanged
		}
		w, h, err = sniff.Dimensions(more)
	}
	lim := p.Images
	if err != nil {
		if lim.Set() {
			v.reason, v.detail = ReasonImageUnreadable, fmt.Sprintf("the image's dimensions are not in its first %d bytes", maxDimsRead)
		}
		return nil
	}
	v.width, v.height = w, h
	switch {
	case lim.MaxWidth > 0 && w > lim.MaxWidth:
		v.reason, v.detail = ReasonImageTooLarge, fmt.Sprintf("the image is %d pixels wide, more than the %d allowed", w, lim.MaxWidth)
	case lim.MaxHeight > 0 && h > lim.MaxHeight:
		v.reason, v.detail = ReasonImageTooLarge, fmt.Sprintf("the image is %d pixels high, more than the %d allowed", h, lim.MaxHeight)
	case lim.MaxPixels > 0 && int64(w)*int64(h) > lim.MaxPixels:
		v.reason, v.detail = ReasonImageTooLarge, fmt.Sprintf("the image has %d x %d = %d pixels, more than the %d allowed", w, h, int64(w)*int64(h), lim.MaxPixels)
	}
	return nil
}
