#!/usr/bin/env bash
# The device flow (RFC 8628) against the demo (make run): a command-line
# tool asks for a user code, then polls /token while the user approves in
# a browser. By default this script plays the user too (curl with a cookie
# jar: enter the code, sign in as alice, allow); with USER_STEP=manual it
# prints the URL for you to open instead. Needs curl and sed.
set -euo pipefail
ISSUER=${ISSUER:-http://127.0.0.1:8080}
CLIENT=demo-cli
JAR=$(mktemp); trap 'rm -f "$JAR"' EXIT
c() { curl -s -c "$JAR" -b "$JAR" "$@"; }
json() { sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p"; }
field() { sed -n "s/.*name=\"$1\" value=\"\([^\"]*\)\".*/\1/p" | head -1; }

echo "1. the device asks for codes"
DA=$(curl -s -d client_id=$CLIENT -d "scope=openid profile offline_access" "$ISSUER/device_authorization")
DEVICE_CODE=$(echo "$DA" | json device_code)
USER_CODE=$(echo "$DA" | json user_code)
INTERVAL=$(echo "$DA" | json interval)
echo "   on another screen, open $(echo "$DA" | json verification_uri) and enter $USER_CODE"
echo "   (or $(echo "$DA" | json verification_uri_complete))"

poll() { curl -s -d grant_type=urn:ietf:params:oauth:grant-type:device_code -d client_id=$CLIENT -d "device_code=$DEVICE_CODE" "$ISSUER/token"; }
echo "2. the device polls: $(poll | json error)"

if [[ ${USER_STEP:-auto} != manual ]]; then
  echo "3. the user enters the code, signs in as alice and allows"
  LOGIN=$(c -o /dev/null -w '%{redirect_url}' --data-urlencode "user_code=$USER_CODE" "$ISSUER/device")
  PAGE=$(c "$LOGIN")
  NEXT=$(c -o /dev/null -w '%{redirect_url}' --data-urlencode "interaction=$(echo "$PAGE" | field interaction)" \
    --data-urlencode "csrf=$(echo "$PAGE" | field csrf)" -d username=alice -d password=alice-demo-password "$ISSUER/login")
  PAGE=$(c "$NEXT")
  c --data-urlencode "interaction=$(echo "$PAGE" | field interaction)" --data-urlencode "csrf=$(echo "$PAGE" | field csrf)" \
    -d decision=allow "$ISSUER/consent" | sed -n 's/.*<h1>\(.*\)<\/h1>.*/   the browser says: \1/p'
fi

echo "4. the device keeps polling every ${INTERVAL}s"
while :; do
  sleep "$INTERVAL"
  OUT=$(poll)
  case $(echo "$OUT" | json error) in
    authorization_pending) echo "   authorization_pending" ;;
    slow_down) INTERVAL=$((INTERVAL + 5)); echo "   slow_down: now every ${INTERVAL}s" ;;
    "") echo "   tokens: $(echo "$OUT" | cut -c1-160)…"; break ;;
    *) echo "   $OUT"; exit 1 ;;
  esac
done
