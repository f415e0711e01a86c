// Package bench is oidcgate's end-to-end load generator: a closed loop of
// connections, each sending its next request as soon as the last answer
// arrived, against the provider (token, introspect, jwks, discovery) or the
// edge. Every answer is checked — status and body — so a fast failure can
// never pass for a fast success.
package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/oidcgate/oidcgate/edge"
	"github.com/oidcgate/oidcgate/keys"
)

// Scenarios.
const (
	Token      = "token"
	Introspect = "introspect"
	JWKS       = "jwks"
	Discovery  = "discovery"
	Edge       = "edge"
)

// Scenarios lists them, for help and validation.
var Scenarios = []string{Token, Introspect, JWKS, Discovery, Edge}

// Config is one load run.
type Config struct {
	Scenario string
	// Target is the base URL under load: the issuer for the provider
	// scenarios, the edge for Edge.
	Target string
	// Issuer issues the tokens the edge and introspect scenarios need
	// (default: Target).
	Issuer       string
	ClientID     string
	ClientSecret string
	// Scope is sent with token requests when set.
	Scope string
	// Path is the edge path to request; ForwardAuth sends it as
	// X-Original-URI to the forward-auth endpoint instead.
	Path        string
	ForwardAuth string
	// UniqueTokens is how many different tokens the edge scenario cycles
	// through (it sets the verified-token cache hit rate).
	UniqueTokens int
	Connections  int
	Duration     time.Duration
	Warmup       time.Duration
	// ServerPID, when set, is the process under load (on this machine):
	// its CPU time over the measured window is reported.
	ServerPID int
	// Progress, when set, gets a line a second.
	Progress io.Writer
}

// Result is what a run measured.
type Result struct {
	Scenario   string                   `json:"scenario"`
	Requests   int64                    `json:"requests"`
	Unexpected int64                    `json:"unexpected"` // wrong status or body
	Errors     int64                    `json:"errors"`     // transport errors
	Statuses   map[int]int64            `json:"statuses"`
	Elapsed    time.Duration            `json:"elapsed_ns"`
	RPS        float64                  `json:"rps"`
	Latency    map[string]time.Duration `json:"latency_ns"` // p50, p90, p99, p99.9
	FirstBad   string                   `json:"first_bad,omitempty"`
	// ServerCPU is the CPU time (user + system) the server under load used
	// while measured, and CPUPerRequest its share per request: the cost
	// of a request on a core, whatever else the machine was doing.
	ServerCPU     time.Duration `json:"server_cpu_ns,omitempty"`
	CPUPerRequest time.Duration `json:"server_cpu_per_request_ns,omitempty"`
}

// OK reports whether every answer was the expected one.
func (r *Result) OK() bool { return r.Unexpected == 0 && r.Errors == 0 && r.Requests > 0 }

// Validate reports every bad setting.
func (c *Config) Validate() error {
	var errs []error
	if !slices.Contains(Scenarios, c.Scenario) {
		errs = append(errs, fmt.Errorf("scenario must be one of %s", strings.Join(Scenarios, ", ")))
	}
	if u, err := url.Parse(c.Target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("target %q must be an http(s) URL", c.Target))
	}
	if (c.Scenario == Token || c.Scenario == Introspect || c.Scenario == Edge) && (c.ClientID == "" || c.ClientSecret == "") {
		errs = append(errs, fmt.Errorf("the %s scenario needs a client ID and secret", c.Scenario))
	}
	if c.Connections < 1 || c.Duration <= 0 || c.Warmup < 0 {
		errs = append(errs, errors.New("connections must be ≥ 1, duration > 0 and warm-up ≥ 0"))
	}
	if c.Scenario == Edge && c.UniqueTokens < 1 {
		errs = append(errs, errors.New("the edge scenario needs at least one unique token"))
	}
	return errors.Join(errs...)
}

// request is one prepared request and how to judge its answer.
type request struct {
	method, path string
	headers      [][2]string
	body         string
	wantStatus   int
	wantBody     []byte // must appear in the body
}

// Run runs the scenario and returns what it measured.
func Run(ctx context.Context, c Config) (*Result, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Issuer == "" {
		c.Issuer = c.Target
	}
	reqs, err := prepare(c)
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(c.Target)
	client := &fasthttp.HostClient{Addr: hostPort(u), IsTLS: u.Scheme == "https", MaxConns: c.Connections,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, MaxResponseBodySize: 1 << 20, Name: "oidcgate-bench"}
	// Check each kind of request once before timing anything.
	for _, r := range reqs[:min(len(reqs), 3)] {
		if status, body, err := send(client, u.Host, r); err != nil || !expected(r, status, body) {
			return nil, fmt.Errorf("the %s scenario's first request got %d %q (%v): not what it expects", c.Scenario, status, trim(body), err)
		}
	}

	var (
		recording  atomic.Bool
		stop       atomic.Bool
		requests   atomic.Int64
		unexpected atomic.Int64
		errs       atomic.Int64
		mu         sync.Mutex
		statuses   = map[int]int64{}
		firstBad   string
		samples    [][]time.Duration
	)
	var wg sync.WaitGroup
	for w := range c.Connections {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			local := map[int]int64{}
			for i := w; !stop.Load(); i += c.Connections {
				r := reqs[i%len(reqs)]
				start := time.Now()
				status, body, err := send(client, u.Host, r)
				took := time.Since(start)
				if !recording.Load() {
					continue
				}
				requests.Add(1)
				mine = append(mine, took)
				switch {
				case err != nil:
					errs.Add(1)
					mu.Lock()
					if firstBad == "" {
						firstBad = err.Error()
					}
					mu.Unlock()
				case !expected(r, status, body):
					unexpected.Add(1)
					local[status]++
					mu.Lock()
					if firstBad == "" {
						firstBad = fmt.Sprintf("%d %s", status, trim(body))
					}
					mu.Unlock()
				default:
					local[status]++
				}
			}
			mu.Lock()
			samples = append(samples, mine)
			for s, n := range local {
				statuses[s] += n
			}
			mu.Unlock()
		}()
	}

	wait := func(d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	wait(c.Warmup)
	cpuBefore, cpuErr := processCPU(c.ServerPID)
	recording.Store(true)
	start := time.Now()
	tick := time.NewTicker(time.Second)
	deadline := time.After(c.Duration)
	var last int64
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-deadline:
			break loop
		case <-tick.C:
			if c.Progress != nil {
				n := requests.Load()
				fmt.Fprintf(c.Progress, "%s %5.0fs  %9d requests  %8d/s  %d unexpected  %d errors\n", c.Scenario,
					time.Since(start).Seconds(), n, n-last, unexpected.Load(), errs.Load())
				last = n
			}
		}
	}
	tick.Stop()
	elapsed := time.Since(start)
	recording.Store(false)
	cpuAfter, err := processCPU(c.ServerPID)
	if cpuErr == nil {
		cpuErr = err
	}
	stop.Store(true)
	wg.Wait()

	all := slices.Concat(samples...)
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	res := &Result{Scenario: c.Scenario, Requests: requests.Load(), Unexpected: unexpected.Load(), Errors: errs.Load(),
		Statuses: statuses, Elapsed: elapsed, RPS: float64(requests.Load()) / elapsed.Seconds(),
		Latency: map[string]time.Duration{}, FirstBad: firstBad}
	for name, q := range map[string]float64{"p50": 0.50, "p90": 0.90, "p99": 0.99, "p99.9": 0.999} {
		if len(all) > 0 {
			res.Latency[name] = all[min(len(all)-1, int(q*float64(len(all))))]
		}
	}
	if c.ServerPID != 0 {
		if cpuErr != nil {
			return nil, fmt.Errorf("server CPU time: %w", cpuErr)
		}
		res.ServerCPU = cpuAfter - cpuBefore
		if res.Requests > 0 {
			res.CPUPerRequest = res.ServerCPU / time.Duration(res.Requests)
		}
	}
	return res, nil
}

// clockTick is Linux's USER_HZ, the unit of /proc/PID/stat's CPU times
// (100 on every architecture Go supports).
const clockTick = 10 * time.Millisecond

// processCPU is the user + system CPU time pid has used, from
// /proc/PID/stat (Linux); pid 0 is no process.
func processCPU(pid int) (time.Duration, error) {
	if pid == 0 {
		return 0, nil
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold anything;
	// utime and stime are fields 14 and 15, the 12th and 13th after it.
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	fields := strings.Fields(string(b[end+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return time.Duration(utime+stime) * clockTick, nil
}

func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return u.Hostname() + ":443"
	}
	return u.Hostname() + ":80"
}

func trim(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

func expected(r *request, status int, body []byte) bool {
	return status == r.wantStatus && bytes.Contains(body, r.wantBody)
}

// send does one request; the body is copied out.
func send(client *fasthttp.HostClient, host string, r *request) (int, []byte, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(r.method)
	req.SetRequestURI(r.path)
	req.Header.SetHost(host)
	for _, h := range r.headers {
		req.Header.Set(h[0], h[1])
	}
	if r.body != "" {
		req.Header.SetContentType("application/x-www-form-urlencoded")
		req.SetBodyString(r.body)
	}
	if err := client.Do(req, resp); err != nil {
		return 0, nil, err
	}
	// Only the expected fragment is needed for the check; copy little.
	body := resp.Body()
	if i := bytes.Index(body, r.wantBody); i >= 0 && len(r.wantBody) > 0 {
		return resp.StatusCode(), r.wantBody, nil
	}
	return resp.StatusCode(), append([]byte(nil), body...), nil
}

func basic(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

// endpoints are what a provider's discovery document names.
type endpoints struct {
	Issuer        string `json:"issuer"`
	Token         string `json:"token_endpoint"`
	Introspection string `json:"introspection_endpoint"`
	JWKS          string `json:"jwks_uri"`
}

// setupClient is the client of the requests around a run (discovery, tokens,
// JWKS), not the load itself.
func setupClient() *fasthttp.Client {
	return &fasthttp.Client{ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, MaxResponseBodySize: 1 << 20}
}

// discover reads base's discovery document, so every peer is driven at its
// own endpoint paths.
func discover(base string) (*endpoints, error) {
	status, body, err := setupClient().Get(nil, strings.TrimSuffix(base, "/")+"/.well-known/openid-configuration")
	if err == nil && status != 200 {
		err = fmt.Errorf("status %d", status)
	}
	var e endpoints
	if err == nil {
		err = json.Unmarshal(body, &e)
	}
	if err != nil || e.Token == "" || e.JWKS == "" {
		return nil, fmt.Errorf("discovery at %s: %v", base, err)
	}
	return &e, nil
}

// pathOf is the path (and query) of an endpoint URL.
func pathOf(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return endpoint
	}
	return u.RequestURI()
}

// prepare builds the requests a scenario cycles through, fetching the
// tokens it needs first.
func prepare(c Config) ([]*request, error) {
	if c.Scenario == Discovery {
		u, _ := url.Parse(c.Target)
		return []*request{{method: "GET", path: strings.TrimSuffix(u.Path, "/") + "/.well-known/openid-configuration",
			wantStatus: 200, wantBody: []byte(`"issuer":`)}}, nil
	}
	ep, err := discover(c.Issuer)
	if err != nil {
		return nil, err
	}
	if c.Scenario == JWKS {
		return []*request{{method: "GET", path: pathOf(ep.JWKS), wantStatus: 200, wantBody: []byte(`"keys":[{`)}}, nil
	}
	tokenForm := "grant_type=client_credentials"
	if c.Scope != "" {
		tokenForm += "&scope=" + url.QueryEscape(c.Scope)
	}
	auth := [2]string{"Authorization", basic(c.ClientID, c.ClientSecret)}
	n := 1
	if c.Scenario == Edge {
		n = c.UniqueTokens
	}
	tokens, err := fetchTokens(c, ep, tokenForm, n)
	if err != nil {
		return nil, err
	}
	if c.Scenario == Token {
		return []*request{{method: "POST", path: pathOf(ep.Token), headers: [][2]string{auth}, body: tokenForm,
			wantStatus: 200, wantBody: []byte(`"token_type":"Bearer"`)}}, nil
	}
	if c.Scenario == Introspect && ep.Introspection == "" {
		return nil, fmt.Errorf("%s advertises no introspection endpoint", c.Issuer)
	}
	var reqs []*request
	for _, tok := range tokens {
		switch c.Scenario {
		case Introspect:
			reqs = append(reqs, &request{method: "POST", path: pathOf(ep.Introspection), headers: [][2]string{auth},
				body: "token=" + url.QueryEscape(tok), wantStatus: 200, wantBody: []byte(`"active":true`)})
		case Edge:
			u, _ := url.Parse(c.Target)
			base := strings.TrimSuffix(u.Path, "/")
			r := &request{method: "GET", path: base + c.Path, wantStatus: 200,
				headers: [][2]string{{"Authorization", "Bearer " + tok}}}
			if c.ForwardAuth != "" {
				r.path = base + c.ForwardAuth
				r.headers = append(r.headers, [2]string{"X-Original-URI", c.Path}, [2]string{"X-Original-Method", "GET"})
			}
			reqs = append(reqs, r)
		}
	}
	return reqs, nil
}

// fetchTokens gets n access tokens from the issuer. The first, when it is a
// JWT, must verify against the issuer's JWKS: a peer that signs badly is
// not measured.
func fetchTokens(c Config, ep *endpoints, form string, n int) ([]string, error) {
	out := make([]string, 0, n)
	client := setupClient()
	for len(out) < n {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI(ep.Token)
		req.Header.SetMethod("POST")
		req.Header.Set("Authorization", basic(c.ClientID, c.ClientSecret))
		req.Header.SetContentType("application/x-www-form-urlencoded")
		req.SetBodyString(form)
		err := client.Do(req, resp)
		var tr struct {
			AccessToken string `json:"access_token"`
		}
		if err == nil && resp.StatusCode() == 200 {
			err = json.Unmarshal(resp.Body(), &tr)
		} else if err == nil {
			err = fmt.Errorf("status %d: %s", resp.StatusCode(), trim(resp.Body()))
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
		if err != nil || tr.AccessToken == "" {
			return nil, fmt.Errorf("getting tokens from %s: %v", ep.Token, err)
		}
		if len(out) == 0 {
			if err := VerifyJWT(ep, tr.AccessToken); err != nil {
				return nil, err
			}
		}
		out = append(out, tr.AccessToken)
	}
	return out, nil
}

// VerifyJWT checks a JWT access token against the issuer's JWKS and
// issuer; opaque tokens pass.
func VerifyJWT(ep *endpoints, token string) error {
	if strings.Count(token, ".") != 2 {
		return nil
	}
	status, body, err := setupClient().Get(nil, ep.JWKS)
	if err == nil && status != 200 {
		err = fmt.Errorf("status %d", status)
	}
	if err != nil {
		return fmt.Errorf("JWKS %s: %v", ep.JWKS, err)
	}
	set, err := edge.ParseJWKS(body)
	if err != nil {
		return err
	}
	v, err := keys.NewVerifier(staticKeys(set), []string{keys.ES256, keys.RS256, keys.PS256, keys.EdDSA})
	if err != nil {
		return err
	}
	payload, _, err := v.Verify([]byte(token))
	if err != nil {
		return fmt.Errorf("the issuer's token does not verify against its JWKS: %w", err)
	}
	var claims struct {
		Iss string `json:"iss"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.Iss != ep.Issuer {
		return fmt.Errorf("the issuer's token names issuer %q, not %q", claims.Iss, ep.Issuer)
	}
	return nil
}

type staticKeys map[string]*keys.PublicKey

func (s staticKeys) PublicKey(kid string) (*keys.PublicKey, error) {
	if k, ok := s[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("%w: %q", keys.ErrUnknownKey, kid)
}

// Print writes a result as a short table.
func Print(w io.Writer, r *Result) {
	fmt.Fprintf(w, "%-10s %10d requests in %.1fs  %9.0f req/s  p50 %v  p90 %v  p99 %v  p99.9 %v\n", r.Scenario, r.Requests,
		r.Elapsed.Seconds(), r.RPS, r.Latency["p50"], r.Latency["p90"], r.Latency["p99"], r.Latency["p99.9"])
	if r.ServerCPU > 0 {
		fmt.Fprintf(w, "           server CPU %.2fs: %v per request\n", r.ServerCPU.Seconds(), r.CPUPerRequest)
	}
	codes := make([]int, 0, len(r.Statuses))
	for s := range r.Statuses {
		codes = append(codes, s)
	}
	sort.Ints(codes)
	for _, s := range codes {
		fmt.Fprintf(w, "           status %d: %d\n", s, r.Statuses[s])
	}
	if r.Errors > 0 || r.Unexpected > 0 {
		fmt.Fprintf(w, "           %d unexpected answers, %d transport errors; first: %s\n", r.Unexpected, r.Errors, r.FirstBad)
	}
}
