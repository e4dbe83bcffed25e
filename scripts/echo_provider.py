#!/usr/bin/env python3
"""A tiny OpenAI-compatible provider for scripts/world-example.sh: it answers a chat
completion by repeating what the prompt's notes block hands the character (hearsay first,
then lore), so the example shows a reply that mentions what the character was told.
Standard library only. Usage: echo_provider.py PORT (listens on 127.0.0.1)."""

import json
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HEARSAY = re.compile(r'"([^"]* said that [^"]*)"')
LORE = re.compile(r'What you know of the world: \["((?:[^"\\]|\\.)*)"')


def reply_to(purpose: str, messages: list) -> str:
    if purpose == "fact_extraction":
        return json.dumps({"facts": [], "updates": [], "deletes": []})
    if purpose != "conversation":
        return "They talked."
    system = messages[0]["content"] if messages else ""
    heard = HEARSAY.search(system)
    if heard:
        return f"Word travels fast. {heard.group(1).rstrip('.')}. Is it true?"
    lore = LORE.search(system)
    if lore:
        return f"Everyone knows it: {json.loads(chr(34) + lore.group(1) + chr(34))}"
    return "Welcome, stranger."


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length", 0))
        request = json.loads(self.rfile.read(length) or b"{}")
        purpose = self.headers.get("X-Request-Purpose", "conversation")
        text = reply_to(purpose, request.get("messages", []))
        body = json.dumps({
            "id": "echo-1",
            "object": "chat.completion",
            "model": request.get("model", "echo"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
