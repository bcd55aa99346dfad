package notify_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"materializer/internal/natstest"
	"materializer/pipeline/notify"
)

// TestAckTimeoutRetriesSameMsgID: the server stores the notice but its
// ack is held back; Publish sends again with the same Msg-Id until an ack
// (a duplicate one) arrives. One message is stored.
func TestAckTimeoutRetriesSameMsgID(t *testing.T) {
	srv := natstest.Start(t)
	proxy := natstest.StartProxy(t, strings.TrimPrefix(srv.URL(), "nats://"))
	reg := prometheus.NewRegistry()
	p := connect(t, notify.Options{URLs: "nats://" + proxy.Addr(), AckTimeout: 300 * time.Millisecond,
		PublishAttempts: 20, Registerer: reg})
	if err := p.EnsureStream(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	proxy.Hold()
	done := make(chan error, 1)
	go func() { done <- p.Publish(ctxT(t), "materializer.files.a", "the-key", []byte(`{"n":1}`)) }()
	eventually(t, "a retry after an ack timeout", func() bool {
		return counter(t, reg, "materializer_notify_publish_retries_total", nil) >= 1
	})
	proxy.Release()
	if err := <-done; err != nil {
		t.Fatalf("Publish: %v", err)
	}
	msgs := streamMsgs(t, srv.Connect(t), notify.DefaultStream)
	if len(msgs) != 1 || msgs[0].Header.Get("Nats-Msg-Id") != "the-key" {
		t.Fatalf("stored %d messages, want 1", len(msgs))
	}
	if d := counter(t, reg, "materializer_notify_published_total", map[string]string{"result": "duplicate"}); d != 1 {
		t.Fatalf("duplicate acks: %v, want 1 (the retry was recognized)", d)
	}
}

// TestAckTimeoutGivesUpRetryable: acks never come; after PublishAttempts
// Publish returns a retryable error.
func TestAckTimeoutGivesUpRetryable(t *testing.T) {
	srv := natstest.Start(t)
	proxy := natstest.StartProxy(t, strings.TrimPrefix(srv.URL(), "nats://"))
	p := connect(t, notify.Options{URLs: "nats://" + proxy.Addr(), AckTimeout: 100 * time.Millisecond, PublishAttempts: 2})
	if err := p.EnsureStream(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	proxy.Hold()
	defer proxy.Release()
	err := p.Publish(ctxT(t), "materializer.files.a", "k", []byte(`{}`))
	if !errors.Is(err, notify.ErrUnavailable) || !notify.Retryable(err) {
		t.Fatalf("Publish: %v, want ErrUnavailable", err)
	}
}

func TestTLSWithCustomCA(t *testing.T) {
	srv := natstest.Start(t, natstest.WithTLS(t, true))
	files := srv.TLS()
	good := notify.Options{URLs: srv.URL(), TLSCAFile: files.CA, TLSCertFile: files.ClientCert, TLSKeyFile: files.ClientKey}
	p := connect(t, good)
	if err := p.Publish(ctxT(t), "materializer.files.a", "k", []byte(`{}`)); err != nil {
		t.Fatalf("Publish over TLS: %v", err)
	}
	for name, o := range map[string]notify.Options{
		"no CA":          {URLs: srv.URL(), TLSCertFile: files.ClientCert, TLSKeyFile: files.ClientKey},
		"no client cert": {URLs: srv.URL(), TLSCAFile: files.CA},
	} {
		t.Run(name, func(t *testing.T) {
			var logs logBuffer
			o.Logger = logs.logger()
			p := connect(t, o)
			err := p.Publish(ctxT(t), "materializer.files.a", "k2", []byte(`{}`))
			if !errors.Is(err, notify.ErrUnavailable) {
				t.Fatalf("Publish: %v, want ErrUnavailable", err)
			}
			eventually(t, "a logged TLS failure", func() bool {
				return strings.Contains(logs.String(), "certificate") || strings.Contains(logs.String(), "tls error")
			})
		})
	}
}

func TestCredsFile(t *testing.T) {
	srv := natstest.Start(t, natstest.WithCreds(t))
	p := connect(t, notify.Options{URLs: srv.URL(), CredsFile: srv.CredsFile()})
	if err := p.Publish(ctxT(t), "materializer.files.a", "k", []byte(`{}`)); err != nil {
		t.Fatalf("Publish with creds: %v", err)
	}
	if n := len(streamMsgs(t, srv.Connect(t), notify.DefaultStream)); n != 1 {
		t.Fatalf("%d messages", n)
	}
	anon := connect(t, notify.Options{URLs: srv.URL()})
	if err := anon.Publish(ctxT(t), "materializer.files.a", "k2", []byte(`{}`)); !errors.Is(err, notify.ErrUnavailable) {
		t.Fatalf("Publish without creds: %v, want ErrUnavailable", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.creds")
	os.WriteFile(bad, []byte("not a creds file"), 0o600)
	for _, f := range []string{bad, filepath.Join(t.TempDir(), "missing.creds")} {
		if _, err := notify.Connect(ctxT(t), notify.Options{URLs: srv.URL(), CredsFile: f}); !errors.Is(err, notify.ErrConfig) {
			t.Errorf("Connect with creds file %s: %v, want ErrConfig", f, err)
		}
	}
}

// TestSecretsNotLogged: a password in the URL never reaches the logs or
// errors, through connect, disconnect and reconnect.
func TestSecretsNotLogged(t *testing.T) {
	const secret = "pw-3f9c1e"
	srv := natstest.Start(t, natstest.WithUser("mat", secret))
	var logs logBuffer
	p := connect(t, notify.Options{URLs: srv.URLWithUser(), Logger: logs.logger()})
	if err := p.Publish(ctxT(t), "materializer.files.a", "k", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	eventually(t, "disconnect", func() bool { return !p.Connected() })
	err := p.Publish(ctxT(t), "materializer.files.a", "k2", []byte(`{}`))
	srv.Restart()
	eventually(t, "reconnect", func() bool { return p.Connected() })
	out := logs.String()
	if !strings.Contains(out, "reconnected to NATS") {
		t.Fatalf("no reconnect logged:\n%s", out)
	}
	if strings.Contains(out, secret) || strings.Contains(err.Error(), secret) {
		t.Fatalf("the password leaked:\n%s\n%v", out, err)
	}
	_, err = notify.Connect(ctxT(t), notify.Options{URLs: "nats://mat:" + secret + "@127.0.0.1:notaport"})
	if !errors.Is(err, notify.ErrConfig) || strings.Contains(err.Error(), secret) {
		t.Fatalf("Connect error %v", err)
	}
}

// TestSeveralURLs: the first server is down; the client uses the next.
func TestSeveralURLs(t *testing.T) {
	srv := natstest.Start(t)
	p := connect(t, notify.Options{URLs: "nats://127.0.0.1:1, " + srv.URL()})
	if err := p.Publish(ctxT(t), "materializer.files.a", "k", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
}

func TestPublishRejectsBadArguments(t *testing.T) {
	srv := natstest.Start(t)
	p := connect(t, notify.Options{URLs: srv.URL()})
	for _, tc := range []struct{ subject, id string }{
		{"other.a", "k"}, {"materializer.files", "k"}, {"materializer.files.*", "k"}, {"materializer.files.a", ""},
	} {
		err := p.Publish(ctxT(t), tc.subject, tc.id, []byte(`{}`))
		if !errors.Is(err, notify.ErrConfig) || notify.Retryable(err) {
			t.Errorf("Publish(%q, %q): %v, want permanent ErrConfig", tc.subject, tc.id, err)
		}
	}
	p.Close()
	if err := p.Publish(ctxT(t), "materializer.files.a", "k", []byte(`{}`)); !errors.Is(err, notify.ErrClosed) || notify.Retryable(err) {
		t.Fatalf("Publish after Close: %v, want ErrClosed", err)
	}
}

func TestConnectRejectsBadOptions(t *testing.T) {
	for _, o := range []notify.Options{
		{},
		{URLs: "nats://h", SubjectPrefix: "a.*"},
		{URLs: "nats://h", Stream: "a.b"},
		{URLs: "nats://h", DuplicateWindow: 30 * time.Minute},
		{URLs: "nats://h", Replicas: 6},
		{URLs: "nats://h", Replicas: -1},
		{URLs: "nats://h", TLSCertFile: "c"},
		{URLs: "nats://h", TLSCAFile: "/nonexistent/ca.pem"},
	} {
		if _, err := notify.Connect(ctxT(t), o); !errors.Is(err, notify.ErrConfig) {
			t.Errorf("Connect(%+v): %v, want ErrConfig", o, err)
		}
	}
}
