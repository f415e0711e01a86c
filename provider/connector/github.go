package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// GitHubConfig is a `github` connector: GitHub's OAuth app flow and REST
// API, on github.com or GitHub Enterprise Server.
type GitHubConfig struct {
	ClientID         string `yaml:"client_id"`
	ClientSecret     string `yaml:"client_secret"`
	ClientSecretFile string `yaml:"client_secret_file"`
	// BaseURL is the web host (default https://github.com); APIURL the
	// REST API (default https://api.github.com; Enterprise Server:
	// https://HOST/api/v3).
	BaseURL string `yaml:"base_url"`
	APIURL  string `yaml:"api_url"`
	// AllowedOrgs, when set, admits only members of one of these
	// organisations.
	AllowedOrgs []string `yaml:"allowed_orgs"`
	// LoadGroups makes the user's organisations ("org") and teams
	// ("org:team-slug") their groups.
	LoadGroups bool          `yaml:"load_groups"`
	Timeout    time.Duration `yaml:"timeout"`
}

func (c *GitHubConfig) validate() error {
	var errs []error
	if c.ClientID == "" {
		errs = append(errs, errors.New("client_id is required"))
	}
	if c.ClientSecret != "" && c.ClientSecretFile != "" {
		errs = append(errs, errors.New("set client_secret or client_secret_file, not both"))
	}
	for name, u := range map[string]string{"base_url": c.BaseURL, "api_url": c.APIURL} {
		if u != "" {
			if err := checkUpstreamURL(name, u); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if c.Timeout < 0 {
		errs = append(errs, errors.New("timeout must not be negative"))
	}
	return errors.Join(errs...)
}

// GitHub signs users in with GitHub. The subject is the account's numeric
// id, which survives a change of login.
type GitHub struct {
	cfg   GitHubConfig
	oauth *oauth2.Config
	http  *http.Client
}

// NewGitHub builds the connector.
func NewGitHub(cfg GitHubConfig, redirectURI string) (*GitHub, error) {
	s, err := secret("client_secret", cfg.ClientSecret, cfg.ClientSecretFile)
	if err != nil {
		return nil, err
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = "https://github.com"
	}
	if cfg.APIURL == "" {
		cfg.APIURL = "https://api.github.com"
	}
	cfg.BaseURL, cfg.APIURL = strings.TrimSuffix(cfg.BaseURL, "/"), strings.TrimSuffix(cfg.APIURL, "/")
	scopes := []string{"read:user", "user:email"}
	if len(cfg.AllowedOrgs) > 0 || cfg.LoadGroups {
		scopes = append(scopes, "read:org")
	}
	return &GitHub{cfg: cfg, http: httpClient(cfg.Timeout), oauth: &oauth2.Config{
		ClientID: cfg.ClientID, ClientSecret: s, RedirectURL: redirectURI, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: cfg.BaseURL + "/login/oauth/authorize", TokenURL: cfg.BaseURL + "/login/oauth/access_token",
			AuthStyle: oauth2.AuthStyleInParams},
	}}, nil
}

// AuthCodeURL is where the browser signs in at GitHub (PKCE S256 and the
// provider's state; GitHub has no nonce).
func (g *GitHub) AuthCodeURL(_ context.Context, state, _, verifier string) (string, error) {
	return g.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)), nil
}

// Exchange redeems the code and reads the user, their primary verified
// email and, when asked for, their organisations and teams.
func (g *GitHub) Exchange(ctx context.Context, code, verifier, _, _ string) (Identity, error) {
	tok, err := g.oauth.Exchange(context.WithValue(ctx, oauth2.HTTPClient, g.http), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return Identity{}, tokenError(err)
	}
	// GitHub answers a bad code with 200 and an error field.
	if e, _ := tok.Extra("error").(string); e != "" {
		d, _ := tok.Extra("error_description").(string)
		return Identity{}, &UpstreamError{Code: e, Description: d}
	}
	var user struct {
		ID    int64  `json:"id"`
		Login string `json:"login"`
		Name  string `json:"name"`
	}
	if err := g.get(ctx, tok.AccessToken, "/user", &user); err != nil {
		return Identity{}, err
	}
	if user.ID == 0 || user.Login == "" {
		return Identity{}, errors.New("connector: GitHub's /user has no id or login")
	}
	id := Identity{Subject: strconv.FormatInt(user.ID, 10), PreferredUsername: user.Login, Name: user.Name}
	var emails []struct {
		Email    string `json:"email"`
		Primary  bool   `json:"primary"`
		Verified bool   `json:"verified"`
	}
	if err := g.list(ctx, tok.AccessToken, "/user/emails", &emails); err != nil {
		return Identity{}, err
	}
	for _, e := range emails {
		if e.Primary && e.Verified {
			id.Email, id.EmailVerified = e.Email, true
		}
	}
	if len(g.cfg.AllowedOrgs) == 0 && !g.cfg.LoadGroups {
		return id, nil
	}
	var orgs []struct {
		Login string `json:"login"`
	}
	if err := g.list(ctx, tok.AccessToken, "/user/orgs", &orgs); err != nil {
		return Identity{}, err
	}
	member := false
	for _, o := range orgs {
		member = member || slices.ContainsFunc(g.cfg.AllowedOrgs, func(a string) bool { return strings.EqualFold(a, o.Login) })
		if g.cfg.LoadGroups {
			id.Groups = append(id.Groups, o.Login)
		}
	}
	if len(g.cfg.AllowedOrgs) > 0 && !member {
		return Identity{}, &RefusedError{Reason: "your GitHub account is not a member of an allowed organisation"}
	}
	if g.cfg.LoadGroups {
		var teams []struct {
			Slug string `json:"slug"`
			Org  struct {
				Login string `json:"login"`
			} `json:"organization"`
		}
		if err := g.list(ctx, tok.AccessToken, "/user/teams", &teams); err != nil {
			return Identity{}, err
		}
		for _, t := range teams {
			id.Groups = append(id.Groups, t.Org.Login+":"+t.Slug)
		}
	}
	return id, nil
}

// RefusedError: the upstream knows the user, but this connector's policy
// does not admit them.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return "connector: refused: " + e.Reason }

// maxPages bounds a paginated listing (100 per page).
const maxPages = 10

// list reads every page of a listing, following the Link header's next.
func (g *GitHub) list(ctx context.Context, token, path string, out any) error {
	var all []json.RawMessage
	next := g.cfg.APIURL + path + "?per_page=100"
	for range maxPages {
		var page []json.RawMessage
		link, err := g.fetch(ctx, token, next, &page)
		if err != nil {
			return err
		}
		all = append(all, page...)
		if next = nextLink(link); next == "" || !strings.HasPrefix(next, g.cfg.APIURL+"/") {
			break
		}
	}
	b, _ := json.Marshal(all)
	return json.Unmarshal(b, out)
}

func (g *GitHub) get(ctx context.Context, token, path string, out any) error {
	_, err := g.fetch(ctx, token, g.cfg.APIURL+path, out)
	return err
}

// fetch GETs one API URL into out and returns its Link header.
func (g *GitHub) fetch(ctx context.Context, token, u string, out any) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := g.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("%w: GitHub API: %v", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", fmt.Errorf("%w: GitHub API: %v", ErrUnavailable, err)
	}
	switch {
	case resp.StatusCode >= 500:
		return "", fmt.Errorf("%w: GitHub API %s: %s", ErrUnavailable, req.URL.Path, resp.Status)
	case resp.StatusCode != http.StatusOK:
		return "", fmt.Errorf("connector: GitHub API %s: %s", req.URL.Path, resp.Status)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return "", fmt.Errorf("connector: GitHub API %s: %v", req.URL.Path, err)
	}
	return resp.Header.Get("Link"), nil
}

// nextLink reads rel="next" from an RFC 8288 Link header.
func nextLink(h string) string {
	for _, part := range strings.Split(h, ",") {
		target, params, ok := strings.Cut(strings.TrimSpace(part), ";")
		if ok && strings.Contains(params, `rel="next"`) {
			return strings.Trim(strings.TrimSpace(target), "<>")
		}
	}
	return ""
}

// Check asks the API root for an answer.
func (g *GitHub) Check(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.cfg.APIURL+"/", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	resp, err := g.http.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("GitHub API: %s", resp.Status)
	}
	return nil
}
