package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Secrets never come from flags (command lines are visible to every user of
// the machine): from WASTATUS_APP_SECRET and WASTATUS_VERIFY_TOKEN, or from
// the files that --app-secret-file and --verify-token-file name. They are
// never logged, and never echoed in an answer or an error; the one
// exception is `wastatus run` printing the demo secrets it generated
// itself, so that a newcomer can post to it.
const (
	envAppSecret   = "WASTATUS_APP_SECRET"
	envVerifyToken = "WASTATUS_VERIFY_TOKEN"
	demoSecretFile = "demo-secrets"
)

type secretFlags struct {
	appSecretFile   string
	verifyTokenFile string

	// insecureSkipSignature (--insecure-skip-signature) runs the edge
	// without an app secret, checking no signature.
	insecureSkipSignature bool
}

type secrets struct {
	appSecret   []byte
	verifyToken string
	generated   bool   // made up for a local demo: either of the two below
	genSecret   bool   // appSecret was made up
	genToken    bool   // verifyToken was made up
	demoFile    string // where generated secrets are kept
}

// load reads the secrets from the environment or files. With demoDir set
// (wastatus run), missing secrets are generated once and kept in
// demoDir/demo-secrets, so a restart and `wastatus post` use the same ones.
// With insecureSkipSignature no app secret is used, and one that is set
// anyway is an error: a configured secret is never silently ignored.
func (f *secretFlags) load(demoDir string) (secrets, error) {
	var s secrets
	secret, err := fromEnvOrFile(envAppSecret, f.appSecretFile)
	if err != nil {
		return s, err
	}
	token, err := fromEnvOrFile(envVerifyToken, f.verifyTokenFile)
	if err != nil {
		return s, err
	}
	needSecret := !f.insecureSkipSignature
	if !needSecret && secret != "" {
		return s, fmt.Errorf("--insecure-skip-signature: an app secret is set (%s or --app-secret-file); unset it, or drop the flag", envAppSecret)
	}
	if ((needSecret && secret == "") || token == "") && demoDir != "" {
		demo, err := loadOrCreateDemoSecrets(demoDir)
		if err != nil {
			return s, err
		}
		if needSecret && secret == "" {
			secret, s.generated, s.genSecret = demo.appSecret, true, true
		}
		if token == "" {
			token, s.generated, s.genToken = demo.verifyToken, true, true
		}
		s.demoFile = filepath.Join(demoDir, demoSecretFile)
	}
	if needSecret && secret == "" {
		return s, fmt.Errorf("no app secret: set %s or --app-secret-file (or, for a demo, --insecure-skip-signature)", envAppSecret)
	}
	if secret != "" {
		s.appSecret = []byte(secret)
	}
	s.verifyToken = token
	return s, nil
}

func fromEnvOrFile(env, file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read secret: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return os.Getenv(env), nil
}

type demoSecrets struct{ appSecret, verifyToken string }

func loadOrCreateDemoSecrets(dir string) (demoSecrets, error) {
	path := filepath.Join(dir, demoSecretFile)
	if d, err := readDemoSecrets(path); err == nil {
		return d, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return demoSecrets{}, err
	}
	d := demoSecrets{appSecret: randomHex(16), verifyToken: randomHex(8)}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return d, fmt.Errorf("demo secrets: %w", err)
	}
	body := fmt.Sprintf("%s=%s\n%s=%s\n", envAppSecret, d.appSecret, envVerifyToken, d.verifyToken)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		return d, fmt.Errorf("demo secrets: %w", err)
	}
	return d, nil
}

func readDemoSecrets(path string) (demoSecrets, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return demoSecrets{}, fmt.Errorf("demo secrets: %w", err)
	}
	var d demoSecrets
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		switch k {
		case envAppSecret:
			d.appSecret = v
		case envVerifyToken:
			d.verifyToken = v
		}
	}
	if d.appSecret == "" || d.verifyToken == "" {
		return d, fmt.Errorf("demo secrets: %s is incomplete; delete it to make new ones", path)
	}
	return d, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}
