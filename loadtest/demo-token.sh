#!/usr/bin/env bash
# Prints an access token from the demo STS, as the book's chapter 10 requests one: client
# applicationid, user peter, scope foo. Use it as `export TOKEN=$(loadtest/demo-token.sh)`.
# STS_URL (default https://localhost:8443) and SCOPE (default foo) change the request.
set -euo pipefail
sts_url="${STS_URL:-https://localhost:8443}"
response="$(curl -sS -k --fail-with-body -X POST --basic -u applicationid:applicationsecret \
    -H "Content-Type: application/x-www-form-urlencoded;charset=UTF-8" \
    -d "grant_type=password&username=peter&password=peter123&scope=${SCOPE:-foo}" \
    "$sts_url/oauth/token")" || {
    echo "error: the token request to $sts_url failed: $response" >&2
    echo "Is the demo running? Start it with: cargo run --release -p portcullis-demo" >&2
    exit 1
}
python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])' <<<"$response"
