package handler

import (
	"fmt"
	"strconv"
)

// unmarshalImageLimit sets max_width, max_height or max_pixels from its
// Caddyfile value: a positive count of pixels, or for max_pixels "off"
// (no pixel limit, not even an image profile's default).
func (h *Handler) unmarshalImageLimit(name, val string) error {
	if name == "max_pixels" && val == "off" {
		h.MaxPixels = -1
		return nil
	}
	n, err := strconv.ParseInt(val, 10, 64)
	if err != nil || n < 1 || n > 1<<40 {
		return fmt.Errorf("%s %q: want a positive number of pixels", name, val)
	}
	switch name {
	case "max_width":
		h.MaxWidth = int(n)
	case "max_height":
		h.MaxHeight = int(n)
	default:
		h.MaxPixels = n
	}
	return nil
}
