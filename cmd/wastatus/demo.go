package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// demoWebhook is one status webhook in Meta's documented shape.
const demoWebhook = `{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"statuses":[{"id":%q,"status":%q,"timestamp":"%d","recipient_id":"16505551234"}]},"field":"messages"}]}]}`

// runDemo runs the reference article's own acceptance test against this
// process: post read, then delivered, for one new message, and show that the
// API says read and still knows when it was delivered.
func runDemo(ctx context.Context, out io.Writer, base string, sec secrets) error {
	client := &http.Client{Timeout: 30 * time.Second}
	if err := waitFor(ctx, client, base+"/readyz"); err != nil {
		return err
	}
	wamid := "wamid.DEMO" + randomHex(12)
	ts := time.Now().Unix()
	fmt.Fprintf(out, "demo: the reference article's test for %s\n", wamid)
	for _, step := range []struct {
		status string
		ts     int64
	}{{"read", ts}, {"delivered", ts - 1}} {
		body := fmt.Appendf(nil, demoWebhook, wamid, step.status, step.ts)
		code, resp, err := postSigned(ctx, client, base+"/webhook", body, sec.appSecret)
		if err != nil {
			return fmt.Errorf("demo: post %s: %w", step.status, err)
		}
		fmt.Fprintf(out, "demo: posted %-9s → %d %s", step.status, code, resp)
	}
	// Poll until the processor has folded both events.
	for {
		var m struct {
			Status      string `json:"status"`
			DeliveredAt int64  `json:"delivered_at"`
		}
		resp, err := get(ctx, client, base+"/v1/messages/"+wamid, "")
		if err == nil && json.Unmarshal(resp, &m) == nil && m.Status == "read" && m.DeliveredAt != 0 {
			fmt.Fprintf(out, "demo: GET /v1/messages/%s\n%s", wamid, resp)
			fmt.Fprintf(out, "demo: status stays read, and delivered_at is kept: no mismatch. Ctrl-C to stop.\n")
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func waitFor(ctx context.Context, client *http.Client, url string) error {
	for {
		if _, err := get(ctx, client, url, ""); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// get returns the body of a 200 answer to GET url, sending token as the
// API's bearer token unless it is empty.
func get(ctx context.Context, client *http.Client, url, token string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return b, fmt.Errorf("%s: %d", url, resp.StatusCode)
	}
	return b, nil
}
