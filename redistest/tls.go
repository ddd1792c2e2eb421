package redistest

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

// TLSServerName is the name the server certificate is issued for, and the
// ServerName of TLSCerts.ClientConfig. The certificate also covers the IP
// addresses 127.0.0.1 and ::1.
const TLSServerName = "localhost"

// TLSCerts is a certificate authority generated for one test, with a server
// and a client certificate it signed, all written as PEM files.
type TLSCerts struct {
	// CAPool holds only the test CA.
	CAPool *x509.CertPool

	// ClientCert is the client certificate and key, for servers started
	// with "--tls-auth-clients", "yes".
	ClientCert tls.Certificate

	CACertFile     string // the CA certificate
	ServerCertFile string // the server certificate, for TLSServerName, 127.0.0.1 and ::1
	ServerKeyFile  string // the server private key
	ClientCertFile string // the client certificate
	ClientKeyFile  string // the client private key
}

// StartTLSServer is like StartServer, but the server accepts only TLS, on
// 127.0.0.1:Port(), with certificates from NewTLSCerts:
//
//	--port 0 --tls-port N --tls-cert-file ... --tls-key-file ...
//	--tls-ca-cert-file ... --tls-auth-clients no
//
// The admin connection uses TLS too. Pass "--tls-auth-clients", "yes" to
// require client certificates. The test is skipped (or fails, with
// REDISPOOL_REQUIRE_SERVER=1) if redis-server was built without TLS.
func StartTLSServer(t testing.TB, args ...string) (*Server, *TLSCerts) {
	t.Helper()
	certs := NewTLSCerts(t)
	return startServer(t, "tcp", certs, args), certs
}

// ClientConfig returns a new client configuration that trusts only the test
// CA, expects TLSServerName, and offers ClientCert.
func (c *TLSCerts) ClientConfig() *tls.Config {
	return &tls.Config{
		RootCAs:      c.CAPool,
		ServerName:   TLSServerName,
		Certificates: []tls.Certificate{c.ClientCert},
		MinVersion:   tls.VersionTLS12,
	}
}

// OtherCAPool returns a pool holding a freshly generated CA unrelated to c,
// for tests that expect certificate verification to fail.
func (c *TLSCerts) OtherCAPool() *x509.CertPool {
	ca, _, err := newCA("redistest other CA")
	if err != nil {
		panic("redistest: generate CA: " + err.Error())
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool
}

// NewTLSCerts generates a CA, a server certificate and a client certificate,
// and writes them as PEM files to a temporary directory.
func NewTLSCerts(t testing.TB) *TLSCerts {
	t.Helper()
	ca, caKey, err := newCA("redistest CA")
	if err != nil {
		t.Fatalf("redistest: generate CA: %v", err)
	}
	dir := t.TempDir()
	certs := &TLSCerts{
		CAPool:         x509.NewCertPool(),
		CACertFile:     filepath.Join(dir, "ca.crt"),
		ServerCertFile: filepath.Join(dir, "server.crt"),
		ServerKeyFile:  filepath.Join(dir, "server.key"),
		ClientCertFile: filepath.Join(dir, "client.crt"),
		ClientKeyFile:  filepath.Join(dir, "client.key"),
	}
	certs.CAPool.AddCert(ca)
	writePEM(t, certs.CACertFile, "CERTIFICATE", ca.Raw)

	server := &x509.Certificate{
		Subject:     pkix.Name{CommonName: TLSServerName},
		DNSNames:    []string{TLSServerName},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	issue(t, ca, caKey, server, certs.ServerCertFile, certs.ServerKeyFile)

	client := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "redistest client"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	issue(t, ca, caKey, client, certs.ClientCertFile, certs.ClientKeyFile)
	certs.ClientCert, err = tls.LoadX509KeyPair(certs.ClientCertFile, certs.ClientKeyFile)
	if err != nil {
		t.Fatalf("redistest: load client certificate: %v", err)
	}
	return certs
}

func newCA(name string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	ca, err := x509.ParseCertificate(der)
	return ca, key, err
}

// issue signs tmpl with the CA and writes the certificate and a new key.
func issue(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, tmpl *x509.Certificate, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("redistest: generate key: %v", err)
	}
	tmpl.SerialNumber = serial()
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatalf("redistest: issue certificate for %q: %v", tmpl.Subject.CommonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("redistest: marshal key: %v", err)
	}
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		panic("redistest: " + err.Error())
	}
	return n
}

func writePEM(t testing.TB, path, blockType string, der []byte) {
	t.Helper()
	data := pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("redistest: %v", err)
	}
}
