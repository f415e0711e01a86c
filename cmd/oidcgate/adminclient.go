package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/oidcgate/oidcgate/provider/storage"
)

// adminAPI is a running provider's admin API, for the commands given
// --admin-url: the same commands, made by that process (the embedded
// store is locked to it while it runs).
type adminAPI struct {
	base, token string
	hc          *http.Client
}

func newAdminAPI(c AdminClient) *adminAPI {
	return &adminAPI{base: strings.TrimSuffix(c.AdminURL, "/"), token: c.AdminToken, hc: &http.Client{Timeout: 30 * time.Second}}
}

// call sends body (JSON, when not nil) and decodes the answer into out.
// A 404 is storage.ErrNotFound and a 409 storage.ErrAlreadyExists, so the
// commands answer as they do on the store; other errors carry the
// problem's detail.
func (a *adminAPI) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return storage.ErrNotFound
	case resp.StatusCode == http.StatusConflict:
		return storage.ErrAlreadyExists
	case resp.StatusCode >= 300:
		var p struct {
			Detail string `json:"detail"`
			Error  string `json:"error"`
		}
		json.Unmarshal(raw, &p)
		return fmt.Errorf("admin API: %s: %s %s", resp.Status, p.Error, p.Detail)
	}
	if out != nil && len(raw) > 0 {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// pages reads every page of a paged listing at path.
func pages[T any](ctx context.Context, a *adminAPI, path string) ([]T, error) {
	var all []T
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	for after := ""; ; {
		var page struct {
			Items []T    `json:"items"`
			Next  string `json:"next"`
		}
		if err := a.call(ctx, http.MethodGet, path+sep+"limit=500&after="+after, nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if page.Next == "" {
			return all, nil
		}
		after = page.Next
	}
}
