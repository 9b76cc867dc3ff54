#!/usr/bin/env python3
"""Writes the seed corpora from the test vectors (run from fuzz/).

apdu_codec and applet_single get one command APDU per file; card_os_pipeline
gets each pipeline scenario as length-prefixed APDUs; vpcd_frames gets a
power-on, get-ATR and the PIV commands as vpcd frames. The files are named by
content hash, so running this again adds nothing twice.
"""
import hashlib
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = pathlib.Path(__file__).resolve().parent / "corpus"


def hexbytes(text):
    digits = "".join(c for c in text if c in "0123456789abcdefABCDEF")
    return bytes.fromhex(digits)


def commands(path):
    for line in (ROOT / path).read_text().splitlines():
        line = line.strip()
        if line.startswith(">"):
            yield hexbytes(line[1:])
        elif "|" in line and line.startswith("cmd"):
            yield hexbytes(line.split("|")[2])


def scenarios(path):
    current = []
    for line in (ROOT / path).read_text().splitlines():
        line = line.strip()
        if line.startswith("==") and current:
            yield current
            current = []
        elif line.startswith(">"):
            current.append(hexbytes(line[1:]))
    if current:
        yield current


def save(target, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


for apdu in commands("apdu/tests/data/vectors.txt"):
    save("apdu_codec", apdu)
for apdu in commands("applet/tests/data/exchanges.txt"):
    save("applet_single", apdu)
    save("apdu_codec", apdu)
for scenario in scenarios("card-os/tests/data/pipeline.txt"):
    save("card_os_pipeline", b"".join(bytes([min(len(a), 254)]) + a[:254] for a in scenario))
for scenario in scenarios("applet/tests/data/exchanges.txt"):
    frames = [b"\x01", b"\x04"] + scenario
    save("vpcd_frames", b"".join(len(f).to_bytes(2, "big") + f for f in frames))
