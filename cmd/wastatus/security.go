package main

// Security of the binary's connections: TLS and SASL to Kafka for every
// client it makes, the optional bearer token of the query API, and the
// limits and optional TLS of its HTTP listeners. Secrets (the SASL
// password, the API token, like the app secret and verify token in
// secrets.go) come only from the environment or from files, never from a
// flag value, and are never logged or echoed: errors name the flag or the
// variable that holds them, not their value.

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

const (
	envSASLPassword = "WASTATUS_KAFKA_SASL_PASSWORD"
	envAPIToken     = "WASTATUS_API_TOKEN"

	// kafkaCheckTimeout bounds the connection check made at start, which
	// asks up to kafkaCheckAttempts times, kafkaCheckBackoff apart, when
	// the session breaks.
	kafkaCheckTimeout  = 15 * time.Second
	kafkaCheckAttempts = 3
	kafkaCheckBackoff  = 300 * time.Millisecond

	// apiMaxWait is the longest ?timeout= the query API accepts for
	// ?wait_for= (processor/api.go's maxWait): such a request may write
	// its answer that long after it came in.
	apiMaxWait = 5 * time.Minute
)

// errKafkaSession is returned at start when a broker was reached but
// refused or broke the session: wrong SASL credentials or mechanism, an
// untrusted certificate, or TLS or SASL where the listener has none.
var errKafkaSession = errors.New("kafka: the brokers refused the connection")

// kafkaSecurityFlags configure TLS and SASL for every Kafka client of the
// process. Any --kafka-tls-* option turns TLS on.
type kafkaSecurityFlags struct {
	tls                bool
	caFile             string
	certFile           string
	keyFile            string
	serverName         string
	insecureSkipVerify bool
	saslMechanism      string
	saslUser           string
	saslPasswordFile   string
}

func (f *kafkaSecurityFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&f.tls, "kafka-tls", false, "connect to Kafka with TLS (implied by any other --kafka-tls-* option)")
	fs.StringVar(&f.caFile, "kafka-tls-ca-file", "", "PEM file of the CAs that sign the brokers' certificates (else the system's)")
	fs.StringVar(&f.certFile, "kafka-tls-cert-file", "", "PEM client certificate, for brokers that require one (with --kafka-tls-key-file)")
	fs.StringVar(&f.keyFile, "kafka-tls-key-file", "", "PEM key of --kafka-tls-cert-file")
	fs.StringVar(&f.serverName, "kafka-tls-server-name", "", "name to verify the brokers' certificates against (else each broker's host)")
	fs.BoolVar(&f.insecureSkipVerify, "kafka-tls-insecure-skip-verify", false, "DANGEROUS: accept any broker certificate (testing only)")
	fs.StringVar(&f.saslMechanism, "kafka-sasl-mechanism", "", "SASL mechanism: plain, scram-sha-256 or scram-sha-512 (empty: no SASL)")
	fs.StringVar(&f.saslUser, "kafka-sasl-user", "", "SASL user name")
	fs.StringVar(&f.saslPasswordFile, "kafka-sasl-password-file", "", "file holding the SASL password (else "+envSASLPassword+")")
}

// enabled reports whether any TLS or SASL option is set.
func (f *kafkaSecurityFlags) enabled() bool {
	return f.useTLS() || f.saslMechanism != ""
}

func (f *kafkaSecurityFlags) useTLS() bool {
	return f.tls || f.caFile != "" || f.certFile != "" || f.keyFile != "" || f.serverName != "" || f.insecureSkipVerify
}

// describe says how clients connect, for errors and the start log; it
// never includes the password.
func (f *kafkaSecurityFlags) describe() string {
	tlsDesc := "tls=off"
	if f.useTLS() {
		tlsDesc = "tls=on"
		if f.caFile != "" {
			tlsDesc += " ca=" + f.caFile
		}
		if f.insecureSkipVerify {
			tlsDesc += " verify=OFF"
		}
	}
	if f.saslMechanism == "" {
		return tlsDesc + " sasl=off"
	}
	return fmt.Sprintf("%s sasl=%s user=%q", tlsDesc, strings.ToUpper(f.saslMechanism), f.saslUser)
}

// opts returns the kgo options that make a client use TLS and SASL as
// configured, and warns on log about insecure choices.
func (f *kafkaSecurityFlags) opts(log *slog.Logger) ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if f.useTLS() {
		cfg, err := f.tlsConfig()
		if err != nil {
			return nil, err
		}
		if f.insecureSkipVerify {
			log.Warn("!!! KAFKA TLS CERTIFICATES ARE NOT VERIFIED (--kafka-tls-insecure-skip-verify): " +
				"anyone on the network path can read and change the traffic and take the SASL credentials; never use this in production")
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	if f.saslMechanism != "" {
		mech, err := f.mechanism()
		if err != nil {
			return nil, err
		}
		if mech.Name() == "PLAIN" && !f.useTLS() {
			log.Warn("kafka sasl plain without tls: the password crosses the network in clear text; add --kafka-tls")
		}
		opts = append(opts, kgo.SASL(mech))
	}
	return opts, nil
}

func (f *kafkaSecurityFlags) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         f.serverName,
		InsecureSkipVerify: f.insecureSkipVerify, // an explicit choice, warned about in opts
	}
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return nil, fmt.Errorf("--kafka-tls-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--kafka-tls-ca-file %s: no PEM certificate in it", f.caFile)
		}
		cfg.RootCAs = pool
	}
	if (f.certFile == "") != (f.keyFile == "") {
		return nil, errors.New("--kafka-tls-cert-file and --kafka-tls-key-file go together")
	}
	if f.certFile != "" {
		cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
		if err != nil {
			return nil, fmt.Errorf("--kafka-tls-cert-file/--kafka-tls-key-file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// mechanism builds the SASL mechanism. The password is read once here, from
// the file or the environment, and lives only in the mechanism's closure.
func (f *kafkaSecurityFlags) mechanism() (sasl.Mechanism, error) {
	if f.saslUser == "" {
		return nil, errors.New("--kafka-sasl-mechanism needs --kafka-sasl-user")
	}
	pass, err := fromEnvOrFile(envSASLPassword, f.saslPasswordFile)
	if err != nil {
		return nil, fmt.Errorf("--kafka-sasl-password-file: %w", err)
	}
	if pass == "" {
		return nil, fmt.Errorf("no kafka sasl password: set %s or --kafka-sasl-password-file", envSASLPassword)
	}
	switch strings.ToLower(f.saslMechanism) {
	case "plain":
		return plain.Auth{User: f.saslUser, Pass: pass}.AsMechanism(), nil
	case "scram-sha-256":
		return scram.Auth{User: f.saslUser, Pass: pass}.AsSha256Mechanism(), nil
	case "scram-sha-512":
		return scram.Auth{User: f.saslUser, Pass: pass}.AsSha512Mechanism(), nil
	default:
		return nil, fmt.Errorf("--kafka-sasl-mechanism: want plain, scram-sha-256 or scram-sha-512, got %q", f.saslMechanism)
	}
}

// checkKafka asks the brokers for their API versions over a client with
// opts, so that wrong credentials or certificates stop the process at start
// with a clear error instead of as retries in the logs. A broker that cannot
// be dialed, or does not answer in time, is only warned about: an edge
// started during an outage answers 503 until Kafka is back, and the
// processor's clients retry as they always do. A broken session is asked
// again a few times first, so that a broker going down at that moment is
// not taken for wrong credentials.
func checkKafka(ctx context.Context, brokers []string, opts []kgo.Opt, sec *kafkaSecurityFlags, log *slog.Logger) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	pingCtx, cancel := context.WithTimeout(ctx, kafkaCheckTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		err = cl.Ping(pingCtx)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case tlsFailure(err):
			return fmt.Errorf("%w (%s at %s): %w; check that the listener speaks TLS, that --kafka-tls-ca-file signs its certificate, that the certificate names the broker (or --kafka-tls-server-name), and the client certificate",
				errKafkaSession, sec.describe(), strings.Join(brokers, ","), err)
		case unreachable(err):
			log.Warn("kafka not reachable at start; clients keep retrying",
				"brokers", strings.Join(brokers, ","), "err", err)
			return nil
		case attempt < kafkaCheckAttempts:
			select {
			case <-pingCtx.Done():
			case <-time.After(kafkaCheckBackoff):
			}
			continue
		}
		hint := "; a listener that requires TLS or SASL closes plain connections at once"
		if sec.saslMechanism != "" {
			hint = "; check --kafka-sasl-mechanism, --kafka-sasl-user and the password, and TLS"
		}
		return fmt.Errorf("%w (%s at %s): %w%s", errKafkaSession, sec.describe(), strings.Join(brokers, ","), err, hint)
	}
}

// tlsFailure reports whether err is a failed TLS handshake: an untrusted or
// mismatched certificate on either side, or a peer that does not speak TLS.
func tlsFailure(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		alert    tls.AlertError
		record   tls.RecordHeaderError
	)
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &alert) || errors.As(err, &record)
}

// unreachable reports whether err says that no broker could be dialed or
// none answered in time, rather than that one refused the session.
func unreachable(err error) bool {
	if op := (*net.OpError)(nil); errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded)
}

// httpFlags harden an HTTP listener. The defaults bound slow clients
// (slowloris: headers and bodies sent a byte at a time) and idle
// connections, and leave room for the longest answers: a webhook that waits
// --produce-timeout for Kafka, and the query API's ?wait_for= long polls,
// whose write deadline apiGuard extends by their own bound.
type httpFlags struct {
	readHeaderTimeout time.Duration
	readTimeout       time.Duration
	writeTimeout      time.Duration
	idleTimeout       time.Duration
	maxHeaderBytes    int
	tlsCertFile       string
	tlsKeyFile        string
}

func (h *httpFlags) register(fs *pflag.FlagSet) {
	fs.DurationVar(&h.readHeaderTimeout, "http-read-header-timeout", 10*time.Second, "longest time to read a request's headers")
	fs.DurationVar(&h.readTimeout, "http-read-timeout", 30*time.Second, "longest time to read a whole request, body included")
	fs.DurationVar(&h.writeTimeout, "http-write-timeout", time.Minute, "longest time from a request's headers to the end of its answer (must exceed --produce-timeout; ?wait_for= polls get their own timeout on top)")
	fs.DurationVar(&h.idleTimeout, "http-idle-timeout", 2*time.Minute, "how long an idle keep-alive connection stays open")
	fs.IntVar(&h.maxHeaderBytes, "http-max-header-bytes", 64<<10, "largest request header block accepted (431 beyond)")
	fs.StringVar(&h.tlsCertFile, "tls-cert-file", "", "serve HTTPS with this PEM certificate (with --tls-key-file); else plain HTTP, for TLS ended at a load balancer")
	fs.StringVar(&h.tlsKeyFile, "tls-key-file", "", "PEM key of --tls-cert-file")
}

// validate checks the limits; produceTimeout is the edge's, 0 on a
// listener without one.
func (h *httpFlags) validate(produceTimeout time.Duration) error {
	switch {
	case h.readHeaderTimeout <= 0 || h.readTimeout <= 0 || h.writeTimeout <= 0 || h.idleTimeout <= 0:
		return errors.New("--http-*-timeout: every timeout must be positive")
	case h.readHeaderTimeout > h.readTimeout:
		return fmt.Errorf("--http-read-header-timeout %s exceeds --http-read-timeout %s", h.readHeaderTimeout, h.readTimeout)
	case h.writeTimeout <= produceTimeout:
		return fmt.Errorf("--http-write-timeout %s must exceed --produce-timeout %s, or a webhook's answer is cut off", h.writeTimeout, produceTimeout)
	case h.maxHeaderBytes < 4<<10:
		return fmt.Errorf("--http-max-header-bytes: want at least 4096, got %d", h.maxHeaderBytes)
	case (h.tlsCertFile == "") != (h.tlsKeyFile == ""):
		return errors.New("--tls-cert-file and --tls-key-file go together")
	}
	return nil
}

// scheme is the URL scheme the listener serves.
func (h *httpFlags) scheme() string {
	if h.tlsCertFile != "" {
		return "https"
	}
	return "http"
}

// server builds the http.Server for handler.
func (h *httpFlags) server(handler http.Handler, log *slog.Logger) (*http.Server, error) {
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: h.readHeaderTimeout,
		ReadTimeout:       h.readTimeout,
		WriteTimeout:      h.writeTimeout,
		IdleTimeout:       h.idleTimeout,
		MaxHeaderBytes:    h.maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if h.tlsCertFile != "" {
		cert, err := tls.LoadX509KeyPair(h.tlsCertFile, h.tlsKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert-file/--tls-key-file: %w", err)
		}
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	return srv, nil
}

// serve runs the HTTP server on l until ctx is done, then shuts it down.
func (h *httpFlags) serve(ctx context.Context, l net.Listener, handler http.Handler, log *slog.Logger) error {
	srv, err := h.server(handler, log)
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			errc <- srv.ServeTLS(l, "", "")
		} else {
			errc <- srv.Serve(l)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}

// apiFlags configure the query API's access.
type apiFlags struct {
	tokenFile string
}

func (a *apiFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&a.tokenFile, "api-token-file", "", "file holding a bearer token that /v1/ and /debug/pprof/ require (else "+envAPIToken+"; neither: open)")
}

// token returns the API token, empty when none is configured.
func (a *apiFlags) token() (string, error) {
	tok, err := fromEnvOrFile(envAPIToken, a.tokenFile)
	if err != nil {
		return "", fmt.Errorf("--api-token-file: %w", err)
	}
	return tok, nil
}

// apiGuard wraps the HTTP handler of a listener that serves the query API.
// With a token, /v1/ and /debug/pprof/ (message data; profiles that cost
// CPU and reveal internals) need "Authorization: Bearer <token>" and get
// 401 with WWW-Authenticate otherwise. /healthz and /readyz stay open for
// load balancers and orchestrators, /metrics for scrapers (it holds
// counts, no message data), and /webhook is Meta's, authenticated by its
// signature. Whatever the token, a ?wait_for= poll gets a write deadline
// that outlasts its own timeout.
type apiGuard struct {
	next         http.Handler
	tokenSum     [sha256.Size]byte // of the token; compared in constant time
	hasToken     bool
	writeTimeout time.Duration
	unauthorized prometheus.Counter
	log          *slog.Logger
}

// newAPIGuard wraps next. addr is the listen address, only to warn when the
// API is open to more than this machine.
func newAPIGuard(next http.Handler, token, addr string, writeTimeout time.Duration, reg prometheus.Registerer, log *slog.Logger) *apiGuard {
	g := &apiGuard{
		next:         next,
		hasToken:     token != "",
		tokenSum:     sha256.Sum256([]byte(token)),
		writeTimeout: writeTimeout,
		unauthorized: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wastatus_api_unauthorized_total",
			Help: "Query API and profile requests refused for a missing or wrong bearer token.",
		}),
		log: log,
	}
	reg.MustRegister(g.unauthorized)
	if !g.hasToken && !loopback(addr) {
		log.Warn("query api has no token: anyone who reaches the listener can read message states; set " + envAPIToken + " or --api-token-file")
	}
	return g
}

func (g *apiGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	guarded := strings.HasPrefix(r.URL.Path, "/v1/") || strings.HasPrefix(r.URL.Path, "/debug/pprof/")
	if guarded && g.hasToken && !g.authorized(r) {
		g.unauthorized.Inc()
		g.log.Warn("api request unauthorized", "path", r.URL.Path, "remote", r.RemoteAddr)
		h := w.Header()
		if r.Header.Get("Authorization") == "" {
			h.Set("WWW-Authenticate", `Bearer realm="wastatus"`)
		} else {
			h.Set("WWW-Authenticate", `Bearer realm="wastatus", error="invalid_token"`)
		}
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"unauthorized: a valid bearer token is required"}` + "\n"))
		return
	}
	if strings.HasPrefix(r.URL.Path, "/v1/") && r.URL.Query().Has("wait_for") {
		// The processor bounds the wait by apiMaxWait; the answer
		// then still gets the usual write time.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(apiMaxWait + g.writeTimeout))
	}
	g.next.ServeHTTP(w, r)
}

// loopback reports whether addr listens on this machine only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// authorized compares the request's bearer token with the configured one.
// Both are hashed first, so that the comparison takes the same time
// whatever the length of what was sent.
func (g *apiGuard) authorized(r *http.Request) bool {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(sum[:], g.tokenSum[:]) == 1
}
