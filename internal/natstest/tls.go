package natstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TLSFiles are PEM files of a throwaway CA and the certificates it signed.
type TLSFiles struct {
	CA         string // the CA certificate
	ServerCert string
	ServerKey  string
	ClientCert string // a client certificate the server accepts
	ClientKey  string
}

// WithTLS serves TLS with a certificate of a fresh CA (for 127.0.0.1 and
// localhost); requireClientCert also demands a client certificate signed
// by that CA. URL() becomes tls://.
func WithTLS(t testing.TB, requireClientCert bool) Option {
	return func(s *Server) {
		files := writeTLSFiles(t)
		cert, err := tls.LoadX509KeyPair(files.ServerCert, files.ServerKey)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		caPEM, _ := os.ReadFile(files.CA)
		pool.AppendCertsFromPEM(caPEM)
		cfg := &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, MinVersion: tls.VersionTLS12}
		if requireClientCert {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
		s.opts.TLS, s.opts.TLSVerify, s.opts.TLSConfig, s.opts.TLSTimeout = true, requireClientCert, cfg, 5
		s.tls, s.scheme = files, "tls"
	}
}

func writeTLSFiles(t testing.TB) *TLSFiles {
	dir := t.TempDir()
	caKey, caCert := newCA(t)
	f := &TLSFiles{
		CA:         filepath.Join(dir, "ca.pem"),
		ServerCert: filepath.Join(dir, "server.pem"), ServerKey: filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client-key.pem"),
	}
	writePEM(t, f.CA, "CERTIFICATE", caCert.Raw)
	issue(t, caKey, caCert, f.ServerCert, f.ServerKey, x509.ExtKeyUsageServerAuth)
	issue(t, caKey, caCert, f.ClientCert, f.ClientKey, x509.ExtKeyUsageClientAuth)
	return f
}

func newCA(t testing.TB) (*ecdsa.PrivateKey, *x509.Certificate) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "natstest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return key, cert
}

func issue(t testing.TB, caKey *ecdsa.PrivateKey, ca *x509.Certificate, certFile, keyFile string, usage x509.ExtKeyUsage) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "natstest"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
}

func writePEM(t testing.TB, name, typ string, der []byte) {
	if err := os.WriteFile(name, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
