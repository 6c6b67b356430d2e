package image

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// fetchVia downloads data (as a blob of len(data) bytes) from a server
// using handler and returns what the follower read, the download's error
// and the Range headers the server saw.
func fetchVia(t *testing.T, data []byte, handler func(w http.ResponseWriter, r *http.Request)) ([]byte, error, []string) {
	t.Helper()
	var mu sync.Mutex
	var ranges []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ranges = append(ranges, r.Header.Get("Range"))
		mu.Unlock()
		handler(w, r)
	}))
	defer srv.Close()
	f, err := os.Create(filepath.Join(t.TempDir(), "blob"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := newDownload(f, int64(len(data)), nil)
	errc := make(chan error, 1)
	go func() {
		err := d.run(context.Background(), srv.Client(), srv.URL)
		if err != nil {
			d.fail(err)
		}
		errc <- err
	}()
	got, rerr := io.ReadAll(d.follow())
	derr := <-errc
	if derr == nil && rerr != nil {
		t.Fatalf("follower failed without a download error: %v", rerr)
	}
	mu.Lock()
	defer mu.Unlock()
	return got, derr, ranges
}

func randomBlob(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{1}).Read(b)
	return b
}

func TestDownloadInRanges(t *testing.T) {
	data := randomBlob(3*rangeChunk + 12345)
	got, err, ranges := fetchVia(t, data, func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	})
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ranged download: err %v, %d bytes equal %v", err, len(got), bytes.Equal(got, data))
	}
	if len(ranges) != 4 {
		t.Errorf("want 4 range requests, got %q", ranges)
	}
	for _, r := range ranges {
		if r == "" {
			t.Errorf("a request without Range: %q", ranges)
		}
	}
}

func TestDownloadWhereRangesAreIgnored(t *testing.T) {
	data := randomBlob(rangeMinBlob + 1)
	got, err, ranges := fetchVia(t, data, func(w http.ResponseWriter, r *http.Request) {
		w.Write(data) // 200, whole blob, whatever the Range
	})
	if err != nil || !bytes.Equal(got, data) || len(ranges) != 1 {
		t.Fatalf("err %v, equal %v, requests %q", err, bytes.Equal(got, data), ranges)
	}
}

func TestDownloadSmallBlobIsOneRequest(t *testing.T) {
	data := randomBlob(1000)
	got, err, ranges := fetchVia(t, data, func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	})
	if err != nil || !bytes.Equal(got, data) || len(ranges) != 1 || ranges[0] != "" {
		t.Fatalf("err %v, equal %v, requests %q", err, bytes.Equal(got, data), ranges)
	}
}

func TestDownloadRefusesMoreThanTheDescriptor(t *testing.T) {
	data := randomBlob(1000)
	_, err, _ := fetchVia(t, data, func(w http.ResponseWriter, r *http.Request) {
		w.Write(append(data, 'x')) // no Content-Length check possible: chunked
		w.(http.Flusher).Flush()
	})
	if !errors.Is(err, errDigestMismatch) {
		t.Fatalf("want a digest mismatch for an oversized body, got %v", err)
	}
}

// A range response cut short is resumed from where it stopped.
func TestDownloadResumesABrokenRange(t *testing.T) {
	data := randomBlob(2*rangeChunk + 7)
	var once sync.Once
	got, err, ranges := fetchVia(t, data, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") == "bytes=16777216-33554431" {
			cut := false
			once.Do(func() { cut = true })
			if cut {
				w.Header().Set("Content-Range", "bytes 16777216-33554431/33554439")
				w.Header().Set("Content-Length", "16777216")
				w.WriteHeader(http.StatusPartialContent)
				w.Write(data[rangeChunk : rangeChunk+1000])
				w.(http.Flusher).Flush()
				panic(http.ErrAbortHandler) // drop the connection mid-body
			}
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	})
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("err %v, equal %v, requests %q", err, bytes.Equal(got, data), ranges)
	}
	resumed := false
	for _, r := range ranges {
		resumed = resumed || r == "bytes=16778216-33554431"
	}
	if !resumed {
		t.Errorf("the broken range was not resumed at byte 16778216: %q", ranges)
	}
}
