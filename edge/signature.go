package edge

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
	"sync"
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
	return newVerifier(secret).verify(body, header)
}

// verifier is Verify for one secret, reusing keyed HMAC states: hmac.New
// hashes the key into two SHA-256 states and allocates them, which costs
// about as much as the MAC of a typical body; Reset restores a used one
// from a copy. The Receiver keeps one for Config.AppSecret.
type verifier struct {
	macs sync.Pool // of *keyedMAC; New is nil without a secret
}

// keyedMAC is an HMAC keyed with the secret, and room for its sum (which
// would escape to the heap from a local, through the hash.Hash interface).
type keyedMAC struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

// newVerifier returns a verifier for secret; with an empty secret every
// signature is a mismatch.
func newVerifier(secret []byte) *verifier {
	v := &verifier{}
	if len(secret) > 0 {
		secret = bytes.Clone(secret)
		v.macs.New = func() any { return &keyedMAC{h: hmac.New(sha256.New, secret)} }
	}
	return v
}

func (v *verifier) verify(body []byte, header string) error {
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
	var text [2 * sha256.Size]byte // not []byte(digits): that allocates
	copy(text[:], digits)
	if _, err := hex.Decode(got[:], text[:]); err != nil {
		// Not the hex package's error: it quotes the offending character,
		// and nothing of the header is ever echoed.
		return fmt.Errorf("%w: not hexadecimal", ErrSignatureMalformed)
	}
	if v.macs.New == nil {
		return fmt.Errorf("%w: no secret configured", ErrSignatureMismatch)
	}
	mac := v.macs.Get().(*keyedMAC)
	mac.h.Write(body)
	equal := hmac.Equal(got[:], mac.h.Sum(mac.sum[:0]))
	mac.h.Reset()
	v.macs.Put(mac)
	if !equal {
		return ErrSignatureMismatch
	}
	return nil
}
