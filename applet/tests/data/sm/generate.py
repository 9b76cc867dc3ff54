#!/usr/bin/env python3
"""Writes sm-vectors.txt: PIV secure messaging known answers (SP 800-73-4
Part 2 section 4), computed by a second implementation of the client side
on OpenSSL (pyca/cryptography), from fixed keys and nonces.

A capture of a NIST test card's session (sd33-vectors.txt) starts from the
ECDH secret: the card's private key never leaves a card. These vectors fix
both key pairs, so the card's own half of the key agreement is checked too,
from its key 04 to the cryptogram.

Run from this directory: python3 generate.py > sm-vectors.txt
"""

import hashlib

from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

SUITES = {
    "cs2": dict(id=0x27, curve=ec.SECP256R1(), hash=hashlib.sha256, key_len=16, nonce_len=16, alg=0x09),
    "cs7": dict(id=0x2E, curve=ec.SECP384R1(), hash=hashlib.sha384, key_len=32, nonce_len=24, alg=0x0D),
}


def aes_cmac(key, data):
    c = cmac.CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()


def aes_block(key, block):
    e = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return e.update(block) + e.finalize()


def cbc(key, iv, data, decrypt=False):
    c = Cipher(algorithms.AES(key), modes.CBC(iv))
    op = c.decryptor() if decrypt else c.encryptor()
    return op.update(data) + op.finalize()


def pad(data):
    data = data + b"\x80"
    return data + b"\x00" * (-len(data) % 16)


def unpad(data):
    data = data.rstrip(b"\x00")
    assert data.endswith(b"\x80")
    return data[:-1]


def ber_len(n):
    if n < 0x80:
        return bytes([n])
    if n < 0x100:
        return bytes([0x81, n])
    return bytes([0x82, n >> 8, n & 0xFF])


def tlv(tag, value):
    return bytes([tag]) + ber_len(len(value)) + value


def private_key(curve, seed):
    """A fixed private key: a scalar from a hash of the seed."""
    order = {256: 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
             384: 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973}[curve.key_size]
    d = int.from_bytes(hashlib.sha512(seed).digest(), "big") % (order - 1) + 1
    return ec.derive_private_key(d, curve), d.to_bytes(curve.key_size // 8, "big")


class Client:
    """The client's side of a session, as SP 800-73-4 Part 2 section 4
    describes it."""

    def __init__(self, suite, keys):
        self.s = suite
        self.mac, self.enc, self.rmac = keys
        self.counter = 0
        self.c_mcv = bytes(16)
        self.r_mcv = bytes(16)

    def wrap(self, ins, p1, p2, data, le):
        self.counter += 1
        body = b""
        if data:
            iv = aes_block(self.enc, self.counter.to_bytes(16, "big"))
            body += tlv(0x87, b"\x01" + cbc(self.enc, iv, pad(data)))
        if le is not None:
            body += tlv(0x97, bytes([le]))
        head = bytes([0x0C, ins, p1, p2]) + pad(b"")[:12]
        self.c_mcv = aes_cmac(self.mac, self.c_mcv + head + body)
        return body + tlv(0x8E, self.c_mcv[:8])

    def card_answer(self, data, sw):
        """What the card must send for `data` and `sw`, made the way the
        client will check it (the client's own unwrap below)."""
        body = b""
        if data:
            iv = aes_block(self.enc, (0x80 << 120 | self.counter).to_bytes(16, "big"))
            body += tlv(0x87, b"\x01" + cbc(self.enc, iv, pad(data)))
        body += tlv(0x99, sw)
        mac = aes_cmac(self.rmac, self.r_mcv + body)
        answer = body + tlv(0x8E, mac[:8])
        assert self.unwrap(answer) == (data, sw)
        return answer

    def unwrap(self, answer):
        """The client's check of an answer: MAC over all before 8E."""
        at = answer.rindex(b"\x8e\x08")
        mac = aes_cmac(self.rmac, self.r_mcv + answer[:at])
        assert mac[:8] == answer[at + 2:]
        self.r_mcv = mac
        sw = answer[at - 2:at]
        data = b""
        if answer[0] == 0x87:
            n = answer[1]
            off = 2
            if n == 0x81:
                n, off = answer[2], 3
            elif n == 0x82:
                n, off = int.from_bytes(answer[2:4], "big"), 4
            ct = answer[off + 1:off + n]
            iv = aes_block(self.enc, (0x80 << 120 | self.counter).to_bytes(16, "big"))
            data = unpad(cbc(self.enc, iv, ct, decrypt=True))
        return data, sw


def line(key, value):
    print(f"{key} = {value.hex()}")


def main():
    print("# PIV secure messaging known answers, written by generate.py")
    print("# (pyca/cryptography on OpenSSL). Do not edit by hand.")
    for name, s in SUITES.items():
        curve = s["curve"]
        card, card_d = private_key(curve, b"s9card sm vectors: card key 04 " + name.encode())
        host, host_d = private_key(curve, b"s9card sm vectors: host ephemeral " + name.encode())
        q_eh = host.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        q_sicc = card.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        host_id = bytes.fromhex("0102030405060708")
        control = 0x00
        # The CVC only enters as the first 8 bytes of its SHA-256.
        cvc = b"\x7f\x21" + bytes([0x40]) + hashlib.sha512(b"cvc " + name.encode()).digest()
        card_id = hashlib.sha256(cvc).digest()[:8]
        nonce = hashlib.sha512(b"nonce " + name.encode()).digest()[: s["nonce_len"]]
        z = card.exchange(ec.ECDH(), host.public_key())
        alg = bytes([s["alg"]] * 4)
        other = (bytes([4]) + alg + bytes([8]) + host_id + bytes([1, control])
                 + bytes([16]) + q_eh[1:17] + bytes([8]) + card_id
                 + bytes([len(nonce)]) + nonce + bytes([1, 0x00]))
        keying = b""
        counter = 1
        while len(keying) < 4 * s["key_len"]:
            keying += s["hash"](counter.to_bytes(4, "big") + z + other).digest()
            counter += 1
        n = s["key_len"]
        cfrm, mac, enc, rmac = (keying[i * n:(i + 1) * n] for i in range(4))
        cryptogram = aes_cmac(cfrm, b"KC_1_V" + card_id + host_id + q_eh[1:])

        print()
        print(f"[{name}]")
        print(f"suite = {s['id']:02x}")
        line("card_private", card_d)
        line("card_public", q_sicc)
        line("host_private", host_d)
        line("host_public", q_eh)
        line("host_id", host_id)
        line("control", bytes([control]))
        line("cvc", cvc)
        line("card_id", card_id)
        line("nonce", nonce)
        line("z", z)
        line("other_info", other)
        line("sk_cfrm", cfrm)
        line("sk_mac", mac)
        line("sk_enc", enc)
        line("sk_rmac", rmac)
        line("cryptogram", cryptogram)

        client = Client(s, (mac, enc, rmac))
        exchanges = [
            # VERIFY PIN 123456, answered 90 00.
            (0x20, 0x00, 0x80, b"123456\xff\xff", None, b"", b"\x90\x00"),
            # GET DATA of the CHUID, a 60-byte answer.
            (0xCB, 0x3F, 0xFF, bytes.fromhex("5c035fc102"), 0x00,
             tlv(0x53, hashlib.sha512(b"chuid").digest()[:58]), b"\x90\x00"),
            # VERIFY with no data: a retry count.
            (0x20, 0x00, 0x80, b"", None, b"", b"\x63\xc2"),
            # GENERAL AUTHENTICATE with 300 bytes: three-byte lengths both
            # ways, and a block-aligned answer (a whole block of padding).
            (0x87, 0x07, 0x9A, tlv(0x7C, tlv(0x82, b"") + tlv(0x81, bytes(range(256)) + bytes(38))), 0x00,
             tlv(0x7C, tlv(0x82, bytes(252))), b"\x90\x00"),
            # An error: wrapped like any answer, with no data.
            (0xCB, 0x3F, 0xFF, bytes.fromhex("5c035fc109"), 0x00, b"", b"\x69\x82"),
        ]
        for ins, p1, p2, data, le, answer, sw in exchanges:
            wrapped = client.wrap(ins, p1, p2, data, le)
            print(f"command = 0c{ins:02x}{p1:02x}{p2:02x} {data.hex()} {wrapped.hex()}")
            print(f"answer = {sw.hex()} {answer.hex()} {client.card_answer(answer, sw).hex()}")


if __name__ == "__main__":
    main()
