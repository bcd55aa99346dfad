package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"

	"materializer/conf"
)

// adminClient talks to a running daemon's admin API, as the commands
// `status`, `checkpoint create` and `drain` do: at daemon.admin_listen
// (loopback when it listens on every address), with the bearer token of
// daemon.admin_token_file when one is set.
type adminClient struct {
	base, token string
}

func newAdminClient(cfg *conf.Config) (*adminClient, error) {
	base, err := adminBaseURL(cfg.Daemon.AdminListen)
	if err != nil {
		return nil, err
	}
	c := &adminClient{base: base}
	if f := cfg.Daemon.AdminTokenFile; f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("daemon.admin_token_file: %w", pathError(err))
		}
		c.token = strings.TrimSpace(string(b))
	}
	return c, nil
}

// adminBaseURL turns daemon.admin_listen into the URL a local client
// uses: a wildcard host becomes loopback.
func adminBaseURL(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("daemon.admin_listen %q: %w", listen, err)
	}
	if port == "0" {
		return "", fmt.Errorf("daemon.admin_listen %q has port 0: the daemon picked a port at start (see its log line \"admin server listening\")", listen)
	}
	switch ip := net.ParseIP(host); {
	case host == "" || (ip != nil && ip.IsUnspecified() && ip.To4() != nil):
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified():
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// do sends one request and reads the answer. A daemon that does not
// answer is a one-line notAnswering error; the caller judges the status.
func (c *adminClient) do(ctx context.Context, method, path string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return nil, nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, notAnswering(c.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s%s: %w", method, c.base, path, err)
	}
	return resp, body, nil
}

// adminPost POSTs to the running daemon's admin API and decodes the JSON
// answer into out.
func adminPost(ctx context.Context, cfg *conf.Config, path string, out any) error {
	c, err := newAdminClient(cfg)
	if err != nil {
		return err
	}
	resp, body, err := c.do(ctx, http.MethodPost, path)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return fmt.Errorf("%s", resp.Status)
	}
	return json.Unmarshal(body, out)
}

// notAnswering names the usual cause of a failed request in one line.
func notAnswering(base string, err error) error {
	addr := strings.TrimPrefix(base, "http://")
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("no daemon is running on %s (connection refused): start it with `materializer run`, or check daemon.admin_listen", addr)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("the daemon on %s did not answer in time", addr)
	}
	return fmt.Errorf("cannot reach the daemon on %s: %w", addr, err)
}
