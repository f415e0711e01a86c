package bench

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// RefreshChains is the fault scenario: users' refresh tokens, each rotated
// in a loop by a client that retries as it should (the same token again
// after a 503 or a lost connection), while the operator crashes the
// provider or its database. A chain is dead when the provider refuses its
// token (invalid_grant): that user was logged out.
const RefreshChains = "refresh-chains"

// ChainsConfig is one refresh-chains run.
type ChainsConfig struct {
	Issuer                 string
	ClientID, ClientSecret string // a confidential client with authorization_code and refresh_token, offline_access
	RedirectURI            string // one of its registered redirect URIs
	Username, Password     string
	Chains                 int
	Duration               time.Duration
	// Outage bounds how long a chain keeps retrying one token before it
	// gives up (the provider never came back).
	Outage   time.Duration
	Progress io.Writer
}

// ChainsResult is what the run saw.
type ChainsResult struct {
	Chains    int    `json:"chains"`
	Dead      int    `json:"dead"`      // refused with invalid_grant: logged out
	Stuck     int    `json:"stuck"`     // still retrying when the run ended
	Refreshes int64  `json:"refreshes"` // successful rotations
	Retries   int64  `json:"retries"`   // 503s and transport errors retried
	FirstDead string `json:"first_dead,omitempty"`
}

// RunChains signs the user in once, starts Chains refresh-token families,
// and rotates each until Duration ends.
func RunChains(ctx context.Context, c ChainsConfig) (*ChainsResult, error) {
	if c.Chains < 1 || c.Duration <= 0 || c.Issuer == "" || c.ClientID == "" || c.Username == "" || c.RedirectURI == "" {
		return nil, errors.New("refresh-chains needs an issuer, a client, a redirect URI, a user, chains ≥ 1 and a duration")
	}
	if c.Outage == 0 {
		c.Outage = time.Minute
	}
	b, err := newSignIn(c)
	if err != nil {
		return nil, err
	}
	tokens := make([]string, c.Chains)
	for i := range tokens {
		if tokens[i], err = b.refreshToken(); err != nil {
			return nil, fmt.Errorf("chain %d: %w", i, err)
		}
	}
	res := &ChainsResult{Chains: c.Chains}
	var refreshes, retries atomic.Int64
	var mu sync.Mutex
	deadline := time.Now().Add(c.Duration)
	var wg sync.WaitGroup
	for i := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := tokens[i]
			var failingSince time.Time
			for time.Now().Before(deadline) && ctx.Err() == nil {
				next, wait, refused := b.refresh(tok)
				switch {
				case next != "":
					tok, failingSince = next, time.Time{}
					refreshes.Add(1)
					continue
				case refused != "":
					mu.Lock()
					res.Dead++
					if res.FirstDead == "" {
						res.FirstDead = refused
					}
					mu.Unlock()
					return
				}
				retries.Add(1)
				if failingSince.IsZero() {
					failingSince = time.Now()
				} else if time.Since(failingSince) > c.Outage {
					break
				}
				time.Sleep(wait)
			}
			if !failingSince.IsZero() {
				mu.Lock()
				res.Stuck++
				mu.Unlock()
			}
		}()
	}
	if c.Progress != nil {
		go func() {
			for time.Now().Before(deadline) {
				time.Sleep(time.Second)
				fmt.Fprintf(c.Progress, "refreshes %d, retries %d\n", refreshes.Load(), retries.Load())
			}
		}()
	}
	wg.Wait()
	res.Refreshes, res.Retries = refreshes.Load(), retries.Load()
	return res, nil
}

// signIn is a browser (cookie jar, sign-in form) and the client's back end.
type signIn struct {
	c       ChainsConfig
	browser *http.Client
	api     *http.Client
}

var (
	errAtRedirect = errors.New("at the redirect URI")
	hiddenField   = regexp.MustCompile(`name="(interaction|csrf)" value="([^"]*)"`)
)

func newSignIn(c ChainsConfig) (*signIn, error) {
	jar, _ := cookiejar.New(nil)
	target, err := url.Parse(c.RedirectURI)
	if err != nil {
		return nil, err
	}
	return &signIn{c: c, api: &http.Client{Timeout: 10 * time.Second}, browser: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			if req.URL.Host == target.Host && req.URL.Path == target.Path {
				return errAtRedirect
			}
			return nil
		}}}, nil
}

// refreshToken runs one authorization (signing in the first time, then by
// SSO) and redeems its code: a new refresh-token family.
func (s *signIn) refreshToken() (string, error) {
	v := make([]byte, 32)
	rand.Read(v)
	verifier := base64.RawURLEncoding.EncodeToString(v)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {s.c.ClientID}, "redirect_uri": {s.c.RedirectURI},
		"scope": {"openid offline_access"}, "state": {"chains"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"}}
	loc, body, err := s.step(s.c.Issuer+"/authorize?"+q.Encode(), nil)
	for range 3 {
		if err != nil || loc != nil {
			break
		}
		f := url.Values{}
		for _, m := range hiddenField.FindAllStringSubmatch(body, -1) {
			f.Set(m[1], m[2])
		}
		switch {
		case strings.Contains(body, `name="password"`):
			f.Set("username", s.c.Username)
			f.Set("password", s.c.Password)
			loc, body, err = s.step(s.c.Issuer+"/login", f)
		case strings.Contains(body, `name="decision"`):
			f.Set("decision", "allow")
			loc, body, err = s.step(s.c.Issuer+"/consent", f)
		default:
			return "", fmt.Errorf("sign-in: an unexpected page: %.200s", body)
		}
	}
	if err != nil {
		return "", err
	}
	if loc == nil || loc.Query().Get("code") == "" {
		return "", fmt.Errorf("sign-in ended without a code: %v %.200s", loc, body)
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")},
		"redirect_uri": {s.c.RedirectURI}, "code_verifier": {verifier}}
	status, tok, _, err := s.token(form)
	if err != nil || status != 200 || tok.RefreshToken == "" {
		return "", fmt.Errorf("code redemption: %d %v %+v", status, err, tok)
	}
	return tok.RefreshToken, nil
}

// step sends one browser request (a GET, or a form POST when form is set)
// and returns where it ended: the redirect URI, or a page.
func (s *signIn) step(u string, form url.Values) (*url.URL, string, error) {
	var resp *http.Response
	var err error
	if form != nil {
		resp, err = s.browser.PostForm(u, form)
	} else {
		resp, err = s.browser.Get(u)
	}
	if err != nil && !errors.Is(err, errAtRedirect) {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if l := resp.Header.Get("Location"); errors.Is(err, errAtRedirect) && l != "" {
		loc, perr := url.Parse(l)
		return loc, "", perr
	}
	return nil, string(body), nil
}

type tokenAnswer struct {
	RefreshToken string `json:"refresh_token"`
	Error        string `json:"error"`
	Description  string `json:"error_description"`
}

func (s *signIn) token(form url.Values) (int, *tokenAnswer, http.Header, error) {
	req, _ := http.NewRequest("POST", s.c.Issuer+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(s.c.ClientID), url.QueryEscape(s.c.ClientSecret))
	resp, err := s.api.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	var a tokenAnswer
	err = json.NewDecoder(resp.Body).Decode(&a)
	return resp.StatusCode, &a, resp.Header, err
}

// refresh rotates tok once: the successor, or how long to wait before
// retrying tok, or the refusal that ends the chain.
func (s *signIn) refresh(tok string) (next string, wait time.Duration, refused string) {
	status, a, h, err := s.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok}})
	switch {
	case err == nil && status == 200 && a.RefreshToken != "":
		return a.RefreshToken, 0, ""
	case err == nil && status == 400:
		return "", 0, a.Error + ": " + a.Description
	case err == nil && status == 503:
		if n, perr := strconv.Atoi(h.Get("Retry-After")); perr == nil && n > 0 {
			return "", time.Duration(min(n, 10)) * time.Second, ""
		}
	}
	return "", 200 * time.Millisecond, "" // a lost connection, a restart: soon again
}
