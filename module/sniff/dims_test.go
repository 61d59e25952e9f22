package sniff

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"testing"
)

func encoded(t testing.TB, enc func(*bytes.Buffer, image.Image) error, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	img.Set(0, 0, color.RGBA{R: 255, A: 255})
	var buf bytes.Buffer
	if err := enc(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func pngOf(t testing.TB, w, h int) []byte {
	return encoded(t, func(b *bytes.Buffer, i image.Image) error { return png.Encode(b, i) }, w, h)
}

func jpegOf(t testing.TB, w, h int) []byte {
	return encoded(t, func(b *bytes.Buffer, i image.Image) error { return jpeg.Encode(b, i, nil) }, w, h)
}

func gifOf(t testing.TB, w, h int) []byte {
	return encoded(t, func(b *bytes.Buffer, i image.Image) error { return gif.Encode(b, i, nil) }, w, h)
}

// riff wraps one WebP chunk in a RIFF container.
func riff(fourcc string, data []byte) []byte {
	if len(data)%2 == 1 {
		data = append(data, 0)
	}
	chunk := append([]byte(fourcc), le32(uint32(len(data)))...)
	chunk = append(chunk, data...)
	out := append([]byte("RIFF"), le32(uint32(4+len(chunk)))...)
	out = append(out, "WEBP"...)
	return append(out, chunk...)
}

func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

// webpVP8 is a lossy WebP header (RFC 9649 section 2.5 and RFC 6386 9.1):
// a key frame tag, the start code, then 14-bit width and height with a
// 2-bit scale each.
func webpVP8(w, h int) []byte {
	d := []byte{0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a}
	d = binary.LittleEndian.AppendUint16(d, uint16(w)|0x4000) // scale bits must be ignored
	d = binary.LittleEndian.AppendUint16(d, uint16(h))
	return riff("VP8 ", append(d, make([]byte, 8)...))
}

// webpVP8L is a lossless WebP header: 0x2f, then width-1 and height-1 in
// 14 bits each, the alpha hint and a 3-bit version.
func webpVP8L(w, h int) []byte {
	v := uint32(w-1) | uint32(h-1)<<14 | 1<<28
	return riff("VP8L", append([]byte{0x2f}, append(le32(v), make([]byte, 8)...)...))
}

// webpVP8X is an extended WebP header: flags, 3 reserved bytes, canvas
// width-1 and height-1 in 24 bits each.
func webpVP8X(w, h int) []byte {
	d := []byte{0x10, 0, 0, 0}
	d = append(d, le32(uint32(w - 1))[:3]...)
	d = append(d, le32(uint32(h - 1))[:3]...)
	return riff("VP8X", d)
}

func box(typ string, body ...[]byte) []byte {
	b := bytes.Join(body, nil)
	out := binary.BigEndian.AppendUint32(nil, uint32(8+len(b)))
	return append(append(out, typ...), b...)
}

func ispe(w, h uint32) []byte {
	b := []byte{0, 0, 0, 0} // version and flags
	b = binary.BigEndian.AppendUint32(b, w)
	return box("ispe", binary.BigEndian.AppendUint32(b, h))
}

// avifOf is the box structure of an AVIF file (ISO/IEC 23008-12, AV1
// Image File Format): ftyp, then meta (a full box) with hdlr, and
// iprp/ipco holding the ispe properties, then mdat.
func avifOf(ispes ...[]byte) []byte {
	ftyp := box("ftyp", []byte("avif"), []byte{0, 0, 0, 0}, []byte("avifmif1miaf"))
	hdlr := box("hdlr", make([]byte, 8), []byte("pict"), make([]byte, 13))
	ipco := box("ipco", append([][]byte{box("pixi", []byte{0, 0, 0, 0, 3, 8, 8, 8})}, ispes...)...)
	meta := box("meta", []byte{0, 0, 0, 0}, hdlr, box("iprp", ipco, box("ipma", make([]byte, 8))))
	return bytes.Join([][]byte{ftyp, meta, box("mdat", make([]byte, 16))}, nil)
}

// jpegWithAPP puts n bytes of APP1 segments before the frame header.
func jpegWithAPP(t testing.TB, w, h, n int) []byte {
	j := jpegOf(t, w, h)
	var seg []byte
	for n > 0 {
		k := min(n, 65533)
		seg = append(seg, 0xFF, 0xE1)
		seg = binary.BigEndian.AppendUint16(seg, uint16(k+2))
		seg = append(seg, make([]byte, k)...)
		n -= k
	}
	return append(append(j[:2:2], seg...), j[2:]...)
}

// pngBomb is a valid PNG signature and IHDR declaring w x h pixels.
func pngBomb(w, h uint32) []byte {
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 2, 0, 0, 0)
	b := append([]byte("\x89PNG\r\n\x1a\n"), 0, 0, 0, 13)
	b = append(b, "IHDR"...)
	b = append(b, ihdr...)
	return append(b, 0, 0, 0, 0) // CRC: not checked here
}

func TestDimensions(t *testing.T) {
	cases := []struct {
		name string
		data []byte
		w, h int
	}{
		{"png", pngOf(t, 3, 2), 3, 2},
		{"png bomb", pngBomb(30000, 30000), 30000, 30000},
		{"jpeg", jpegOf(t, 17, 9), 17, 9},
		{"jpeg behind 60KiB of APP1", jpegWithAPP(t, 5, 7, 60<<10), 5, 7},
		{"gif", gifOf(t, 4, 300), 4, 300},
		{"webp VP8", webpVP8(640, 480), 640, 480},
		{"webp VP8L", webpVP8L(16383, 2), 16383, 2},
		{"webp VP8X", webpVP8X(20000, 16000), 20000, 16000},
		{"avif", avifOf(ispe(1920, 1080)), 1920, 1080},
		{"avif largest ispe", avifOf(ispe(160, 90), ispe(40000, 30000)), 40000, 30000},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, h, err := Dimensions(c.data)
			if err != nil || w != c.w || h != c.h {
				t.Fatalf("Dimensions = %d x %d, %v; want %d x %d", w, h, err, c.w, c.h)
			}
		})
	}
}

func TestDimensionsIncomplete(t *testing.T) {
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"png cut before IHDR ends", pngOf(t, 3, 2)[:20], ErrNeedMore},
		{"jpeg SOF beyond the bytes", jpegWithAPP(t, 5, 7, 100<<10)[:DimsLen], ErrNeedMore},
		{"avif meta cut", avifOf(ispe(10, 10))[:40], ErrNeedMore},
		{"webp cut", webpVP8(1, 1)[:25], ErrNeedMore},
		{"not an image", []byte("hello, world"), ErrNoDimensions},
		{"jpeg without frame", []byte{0xFF, 0xD8, 0xFF, 0xDA, 0, 2}, ErrNoDimensions},
		{"png zero width", pngBomb(0, 10), ErrNoDimensions},
		{"avif without ispe", avifOf(), ErrNoDimensions},
		{"webp bad start code", riff("VP8 ", make([]byte, 10)), ErrNoDimensions},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, _, err := Dimensions(c.data); !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

// FuzzDimensions checks that no input makes the parsers panic, read past
// the bytes given, or report a zero dimension.
func FuzzDimensions(f *testing.F) {
	f.Add(pngOf(f, 3, 2))
	f.Add(pngBomb(30000, 30000))
	f.Add(jpegOf(f, 17, 9))
	f.Add(jpegWithAPP(f, 5, 7, 300))
	f.Add(gifOf(f, 4, 3))
	f.Add(webpVP8(640, 480))
	f.Add(webpVP8L(100, 2))
	f.Add(webpVP8X(20000, 16000))
	f.Add(avifOf(ispe(1920, 1080), ispe(10, 10)))
	f.Fuzz(func(t *testing.T, b []byte) {
		w, h, err := Dimensions(b)
		if err == nil && (w <= 0 || h <= 0) {
			t.Fatalf("Dimensions = %d x %d without error", w, h)
		}
		if err != nil && (w != 0 || h != 0) {
			t.Fatalf("Dimensions = %d x %d with error %v", w, h, err)
		}
	})
}
