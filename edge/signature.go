package edge

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// SignatureHeader is the header in which Meta signs every webhook POST.
const SignatureHeader = "X-Hub-Signature-256"

// signaturePrefix names the algorithm in the header value.
const signaturePrefix = "sha256="

// Sign returns the X-Hub-Signature-256 value Meta would send for body:
// "sha256=" followed by the lowercase hex HMAC-SHA256 of body under secret.
// The CLI's post command and tests use it to sign requests.
func Sign(body, secret []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	var sum [sha256.Size]byte
	out := make([]byte, 0, len(signaturePrefix)+hex.EncodedLen(sha256.Size))
	out = append(out, signaturePrefix...)
	return string(hex.AppendEncode(out, mac.Sum(sum[:0])))
}

// Verify checks header, the X-Hub-Signature-256 value of a request, against
// body, the request's raw bytes, under secret. It returns nil when they match,
// ErrSignatureMissing for an empty header, ErrSignatureMalformed for anything
// but "sha256=" and 64 hex digits (either case), and ErrSignatureMismatch for
// a wrong signature or an empty secret. The comparison takes constant time.
func Verify(body []byte, header string, secret []byte) error {
	if header == "" {
		return ErrSignatureMissing
	}
	digits, ok := strings.CutPrefix(header, signaturePrefix)
	if !ok {
		return fmt.Errorf("%w: no %q prefix", ErrSignatureMalformed, signaturePrefix)
	}
	if len(digits) != hex.EncodedLen(sha256.Size) {
		return fmt.Errorf("%w: %d hex digits, want %d", ErrSignatureMalformed, len(digits), hex.EncodedLen(sha256.Size))
	}
	var got [sha256.Size]byte
	if _, err := hex.Decode(got[:], []byte(digits)); err != nil {
		// Not the hex package's error: it quotes the offending character,
		// and nothing of the header is ever echoed.
		return fmt.Errorf("%w: not hexadecimal", ErrSignatureMalformed)
	}
	if len(secret) == 0 {
		return fmt.Errorf("%w: no secret configured", ErrSignatureMismatch)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	var want [sha256.Size]byte
	if !hmac.Equal(got[:], mac.Sum(want[:0])) {
		return ErrSignatureMismatch
	}
	return nil
}
