package bench

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// plotAll writes Config.Plot for r, and for ModeAll one file per mode
// (name-edge.png, name-pipeline.png beside it).
func (b *Bench) plotAll(r *Report) error {
	if err := writePlot(b.cfg.Plot, r); err != nil {
		return err
	}
	ext := filepath.Ext(b.cfg.Plot)
	for _, sub := range []*Report{r.Edge, r.Pipeline} {
		if sub != nil {
			if err := writePlot(strings.TrimSuffix(b.cfg.Plot, ext)+"-"+sub.Mode+ext, sub); err != nil {
				return err
			}
		}
	}
	return nil
}

// writePlot draws throughput (events per second) above latency (p50 and
// p99) over the run, in buckets of a second or less, wastatus and the
// baseline on each, as a PNG.
func writePlot(path string, r *Report) error {
	if r.sut == nil {
		return nil
	}
	mode := r.Mode
	if mode == ModeAll {
		mode = ModeProcessor
	}
	width := bucketWidth(max(r.sut.end(), r.base.end()))
	sut, base := r.sut.buckets(width), r.base.buckets(width)
	tp := plot.New()
	tp.Title.Text = fmt.Sprintf("wastatus bench %s: throughput (%s)", mode, r.Broker)
	tp.X.Label.Text = "seconds"
	tp.Y.Label.Text = "events/s"
	lat := plot.New()
	lat.Title.Text = "latency"
	lat.X.Label.Text = "seconds"
	lat.Y.Label.Text = "ms"
	blue, grey := color.RGBA{B: 200, A: 255}, color.RGBA{R: 140, G: 140, B: 140, A: 255}
	for _, s := range []struct {
		name string
		pts  []point
		c    color.Color
	}{{"wastatus", sut, blue}, {"baseline", base, grey}} {
		if err := addLine(tp, s.name, s.pts, func(p point) float64 { return p.Rate }, s.c, nil); err != nil {
			return err
		}
		if err := addLine(lat, s.name+" p50", s.pts, func(p point) float64 { return p.P50 }, s.c, nil); err != nil {
			return err
		}
		if err := addLine(lat, s.name+" p99", s.pts, func(p point) float64 { return p.P99 }, s.c, []vg.Length{vg.Points(4), vg.Points(3)}); err != nil {
			return err
		}
	}
	tp.Legend.Top, lat.Legend.Top = true, true
	const w, h = 10 * vg.Inch, 8 * vg.Inch
	img := vgimg.New(w, h)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Points(4), PadBottom: vg.Points(4), PadX: vg.Points(4), PadY: vg.Points(8)}
	canvases := plot.Align([][]*plot.Plot{{tp}, {lat}}, tiles, dc)
	tp.Draw(canvases[0][0])
	lat.Draw(canvases[1][0])
	f, err := createFile(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("bench: plot: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bench: plot: %w", err)
	}
	return nil
}

// addLine adds one series, skipping buckets without a value.
func addLine(p *plot.Plot, name string, pts []point, y func(point) float64, c color.Color, dashes []vg.Length) error {
	xy := make(plotter.XYs, 0, len(pts))
	for _, pt := range pts {
		if v := y(pt); !math.IsNaN(v) {
			xy = append(xy, plotter.XY{X: pt.T, Y: v})
		}
	}
	if len(xy) == 0 {
		return nil
	}
	// Points as well as lines: a series of one bucket still shows.
	l, marks, err := plotter.NewLinePoints(xy)
	if err != nil {
		return fmt.Errorf("bench: plot %s: %w", name, err)
	}
	l.Color, l.Dashes = c, dashes
	marks.Color, marks.Radius = c, vg.Points(1.5)
	p.Add(l, marks)
	p.Legend.Add(name, l)
	return nil
}
