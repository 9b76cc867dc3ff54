#!/usr/bin/env python3
"""Writes sd33-vectors.txt from captures of secure messaging sessions with
NIST Special Database 33 test PIV cards, as published in JSON by the
OpenPhysical/OpenFIPS201 repository (its tool tests' `vci/vectors`, files
`vci_vectors_sd33-NN.json` on the contact interface and
`vci_contactless_sd33-NN.json` on the contactless one). Only values are
taken: the client's ephemeral key and identifier, the card's nonce, CVC
and answer, the ECDH secret Z the client computed, the keys and the
cryptogram, and every protected exchange (chained parts joined).

Run: python3 sd33.py DIR_WITH_THE_JSON_FILES > sd33-vectors.txt
"""

import json
import sys
from pathlib import Path

# Three of each suite, both interfaces.
CARDS = [
    "vci_vectors_sd33-03",
    "vci_contactless_sd33-04",
    "vci_contactless_sd33-12",
    "vci_vectors_sd33-05",
    "vci_contactless_sd33-02",
    "vci_contactless_sd33-16",
]


MAX_EXCHANGES = 12


def exchanges(capture):
    """The protected exchanges, a chain's parts joined: (header, data, answer)."""
    out = []
    pending = b""
    for e in capture["apdu_exchanges"]:
        apdu = bytes.fromhex(e["command"])
        if apdu[0] not in (0x0C, 0x1C):
            continue
        lc = apdu[4]
        data = apdu[5:5 + lc]
        if apdu[0] == 0x1C:
            pending += data
            continue
        out.append((bytes([0x0C]) + apdu[1:4], pending + data, bytes.fromhex(e["response"])))
        pending = b""
    return out


def main(folder):
    print("# Secure messaging sessions captured with NIST SP 800-73-4 test cards")
    print("# (Special Database 33), written by sd33.py. Do not edit by hand.")
    for name in CARDS:
        capture = json.loads((Path(folder) / f"{name}.json").read_text())
        o = capture["opacity"]
        s = capture["sm_session"]
        point = bytes.fromhex("04" + o["ephemeral_public_key_x"] + o["ephemeral_public_key_y"])
        print()
        print(f"[{name}]")
        print(f"suite = {int(o['cipher_suite_id'], 16):02x}")
        print(f"control = {o['cb_H']}")
        print(f"host_id = {o['id_sH']}")
        print(f"host_public = {point.hex()}")
        print(f"nonce = {o['n_ICC']}")
        print(f"cvc = {o['cvc_raw']}")
        print(f"card_id = {o['id_sICC']}")
        print(f"z = {o['shared_secret_Z']}")
        print(f"other_info = {o['other_info']}")
        for key in ("sk_cfrm", "sk_mac", "sk_enc", "sk_rmac"):
            print(f"{key} = {o[key]}")
        print(f"cryptogram = {o['auth_cryptogram']}")
        if s.get("pairing_code_hex"):
            print(f"pairing_code = {s['pairing_code_hex']}")
        print(f"pin = {s['pin_hex']}")
        # The session's first exchanges: the pairing code, the objects, the
        # PIN and the private-key operations are among them; the rest
        # repeat them and only make the file longer.
        for header, data, answer in exchanges(capture)[:MAX_EXCHANGES]:
            print(f"exchange = {header.hex()} {data.hex()} {answer.hex()}")


if __name__ == "__main__":
    main(sys.argv[1])
