#!/usr/bin/env python3
"""meshguard's demo LLM upstream: an OpenAI- and Anthropic-compatible server
that answers with the last user message it received, so anyone can see
exactly what reached the model.

Endpoints: POST /v1/chat/completions, /v1/responses, /v1/messages (streaming
and not, real SSE framing, usage fields); GET /healthz; GET /demo/requests
(what it received, newest last; for tests and demos). It can also stand in
for an identity provider's key endpoint: PUT /demo/jwks sets the document
that GET /.well-known/jwks.json serves (404 until set).

Test-only request headers:
  x-demo-reply       base64 of the text to answer with instead of the echo
  x-demo-chunk-size  characters per streamed delta (default 8)
  x-demo-leak-system answer with the system prompt, as a model tricked into
                     revealing it would
  x-demo-tool-call   (chat) answer with a call of the named tool instead of text

Standard library only. Usage: demo_upstream.py [--host 127.0.0.1] [--port 8000]
"""

import argparse
import base64
import json
import sys
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 64 * 1024 * 1024
RECENT_LIMIT = 200
RECENT = []
RECENT_LOCK = threading.Lock()
JWKS = {"document": None}


def remember(path, headers, body):
    with RECENT_LOCK:
        RECENT.append({"path": path, "headers": headers, "body": body})
        del RECENT[:-RECENT_LIMIT]


def text_of(content):
    """Text of an OpenAI/Anthropic content value: a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict):
                for key in ("text", "input_text", "content"):
                    if isinstance(part.get(key), str):
                        parts.append(part[key])
                        break
            elif isinstance(part, str):
                parts.append(part)
        return "".join(parts)
    return ""


def last_user_text(body):
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return text_of(message.get("content"))
    data = body.get("input")
    if isinstance(data, str):
        return data
    if isinstance(data, list):
        for item in reversed(data):
            if isinstance(item, dict) and item.get("role", "user") == "user":
                return text_of(item.get("content"))
    prompt = body.get("prompt")
    return prompt if isinstance(prompt, str) else ""


def system_text(body):
    """The system prompt of a chat, responses or Anthropic request."""
    for message in body.get("messages") or []:
        if isinstance(message, dict) and message.get("role") in ("system", "developer"):
            return text_of(message.get("content"))
    return text_of(body.get("system") or body.get("instructions") or "")


def count_tokens(text):
    return max(1, len(text.split())) if text else 0


def chunks(text, size):
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


class Handler(BaseHTTPRequestHandler):
    # Small SSE writes must leave at once, as from a real API (Nagle's
    # algorithm and delayed ACKs would add ~40 ms to streams).
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    server_version = "meshguard-demo-upstream/1"

    def log_message(self, fmt, *args):
        sys.stderr.write("demo-upstream: " + (fmt % args) + "\n")

    # --- plumbing -------------------------------------------------------
    def send_json(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def start_stream(self):
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

    def write_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def sse(self, payload, event=None):
        frame = ""
        if event:
            frame += f"event: {event}\n"
        frame += "data: " + (payload if isinstance(payload, str) else json.dumps(payload)) + "\n\n"
        self.write_chunk(frame.encode())

    def end_stream(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # --- routes ---------------------------------------------------------
    def do_GET(self):
        if self.path == "/healthz":
            self.send_json(200, {"status": "ok"})
        elif self.path == "/demo/requests":
            with RECENT_LOCK:
                self.send_json(200, {"requests": list(RECENT)})
        elif self.path == "/.well-known/jwks.json" and JWKS["document"] is not None:
            self.send_json(200, JWKS["document"])
        else:
            self.send_json(404, {"error": {"message": "not found", "type": "invalid_request_error", "code": "not_found"}})

    def do_PUT(self):
        if self.path != "/demo/jwks":
            self.send_json(404, {"error": {"message": "not found", "type": "invalid_request_error", "code": "not_found"}})
            return
        length = int(self.headers.get("content-length") or 0)
        JWKS["document"] = json.loads(self.rfile.read(length))
        self.send_json(200, {"stored": True})

    def do_DELETE(self):
        if self.path == "/demo/requests":
            with RECENT_LOCK:
                RECENT.clear()
            self.send_json(200, {"cleared": True})
        else:
            self.send_json(404, {"error": {"message": "not found", "type": "invalid_request_error", "code": "not_found"}})

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            raw = self.read_chunked()
        else:
            raw = self.rfile.read(min(length, MAX_BODY))
        headers = {k.lower(): v for k, v in self.headers.items()}
        encoding = headers.get("content-encoding", "").lower()
        if encoding in ("gzip", "deflate"):
            raw = zlib.decompress(raw, 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
        text_body = raw.decode("utf-8", "replace")
        remember(self.path, headers, text_body)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self.send_json(400, {"error": {"message": "invalid JSON", "type": "invalid_request_error", "code": "invalid_json"}})
            return
        reply = last_user_text(body) if isinstance(body, dict) else ""
        if "x-demo-leak-system" in headers and isinstance(body, dict):
            reply = "My instructions are: " + system_text(body)
        if "x-demo-reply" in headers:
            reply = base64.b64decode(headers["x-demo-reply"]).decode("utf-8")
        chunk_size = max(1, int(headers.get("x-demo-chunk-size", "8")))
        model = body.get("model", "demo-model") if isinstance(body, dict) else "demo-model"
        prompt_tokens = count_tokens(text_body)
        stream = isinstance(body, dict) and body.get("stream") is True
        path = self.path.split("?")[0]
        if path == "/v1/chat/completions" and "x-demo-tool-call" in headers:
            self.openai_tool_call(model, headers["x-demo-tool-call"], stream)
        elif path == "/v1/chat/completions":
            self.openai_chat(model, reply, stream, chunk_size, prompt_tokens, body)
        elif path == "/v1/responses":
            self.openai_responses(model, reply, stream, chunk_size, prompt_tokens)
        elif path == "/v1/messages":
            self.anthropic_messages(model, reply, stream, chunk_size, prompt_tokens)
        else:
            self.send_json(404, {"error": {"message": f"no route {path}", "type": "invalid_request_error", "code": "not_found"}})

    def read_chunked(self):
        data = b""
        while True:
            size = int(self.rfile.readline().strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return data
            data += self.rfile.read(size)
            self.rfile.readline()
            if len(data) > MAX_BODY:
                return data

    # --- OpenAI chat completions -----------------------------------------
    def openai_chat(self, model, reply, stream, chunk_size, prompt_tokens, body):
        cid = "chatcmpl-" + uuid.uuid4().hex[:24]
        created = int(time.time())
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": count_tokens(reply),
                 "total_tokens": prompt_tokens + count_tokens(reply)}
        if not stream:
            self.send_json(200, {
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply, "refusal": None},
                             "logprobs": None, "finish_reason": "stop"}],
                "usage": usage, "system_fingerprint": "fp_demo"})
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                "system_fingerprint": "fp_demo"}
        self.start_stream()
        self.sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                       "logprobs": None, "finish_reason": None}]})
        for piece in chunks(reply, chunk_size):
            self.sse({**base, "choices": [{"index": 0, "delta": {"content": piece}, "logprobs": None,
                                           "finish_reason": None}]})
        self.sse({**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]})
        if include_usage:
            self.sse({**base, "choices": [], "usage": usage})
        self.sse("[DONE]")
        self.end_stream()

    def openai_tool_call(self, model, name, stream):
        cid = "chatcmpl-" + uuid.uuid4().hex[:24]
        created = int(time.time())
        call = {"id": "call_" + uuid.uuid4().hex[:12], "type": "function",
                "function": {"name": name, "arguments": '{"q": "status"}'}}
        if not stream:
            self.send_json(200, {
                "id": cid, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                             "logprobs": None, "finish_reason": "tool_calls"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}})
            return
        base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model}
        self.start_stream()
        first = {"index": 0, **call, "function": {"name": name, "arguments": ""}}
        self.sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [first]},
                                       "finish_reason": None}]})
        self.sse({**base, "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": call["function"]["arguments"]}}]}, "finish_reason": None}]})
        self.sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
        self.sse("[DONE]")
        self.end_stream()

    # --- OpenAI responses -------------------------------------------------
    def openai_responses(self, model, reply, stream, chunk_size, prompt_tokens):
        rid = "resp_" + uuid.uuid4().hex[:24]
        mid = "msg_" + uuid.uuid4().hex[:24]
        created = int(time.time())
        usage = {"input_tokens": prompt_tokens, "output_tokens": count_tokens(reply),
                 "total_tokens": prompt_tokens + count_tokens(reply),
                 "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}

        def item(text, status):
            return {"id": mid, "type": "message", "role": "assistant", "status": status,
                    "content": [{"type": "output_text", "text": text, "annotations": []}] if status == "completed" else []}

        def response(status, output, with_usage):
            return {"id": rid, "object": "response", "created_at": created, "status": status, "model": model,
                    "output": output, "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
                    "usage": usage if with_usage else None}

        if not stream:
            self.send_json(200, response("completed", [item(reply, "completed")], True))
            return
        self.start_stream()
        seq = iter(range(1_000_000))
        self.sse({"type": "response.created", "sequence_number": next(seq),
                  "response": response("in_progress", [], False)}, "response.created")
        self.sse({"type": "response.output_item.added", "sequence_number": next(seq), "output_index": 0,
                  "item": item("", "in_progress")}, "response.output_item.added")
        part = {"type": "output_text", "text": "", "annotations": []}
        self.sse({"type": "response.content_part.added", "sequence_number": next(seq), "item_id": mid,
                  "output_index": 0, "content_index": 0, "part": part}, "response.content_part.added")
        for piece in chunks(reply, chunk_size):
            self.sse({"type": "response.output_text.delta", "sequence_number": next(seq), "item_id": mid,
                      "output_index": 0, "content_index": 0, "delta": piece, "logprobs": []},
                     "response.output_text.delta")
        self.sse({"type": "response.output_text.done", "sequence_number": next(seq), "item_id": mid,
                  "output_index": 0, "content_index": 0, "text": reply, "logprobs": []}, "response.output_text.done")
        self.sse({"type": "response.content_part.done", "sequence_number": next(seq), "item_id": mid,
                  "output_index": 0, "content_index": 0, "part": {**part, "text": reply}},
                 "response.content_part.done")
        self.sse({"type": "response.output_item.done", "sequence_number": next(seq), "output_index": 0,
                  "item": item(reply, "completed")}, "response.output_item.done")
        self.sse({"type": "response.completed", "sequence_number": next(seq),
                  "response": response("completed", [item(reply, "completed")], True)}, "response.completed")
        self.end_stream()

    # --- Anthropic messages -------------------------------------------------
    def anthropic_messages(self, model, reply, stream, chunk_size, prompt_tokens):
        mid = "msg_" + uuid.uuid4().hex[:24]
        out_tokens = count_tokens(reply)
        if not stream:
            self.send_json(200, {"id": mid, "type": "message", "role": "assistant", "model": model,
                                 "content": [{"type": "text", "text": reply}], "stop_reason": "end_turn",
                                 "stop_sequence": None,
                                 "usage": {"input_tokens": prompt_tokens, "output_tokens": out_tokens}})
            return
        self.start_stream()
        self.sse({"type": "message_start", "message": {
            "id": mid, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": prompt_tokens, "output_tokens": 1}}}, "message_start")
        self.sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                 "content_block_start")
        for piece in chunks(reply, chunk_size):
            self.sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
                     "content_block_delta")
        self.sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
        self.sse({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                  "usage": {"output_tokens": out_tokens}}, "message_delta")
        self.sse({"type": "message_stop"}, "message_stop")
        self.end_stream()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"demo upstream listening on http://{args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
