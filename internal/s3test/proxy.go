package s3test

import (
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
)

// Proxied is a server reached through a fault-injecting reverse proxy.
// Endpoint is the proxy's; the Host header passes through unchanged, so
// SigV4 signatures made for the proxy address stay valid.
type Proxied struct {
	Server
	*Faults
	Direct Server // the server itself, bypassing the proxy
}

// Proxy puts a fault-injecting reverse proxy in front of srv.
func Proxy(t testing.TB, srv Server) *Proxied {
	t.Helper()
	target, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxied{Faults: &Faults{}, Direct: srv}
	rp := httputil.NewSingleHostReverseProxy(target)
	hs := httptest.NewServer(p.Wrap(rp))
	t.Cleanup(hs.Close)
	p.Server = srv
	p.Endpoint = hs.URL
	return p
}
