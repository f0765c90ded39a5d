#!/usr/bin/env python3
"""A small OAuth2 authorization server for the migrator's end-to-end tests.

- POST /token: the client-credentials grant (RFC 6749 §4.4), the client
  authenticated by HTTP Basic or in the body (client_secret_post). A wrong id
  or secret gets 401 invalid_client, another scope 400 invalid_scope.
- POST /introspect: token introspection (RFC 7662) for Dovecot's
  `passdb oauth2`. Tokens live --lifetime seconds and can be revoked.
- GET /auth: the same check for nginx's `auth_request` in front of a server
  that cannot check bearer tokens itself (Radicale): the request's
  `Authorization: Bearer` token active -> 200 with `X-Remote-User: USERNAME`,
  else 401. --revoke-after-auths N revokes every token after the Nth
  successful check (a token revoked mid-run, at a known point).
- SIGUSR1 revokes every token issued so far.

Over HTTPS with the certificate the test's CA made. After every request the
counters are written to DIR/stats.json (replaced atomically), so the test reads
them without a client of its own; the port is written to DIR/port once bound.
"""
import argparse
import base64
import http.server
import json
import os
import secrets
import signal
import ssl
import threading
import time
import urllib.parse

p = argparse.ArgumentParser()
p.add_argument("dir")
p.add_argument("--client-id", required=True)
p.add_argument("--secret", required=True)
p.add_argument("--scope", required=True)
p.add_argument("--username", required=True, help="the application's identity in the tenant")
p.add_argument("--lifetime", type=int, default=3600, help="seconds a token is valid")
p.add_argument("--expires-in", type=int, help="what the answer says (default: --lifetime)")
p.add_argument("--revoke-after-auths", type=int, help="revoke every token after N successful GET /auth")
p.add_argument("--cert", required=True)
p.add_argument("--key", required=True)
args = p.parse_args()

lock = threading.Lock()
tokens = {}  # token -> {"exp": epoch seconds, "revoked": bool}
stats = {"fetches": 0, "granted": 0, "basic": 0, "post": 0, "refused": 0,
         "introspections": 0, "inactive": 0, "revocations": 0,
         "auths": 0, "auth_refused": 0, "tokens": [], "issued_at": []}


def save_stats():
    tmp = os.path.join(args.dir, "stats.json.tmp")
    with open(tmp, "w") as f:
        json.dump(stats, f)
    os.replace(tmp, os.path.join(args.dir, "stats.json"))


def revoke_all(signum, frame):
    with lock:
        for t in tokens.values():
            t["revoked"] = True
        stats["revocations"] += 1
        save_stats()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        pass

    def answer(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def form(self):
        n = int(self.headers.get("Content-Length", "0"))
        return dict(urllib.parse.parse_qsl(self.rfile.read(n).decode()))

    def do_POST(self):
        form = self.form()
        with lock:
            if self.path == "/token":
                self.token(form)
            elif self.path == "/introspect":
                self.introspect(form)
            else:
                self.answer(404, {"error": "not_found"})
            save_stats()

    def do_GET(self):
        with lock:
            if self.path == "/auth":
                self.auth()
            else:
                self.answer(404, {"error": "not_found"})
            save_stats()

    def auth(self):
        header = self.headers.get("Authorization", "")
        t = tokens.get(header[7:]) if header.startswith("Bearer ") else None
        if t is None or t["revoked"] or time.time() >= t["exp"]:
            stats["auth_refused"] += 1
            return self.answer(401, {"error": "invalid_token"})
        stats["auths"] += 1
        if args.revoke_after_auths is not None and stats["auths"] == args.revoke_after_auths:
            for other in tokens.values():
                other["revoked"] = True
            stats["revocations"] += 1
        self.send_response(200)
        self.send_header("X-Remote-User", args.username)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def token(self, form):
        stats["fetches"] += 1
        client_id, secret, how = None, None, None
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            # RFC 6749 §2.3.1: id and secret are form-encoded before Basic.
            pair = base64.b64decode(auth[6:]).decode()
            cid, _, sec = pair.partition(":")
            client_id, secret, how = urllib.parse.unquote_plus(cid), urllib.parse.unquote_plus(sec), "basic"
        elif "client_secret" in form:
            client_id, secret, how = form.get("client_id"), form.get("client_secret"), "post"
        if form.get("grant_type") != "client_credentials":
            stats["refused"] += 1
            return self.answer(400, {"error": "unsupported_grant_type"})
        if client_id != args.client_id or secret != args.secret:
            stats["refused"] += 1
            return self.answer(401, {"error": "invalid_client",
                                     "error_description": "client authentication failed"})
        if form.get("scope") != args.scope:
            stats["refused"] += 1
            return self.answer(400, {"error": "invalid_scope"})
        stats[how] += 1
        stats["granted"] += 1
        token = secrets.token_urlsafe(32)
        tokens[token] = {"exp": time.time() + args.lifetime, "revoked": False}
        stats["tokens"].append(token)
        stats["issued_at"].append(time.time())
        expires_in = args.expires_in if args.expires_in is not None else args.lifetime
        self.answer(200, {"access_token": token, "token_type": "Bearer", "expires_in": expires_in})

    def introspect(self, form):
        stats["introspections"] += 1
        t = tokens.get(form.get("token", ""))
        active = t is not None and not t["revoked"] and time.time() < t["exp"]
        if not active:
            stats["inactive"] += 1
        # RFC 7662 §2.2 asks only for "active": false here; the username is
        # added because Dovecot 2.3 checks it before "active", and without it
        # an inactive token would be an internal failure instead of a refusal.
        answer = {"active": active, "username": args.username}
        if active:
            answer.update({"scope": args.scope, "exp": int(t["exp"]), "token_type": "Bearer"})
        self.answer(200, answer)


signal.signal(signal.SIGUSR1, revoke_all)
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(args.cert, args.key)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
save_stats()
with open(os.path.join(args.dir, "port.tmp"), "w") as f:
    f.write(str(server.server_address[1]))
os.replace(os.path.join(args.dir, "port.tmp"), os.path.join(args.dir, "port"))
server.serve_forever()
