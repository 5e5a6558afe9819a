#!/usr/bin/env python3
"""Sets up (and optionally starts) a local N-node Carnet network by hand with
`carnet-node init` + `carnet-node start`, without carnet-testnet.

usage: local-net.py DIR [--nodes 4] [--base-p2p 7101] [--base-api 7201] [--start]

Writes DIR/<CODE>/ node homes (genesis.json copied in, peers filled in; no agreement:
propose one with `carnet agreement propose` before filing documents), DIR/genesis.json and DIR/officers/<CODE>.key (officer keys with every role,
made with the `cryptography` package). With --start, starts every node in the
background and writes DIR/pids.
"""
import argparse, json, os, subprocess, sys, time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization

CODES = ["XA", "XB", "XC", "XD", "XE", "XF", "XG"]
NAMES = ["Adjikistan", "Borduria", "Carpania", "Drusselstein", "Elbonia", "Freedonia", "Genovia"]

def raw(key):
    priv = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return pub.hex(), priv.hex()

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--nodes", type=int, default=4)
    ap.add_argument("--base-p2p", type=int, default=7101)
    ap.add_argument("--base-api", type=int, default=7201)
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "../../target/release/carnet-node"))
    ap.add_argument("--start", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    infos = []
    for i in range(a.nodes):
        home = os.path.join(a.dir, CODES[i])
        out = subprocess.check_output([a.bin, "init", "--home", home, "--administration", CODES[i],
                                       "--name", NAMES[i], "--p2p-port", str(a.base_p2p + i),
                                       "--api-port", str(a.base_api + i)])
        infos.append(json.loads(out))
    os.makedirs(os.path.join(a.dir, "officers"), exist_ok=True)
    officers = []
    for info in infos:
        pub, priv = raw(Ed25519PrivateKey.generate())
        path = os.path.join(a.dir, "officers", info["administration"] + ".key")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            json.dump({"public_key": pub, "secret_key": priv}, f)
        officers.append({"key": pub, "administration": info["administration"], "name": "Officer of " + info["name"],
                         "roles": ["officer", "supervisor", "auditor", "admin"], "active": True})
    genesis = {
        "chain_id": "carnet-local",
        "genesis_time_ms": int(time.time() * 1000),
        "administrations": [{"code": i["administration"], "name": i["name"], "node_key": i["node_key"],
                             "validator_key": i["validator_key"], "encryption_key": i["encryption_key"],
                             "voting_power": 1, "active": True} for i in infos],
        "officers": officers,
    }
    with open(os.path.join(a.dir, "genesis.json"), "w") as f:
        json.dump(genesis, f, indent=2)
    for i, info in enumerate(infos):
        home = os.path.join(a.dir, CODES[i])
        with open(os.path.join(home, "genesis.json"), "w") as f:
            json.dump(genesis, f, indent=2)
        peers = [f'"{o["p2p_addr"]}/p2p/{o["peer_id"]}"' for o in infos if o is not info]
        cfg_path = os.path.join(home, "config.toml")
        lines = open(cfg_path).read().splitlines()
        lines = [("peers = [" + ", ".join(peers) + "]") if l.startswith("peers") else l for l in lines]
        open(cfg_path, "w").write("\n".join(lines) + "\n")
    if a.start:
        pids = []
        for i in range(a.nodes):
            home = os.path.join(a.dir, CODES[i])
            log = open(os.path.join(home, "stderr.log"), "w")
            p = subprocess.Popen([a.bin, "start", "--home", home], stdout=log, stderr=log, start_new_session=True)
            pids.append(p.pid)
        open(os.path.join(a.dir, "pids"), "w").write("\n".join(map(str, pids)) + "\n")
    print(json.dumps(infos, indent=1))

if __name__ == "__main__":
    sys.exit(main())
