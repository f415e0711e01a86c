// Package ldaptest runs a real OpenLDAP slapd for tests: in a temporary
// directory, on loopback ports (ldap:// with StartTLS, and ldaps://), with
// a small directory of users and groups. A machine without slapd skips the
// test loudly; under CI (CI=true) it fails instead.
package ldaptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Base is the directory's suffix.
const Base = "dc=corp,dc=example"

// The directory's accounts.
const (
	ServiceDN       = "cn=oidcgate,ou=services," + Base
	ServicePassword = "service-secret"
	JanePassword    = "jane-password"
	BobPassword     = "bob-password"
)

// Server is a running slapd.
type Server struct {
	URL     string // ldap://127.0.0.1:PORT (StartTLS offered)
	LDAPS   string // ldaps://127.0.0.1:PORT
	CAFile  string // PEM of the server's self-signed certificate
	cmd     *exec.Cmd
	dir     string
	stopped bool
}

// LDIF is the directory: jane is in admins and developers (groupOfNames)
// and ops (posixGroup, memberUid); bob only in developers.
const LDIF = `dn: dc=corp,dc=example
objectClass: dcObject
objectClass: organization
o: Corp
dc: corp

dn: ou=people,dc=corp,dc=example
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=corp,dc=example
objectClass: organizationalUnit
ou: groups

dn: ou=services,dc=corp,dc=example
objectClass: organizationalUnit
ou: services

dn: cn=oidcgate,ou=services,dc=corp,dc=example
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: oidcgate
userPassword: service-secret

dn: uid=jane,ou=people,dc=corp,dc=example
objectClass: inetOrgPerson
objectClass: posixAccount
uid: jane
cn: Jane Doe
sn: Doe
mail: jane@corp.example
userPassword: jane-password
uidNumber: 1001
gidNumber: 1001
homeDirectory: /home/jane

dn: uid=bob,ou=people,dc=corp,dc=example
objectClass: inetOrgPerson
uid: bob
cn: Bob Roe
sn: Roe
mail: bob@corp.example
userPassword: bob-password

dn: cn=admins,ou=groups,dc=corp,dc=example
objectClass: groupOfNames
cn: admins
member: uid=jane,ou=people,dc=corp,dc=example

dn: cn=developers,ou=groups,dc=corp,dc=example
objectClass: groupOfNames
cn: developers
member: uid=jane,ou=people,dc=corp,dc=example
member: uid=bob,ou=people,dc=corp,dc=example

dn: cn=ops,ou=groups,dc=corp,dc=example
objectClass: posixGroup
cn: ops
gidNumber: 2000
memberUid: jane
`

const conf = `include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
pidfile {{dir}}/slapd.pid
argsfile {{dir}}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCertificateFile {{dir}}/cert.pem
TLSCertificateKeyFile {{dir}}/key.pem
database mdb
maxsize 10485760
suffix "dc=corp,dc=example"
rootdn "cn=admin,dc=corp,dc=example"
directory {{dir}}/db
access to attrs=userPassword by self read by anonymous auth by * none
access to * by dn.exact="cn=oidcgate,ou=services,dc=corp,dc=example" read by self read by * none
`

// find looks a program up on PATH and in the sbin directories.
func find(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(d, name); fileExists(p) {
			return p
		}
	}
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// Start runs slapd for the test and stops it (by its PID) at cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	slapd, slapadd := find("slapd"), find("slapadd")
	if slapd == "" || slapadd == "" || !fileExists("/etc/ldap/schema/nis.schema") {
		msg := "OpenLDAP slapd is not installed (Debian: apt-get install slapd ldap-utils); this LDAP test needs a real directory"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPED LOUDLY: " + msg)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeCert(t, dir)
	confPath := filepath.Join(dir, "slapd.conf")
	must(t, os.WriteFile(confPath, []byte(strings.ReplaceAll(conf, "{{dir}}", dir)), 0o600))
	ldifPath := filepath.Join(dir, "data.ldif")
	must(t, os.WriteFile(ldifPath, []byte(LDIF), 0o600))
	if out, err := exec.Command(slapadd, "-f", confPath, "-l", ldifPath).CombinedOutput(); err != nil {
		t.Fatalf("slapadd: %v\n%s", err, out)
	}
	plain, tlsPort := freePort(t), freePort(t)
	s := &Server{URL: "ldap://127.0.0.1:" + plain, LDAPS: "ldaps://127.0.0.1:" + tlsPort, CAFile: filepath.Join(dir, "cert.pem"), dir: dir}
	// -d 0: stay in the foreground, so the test owns the process.
	s.cmd = exec.Command(slapd, "-f", confPath, "-h", s.URL+"/ "+s.LDAPS+"/", "-d", "0")
	logFile, _ := os.Create(filepath.Join(dir, "slapd.log"))
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("slapd: %v", err)
	}
	t.Cleanup(func() { s.Stop(); logFile.Close() })
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+plain, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "slapd.log"))
			t.Fatalf("slapd did not listen within 10 s: %s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

// Stop kills slapd (the directory goes down) and waits for it.
func (s *Server) Stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	s.cmd.Process.Kill()
	s.cmd.Wait()
}

func freePort(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// writeCert makes a self-signed certificate for 127.0.0.1.
func writeCert(t testing.TB, dir string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(fmt.Errorf("ldaptest: %w", err))
	}
}
