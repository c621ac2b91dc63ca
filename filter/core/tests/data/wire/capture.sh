#!/usr/bin/env bash
# Re-captures the wire fixtures from the demo upstream (scripts/demo_upstream.py):
#   python3 scripts/demo_upstream.py --port 18000 &
#   filter/core/tests/data/wire/capture.sh [http://127.0.0.1:18000]
# Each fixture is the exact response body a client receives (no HTTP framing).
set -euo pipefail
cd "$(dirname "$0")"
base="${1:-http://127.0.0.1:18000}"
reply='Héllo 👋 — mail jane.doe@example.com, token ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8, card 4111 1111 1111 1111. Bye ✓'
b64=$(printf '%s' "$reply" | base64 -w0)
printf '%s' "$reply" > reply.txt
post() { # name path chunk body
  curl -sS -N -o "$1" -H 'content-type: application/json' -H "x-demo-reply: $b64" -H "x-demo-chunk-size: $3" "$base$2" -d "$4"
}
chat='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]'
post chat_stream_1.sse /v1/chat/completions 1 "$chat,\"stream\":true,\"stream_options\":{\"include_usage\":true}}"
post chat_stream_5.sse /v1/chat/completions 5 "$chat,\"stream\":true}"
post chat.json /v1/chat/completions 8 "$chat}"
resp='{"model":"gpt-4o-mini","input":"hi"'
post responses_stream_1.sse /v1/responses 1 "$resp,\"stream\":true}"
post responses.json /v1/responses 8 "$resp}"
msgs='{"model":"claude-sonnet-4-5","max_tokens":256,"messages":[{"role":"user","content":"hi"}]'
post messages_stream_1.sse /v1/messages 1 "$msgs,\"stream\":true}"
post messages_stream_4.sse /v1/messages 4 "$msgs,\"stream\":true}"
post messages.json /v1/messages 8 "$msgs}"
