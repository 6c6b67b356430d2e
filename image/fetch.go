package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sync/errgroup"
)

// Large blobs are fetched in parallel HTTP range requests when the registry
// serves them (the distribution registry does, and so do the object stores
// and CDNs that big registries redirect blob GETs to): one TCP stream is
// often capped well below the link by the far end or by loss, a few are not.
const (
	rangeChunk    = 16 << 20       // bytes per range request
	rangeMinBlob  = 2 * rangeChunk // smaller blobs are one request
	rangeParallel = 4              // range requests in flight per blob
)

// copyBufPool holds the buffers that move response bodies into files.
var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// download fetches one blob from one endpoint into a file, in ranges
// written where they belong, while the unpack reads the file behind it
// (follow). The file is the only buffer: the download never waits for the
// unpack, and memory stays bounded whatever the blob's size.
type download struct {
	f      *os.File
	size   int64
	onRecv func(n int)

	mu     sync.Mutex
	cond   sync.Cond
	chunk  int64   // bytes per chunk; the whole blob when not ranged
	filled []int64 // bytes written per chunk
	head   int     // first chunk not completely written
	avail  int64   // [0, avail) is in f
	err    error   // why the download ended early; set once
}

func newDownload(f *os.File, size int64, onRecv func(int)) *download {
	d := &download{f: f, size: size, onRecv: onRecv}
	d.cond.L = &d.mu
	d.layout(size)
	return d
}

// layout splits the blob into chunks of n bytes.
func (d *download) layout(n int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.chunk = n
	d.filled = make([]int64, (d.size+n-1)/n)
}

func (d *download) chunkBounds(k int) (start, end int64) {
	start = int64(k) * d.chunk
	return start, min(start+d.chunk, d.size)
}

// wrote records n bytes written to chunk k and wakes the reader.
func (d *download) wrote(k int, n int) {
	d.mu.Lock()
	d.filled[k] += int64(n)
	for d.head < len(d.filled) {
		s, e := d.chunkBounds(d.head)
		if d.filled[d.head] < e-s {
			break
		}
		d.head++
	}
	if d.head < len(d.filled) {
		s, _ := d.chunkBounds(d.head)
		d.avail = s + d.filled[d.head]
	} else {
		d.avail = d.size
	}
	d.mu.Unlock()
	d.cond.Broadcast()
	if d.onRecv != nil {
		d.onRecv(n)
	}
}

// fail ends the download with err (the first error wins).
func (d *download) fail(err error) {
	d.mu.Lock()
	if d.err == nil {
		d.err = err
	}
	d.mu.Unlock()
	d.cond.Broadcast()
}

// failure is why the download ended early, nil while it runs or after it
// completed.
func (d *download) failure() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// follow reads the blob from the start, waiting for bytes not yet written.
func (d *download) follow() io.Reader { return &follower{d: d} }

type follower struct {
	d   *download
	off int64
}

func (r *follower) Read(p []byte) (int, error) {
	d := r.d
	if r.off >= d.size {
		return 0, io.EOF
	}
	d.mu.Lock()
	for d.avail <= r.off && d.err == nil {
		d.cond.Wait()
	}
	avail, err := d.avail, d.err
	d.mu.Unlock()
	if avail <= r.off {
		return 0, err
	}
	n, rerr := d.f.ReadAt(p[:min(int64(len(p)), avail-r.off)], r.off)
	r.off += int64(n)
	if rerr == io.EOF && n > 0 {
		rerr = nil
	}
	return n, rerr
}

// run fetches the blob. The first request asks for the first chunk only if
// the blob is large; a 206 answer means the registry serves ranges and the
// rest is fetched in parallel, a 200 that it sent the whole blob.
func (d *download) run(ctx context.Context, client *http.Client, url string) error {
	if d.size < rangeMinBlob {
		resp, err := d.get(ctx, client, url, 0, d.size, false)
		if err != nil {
			return err
		}
		return d.fetchChunk(ctx, client, url, 0, resp)
	}
	resp, err := d.get(ctx, client, url, 0, rangeChunk, true)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusOK {
		return d.fetchChunk(ctx, client, url, 0, resp) // one chunk: the whole blob
	}
	d.layout(rangeChunk)
	g, gctx := errgroup.WithContext(ctx)
	var mu sync.Mutex
	next := 1
	take := func() int {
		mu.Lock()
		defer mu.Unlock()
		k := next
		next++
		return k
	}
	work := func(k int, resp *http.Response) error {
		for ; k < len(d.filled); k = take() {
			if err := d.fetchChunk(gctx, client, url, k, resp); err != nil {
				return err
			}
			resp = nil
		}
		return nil
	}
	g.Go(func() error { return work(0, resp) })
	for range min(rangeParallel, len(d.filled)) - 1 {
		g.Go(func() error { return work(take(), nil) })
	}
	return g.Wait()
}

// fetchChunk writes chunk k from resp (or a new request for it), retrying
// once, from where a broken response stopped.
func (d *download) fetchChunk(ctx context.Context, client *http.Client, url string, k int, resp *http.Response) error {
	start, end := d.chunkBounds(k)
	for attempt := 0; ; attempt++ {
		err := d.fetchRest(ctx, client, url, k, start, end, resp)
		resp = nil
		if err == nil || ctx.Err() != nil || attempt == 1 || errors.Is(err, errDigestMismatch) {
			return err
		}
	}
}

func (d *download) fetchRest(ctx context.Context, client *http.Client, url string, k int, start, end int64, resp *http.Response) error {
	d.mu.Lock()
	off := start + d.filled[k]
	d.mu.Unlock()
	if resp == nil {
		var err error
		if resp, err = d.get(ctx, client, url, off, end, true); err != nil {
			return err
		}
		if resp.StatusCode != http.StatusPartialContent {
			resp.Body.Close()
			return fmt.Errorf("GET %s: the registry answered a range request with %s after serving ranges", url, resp.Status)
		}
	}
	defer resp.Body.Close()
	return d.copy(k, resp.Body, off, end)
}

// copy writes body, which holds [off, end) of the blob, into the file.
func (d *download) copy(k int, body io.Reader, off, end int64) error {
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if off+int64(n) > end {
				return fmt.Errorf("blob is larger than its descriptor's %d bytes: %w", d.size, errDigestMismatch)
			}
			if _, werr := d.f.WriteAt(buf[:n], off); werr != nil {
				return werr
			}
			off += int64(n)
			d.wrote(k, n)
		}
		if err == io.EOF {
			if off != end {
				return fmt.Errorf("response ended at byte %d of %d: %w", off, end, io.ErrUnexpectedEOF)
			}
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// get requests [from, to) of the blob; ranged asks for exactly that range.
// Without a range, or when the registry ignores it and answers 200 from the
// start, the response is the whole blob.
func (d *download) get(ctx context.Context, client *http.Client, url string, from, to int64, ranged bool) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if ranged {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", from, to-1))
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if err := transport.CheckError(resp, http.StatusOK, http.StatusPartialContent); err != nil {
		resp.Body.Close()
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusOK && from == 0:
		if resp.ContentLength >= 0 && resp.ContentLength != d.size {
			resp.Body.Close()
			return nil, fmt.Errorf("GET %s: Content-Length %d, descriptor says %d: %w", url, resp.ContentLength, d.size, errDigestMismatch)
		}
	case resp.StatusCode == http.StatusPartialContent && ranged:
		want := fmt.Sprintf("bytes %d-%d/", from, to-1)
		if cr := resp.Header.Get("Content-Range"); !strings.HasPrefix(cr, want) {
			resp.Body.Close()
			return nil, fmt.Errorf("GET %s: asked for %s, got Content-Range %q", url, strings.TrimSuffix(want, "/"), cr)
		}
	default:
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: unexpected %s", url, resp.Status)
	}
	return resp, nil
}
