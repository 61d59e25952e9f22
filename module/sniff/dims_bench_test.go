package sniff

import "testing"

func BenchmarkDimensions(b *testing.B) {
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"png", pngOf(b, 64, 64)},
		{"jpeg behind 60KiB of APP1", jpegWithAPP(b, 64, 64, 60<<10)},
		{"avif", avifOf(ispe(1920, 1080))},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := Dimensions(c.data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
