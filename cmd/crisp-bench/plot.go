package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"strings"
)

// A box plot with the standard library only: one row per latency metric,
// one box per runtime (whiskers p5–p95, box p25–p75, bar at the median),
// each row on its own linear scale from 0 to the number at its right end.

var palette = []color.RGBA{{0xd6, 0x27, 0x28, 0xff}, {0x1f, 0x77, 0xb4, 0xff}, {0x2c, 0xa0, 0x2c, 0xff}, {0x94, 0x67, 0xbd, 0xff}}

const (
	scale  = 2 // font pixel size
	labelW = 440
	plotW  = 520
	boxH   = 14
)

func writeBoxPlot(path string, r *results) error {
	var metrics []string
	for _, m := range r.Order {
		if _, ok := r.Samples[m]; ok {
			metrics = append(metrics, m)
		}
	}
	rowH := len(r.Runtimes)*(boxH+4) + 16
	w, h := labelW+plotW+90, 40+len(metrics)*rowH
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	fill(img, img.Bounds(), color.RGBA{0xff, 0xff, 0xff, 0xff})
	x := 10
	for i, name := range r.Runtimes {
		fill(img, image.Rect(x, 10, x+12, 22), palette[i%len(palette)])
		x = text(img, x+18, 11, name) + 24
	}
	text(img, x, 11, "P5-P95 WHISKERS, P25-P75 BOX, MEDIAN BAR; MS")
	for row, m := range metrics {
		y0 := 40 + row*rowH
		text(img, 10, y0+rowH/2-5, m)
		var hi float64
		for _, rt := range r.Runtimes {
			hi = max(hi, percentile(r.Samples[m][rt], 95))
		}
		hi *= 1.05
		px := func(v float64) int { return labelW + int(min(v/hi, 1)*plotW) }
		for i, rt := range r.Runtimes {
			s := r.Samples[m][rt]
			if len(s) == 0 {
				continue
			}
			c := palette[i%len(palette)]
			y := y0 + 6 + i*(boxH+4)
			mid := y + boxH/2
			fill(img, image.Rect(px(percentile(s, 5)), mid, px(percentile(s, 95))+1, mid+1), c)
			fill(img, image.Rect(px(percentile(s, 25)), y, px(percentile(s, 75))+1, y+boxH), lighten(c))
			m50 := px(percentile(s, 50))
			fill(img, image.Rect(m50-1, y-2, m50+2, y+boxH+2), c)
		}
		fill(img, image.Rect(labelW, y0+rowH-2, labelW+plotW, y0+rowH-1), color.RGBA{0xcc, 0xcc, 0xcc, 0xff})
		text(img, labelW+plotW+6, y0+rowH/2-5, fmt.Sprintf("%.0f MS", hi))
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

func lighten(c color.RGBA) color.RGBA {
	return color.RGBA{c.R/2 + 0x80, c.G/2 + 0x80, c.B/2 + 0x80, 0xff}
}

// glyphs is a 3×5 font: five rows of three bits each, top row first.
var glyphs = map[rune][5]uint8{
	'0': {7, 5, 5, 5, 7}, '1': {2, 6, 2, 2, 7}, '2': {7, 1, 7, 4, 7}, '3': {7, 1, 3, 1, 7}, '4': {5, 5, 7, 1, 1},
	'5': {7, 4, 7, 1, 7}, '6': {7, 4, 7, 5, 7}, '7': {7, 1, 1, 2, 2}, '8': {7, 5, 7, 5, 7}, '9': {7, 5, 7, 1, 7},
	'A': {2, 5, 7, 5, 5}, 'B': {6, 5, 6, 5, 6}, 'C': {3, 4, 4, 4, 3}, 'D': {6, 5, 5, 5, 6}, 'E': {7, 4, 6, 4, 7},
	'F': {7, 4, 6, 4, 4}, 'G': {3, 4, 5, 5, 3}, 'H': {5, 5, 7, 5, 5}, 'I': {7, 2, 2, 2, 7}, 'J': {1, 1, 1, 5, 2},
	'K': {5, 5, 6, 5, 5}, 'L': {4, 4, 4, 4, 7}, 'M': {5, 7, 7, 5, 5}, 'N': {6, 5, 5, 5, 5}, 'O': {2, 5, 5, 5, 2},
	'P': {6, 5, 6, 4, 4}, 'Q': {2, 5, 5, 6, 3}, 'R': {6, 5, 6, 5, 5}, 'S': {3, 4, 2, 1, 6}, 'T': {7, 2, 2, 2, 2},
	'U': {5, 5, 5, 5, 7}, 'V': {5, 5, 5, 5, 2}, 'W': {5, 5, 7, 7, 5}, 'X': {5, 5, 2, 5, 5}, 'Y': {5, 5, 2, 2, 2},
	'Z': {7, 1, 2, 4, 7}, '.': {0, 0, 0, 0, 2}, ',': {0, 0, 0, 2, 4}, '-': {0, 0, 7, 0, 0}, '+': {0, 2, 7, 2, 0},
	'/': {1, 1, 2, 4, 4}, '(': {1, 2, 2, 2, 1}, ')': {4, 2, 2, 2, 4}, ';': {0, 2, 0, 2, 4}, '→': {0, 1, 7, 1, 0},
}

// text draws s in upper case and returns the x after it.
func text(img *image.RGBA, x, y int, s string) int {
	ink := color.RGBA{0x22, 0x22, 0x22, 0xff}
	for _, ch := range strings.ToUpper(s) {
		g := glyphs[ch]
		for row := 0; row < 5; row++ {
			for col := 0; col < 3; col++ {
				if g[row]&(4>>col) != 0 {
					fill(img, image.Rect(x+col*scale, y+row*scale, x+(col+1)*scale, y+(row+1)*scale), ink)
				}
			}
		}
		x += 4 * scale
	}
	return x
}
