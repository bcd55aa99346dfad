package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
)

// adminAuth guards the admin API: with a token file, every /v1 request
// and /debug/pprof needs `Authorization: Bearer <token>`; without one, the
// mutating POST endpoints and the profiler accept loopback clients only.
// The token is kept only as its SHA-256, compared in constant time, and
// never logged.
type adminAuth struct {
	tokenFile string
	token     atomic.Pointer[[sha256.Size]byte] // nil: loopback only
}

var errEmptyToken = errors.New("daemon: admin token file is empty")

// newAdminAuth reads tokenFile ("" = loopback only).
func newAdminAuth(tokenFile string) (*adminAuth, error) {
	a := &adminAuth{tokenFile: tokenFile}
	return a, a.Reload()
}

// Reload re-reads the token file (SIGHUP), so a rotated token takes effect.
// On error the previous token stays.
func (a *adminAuth) Reload() error {
	if a.tokenFile == "" {
		a.token.Store(nil)
		return nil
	}
	data, err := os.ReadFile(a.tokenFile)
	if err != nil {
		return fmt.Errorf("daemon.admin_token_file: %w", pathError(err))
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return fmt.Errorf("%w: %s", errEmptyToken, a.tokenFile)
	}
	sum := sha256.Sum256([]byte(token))
	a.token.Store(&sum)
	return nil
}

// pathError shortens *os.PathError to "path: reason" (it never holds file
// contents).
func pathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

// readable wraps a handler that only reads: the token when one is set.
func (a *adminAuth) readable(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if want := a.token.Load(); want != nil && !bearerMatches(r, want) {
			unauthorized(w)
			return
		}
		next(w, r)
	}
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="materializer"`)
	writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token"})
}

// guard wraps a mutating handler (or the profiler): the token, or a
// loopback client when no token is set.
func (a *adminAuth) guard(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if want := a.token.Load(); want != nil {
			if !bearerMatches(r, want) {
				unauthorized(w)
				return
			}
		} else if !fromLoopback(r) {
			writeJSON(w, http.StatusForbidden, map[string]string{
				"error": "POST endpoints accept loopback clients only (set daemon.admin_token_file to allow others)",
			})
			return
		}
		next(w, r)
	}
}

func bearerMatches(r *http.Request, want *[sha256.Size]byte) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
