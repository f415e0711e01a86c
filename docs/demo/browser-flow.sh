#!/usr/bin/env bash
# The browser flow of the demo (make run), driven by curl with a cookie jar:
# authorize with PKCE → sign in as alice → consent → code → tokens →
# userinfo → sign out. Needs curl, openssl and sed.
set -euo pipefail
ISSUER=${ISSUER:-http://127.0.0.1:8080}
CLIENT=demo-spa
REDIRECT=http://127.0.0.1:5555/callback
JAR=$(mktemp); trap 'rm -f "$JAR"' EXIT
c() { curl -s -c "$JAR" -b "$JAR" "$@"; }
field() { sed -n "s/.*name=\"$1\" value=\"\([^\"]*\)\".*/\1/p" | head -1; }

VERIFIER=$(openssl rand -hex 32)
CHALLENGE=$(printf %s "$VERIFIER" | openssl dgst -sha256 -binary | openssl base64 -A | tr '+/' '-_' | tr -d '=')
STATE=$(openssl rand -hex 8)

echo "1. authorization request → the sign-in page"
LOGIN=$(c -o /dev/null -w '%{redirect_url}' "$ISSUER/authorize?response_type=code&client_id=$CLIENT&redirect_uri=$REDIRECT&scope=openid%20profile%20email&state=$STATE&code_challenge=$CHALLENGE&code_challenge_method=S256")
PAGE=$(c "$LOGIN")
echo "2. sign in as alice"
NEXT=$(c -o /dev/null -w '%{redirect_url}' --data-urlencode "interaction=$(echo "$PAGE" | field interaction)" \
  --data-urlencode "csrf=$(echo "$PAGE" | field csrf)" -d username=alice -d password=alice-demo-password "$ISSUER/login")
if [[ $NEXT == *"/consent"* ]]; then
  echo "3. consent: allow"
  PAGE=$(c "$NEXT")
  NEXT=$(c -o /dev/null -w '%{redirect_url}' --data-urlencode "interaction=$(echo "$PAGE" | field interaction)" \
    --data-urlencode "csrf=$(echo "$PAGE" | field csrf)" -d decision=allow "$ISSUER/consent")
fi
echo "   back at the app: $NEXT"
CODE=$(echo "$NEXT" | sed -n 's/.*[?&]code=\([^&]*\).*/\1/p')
echo "4. code → tokens"
TOKENS=$(c -d grant_type=authorization_code -d client_id=$CLIENT -d "code=$CODE" -d "redirect_uri=$REDIRECT" \
  -d "code_verifier=$VERIFIER" "$ISSUER/token")
echo "   $TOKENS" | cut -c1-160
ACCESS=$(echo "$TOKENS" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
ID=$(echo "$TOKENS" | sed -n 's/.*"id_token":"\([^"]*\)".*/\1/p')
echo "5. userinfo"
echo "   $(c -H "Authorization: Bearer $ACCESS" "$ISSUER/userinfo")"
echo "6. sign out (the ID token as hint), then a silent sign-in fails"
c -o /dev/null "$ISSUER/end_session?id_token_hint=$ID"
c -o /dev/null -w '   %{redirect_url}\n' "$ISSUER/authorize?response_type=code&client_id=$CLIENT&redirect_uri=$REDIRECT&scope=openid&prompt=none&state=$STATE&code_challenge=$CHALLENGE&code_challenge_method=S256"
