package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wastatus/wastatus/edge"
	"github.com/wastatus/wastatus/internal/kafkatest"
)

// command is a wastatus subcommand running in-process, as the binary would
// run it, with its output captured.
type command struct {
	out, err *syncBuffer
	done     chan error
	cancel   context.CancelFunc
	result   error
	finished bool
}

func startCmd(t *testing.T, args ...string) *command {
	t.Helper()
	c := &command{out: &syncBuffer{}, err: &syncBuffer{}, done: make(chan error, 1)}
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(c.out)
	root.SetErr(c.err)
	ctx, cancel := context.WithCancel(t.Context())
	c.cancel = cancel
	go func() { c.done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() { c.stop() })
	return c
}

// runCmd runs a subcommand to its end and returns its error.
func runCmd(t *testing.T, args ...string) (*command, error) {
	t.Helper()
	c := startCmd(t, args...)
	select {
	case err := <-c.done:
		c.finished, c.result = true, err
		return c, err
	case <-time.After(60 * time.Second):
		t.Fatalf("wastatus %s did not return\nstderr:\n%s", strings.Join(args, " "), c.err)
		return c, nil
	}
}

// stop cancels the command and returns what it returned.
func (c *command) stop() error {
	c.cancel()
	if !c.finished {
		c.result, c.finished = <-c.done, true
	}
	return c.result
}

// addr waits for the log line msg and returns the address it names.
func (c *command) addr(t *testing.T, msg string) string {
	t.Helper()
	re := regexp.MustCompile(`msg="` + msg + `" addr=(\S+)`)
	var addr string
	kafkatest.Eventually(t, 60*time.Second, func() error {
		select {
		case err := <-c.done:
			c.finished, c.result = true, err
			t.Fatalf("command returned early: %v\nstderr:\n%s", err, c.err)
		default:
		}
		m := re.FindStringSubmatch(c.err.String())
		if m == nil {
			return fmt.Errorf("no %q in the log yet", msg)
		}
		addr = m[1]
		return nil
	})
	return addr
}

// writeFile writes content to a new file in dir and returns its path.
func writeFile(t *testing.T, dir, name string, content []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, content, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a certificate for dnsName signed by ca, as a tls.Certificate
// and as PEM certificate and key.
func (ca *testCA) issue(t *testing.T, dnsName string, usage x509.ExtKeyUsage) (tls.Certificate, []byte, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: dnsName},
		DNSNames:     []string{dnsName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pair, certPEM, keyPEM
}

// pipeline runs `wastatus process` and `wastatus ingest` against brokers
// with the extra args (connection options) and checks that a signed status
// posted to the edge is served by the processor's API.
func pipeline(t *testing.T, brokers string, args ...string) {
	t.Helper()
	dir := t.TempDir()
	secret := writeFile(t, dir, "app-secret", []byte("pipeline-secret\n"))
	common := append([]string{"--brokers", brokers, "--partitions", "3"}, args...)
	proc := startCmd(t, append([]string{"process", "--data-dir", dir, "--http-addr", "127.0.0.1:0"}, common...)...)
	ing := startCmd(t, append([]string{"ingest", "--http-addr", "127.0.0.1:0", "--app-secret-file", secret}, common...)...)
	apiURL := "http://" + proc.addr(t, "processor api listening")
	hookURL := "http://" + ing.addr(t, "edge listening") + edge.WebhookPath

	ctx := t.Context()
	wamid := "wamid.SEC" + randomHex(8)
	body := fmt.Appendf(nil, demoWebhook, wamid, "read", time.Now().Unix())
	code, resp, err := postSigned(ctx, http.DefaultClient, hookURL, body, []byte("pipeline-secret"))
	if err != nil || code != http.StatusOK {
		t.Fatalf("post: %d %s %v\ningest stderr:\n%s", code, resp, err, ing.err)
	}
	kafkatest.Eventually(t, 60*time.Second, func() error {
		b, err := get(ctx, http.DefaultClient, apiURL+"/v1/messages/"+wamid, "")
		if err != nil {
			return err
		}
		var m struct{ Status string }
		if err := json.Unmarshal(b, &m); err != nil || m.Status != "read" {
			return fmt.Errorf("state %s (%v)", b, err)
		}
		return nil
	})
	for name, c := range map[string]*command{"ingest": ing, "process": proc} {
		if err := c.stop(); err != nil {
			t.Errorf("%s: %v\nstderr:\n%s", name, err, c.err)
		}
	}
}

// TestKafkaSASL runs the pipeline against a broker that requires each SASL
// mechanism, and checks that a wrong password stops a command at start with
// an error that says why and does not contain the password.
func TestKafkaSASL(t *testing.T) {
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			t.Parallel()
			const pass = "sasl-Pa55-right"
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser(mech, "wastatus", pass))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			brokers := strings.Join(c.ListenAddrs(), ",")
			dir := t.TempDir()
			sasl := func(passFile string) []string {
				return []string{"--kafka-sasl-mechanism", strings.ToLower(mech), "--kafka-sasl-user", "wastatus", "--kafka-sasl-password-file", passFile}
			}

			wrong := writeFile(t, dir, "wrong", []byte("sasl-Pa55-wrong"))
			cmd, err := runCmd(t, append([]string{"process", "--brokers", brokers, "--data-dir", dir, "--http-addr", "127.0.0.1:0"}, sasl(wrong)...)...)
			if !errors.Is(err, errKafkaSession) {
				t.Fatalf("wrong password: err = %v, want errKafkaSession\nstderr:\n%s", err, cmd.err)
			}
			for _, want := range []string{"sasl=" + mech, `user="wastatus"`, "password"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if all := err.Error() + cmd.err.String() + cmd.out.String(); strings.Contains(all, "sasl-Pa55") {
				t.Errorf("the password leaked into the error or the logs:\n%s", all)
			}

			// No SASL at all: the broker closes the connection.
			if _, err := runCmd(t, "dlq", "list", "--brokers", brokers); !errors.Is(err, errKafkaSession) {
				t.Errorf("no sasl: err = %v, want errKafkaSession", err)
			}

			pipeline(t, brokers, sasl(writeFile(t, dir, "right", []byte(pass+"\n")))...)
		})
	}
}

// TestKafkaTLS runs the pipeline over mutual TLS (with SCRAM on top) to a
// broker whose certificate names kafka.test, and checks the clear errors of
// a wrong CA, a missing client certificate, a wrong server name and
// plaintext to a TLS listener.
func TestKafkaTLS(t *testing.T) {
	dir := t.TempDir()
	ca, other := newTestCA(t, "wastatus test CA"), newTestCA(t, "some other CA")
	server, _, _ := ca.issue(t, "kafka.test", x509.ExtKeyUsageServerAuth)
	_, clientCert, clientKey := ca.issue(t, "wastatus", x509.ExtKeyUsageClientAuth)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	const pass = "tls-and-scram-pass"
	c, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{server}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "wastatus", pass))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := strings.Join(c.ListenAddrs(), ",")
	t.Setenv(envSASLPassword, pass)

	caFile := writeFile(t, dir, "ca.pem", ca.pem)
	otherFile := writeFile(t, dir, "other.pem", other.pem)
	certFile := writeFile(t, dir, "client.pem", clientCert)
	keyFile := writeFile(t, dir, "client.key", clientKey)
	sasl := []string{"--kafka-sasl-mechanism", "scram-sha-512", "--kafka-sasl-user", "wastatus"}
	good := append([]string{"--kafka-tls-ca-file", caFile, "--kafka-tls-cert-file", certFile, "--kafka-tls-key-file", keyFile, "--kafka-tls-server-name", "kafka.test"}, sasl...)

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"wrong CA", append([]string{"--kafka-tls-ca-file", otherFile, "--kafka-tls-cert-file", certFile, "--kafka-tls-key-file", keyFile, "--kafka-tls-server-name", "kafka.test"}, sasl...), "certificate signed by unknown authority"},
		{"no client certificate", append([]string{"--kafka-tls-ca-file", caFile, "--kafka-tls-server-name", "kafka.test"}, sasl...), "certificate"},
		{"wrong server name", append([]string{"--kafka-tls-ca-file", caFile, "--kafka-tls-cert-file", certFile, "--kafka-tls-key-file", keyFile}, sasl...), "cannot validate certificate for 127.0.0.1"},
		{"plaintext to a TLS listener", sasl, "tls=off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, err := runCmd(t, append([]string{"dlq", "list", "--brokers", brokers}, tc.args...)...)
			if !errors.Is(err, errKafkaSession) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want errKafkaSession naming %q\nstderr:\n%s", err, tc.want, cmd.err)
			}
		})
	}
	t.Run("pipeline", func(t *testing.T) { pipeline(t, brokers, good...) })
}

// TestKafkaSecurityFlags checks the configuration errors that need no
// broker: each names the flag or variable to fix.
func TestKafkaSecurityFlags(t *testing.T) {
	dir := t.TempDir()
	notPEM := writeFile(t, dir, "not.pem", []byte("hello"))
	t.Setenv(envSASLPassword, "")
	for _, tc := range []struct {
		name string
		f    kafkaSecurityFlags
		want string
	}{
		{"mechanism without user", kafkaSecurityFlags{saslMechanism: "plain"}, "--kafka-sasl-user"},
		{"no password", kafkaSecurityFlags{saslMechanism: "plain", saslUser: "u"}, envSASLPassword},
		{"password file missing", kafkaSecurityFlags{saslMechanism: "plain", saslUser: "u", saslPasswordFile: filepath.Join(dir, "none")}, "--kafka-sasl-password-file"},
		{"unknown mechanism", kafkaSecurityFlags{saslMechanism: "gssapi", saslUser: "u", saslPasswordFile: notPEM}, "--kafka-sasl-mechanism"},
		{"CA file without a certificate", kafkaSecurityFlags{caFile: notPEM}, "no PEM certificate"},
		{"cert without key", kafkaSecurityFlags{tls: true, certFile: notPEM}, "go together"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.f.opts(discardLogger())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %q", err, tc.want)
			}
		})
	}

	// The embedded broker has neither TLS nor SASL.
	_, err := runCmd(t, "run", "--data-dir", dir, "--embedded-kafka-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--kafka-tls")
	if err == nil || !strings.Contains(err.Error(), "need --brokers") {
		t.Fatalf("run --kafka-tls without --brokers: %v", err)
	}

	// Turning verification off is said loudly.
	var logs bytes.Buffer
	if _, err := (&kafkaSecurityFlags{insecureSkipVerify: true}).opts(textLogger(&logs)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "NOT VERIFIED") {
		t.Errorf("no warning for --kafka-tls-insecure-skip-verify: %q", logs.String())
	}
}

// TestAPIGuard checks which paths the API token guards and how a refusal
// looks.
func TestAPIGuard(t *testing.T) {
	const token = "api-T0ken-for-tests"
	mux := http.NewServeMux()
	for _, p := range []string{"GET /v1/messages/{wamid}", "GET /healthz", "GET /readyz", "GET /metrics", "/debug/pprof/", "POST /webhook"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	}
	for _, tc := range []struct {
		name, method, path, auth string
		withToken                bool
		want                     int
		wantChallenge            string
	}{
		{"open without a token", "GET", "/v1/messages/x", "", false, 200, ""},
		{"missing", "GET", "/v1/messages/x", "", true, 401, `Bearer realm="wastatus"`},
		{"wrong", "GET", "/v1/messages/x", "Bearer nope", true, 401, `Bearer realm="wastatus", error="invalid_token"`},
		{"prefix of the token", "GET", "/v1/messages/x", "Bearer " + token[:5], true, 401, `Bearer realm="wastatus", error="invalid_token"`},
		{"basic scheme", "GET", "/v1/messages/x", "Basic " + token, true, 401, `Bearer realm="wastatus", error="invalid_token"`},
		{"right", "GET", "/v1/messages/x", "Bearer " + token, true, 200, ""},
		{"scheme in any case", "GET", "/v1/messages/x", "bearer " + token, true, 200, ""},
		{"wait_for", "GET", "/v1/messages/x?wait_for=read", "Bearer " + token, true, 200, ""},
		{"pprof guarded", "GET", "/debug/pprof/", "", true, 401, `Bearer realm="wastatus"`},
		{"healthz open", "GET", "/healthz", "", true, 200, ""},
		{"readyz open", "GET", "/readyz", "", true, 200, ""},
		{"metrics open", "GET", "/metrics", "", true, 200, ""},
		{"webhook has its signature", "POST", "/webhook", "", true, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := ""
			if tc.withToken {
				tok = token
			}
			g := newAPIGuard(mux, tok, "127.0.0.1:0", time.Minute, newRegistry(), discardLogger())
			srv := newTestServer(t, g)
			req, _ := http.NewRequestWithContext(t.Context(), tc.method, srv+tc.path, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, resp.StatusCode, body, tc.want)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tc.wantChallenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tc.wantChallenge)
			}
			if strings.Contains(string(body), token) {
				t.Errorf("the answer echoes the token: %s", body)
			}
		})
	}
}

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "[::1]:8080": true, "localhost:8080": true,
		":8080": false, "0.0.0.0:8080": false, "10.0.0.5:8080": false, "api.example:443": false,
	} {
		if got := loopback(addr); got != want {
			t.Errorf("loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestHTTPLimits checks the listener's limits: an oversize header block
// gets 431, a client that trickles its headers is cut off, and HTTPS is
// served when a certificate is given.
func TestHTTPLimits(t *testing.T) {
	h := httpFlags{readHeaderTimeout: 200 * time.Millisecond, readTimeout: time.Second, writeTimeout: time.Second, idleTimeout: time.Second, maxHeaderBytes: 8 << 10}
	if err := h.validate(0); err != nil {
		t.Fatal(err)
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	addr := serveTest(t, &h, ok)

	req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+addr+"/", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("64 KiB of headers: %d, want 431", resp.StatusCode)
	}

	// A slow client: half a request line, then nothing. The server must
	// close the connection after --http-read-header-timeout, well before
	// our own deadline.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(conn); err != nil {
		t.Errorf("slow headers: the server kept the connection open (%v)", err)
	}

	// HTTPS with a certificate of our own.
	ca := newTestCA(t, "https CA")
	_, certPEM, keyPEM := ca.issue(t, "localhost", x509.ExtKeyUsageServerAuth)
	dir := t.TempDir()
	h.tlsCertFile, h.tlsKeyFile = writeFile(t, dir, "cert.pem", certPEM), writeFile(t, dir, "key.pem", keyPEM)
	if h.scheme() != "https" {
		t.Fatalf("scheme = %s", h.scheme())
	}
	addr = serveTest(t, &h, ok)
	_, port, _ := net.SplitHostPort(addr)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if b, err := get(t.Context(), client, "https://localhost:"+port+"/", ""); err != nil || string(b) != "ok" {
		t.Errorf("https: %q %v", b, err)
	}
	if _, err := get(t.Context(), http.DefaultClient, "http://"+addr+"/", ""); err == nil {
		t.Errorf("plain HTTP to the HTTPS listener was answered 200")
	}

	for _, bad := range []httpFlags{
		{readHeaderTimeout: time.Second, readTimeout: time.Second, writeTimeout: 5 * time.Second, idleTimeout: time.Second, maxHeaderBytes: 8 << 10},
		{readHeaderTimeout: time.Second, readTimeout: time.Second, writeTimeout: time.Minute, idleTimeout: time.Second, maxHeaderBytes: 100},
		{readHeaderTimeout: 0, readTimeout: time.Second, writeTimeout: time.Minute, idleTimeout: time.Second, maxHeaderBytes: 8 << 10},
	} {
		if err := bad.validate(5 * time.Second); err == nil {
			t.Errorf("validate(%+v) = nil, want an error", bad)
		}
	}
}

// serveTest serves handler with h on a free port until t ends.
func serveTest(t *testing.T, h *httpFlags, handler http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.serve(ctx, l, handler, discardLogger()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return l.Addr().String()
}

// newTestServer serves handler with the default limits.
func newTestServer(t *testing.T, handler http.Handler) string {
	t.Helper()
	h := httpFlags{readHeaderTimeout: time.Second, readTimeout: time.Second, writeTimeout: time.Second, idleTimeout: time.Second, maxHeaderBytes: 8 << 10}
	return "http://" + serveTest(t, &h, handler)
}

// exchange is one HTTP request of a test and what came back.
type exchange struct {
	code   int
	header http.Header
	body   []byte
}

// transcript records every answer, to look for leaked secrets in it.
type transcript struct{ bytes.Buffer }

func (tr *transcript) do(t *testing.T, method, url string, body []byte, header ...string) exchange {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, url, err)
	}
	// The request's query may hold a secret on purpose: record the path.
	fmt.Fprintf(tr, "%s %s -> %d %v\n%s\n", method, req.URL.Path, resp.StatusCode, resp.Header, b)
	return exchange{resp.StatusCode, resp.Header, b}
}

// TestSecretsNeverLeak runs `wastatus run` against a SASL broker with known
// secrets from the environment and debug logging, exercises good and bad
// requests of every kind, and checks that neither the app secret, the
// verify token, the API token nor the SASL password appears in any log line,
// in the banner or in any answer.
func TestSecretsNeverLeak(t *testing.T) {
	secrets := map[string]string{
		envAppSecret:    "leak-app-SECRET-3f9a",
		envVerifyToken:  "leak-verify-TOKEN-77c1",
		envAPIToken:     "leak-api-TOKEN-0b2e",
		envSASLPassword: "leak-sasl-PASSWORD-d4e5",
	}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser("PLAIN", "wastatus", secrets[envSASLPassword]))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	run := startCmd(t, "run", "--brokers", strings.Join(c.ListenAddrs(), ","),
		"--kafka-sasl-mechanism", "plain", "--kafka-sasl-user", "wastatus",
		"--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--partitions", "3",
		"--log-level", "debug", "--pprof", "--produce-timeout", "500ms", "--http-write-timeout", "1s")
	var base string
	kafkatest.Eventually(t, 60*time.Second, func() error {
		m := regexp.MustCompile(`query API +(http://[0-9.:]+)/`).FindStringSubmatch(run.out.String())
		if m == nil {
			return errors.New("no banner yet")
		}
		base = m[1]
		return nil
	})
	var tr transcript
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	expect := func(what string, x exchange, want int) {
		t.Helper()
		if x.code != want {
			t.Errorf("%s: %d %s, want %d", what, x.code, x.body, want)
		}
	}
	kafkatest.Eventually(t, 60*time.Second, func() error {
		if x := tr.do(t, "GET", base+"/readyz", nil); x.code != http.StatusOK {
			return fmt.Errorf("readyz %d %s", x.code, x.body)
		}
		return nil
	})

	// The subscription handshake, right and wrong.
	hook := base + edge.WebhookPath
	x := tr.do(t, "GET", hook+"?hub.mode=subscribe&hub.challenge=ch-1&hub.verify_token="+secrets[envVerifyToken], nil)
	if expect("handshake", x, 200); string(x.body) != "ch-1" {
		t.Errorf("handshake answered %q, want the challenge", x.body)
	}
	expect("handshake, wrong token", tr.do(t, "GET", hook+"?hub.mode=subscribe&hub.challenge=ch-2&hub.verify_token="+secrets[envVerifyToken]+"x", nil), 403)

	// POSTs: signed, wrongly signed, unsigned, and the secret itself as
	// the signature.
	wamid := "wamid.LEAK" + randomHex(8)
	body := fmt.Appendf(nil, demoWebhook, wamid, "read", time.Now().Unix())
	ct := []string{"Content-Type", "application/json"}
	expect("signed", tr.do(t, "POST", hook, body, append(ct, edge.SignatureHeader, edge.Sign(body, []byte(secrets[envAppSecret])))...), 200)
	expect("wrong signature", tr.do(t, "POST", hook, body, append(ct, edge.SignatureHeader, edge.Sign(body, []byte("not-the-secret")))...), 401)
	expect("unsigned", tr.do(t, "POST", hook, body, ct...), 401)
	expect("secret as signature", tr.do(t, "POST", hook, body, append(ct, edge.SignatureHeader, "sha256="+secrets[envAppSecret])...), 401)

	// The query API, without, with a wrong and with the right token.
	msg := base + "/v1/messages/" + wamid
	expect("api without token", tr.do(t, "GET", msg, nil), 401)
	expect("api wrong token", tr.do(t, "GET", msg, nil, bearer(secrets[envAPIToken]+"x")...), 401)
	kafkatest.Eventually(t, 30*time.Second, func() error {
		x := tr.do(t, "GET", msg, nil, bearer(secrets[envAPIToken])...)
		if x.code != 200 || !bytes.Contains(x.body, []byte(`"status": "read"`)) {
			return fmt.Errorf("%d %s", x.code, x.body)
		}
		return nil
	})
	// A long poll outlasts --http-write-timeout (1s) and still gets its
	// answer: 408, the status not reached.
	expect("long poll", tr.do(t, "GET", base+"/v1/messages/wamid.NEVER?wait_for=read&timeout=2s", nil, bearer(secrets[envAPIToken])...), 408)
	expect("pprof without token", tr.do(t, "GET", base+"/debug/pprof/cmdline", nil), 401)
	expect("pprof cmdline", tr.do(t, "GET", base+"/debug/pprof/cmdline", nil, bearer(secrets[envAPIToken])...), 200)
	expect("metrics", tr.do(t, "GET", base+"/metrics", nil), 200)
	expect("healthz", tr.do(t, "GET", base+"/healthz", nil), 200)

	// `wastatus timeline` sends the token from --api-token-file, else from
	// the environment, and says 401 without the right one.
	tokenFile := writeFile(t, t.TempDir(), "api-token", []byte(secrets[envAPIToken]+"\n"))
	wrongFile := writeFile(t, t.TempDir(), "api-token", []byte("wrong\n"))
	timeline := func(args ...string) (string, error) {
		var out syncBuffer
		cmd := newRootCmd()
		cmd.SetArgs(append([]string{"timeline", wamid, "--api", base}, args...))
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		err := cmd.ExecuteContext(t.Context())
		tr.WriteString(out.String())
		return out.String(), err
	}
	if out, err := timeline("--api-token-file", tokenFile); err != nil || !strings.Contains(out, wamid) {
		t.Errorf("timeline with --api-token-file: %v\n%s", err, out)
	}
	if out, err := timeline(); err != nil || !strings.Contains(out, wamid) {
		t.Errorf("timeline with %s: %v\n%s", envAPIToken, err, out)
	}
	if _, err := timeline("--api-token-file", wrongFile); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("timeline with a wrong token file: %v, want a 401", err)
	}

	if err := run.stop(); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, run.err)
	}
	logs := run.err.String()
	for _, want := range []string{"level=DEBUG", "signature rejected", "api request unauthorized", "subscription handshake refused"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the logs lack %q: the test did not exercise what it should", want)
		}
	}
	if strings.Contains(logs, "signatures are not verified") {
		t.Errorf("signatures unchecked without --insecure-skip-signature")
	}
	for where, text := range map[string]string{"stdout": run.out.String(), "logs": logs, "answers": tr.String()} {
		for name, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("%s leaked into the %s", name, where)
			}
		}
	}
}

// TestInsecureSkipSignature runs the README's demo on the embedded broker
// with --insecure-skip-signature: it warns at start, says so in the banner,
// and accepts an unsigned POST. An app secret set as well is refused.
func TestInsecureSkipSignature(t *testing.T) {
	t.Setenv(envAppSecret, "")
	t.Setenv(envVerifyToken, "")
	t.Setenv(envAPIToken, "")
	run := startCmd(t, "run", "--demo", "--insecure-skip-signature", "--data-dir", t.TempDir(),
		"--embedded-kafka-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--partitions", "3")
	kafkatest.Eventually(t, 60*time.Second, func() error {
		if !strings.Contains(run.out.String(), "no mismatch") {
			return errors.New("demo not finished")
		}
		return nil
	})
	base := regexp.MustCompile(`webhook \(Meta → here\) +(http://[0-9.:]+)/`).FindStringSubmatch(run.out.String())
	if base == nil {
		t.Fatalf("no webhook address in the banner:\n%s", run.out)
	}
	var tr transcript
	body := fmt.Appendf(nil, demoWebhook, "wamid.UNSIGNED1", "sent", time.Now().Unix())
	if x := tr.do(t, "POST", base[1]+edge.WebhookPath, body, "Content-Type", "application/json"); x.code != 200 {
		t.Errorf("unsigned POST with --insecure-skip-signature: %d %s", x.code, x.body)
	}
	if err := run.stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	if !strings.Contains(run.err.String(), "level=WARN msg=\"webhook signatures are not verified\"") {
		t.Errorf("no warning at start:\n%s", run.err)
	}
	if !strings.Contains(run.out.String(), "NOT CHECKED") || strings.Contains(run.out.String(), envAppSecret+"=") {
		t.Errorf("banner: want the warning and no app secret:\n%s", run.out)
	}

	t.Setenv(envAppSecret, "set-anyway")
	if _, err := (&secretFlags{insecureSkipSignature: true}).load(""); err == nil || !strings.Contains(err.Error(), "--insecure-skip-signature") {
		t.Errorf("an app secret with --insecure-skip-signature: %v, want an error", err)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func textLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

func newRegistry() *prometheus.Registry { return prometheus.NewRegistry() }
