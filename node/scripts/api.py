#!/usr/bin/env python3
"""Minimal signed client for the node API (manual testing without the carnet CLI).

usage: api.py NODE_URL OFFICER_KEY_FILE METHOD PATH [JSON_BODY]
"""
import json, sys, time, urllib.request, urllib.error
import blake3
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

def main():
    url, keyfile, method, path = sys.argv[1:5]
    body = sys.argv[5].encode() if len(sys.argv) > 5 else b""
    key = json.load(open(keyfile))
    sk = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(key["secret_key"]))
    ts = int(time.time() * 1000)
    msg = b"carnet/api/v1" + method.upper().encode() + b"\n" + path.encode() + b"\n" + str(ts).encode() + b"\n" + blake3.blake3(body).hexdigest().encode()
    req = urllib.request.Request(url + path, data=body if body else None, method=method.upper())
    req.add_header("X-Carnet-Key", key["public_key"])
    req.add_header("X-Carnet-Timestamp", str(ts))
    req.add_header("X-Carnet-Signature", sk.sign(msg).hex())
    req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=40) as r:
            print(r.status, r.read().decode())
    except urllib.error.HTTPError as e:
        print(e.code, e.read().decode())

if __name__ == "__main__":
    main()
