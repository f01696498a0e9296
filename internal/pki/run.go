package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"time"
)

// RunCertificate returns a self-signed TLS client certificate for one run
// of a process: a fresh ECDSA P-256 key that lives only in memory. A hub
// that requests client certificates learns the key's fingerprint
// (RunKeyID) from the TLS handshake, in which the client proves it holds
// the key; a copy of the edge's creds, which never contained it, cannot
// present it. Nothing verifies the certificate's chain: only the key
// matters.
func RunCertificate(commonName string, validFor time.Duration) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate run key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validFor),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("create run certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// RunKeyID is the fingerprint of a certificate's public key: the hex
// SHA-256 of its SubjectPublicKeyInfo, as nats-server reports it for a
// connection's peer certificate (ConnInfo.TLSPeerCerts, subject_pk_sha256).
func RunKeyID(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// WithClientCertificate returns a copy of cfg that presents cert whenever
// the server asks for a client certificate, whatever CAs it names.
func WithClientCertificate(cfg *tls.Config, cert tls.Certificate) *tls.Config {
	c := cfg.Clone()
	c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	return c
}

// RequestClientCertificate returns a copy of a server cfg that asks each
// client for a certificate without requiring or verifying one: the hubs'
// edge listeners learn each link's run key (RunCertificate) this way,
// while authentication stays with the NATS user JWT.
func RequestClientCertificate(cfg *tls.Config) *tls.Config {
	c := cfg.Clone()
	c.ClientAuth = tls.RequestClientCert
	return c
}
