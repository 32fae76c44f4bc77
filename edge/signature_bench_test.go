package edge

import (
	"bytes"
	"testing"
)

// BenchmarkVerify checks a signature over a typical 1 KB body both ways:
// "per-call" keys a new HMAC for every body (Verify, as the receiver did),
// "pooled" reuses keyed states (the receiver's verifier).
func BenchmarkVerify(b *testing.B) {
	secret := []byte("a-meta-app-secret-of-32-bytes...")
	body := bytes.Repeat([]byte(`{"id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA="}`), 14)
	sig := Sign(body, secret)
	v := newVerifier(secret)
	for _, bm := range []struct {
		name   string
		verify func() error
	}{
		{"per-call", func() error { return Verify(body, sig, secret) }},
		{"pooled", func() error { return v.verify(body, sig) }},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := bm.verify(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
