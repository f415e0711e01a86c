package provider_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/oidcgate/oidcgate/provider"
	"github.com/oidcgate/oidcgate/provider/connector"
)

// GitHub cannot be reached from the test machines. githubShapes serves,
// on loopback, GitHub's documented OAuth app endpoints and the REST
// responses the connector reads, with bodies taken from GitHub's API
// documentation (docs.github.com/en/rest/users/users#get-the-authenticated-user,
// …/users/emails, …/orgs/orgs#list-organizations-for-the-authenticated-user,
// …/teams/teams#list-teams-for-the-authenticated-user, and
// …/apps/oauth-apps/authorizing-oauth-apps), laid out as GitHub Enterprise
// Server does (web at /, the API under /api/v3).
type githubShapes struct {
	srv    *httptest.Server
	emails string // the /user/emails body

	mu        sync.Mutex
	challenge string
	badCode   bool
}

const ghToken = "gho_16C7e42F292c6912E7710c838347Ae178B4a"

// documentedEmails is /user/emails as GitHub's documentation shows it.
const documentedEmails = `[{"email":"octocat@github.com","verified":true,"primary":true,"visibility":"public"},
	{"email":"octocat@old.example","verified":false,"primary":false,"visibility":null}]`

func newGitHubShapes(t *testing.T, emails string) *githubShapes {
	g := &githubShapes{emails: emails}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login/oauth/authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		g.mu.Lock()
		g.challenge = q.Get("code_challenge")
		g.mu.Unlock()
		if q.Get("client_id") != "gh-client" || q.Get("code_challenge_method") != "S256" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		http.Redirect(w, r, q.Get("redirect_uri")+"?"+url.Values{"code": {"ab12cd34"}, "state": {q.Get("state")}}.Encode(), http.StatusFound)
	})
	mux.HandleFunc("POST /login/oauth/access_token", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		g.mu.Lock()
		defer g.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if g.badCode || r.Form.Get("code") != "ab12cd34" || r.Form.Get("client_secret") != secret || s256Of(r.Form.Get("code_verifier")) != g.challenge {
			// GitHub answers a bad code with 200 and an error.
			w.Write([]byte(`{"error":"bad_verification_code","error_description":"The code passed is incorrect or expired.","error_uri":"https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code"}`))
			return
		}
		w.Write([]byte(`{"access_token":"` + ghToken + `","scope":"read:org,read:user,user:email","token_type":"bearer"}`))
	})
	api := func(path, body string) {
		mux.HandleFunc("GET /api/v3"+path, func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+ghToken {
				w.WriteHeader(http.StatusUnauthorized)
				w.Write([]byte(`{"message":"Requires authentication","documentation_url":"https://docs.github.com/rest"}`))
				return
			}
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			if path == "/user/emails" {
				body = g.emails
			}
			w.Write([]byte(body))
		})
	}
	api("/user", `{"login":"octocat","id":1,"node_id":"MDQ6VXNlcjE=","avatar_url":"https://github.com/images/error/octocat_happy.gif",
		"type":"User","site_admin":false,"name":"monalisa octocat","company":"GitHub","email":"octocat@github.com","created_at":"2008-01-14T04:33:35Z"}`)
	api("/user/emails", "") // g.emails, read per request
	api("/user/orgs", `[{"login":"github","id":1,"node_id":"MDEyOk9yZ2FuaXphdGlvbjE=","url":"https://api.github.com/orgs/github","description":"A great organization"}]`)
	api("/user/teams", `[{"id":1,"node_id":"MDQ6VGVhbTE=","name":"Justice League","slug":"justice-league","privacy":"closed",
		"organization":{"login":"github","id":1,"node_id":"MDEyOk9yZ2FuaXphdGlvbjE="}}]`)
	mux.HandleFunc("GET /api/v3/", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"current_user_url": "https://api.github.com/user"})
	})
	g.srv = httptest.NewServer(mux)
	t.Cleanup(g.srv.Close)
	return g
}

func githubConnector(g *githubShapes, allowedOrgs ...string) connector.Config {
	return connector.Config{ID: "github", Type: connector.TypeGitHub, Name: "GitHub",
		GitHub: &connector.GitHubConfig{ClientID: "gh-client", ClientSecret: secret, BaseURL: g.srv.URL, APIURL: g.srv.URL + "/api/v3",
			LoadGroups: true, AllowedOrgs: allowedOrgs}}
}

func TestGitHubConnector(t *testing.T) {
	g := newGitHubShapes(t, documentedEmails)
	s := start(t, backends()[0].open(t), withConnectors(githubConnector(g, "github")))
	s.register(t, provider.ClientSpec{ID: "intranet", Secret: secret, RedirectURIs: []string{rpRedirect}, FirstParty: true,
		GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid", "profile", "email", "groups"}})
	ctx := context.Background()
	r := newRP(t, s, "intranet", secret, rpRedirect)
	r.cfg.Scopes = []string{"openid", "profile", "email", "groups"}
	b := newBrowser(t)
	verifier := oauth2.GenerateVerifier()
	p := b.get(r.cfg.AuthCodeURL("st", oidc.Nonce("n"), oauth2.S256ChallengeOption(verifier)))
	p = b.button(s, p, "GitHub")
	tok, idt := r.redeem(t, s, p, "st", verifier)
	if !slices.Contains(amrOf(t, idt), "fed") {
		t.Errorf("amr %v", amrOf(t, idt))
	}
	ui, err := r.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatal(err)
	}
	var uc struct {
		Email    string   `json:"email"`
		Verified bool     `json:"email_verified"`
		Name     string   `json:"name"`
		Login    string   `json:"preferred_username"`
		Groups   []string `json:"groups"`
	}
	ui.Claims(&uc)
	if uc.Email != "octocat@github.com" || !uc.Verified || uc.Name != "monalisa octocat" || uc.Login != "octocat" ||
		!slices.Equal(uc.Groups, []string{"github", "github:justice-league"}) {
		t.Errorf("userinfo %+v", uc)
	}
	if links, _ := s.store.ListIdentities(ctx, idt.Subject); len(links) != 1 || links[0].Subject != "1" {
		t.Errorf("linked by GitHub's numeric id: %+v", links)
	}
}

func TestGitHubConnectorRefusals(t *testing.T) {
	g := newGitHubShapes(t, documentedEmails)
	s := start(t, backends()[0].open(t), withConnectors(githubConnector(g, "another-org")))

	b := newBrowser(t)
	p := signInAt(t, s, b, "GitHub")
	if p.status != http.StatusForbidden || !strings.Contains(p.body, "not a member of an allowed organisation") || sessionCookie(b, s) {
		t.Errorf("outside allowed_orgs: %d %s", p.status, p.body)
	}

	g.mu.Lock()
	g.badCode = true
	g.mu.Unlock()
	b = newBrowser(t)
	p = signInAt(t, s, b, "GitHub")
	if p.status != http.StatusBadRequest || !strings.Contains(p.body, "bad_verification_code") || sessionCookie(b, s) {
		t.Errorf("GitHub's error for a bad code: %d %s", p.status, p.body)
	}
}

func TestGitHubWithoutVerifiedEmail(t *testing.T) {
	g := newGitHubShapes(t, `[{"email":"octocat@github.com","verified":false,"primary":true,"visibility":"public"}]`)
	cc := githubConnector(g)
	cc.GitHub.LoadGroups = false
	s := start(t, backends()[0].open(t), withConnectors(cc))
	b := newBrowser(t)
	if p := signInAt(t, s, b, "GitHub"); !strings.Contains(p.body, `value="allow"`) {
		t.Fatalf("sign-in: %d %s", p.status, p.body)
	}
	users, _ := s.store.ListUsers(context.Background())
	for _, u := range users {
		if strings.HasPrefix(u.Username, "github:") && u.Claims["email"] != nil {
			t.Errorf("an unverified GitHub email was kept: %v", u.Claims)
		}
	}
}

// s256Of is RFC 7636's S256 of a verifier.
func s256Of(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
