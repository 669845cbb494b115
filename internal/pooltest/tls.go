package pooltest

import (
	"context"
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
	"strconv"
	"testing"
	"time"

	"github.com/quorumlock/quorumlock/pool"
)

// testTLS starts a server that also listens for TLS with a certificate from a
// CA made for the test, and connects over rediss://. The plain port stays
// open only because redistest checks readiness over it.
func testTLS(t *testing.T, f Factory) {
	dir := t.TempDir()
	pki := newPKI(t, dir)
	tlsPort := freePort(t)
	server(t,
		"--tls-port", strconv.Itoa(tlsPort),
		"--tls-cert-file", pki.certFile,
		"--tls-key-file", pki.keyFile,
		"--tls-ca-cert-file", pki.caFile,
		"--tls-auth-clients", "no",
	)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort))
	trusting := &tls.Config{RootCAs: pki.pool, MinVersion: tls.VersionTLS12}

	t.Run("trusted CA", func(t *testing.T) {
		p := open(t, f, "rediss://"+addr, trusting)
		if p.Addr() != addr {
			t.Errorf("Addr() = %q, want %q", p.Addr(), addr)
		}
		if err := evalEcho(t.Context(), p, "over tls"); err != nil {
			t.Fatalf("Eval over TLS: %v", err)
		}
		if sub, ok := p.(pool.Subscriber); ok {
			sc, err := subscribe(t, sub, hangBound)
			if err != nil {
				t.Fatalf("Subscribe over TLS: %v", err)
			}
			defer sc.Close()
			if err := sc.Subscribe("pooltest:tls"); err != nil {
				t.Fatal(err)
			}
			expect(t, sc, pool.Event{Kind: pool.EventSubscribed, Channel: "pooltest:tls"})
		}
	})
	for _, tc := range []struct {
		name, url string
		cfg       *tls.Config
	}{
		{"unknown CA", "rediss://" + addr, nil},
		{"plain text to the TLS port", "redis://" + addr, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := f(tc.url, tc.cfg)
			if err == nil {
				closeAtEnd(t, p)
				err = within(t, "Eval", func() error {
					ctx, cancel := context.WithTimeout(t.Context(), hangBound)
					defer cancel()
					return evalEcho(ctx, p, "x")
				})
			}
			if err == nil {
				t.Fatal("no error")
			}
			if isServerError(err) || isContextError(err) {
				t.Errorf("error %v: want a connection error, not an error reply or a timeout", err)
			}
		})
	}
}

// pki is a CA and a server certificate it signed, for 127.0.0.1 and
// localhost, written as PEM files.
type pki struct {
	pool                      *x509.CertPool
	caFile, certFile, keyFile string
}

func newPKI(t *testing.T, dir string) pki {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pooltest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := pki{
		pool:     x509.NewCertPool(),
		caFile:   filepath.Join(dir, "ca.crt"),
		certFile: filepath.Join(dir, "server.crt"),
		keyFile:  filepath.Join(dir, "server.key"),
	}
	p.pool.AddCert(ca)
	writePEM(t, p.caFile, "CERTIFICATE", caDER)
	writePEM(t, p.certFile, "CERTIFICATE", der)
	writePEM(t, p.keyFile, "PRIVATE KEY", keyDER)
	return p
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
