#!/usr/bin/env python3
"""Code size of the card-side crates built for the Cortex-M4.

Builds `thumbv7em-none-eabihf` release and sums the executable sections
(.text*) of the object files inside each crate's rlib. This is the code each
crate contributes before the linker drops what a firmware does not call, so
it is an upper bound for that crate (generic code instantiated by a crate is
counted in it).
"""
import glob
import os
import struct
import subprocess
import sys

TARGET = "thumbv7em-none-eabihf"
CRATES = [
    "apdu", "card_os", "piv", "p256", "p384", "ecdsa", "primeorder", "primefield", "sha2", "hmac",
    "aes", "des", "chacha20", "poly1305", "chacha20poly1305", "crypto_bigint", "crypto_primes",
    "ed25519_dalek", "curve25519_dalek", "x25519_dalek", "der", "spki", "const_oid",
]


def text_bytes_of_elf(data: bytes) -> int:
    if data[:4] != b"\x7fELF" or data[4] != 1:  # 32-bit ELF only (ARM)
        return 0
    endian = "<" if data[5] == 1 else ">"
    shoff, = struct.unpack_from(endian + "I", data, 0x20)
    shentsize, shnum = struct.unpack_from(endian + "HH", data, 0x2E)
    total = 0
    for i in range(shnum):
        off = shoff + i * shentsize
        _name, sh_type, flags, _addr, _offset, size = struct.unpack_from(endian + "IIIIII", data, off)
        if sh_type == 1 and flags & 0x4:  # PROGBITS, executable
            total += size
    return total


def text_bytes_of_rlib(path: str) -> int:
    with open(path, "rb") as f:
        blob = f.read()
    if not blob.startswith(b"!<arch>\n"):
        return 0
    pos, total = 8, 0
    while pos + 60 <= len(blob):
        header = blob[pos:pos + 60]
        size = int(header[48:58].decode().strip())
        body = blob[pos + 60:pos + 60 + size]
        total += text_bytes_of_elf(body)
        pos += 60 + size + (size & 1)
    return total


def main() -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run(
        ["cargo", "build", "--release", "--locked", "--target", TARGET, "-p", "applet"],
        cwd=root, check=True,
    )
    deps = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target")), TARGET, "release", "deps")
    print(f"{'crate':<12} {'.text bytes':>12}")
    total = 0
    for crate in CRATES:
        rlibs = sorted(glob.glob(os.path.join(deps, f"lib{crate}-*.rlib")), key=os.path.getmtime)
        if not rlibs:
            continue
        n = text_bytes_of_rlib(rlibs[-1])
        total += n
        print(f"{crate:<12} {n:>12}")
    print(f"{'total':<12} {total:>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
