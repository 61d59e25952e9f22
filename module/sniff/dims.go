package sniff

import (
	"encoding/binary"
	"errors"
)

// DimsLen is how many leading bytes of an image Dimensions is given by the
// verifier: enough for the header of every format here, and for a JPEG's
// frame header behind the usual EXIF and ICC segments.
const DimsLen = 64 << 10

// Errors of Dimensions.
var (
	// ErrNoDimensions: the format is not one whose size is read here, or
	// its header is malformed.
	ErrNoDimensions = errors.New("image dimensions not found")
	// ErrNeedMore: the header is well formed so far but the dimensions lie
	// beyond the bytes given (a JPEG with large metadata segments).
	ErrNeedMore = errors.New("image dimensions lie beyond the bytes read")
)

// Dimensions reads an image's width and height from its leading bytes,
// without decoding it: PNG's IHDR, a JPEG's SOFn frame header, GIF's
// logical screen, WebP's VP8, VP8L or VP8X header, and AVIF's ispe
// property. It is bounded by len(b) and never panics on any input.
func Dimensions(b []byte) (width, height int, err error) {
	switch Detect(b) {
	case "image/png":
		return pngDims(b)
	case "image/jpeg":
		return jpegDims(b)
	case "image/gif":
		return gifDims(b)
	case "image/webp":
		return webpDims(b)
	case "image/avif", "image/heic":
		return avifDims(b)
	}
	return 0, 0, ErrNoDimensions
}

func pngDims(b []byte) (int, int, error) {
	// signature(8) length(4) "IHDR" width(4) height(4)
	if len(b) < 24 {
		return 0, 0, ErrNeedMore
	}
	if string(b[12:16]) != "IHDR" {
		return 0, 0, ErrNoDimensions
	}
	w, h := binary.BigEndian.Uint32(b[16:20]), binary.BigEndian.Uint32(b[20:24])
	return checked(uint64(w), uint64(h))
}

func gifDims(b []byte) (int, int, error) {
	if len(b) < 10 {
		return 0, 0, ErrNeedMore
	}
	return checked(uint64(binary.LittleEndian.Uint16(b[6:8])), uint64(binary.LittleEndian.Uint16(b[8:10])))
}

// jpegDims walks the marker segments after SOI up to the first frame
// header (SOF0-SOF15 except DHT, JPG and DAC).
func jpegDims(b []byte) (int, int, error) {
	i := 2
	for {
		// Markers may be preceded by any number of 0xFF fill bytes.
		for i < len(b) && b[i] == 0xFF {
			i++
		}
		if i >= len(b) {
			return 0, 0, ErrNeedMore
		}
		if b[i-1] != 0xFF {
			return 0, 0, ErrNoDimensions
		}
		m := b[i]
		i++
		switch {
		case m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7):
			continue // no length
		case m == 0xD9 || m == 0xDA:
			return 0, 0, ErrNoDimensions // end of image or scan before a frame header
		}
		if i+2 > len(b) {
			return 0, 0, ErrNeedMore
		}
		n := int(binary.BigEndian.Uint16(b[i : i+2]))
		if n < 2 {
			return 0, 0, ErrNoDimensions
		}
		if m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC {
			// length(2) precision(1) height(2) width(2)
			if i+7 > len(b) {
				return 0, 0, ErrNeedMore
			}
			h := binary.BigEndian.Uint16(b[i+3 : i+5])
			w := binary.BigEndian.Uint16(b[i+5 : i+7])
			return checked(uint64(w), uint64(h))
		}
		i += n
	}
}

func webpDims(b []byte) (int, int, error) {
	// "RIFF" size "WEBP" then the first chunk: fourcc(4) size(4) data.
	if len(b) < 30 {
		return 0, 0, ErrNeedMore
	}
	d := b[20:]
	switch string(b[12:16]) {
	case "VP8 ":
		// frame tag(3), start code 9d 01 2a, 14-bit width and height.
		if d[3] != 0x9d || d[4] != 0x01 || d[5] != 0x2a {
			return 0, 0, ErrNoDimensions
		}
		w := binary.LittleEndian.Uint16(d[6:8]) & 0x3fff
		h := binary.LittleEndian.Uint16(d[8:10]) & 0x3fff
		return checked(uint64(w), uint64(h))
	case "VP8L":
		// signature 0x2f, then width-1 and height-1 in 14 bits each.
		if d[0] != 0x2f {
			return 0, 0, ErrNoDimensions
		}
		v := binary.LittleEndian.Uint32(d[1:5])
		return checked(uint64(v&0x3fff)+1, uint64(v>>14&0x3fff)+1)
	case "VP8X":
		// flags(1) reserved(3) canvas width-1 (24 bits) canvas height-1 (24 bits).
		w := uint64(d[4]) | uint64(d[5])<<8 | uint64(d[6])<<16
		h := uint64(d[7]) | uint64(d[8])<<8 | uint64(d[9])<<16
		return checked(w+1, h+1)
	}
	return 0, 0, ErrNoDimensions
}

// avifDims finds the image spatial extents ("ispe") properties in
// meta/iprp/ipco and reports the largest width and height among them: a
// file may carry several (a thumbnail, an alpha plane, the tiles and the
// grid they form), and a limit must hold for the largest.
func avifDims(b []byte) (int, int, error) {
	meta, cut, err := findBox(b, "meta", false)
	if err != nil {
		return 0, 0, err
	}
	if len(meta) < 4 {
		return 0, 0, ErrNeedMore
	}
	// meta is a full box: version and flags come first.
	iprp, cut, err := findBox(meta[4:], "iprp", cut)
	if err != nil {
		return 0, 0, err
	}
	ipco, cut, err := findBox(iprp, "ipco", cut)
	if err != nil {
		return 0, 0, err
	}
	var w, h uint64
	found := false
	for rest := ipco; len(rest) > 0; {
		typ, body, next, boxCut, ok := nextBox(rest)
		if !ok || boxCut {
			cut = true
			break
		}
		if typ == "ispe" && len(body) >= 12 {
			found = true
			w = max(w, uint64(binary.BigEndian.Uint32(body[4:8])))
			h = max(h, uint64(binary.BigEndian.Uint32(body[8:12])))
		}
		rest = next
	}
	switch {
	case cut:
		// A later ispe, beyond the bytes given, may be larger.
		return 0, 0, ErrNeedMore
	case !found:
		return 0, 0, ErrNoDimensions
	}
	return checked(w, h)
}

// findBox returns the body of the first box of type typ among the boxes
// in b, and whether that body is cut off by the end of b (or already was:
// cut is passed on). Not finding it in a cut-off list is ErrNeedMore.
func findBox(b []byte, typ string, cut bool) ([]byte, bool, error) {
	for len(b) > 0 {
		t, body, next, boxCut, ok := nextBox(b)
		if !ok {
			return nil, true, ErrNeedMore
		}
		if t == typ {
			return body, cut || boxCut, nil
		}
		if boxCut {
			return nil, true, ErrNeedMore
		}
		b = next
	}
	if cut {
		return nil, true, ErrNeedMore
	}
	return nil, false, ErrNoDimensions
}

// nextBox splits off the first ISO BMFF box of b: its type, its body and
// the bytes after it. A box longer than b has the rest of b as its body
// and cut set; ok is false when not even its header fits or its size is
// impossible.
func nextBox(b []byte) (typ string, body, rest []byte, cut, ok bool) {
	if len(b) < 8 {
		return "", nil, nil, true, false
	}
	size := uint64(binary.BigEndian.Uint32(b[0:4]))
	typ = string(b[4:8])
	hdr := uint64(8)
	switch size {
	case 0: // to the end of the file
		size = uint64(len(b))
	case 1: // a 64-bit size follows the type
		if len(b) < 16 {
			return "", nil, nil, true, false
		}
		size, hdr = binary.BigEndian.Uint64(b[8:16]), 16
	}
	if size < hdr {
		return "", nil, nil, false, false
	}
	if size > uint64(len(b)) {
		return typ, b[hdr:], nil, true, true
	}
	return typ, b[hdr:size], b[size:], false, true
}

// checked refuses zero dimensions, which no valid image has.
func checked(w, h uint64) (int, int, error) {
	if w == 0 || h == 0 || w > 1<<31 || h > 1<<31 {
		return 0, 0, ErrNoDimensions
	}
	return int(w), int(h), nil
}

// HasDimensions reports whether Dimensions reads the size of images of
// this content type.
func HasDimensions(mime string) bool {
	switch mime {
	case "image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/heic":
		return true
	}
	return false
}
