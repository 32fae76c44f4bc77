package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/wastatus/wastatus/edge"
)

func newPostCmd() *cobra.Command {
	var (
		url     string
		dataDir string
		sf      secretFlags
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "post FILE...",
		Short: "Sign webhook files with the app secret and post them to an edge, in order",
		Long: `Sign each file's bytes with the app secret (X-Hub-Signature-256) and POST it
to an edge, one after another, for demos and for replaying captured payloads.
The secret comes from WASTATUS_APP_SECRET, --app-secret-file, or the demo
secrets that 'wastatus run' keeps in --data-dir.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			sec, err := sf.load("")
			if err != nil {
				demo, derr := readDemoSecrets(filepath.Join(dataDir, demoSecretFile))
				if derr != nil {
					return errors.Join(err, derr)
				}
				sec.appSecret = []byte(demo.appSecret)
			}
			client := &http.Client{Timeout: timeout}
			for _, f := range files {
				if err := postFile(cmd.Context(), client, url, f, sec.appSecret, cmd.OutOrStdout()); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "url", "http://127.0.0.1:8080/webhook", "the edge's webhook URL")
	cmd.Flags().StringVar(&dataDir, "data-dir", "./data", "where 'wastatus run' keeps its demo secrets")
	cmd.Flags().StringVar(&sf.appSecretFile, "app-secret-file", "", "file holding the app secret (else "+envAppSecret+")")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "timeout of each request")
	return cmd
}

func postFile(ctx context.Context, client *http.Client, url, file string, secret []byte, out io.Writer) error {
	body, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	status, resp, err := postSigned(ctx, client, url, body, secret)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	fmt.Fprintf(out, "%s: %d %s\n", file, status, bytes.TrimSpace(resp))
	if status != http.StatusOK {
		return fmt.Errorf("%s: the edge answered %d", file, status)
	}
	return nil
}

// postSigned posts body with its X-Hub-Signature-256 and returns the status
// code and the response body.
func postSigned(ctx context.Context, client *http.Client, url string, body, secret []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", edge.Sign(body, secret))
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}
