package natstest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// WithCreds runs the server in operator (JWT) mode: one operator, a
// system account, an account with JetStream and one user whose creds file
// CredsFile() names. Connections without it are refused.
func WithCreds(t testing.TB) Option {
	return func(s *Server) {
		op := newKey(t, nkeys.CreateOperator)
		opClaims := jwt.NewOperatorClaims(pub(t, op))
		opClaims.Name = "natstest"
		sys, app := newKey(t, nkeys.CreateAccount), newKey(t, nkeys.CreateAccount)
		opClaims.SystemAccount = pub(t, sys)
		if _, err := opClaims.Encode(op); err != nil {
			t.Fatal(err)
		}
		resolver := &server.MemAccResolver{}
		storeAccount(t, resolver, op, sys, "SYS", false)
		storeAccount(t, resolver, op, app, "APP", true)
		s.opts.TrustedOperators = []*jwt.OperatorClaims{opClaims}
		s.opts.SystemAccount = pub(t, sys)
		s.opts.AccountResolver = resolver
		s.creds = writeUserCreds(t, app)
	}
}

func storeAccount(t testing.TB, r *server.MemAccResolver, op, acc nkeys.KeyPair, name string, jetStream bool) {
	c := jwt.NewAccountClaims(pub(t, acc))
	c.Name = name
	if jetStream {
		c.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	}
	token, err := c.Encode(op)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Store(c.Subject, token); err != nil {
		t.Fatal(err)
	}
}

func writeUserCreds(t testing.TB, acc nkeys.KeyPair) string {
	user := newKey(t, nkeys.CreateUser)
	c := jwt.NewUserClaims(pub(t, user))
	c.Name = "materializer"
	token, err := c.Encode(acc)
	if err != nil {
		t.Fatal(err)
	}
	seed, err := user.Seed()
	if err != nil {
		t.Fatal(err)
	}
	creds, err := jwt.FormatUserConfig(token, seed)
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(t.TempDir(), "materializer.creds")
	if err := os.WriteFile(name, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

func newKey(t testing.TB, create func() (nkeys.KeyPair, error)) nkeys.KeyPair {
	kp, err := create()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func pub(t testing.TB, kp nkeys.KeyPair) string {
	p, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return p
}
