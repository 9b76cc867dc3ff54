#!/usr/bin/env python3
"""Prints each criterion benchmark beside its same-run baseline, as a ratio.

Run after `cargo bench -p bench --bench codec_store --bench applet
--bench algorithms`;
pairs whose benches have not run are skipped.
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"
PAIRS = [
    ("codec", "parse_and_walk_cert_apdu", "baseline_copy_cert_apdu"),
    ("store", "commit_16B", "baseline_program_16B"),
    ("store", "commit_2KiB", "baseline_program_2KiB"),
    ("store", "mount_personalised_128KiB", "baseline_read_128KiB"),
    ("sign", "applet_general_authenticate_9A", "baseline_raw_p256_sign_prehash"),
    ("applet", "generate_9a", "baseline_raw_p256_generate"),
    ("rsa2048_sign", "applet_general_authenticate_9A", "baseline_crt_private_op"),
    ("rsa2048_sign", "applet_general_authenticate_9A", "peer_rsa_crate_pkcs1v15_sign"),
    ("p384_sign", "applet_general_authenticate_9A", "baseline_raw_p384_sign_prehash"),
    ("ed25519_sign", "applet_general_authenticate_9E", "baseline_raw_ed25519_sign"),
]


def mean_ns(group: str, bench: str) -> float:
    path = ROOT / group / bench / "new" / "estimates.json"
    return json.loads(path.read_text())["mean"]["point_estimate"]


def main() -> int:
    print(f"{'benchmark':<28} {'mean':>12} {'baseline':>12} {'ratio':>8}")
    for group, bench, base in PAIRS:
        try:
            m, b = mean_ns(group, bench), mean_ns(group, base)
        except FileNotFoundError:
            print(f"{bench}: no estimates (bench not run)", file=sys.stderr)
            continue
        print(f"{bench:<28} {m / 1000:>10.2f}us {b / 1000:>10.2f}us {m / b:>7.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
