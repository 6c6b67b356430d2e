package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/crisp-runtime/crisp/errdefs"
)

// failure classifies what an endpoint said, to pick the error code of a pull
// once every endpoint has been tried.
type failure int

const (
	failOther failure = iota
	failNotFound
	failAuth
	failUnavailable
	failExhausted
)

func classify(err error) failure {
	if errors.Is(err, errdefs.ErrResourceExhausted) {
		return failExhausted // a layer over crisp's limits
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch {
		case te.StatusCode == http.StatusNotFound:
			return failNotFound
		case te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden:
			return failAuth
		case te.StatusCode == http.StatusTooManyRequests || te.StatusCode >= 500:
			return failUnavailable
		}
		for _, d := range te.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
				return failNotFound
			case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
				return failAuth
			case transport.UnavailableErrorCode, transport.TooManyRequestsErrorCode:
				return failUnavailable
			}
		}
		return failOther
	}
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.As(err, &dnsErr),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.As(err, &netErr) && netErr.Timeout(),
		errors.Is(err, errdefs.ErrUnavailable):
		return failUnavailable
	}
	return failOther
}

// isCtxErr reports whether err is a cancellation or deadline.
func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// attempt records one endpoint's failure.
type attempt struct {
	ep  *endpoint
	err error
}

// pullError turns the failures of every endpoint into one error whose kind
// tells kubelet (and the user) what to do:
//   - every endpoint said "not found": ErrNotFound, the image does not exist;
//   - any said unauthorized/denied (and the rest not found): ErrFailedPrecondition,
//     because retrying without other credentials cannot succeed, and
//     registries answer 401 for missing private repositories, so it is
//     not a definite NotFound either;
//   - any could not be reached: ErrUnavailable naming them, since the image
//     may be there once the endpoint is back;
//   - a layer was over crisp's limits: ErrResourceExhausted;
//   - otherwise (TLS failures, bad manifests): plain error, code Unknown.
func pullError(what, host string, attempts []attempt) error {
	var tried, details []string
	count := map[failure]int{}
	for _, a := range attempts {
		tried = append(tried, a.ep.display)
		details = append(details, fmt.Sprintf("%s: %v", a.ep.display, a.err))
		count[classify(a.err)]++
	}
	n := len(attempts)
	switch {
	case count[failNotFound] == n:
		return fmt.Errorf("%s not found in %s (tried %s): %w", what, host, strings.Join(tried, ", "), errdefs.ErrNotFound)
	case count[failAuth] > 0 && count[failAuth]+count[failNotFound] == n:
		return errdefs.FailedPrecondition("pull access denied for %s in %s: the repository does not exist or requires authorization (%s)",
			what, host, strings.Join(details, "; "))
	case count[failExhausted] > 0:
		for _, a := range attempts {
			if classify(a.err) == failExhausted {
				return fmt.Errorf("pull %s from %s: %w", what, a.ep.display, a.err)
			}
		}
	case count[failUnavailable] > 0:
		return fmt.Errorf("registry %s unavailable for %s (%s): %w", host, what, strings.Join(details, "; "), errdefs.ErrUnavailable)
	}
	return fmt.Errorf("pull %s from %s: %s", what, host, strings.Join(details, "; "))
}
