package edge_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/wastatus/wastatus/edge"
)

func TestSign(t *testing.T) {
	tests := []struct {
		name         string
		body, secret []byte
		want         string
	}{
		// RFC 4231, test case 1.
		{"rfc 4231", []byte("Hi There"), bytes.Repeat([]byte{0x0b}, 20),
			"sha256=b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
		// Computed with Python's hmac module.
		{"webhook", []byte(`{"object":"whatsapp_business_account"}`), []byte("app-secret"),
			"sha256=0bf7374433906636bed1653bc7c64affb42fa5da9a39e251ab95c2e3a9c06923"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := edge.Sign(tt.body, tt.secret); got != tt.want {
				t.Errorf("Sign() = %s, want %s", got, tt.want)
			}
			if err := edge.Verify(tt.body, tt.want, tt.secret); err != nil {
				t.Errorf("Verify(Sign()) = %v", err)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	body := []byte(`{"object":"whatsapp_business_account","entry":[]}`)
	secret := []byte("app-secret")
	good := edge.Sign(body, secret)
	digits := strings.TrimPrefix(good, "sha256=")
	tests := []struct {
		name   string
		body   []byte
		header string
		secret []byte
		want   error
	}{
		{"valid", body, good, secret, nil},
		{"uppercase hex", body, "sha256=" + strings.ToUpper(digits), secret, nil},
		{"missing", body, "", secret, edge.ErrSignatureMissing},
		{"no prefix", body, digits, secret, edge.ErrSignatureMalformed},
		{"sha1 prefix", body, "sha1=" + digits, secret, edge.ErrSignatureMalformed},
		{"uppercase prefix", body, "SHA256=" + digits, secret, edge.ErrSignatureMalformed},
		{"short", body, good[:len(good)-1], secret, edge.ErrSignatureMalformed},
		{"long", body, good + "0", secret, edge.ErrSignatureMalformed},
		{"not hex", body, "sha256=" + strings.Repeat("g", 64), secret, edge.ErrSignatureMalformed},
		{"spaces", body, "sha256= " + digits[1:], secret, edge.ErrSignatureMalformed},
		{"other secret", body, edge.Sign(body, []byte("other")), secret, edge.ErrSignatureMismatch},
		{"tampered body", append(bytes.Clone(body), ' '), good, secret, edge.ErrSignatureMismatch},
		{"one digit off", body, good[:len(good)-1] + flip(good[len(good)-1]), secret, edge.ErrSignatureMismatch},
		{"empty secret", body, edge.Sign(body, nil), nil, edge.ErrSignatureMismatch},
		{"zeros", body, "sha256=" + strings.Repeat("0", 64), secret, edge.ErrSignatureMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := edge.Verify(tt.body, tt.header, tt.secret)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Verify() = %v, want %v", err, tt.want)
			}
		})
	}
}

// flip returns a different hex digit than d.
func flip(d byte) string {
	if d == '0' {
		return "1"
	}
	return "0"
}

func FuzzVerify(f *testing.F) {
	body := []byte(`{"object":"whatsapp_business_account"}`)
	secret := []byte("app-secret")
	f.Add(body, edge.Sign(body, secret))
	f.Add(body, "")
	f.Add([]byte{}, "sha256=")
	f.Fuzz(func(t *testing.T, body []byte, header string) {
		err := edge.Verify(body, header, secret)
		if err == nil && header != edge.Sign(body, secret) && !strings.EqualFold(header, edge.Sign(body, secret)) {
			t.Fatalf("Verify accepted %q for a body it does not sign", header)
		}
		if err != nil && header == edge.Sign(body, secret) {
			t.Fatalf("Verify refused Sign's signature: %v", err)
		}
	})
}
