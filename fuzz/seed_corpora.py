#!/usr/bin/env python3
"""Writes the seed corpora from the test vectors and the tool traces.

Run from anywhere. apdu_codec and applet_single get one command APDU per
file; card_os_pipeline gets each scenario as length-prefixed APDUs;
vpcd_frames gets a power-on, get-ATR and the commands as vpcd frames. The
files are named by content hash, so running this again adds nothing twice.

traces/*.trace are raw `s9card serve --trace` recordings of real tool
sessions (yubico-piv-tool, OpenSC's tools and PKCS#11 module, ssh-keygen).
The recorder cuts secrets out, so each redacted field is filled back with
the factory value it stood for where one is known (PIN 123456, PUK
12345678, the challenge-response template) and zeros elsewhere; every
command also goes to traces/commands.hex, which applet_sequence replays as
its `Recorded` operation (a structured input cannot be seeded from bytes).
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


PIN = b"123456\xff\xff"
NEW_PIN = b"482915\xff\xff"
PUK = b"12345678"


def filled(ins, p2, n):
    """Bytes standing in for a redacted field of n bytes."""
    if ins == 0x20 and n == 8:
        return PIN
    if ins == 0x24 and n == 16:
        return PIN + NEW_PIN if p2 == 0x80 else PUK + b"87654321"
    if ins == 0x2C and n == 16:
        return PUK + NEW_PIN
    if ins == 0x87 and n == 4:
        return bytes.fromhex("7C028000")
    if ins == 0x87 and n == 22:
        return bytes.fromhex("7C14 8008") + bytes(8) + bytes.fromhex("8108") + bytes(8)
    return bytes(n)


def field(text, ins, p2):
    if text == "-":
        return b""
    if text.startswith("R"):
        return filled(ins, p2, int(text[1:]))
    return bytes.fromhex(text)


def encode(header, data, expects):
    """A command APDU in the length form the tool would have used."""
    if len(data) > 255:
        le = b"\x00\x00" if expects else b""
        return header + b"\x00" + len(data).to_bytes(2, "big") + data + le
    lc = bytes([len(data)]) if data else b""
    return header + lc + data + (b"\x00" if expects else b"")


def trace_sessions(path):
    """The commands of a raw trace, split where a tool selects PIV anew."""
    session = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) != 6:
            continue
        header = bytes.fromhex(parts[2])
        ins, p2 = header[1], header[3]
        data = field(parts[3], ins, p2)
        expects = parts[4] != "-" or parts[5].startswith("61")
        if ins == 0xA4 and data.startswith(bytes.fromhex("A000000308")) and session:
            yield session
            session = []
        session.append(encode(header, data, expects))
    if session:
        yield session


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

recorded = []
for trace in sorted((ROOT / "fuzz" / "traces").glob("*.trace")):
    for session in trace_sessions(trace):
        for apdu in session:
            save("apdu_codec", apdu)
            save("applet_single", apdu)
            if apdu not in recorded:
                recorded.append(apdu)
        save("card_os_pipeline", b"".join(bytes([min(len(a), 254)]) + a[:254] for a in session))
        frames = [b"\x01", b"\x04"] + session
        save("vpcd_frames", b"".join(len(f).to_bytes(2, "big") + f for f in frames))
(ROOT / "fuzz" / "traces" / "commands.hex").write_text("".join(a.hex() + "\n" for a in recorded))
