#!/usr/bin/env python3
"""A NATS service written without any NATS client library: it speaks the
NATS text protocol over a plain socket (Python standard library only) and
answers requests on svc.<service>.<endpoint> with "<prefix>: <request>".

usage: raw_responder.py HOST PORT SUBJECT PREFIX
It prints "ready" once the server has confirmed the subscription (PONG).
"""
import socket
import sys


def main():
    host, port, subject, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    s = socket.create_connection((host, port), timeout=30)
    s.settimeout(None)
    f = s.makefile("rb")
    info = f.readline()
    if not info.startswith(b"INFO "):
        raise SystemExit("no INFO from server: %r" % info)
    s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"lang":"python-raw","version":"0.1","protocol":1}\r\n')
    s.sendall(b"SUB " + subject.encode() + b" 1\r\nPING\r\n")
    while True:
        line = f.readline()
        if not line:
            return
        if line.startswith(b"PING"):
            s.sendall(b"PONG\r\n")
        elif line.startswith(b"PONG"):
            print("ready", flush=True)
        elif line.startswith(b"MSG "):
            parts = line.split()
            # MSG <subject> <sid> [reply] <size>
            reply = parts[3] if len(parts) == 5 else None
            size = int(parts[-1])
            payload = f.read(size + 2)[:size]
            if reply:
                out = prefix.encode() + b": " + payload
                s.sendall(b"PUB " + reply + b" " + str(len(out)).encode() + b"\r\n" + out + b"\r\n")
        elif line.startswith(b"-ERR"):
            raise SystemExit(line.decode().strip())


if __name__ == "__main__":
    main()
