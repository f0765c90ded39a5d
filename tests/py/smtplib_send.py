#!/usr/bin/env python3
"""Python's smtplib as a real SMTP client for the end-to-end tests.

Sends one message and prints one JSON line with every reply, so the Rust test can
assert codes. TLS certificates are not verified (the relay uses a generated one).
"""
import argparse
import json
import smtplib
import ssl

p = argparse.ArgumentParser()
p.add_argument("host")
p.add_argument("port", type=int)
p.add_argument("--mode", choices=["plain", "starttls", "ssl"], default="plain")
p.add_argument("--sender", default="alice@sender.example")
p.add_argument("--rcpt", action="append", required=True)
p.add_argument("--smtputf8", action="store_true")
p.add_argument("--eightbit", action="store_true")
p.add_argument("--message-file")
a = p.parse_args()

ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
if a.mode == "ssl":
    s = smtplib.SMTP_SSL(a.host, a.port, context=ctx, timeout=30)
else:
    s = smtplib.SMTP(a.host, a.port, timeout=30)
out = {"ehlo": s.ehlo("pyclient.test")[0], "features": sorted(s.esmtp_features)}
if a.mode == "starttls":
    out["starttls"] = s.starttls(context=ctx)[0]
    out["ehlo_tls"] = s.ehlo("pyclient.test")[0]
if a.mode != "plain":
    out["tls_version"] = s.sock.version()
    out["cipher"] = s.sock.cipher()[0]
if a.message_file:
    msg = open(a.message_file, "rb").read()
else:
    msg = b"From: alice@sender.example\r\nTo: bob@corp.example\r\nSubject: hello\r\n\r\nHello.\r\n"
opts = []
if a.smtputf8:
    opts.append("SMTPUTF8")
if a.eightbit:
    opts.append("BODY=8BITMIME")
code, resp = s.mail(a.sender, opts)
out["mail"] = [code, resp.decode("utf-8", "replace")]
out["rcpt"] = []
for r in a.rcpt:
    code, resp = s.rcpt(r)
    out["rcpt"].append([code, resp.decode("utf-8", "replace")])
if any(c == 250 for c, _ in out["rcpt"]):
    code, resp = s.data(msg)
    out["data"] = [code, resp.decode("utf-8", "replace")]
s.quit()
print(json.dumps(out))
