//! P-256's known answers through pcscd (the firmware's assembly back end
//! in the firmware passes); RSA and P-384 through pcscd with unmodified
//! tools: yubico-piv-tool's
//! default key (RSA-2048), its test-signature and test-decipher,
//! pkcs11-tool's RSA-PKCS, PSS, OAEP and ECDSA on P-384, each checked by
//! OpenSSL against the card's public key, and ssh-keygen listing the keys.

mod harness;

use client::Slot;
use std::path::{Path, PathBuf};

use harness::yubico as y;
use harness::*;

/// GENERATE in `slot` and import a certificate for the key; returns the
/// public key's and the certificate's paths.
fn generate(h: &Harness, slot: &str, algorithm: Option<&str>) -> (PathBuf, PathBuf) {
    let pubkey = h.path(&format!("{slot}.pub"));
    let out = pubkey.to_str().unwrap().to_string();
    let mut args = vec!["-a", "generate", "-s", slot, "-o", &out];
    if let Some(a) = algorithm {
        args.extend(["-A", a]);
    }
    y(h, &args);
    let cert = certify(h, slot, &pubkey);
    (pubkey, cert)
}

/// Issues a certificate for the key in `slot` (public key in `pubkey`)
/// and imports it into the slot; its path.
fn certify(h: &Harness, slot: &str, pubkey: &Path) -> PathBuf {
    let cert = issue(h, pubkey, &format!("holder {slot}"));
    y(
        h,
        &[
            "-a",
            "import-certificate",
            "-s",
            slot,
            "-i",
            cert.to_str().unwrap(),
        ],
    );
    cert
}

/// An RSA private key's parts, big-endian.
struct RsaKey {
    n: Vec<u8>,
    p: Vec<u8>,
    q: Vec<u8>,
    dp: Vec<u8>,
    dq: Vec<u8>,
    qinv: Vec<u8>,
}

/// A fresh RSA key of `bits` from OpenSSL (exponent 65537), in `name.pem`
/// and as its parts (read from its PKCS#1 DER: version, n, e, d, p, q,
/// dP, dQ, qInv).
fn rsa_key(h: &Harness, name: &str, bits: usize) -> RsaKey {
    use der::{Decode, Reader, SliceReader, asn1::UintRef};
    let pem = h.path(&format!("{name}.pem"));
    let der = h.path(&format!("{name}.der"));
    ok(
        "openssl",
        &["genrsa", "-out", pem.to_str().unwrap(), &bits.to_string()],
    );
    ok(
        "openssl",
        &[
            "rsa",
            "-in",
            pem.to_str().unwrap(),
            "-traditional",
            "-outform",
            "DER",
            "-out",
            der.to_str().unwrap(),
        ],
    );
    let bytes = std::fs::read(&der).unwrap();
    let mut reader = SliceReader::new(&bytes).unwrap();
    let fields: Vec<Vec<u8>> = reader
        .sequence(|r| {
            (0..9)
                .map(|_| UintRef::decode(r).map(|u| u.as_bytes().to_vec()))
                .collect()
        })
        .unwrap();
    let [_version, n, _e, _d, p, q, dp, dq, qinv] = <[Vec<u8>; 9]>::try_from(fields).unwrap();
    RsaKey {
        n,
        p,
        q,
        dp,
        dq,
        qinv,
    }
}

/// GENERATE in `slot` on the host card, or on the firmware card (where an
/// RSA generation takes QEMU seconds to minutes) an import of a key
/// OpenSSL made; then a certificate for the key. Returns the public key's
/// and the certificate's paths.
fn generate_or_import(h: &Harness, slot: &str, algorithm: Option<&str>) -> (PathBuf, PathBuf) {
    let bits = match algorithm {
        None | Some("RSA2048") => 2048,
        Some("RSA1024") => 1024,
        _ => return generate(h, slot, algorithm),
    };
    if h.kind == Kind::Host {
        return generate(h, slot, algorithm);
    }
    rsa_key(h, slot, bits);
    let pem = h.path(&format!("{slot}.pem"));
    let pubkey = h.path(&format!("{slot}.pub"));
    y(
        h,
        &["-a", "import-key", "-s", slot, "-i", pem.to_str().unwrap()],
    );
    ok(
        "openssl",
        &[
            "rsa",
            "-in",
            pem.to_str().unwrap(),
            "-pubout",
            "-out",
            pubkey.to_str().unwrap(),
        ],
    );
    let cert = certify(h, slot, &pubkey);
    (pubkey, cert)
}

fn key_text(pubkey: &Path) -> String {
    ok(
        "openssl",
        &[
            "pkey",
            "-pubin",
            "-in",
            pubkey.to_str().unwrap(),
            "-noout",
            "-text",
        ],
    )
}

fn pkcs11(h: &Harness, args: &[&str]) -> String {
    let reader = h.reader(0);
    let mut all = vec![
        "--module",
        PKCS11,
        "--slot-description",
        &reader,
        "--login",
        "--pin",
        "123456",
    ];
    all.extend_from_slice(args);
    h.ok("pkcs11-tool", &all)
}

#[test]
fn rsa_and_p384_keys_work_with_yubico_piv_tool_pkcs11_openssl_and_ssh() {
    // ssh-keygen -D and ssh-agent take the keys of every card OpenSC is
    // shown: under the harness's configuration, this test's alone.
    let h = Harness::start(1);
    // yubico-piv-tool's default algorithm is RSA-2048.
    let (rsa2048, rsa2048_cert) = generate_or_import(&h, "9a", None);
    assert!(key_text(&rsa2048).contains("Public-Key: (2048 bit)"));
    let (rsa1024, rsa1024_cert) = generate_or_import(&h, "9d", Some("RSA1024"));
    assert!(key_text(&rsa1024).contains("Public-Key: (1024 bit)"));
    let (p384, _) = generate(&h, "9e", Some("ECCP384"));
    assert!(key_text(&p384).contains("NIST CURVE: P-384"));
    let (p384_sig, p384_sig_cert) = generate(&h, "9c", Some("ECCP384"));
    assert!(key_text(&p384_sig).contains("NIST CURVE: P-384"));

    // The tool's own checks: it signs or encrypts with the card and
    // verifies with the certificate's key.
    for (action, slot, cert) in [
        ("test-signature", "9a", &rsa2048_cert),
        ("test-decipher", "9d", &rsa1024_cert),
        ("test-signature", "9c", &p384_sig_cert),
    ] {
        let out = y(
            &h,
            &[
                "-a",
                "verify-pin",
                "-P",
                "123456",
                "-a",
                action,
                "-s",
                slot,
                "-i",
                cert.to_str().unwrap(),
            ],
        );
        assert!(out.contains("Successful"), "{action} {slot}: {out}");
    }

    let msg = h.write("msg.txt", b"prescription 0042, signed on the card\n");
    let msg = msg.to_str().unwrap();
    let digest = h.path("msg.sha256");
    let digest = digest.to_str().unwrap();
    ok(
        "openssl",
        &["dgst", "-sha256", "-binary", "-out", digest, msg],
    );
    let sig = h.path("msg.sig");
    let sig = sig.to_str().unwrap();
    let (k2048, k384) = (rsa2048.to_str().unwrap(), p384.to_str().unwrap());

    // RSA-PKCS over the whole message, hashed by the host: OpenSSL checks it.
    pkcs11(
        &h,
        &[
            "--sign",
            "-m",
            "SHA256-RSA-PKCS",
            "--id",
            "01",
            "-i",
            msg,
            "-o",
            sig,
        ],
    );
    ok(
        "openssl",
        &["dgst", "-sha256", "-verify", k2048, "-signature", sig, msg],
    );
    // PSS, padded by OpenSC, the raw operation on the card.
    pkcs11(
        &h,
        &[
            "--sign",
            "-m",
            "SHA256-RSA-PKCS-PSS",
            "--id",
            "01",
            "-i",
            msg,
            "-o",
            sig,
        ],
    );
    ok(
        "openssl",
        &[
            "dgst",
            "-sha256",
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:-1",
            "-verify",
            k2048,
            "-signature",
            sig,
            msg,
        ],
    );
    // OAEP: OpenSSL encrypts to the RSA-1024 key, the card decrypts.
    let secret = h.write("secret.bin", b"a wrapped session key 0123456789");
    let wrapped = h.path("secret.oaep");
    ok(
        "openssl",
        &[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            rsa1024.to_str().unwrap(),
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            // pkcs11-tool's OAEP defaults: SHA-256 and MGF1 with SHA-256.
            "-pkeyopt",
            "rsa_oaep_md:sha256",
            "-pkeyopt",
            "rsa_mgf1_md:sha256",
            "-in",
            secret.to_str().unwrap(),
            "-out",
            wrapped.to_str().unwrap(),
        ],
    );
    let unwrapped = h.path("secret.out");
    pkcs11(
        &h,
        &[
            "--decrypt",
            "-m",
            "RSA-PKCS-OAEP",
            "--id",
            "03",
            "-i",
            wrapped.to_str().unwrap(),
            "-o",
            unwrapped.to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read(&unwrapped).unwrap(),
        b"a wrapped session key 0123456789"
    );
    // ECDSA on P-384 with the card-authentication key.
    let digest384 = h.path("msg.sha384");
    let digest384 = digest384.to_str().unwrap();
    ok(
        "openssl",
        &["dgst", "-sha384", "-binary", "-out", digest384, msg],
    );
    pkcs11(
        &h,
        &[
            "--sign",
            "-m",
            "ECDSA",
            "--id",
            "04",
            "--signature-format",
            "openssl",
            "-i",
            digest384,
            "-o",
            sig,
        ],
    );
    ok(
        "openssl",
        &["dgst", "-sha384", "-verify", k384, "-signature", sig, msg],
    );

    // ssh sees the RSA and P-384 keys.
    let keys = h.ok("ssh-keygen", &["-D", PKCS11]);
    assert!(keys.lines().any(|l| l.starts_with("ssh-rsa ")), "{keys}");
    assert!(
        keys.lines().any(|l| l.starts_with("ecdsa-sha2-nistp384 ")),
        "{keys}"
    );
    ssh_agent_signs_with_the_card(&h);
}

/// ssh-agent holding the card's keys (through OpenSC, the PIN given by an
/// askpass program), and `ssh-keygen -Y sign` signing with the RSA key in
/// the agent: the signature ssh-keygen then verifies against the key.
fn ssh_agent_signs_with_the_card(h: &Harness) {
    use std::process::Stdio;
    let socket = h.path("agent.sock");
    // The agent's PKCS#11 helper inherits the harness's OpenSC
    // configuration: it sees this test's card alone.
    let agent = Spawned(
        h.command("ssh-agent")
            .args(["-D", "-a", socket.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-agent"),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !socket.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "ssh-agent did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let askpass = h.write("askpass.sh", b"#!/bin/sh\necho 123456\n");
    std::fs::set_permissions(
        &askpass,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let with_agent = |program: &str, args: &[&str], input: Option<&Path>| {
        let mut cmd = h.command(program);
        cmd.args(args)
            .env("SSH_AUTH_SOCK", &socket)
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0");
        cmd.stdin(match input {
            Some(p) => Stdio::from(std::fs::File::open(p).unwrap()),
            None => Stdio::null(),
        });
        let out = cmd.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{program} {args:?}: {text}");
        text
    };
    with_agent("ssh-add", &["-s", PKCS11], None);
    let listed = with_agent("ssh-add", &["-L"], None);
    let rsa = listed
        .lines()
        .find(|l| l.starts_with("ssh-rsa "))
        .unwrap_or_else(|| panic!("no RSA key in the agent: {listed}"));
    let public = h.write("id_card.pub", format!("{rsa}\n").as_bytes());
    let file = h.write("signed.txt", b"signed with the card through ssh-agent\n");
    with_agent(
        "ssh-keygen",
        &[
            "-Y",
            "sign",
            "-f",
            public.to_str().unwrap(),
            "-n",
            "file",
            file.to_str().unwrap(),
        ],
        None,
    );
    let signers = h.write("allowed_signers", format!("holder {rsa}\n").as_bytes());
    let signature = format!("{}.sig", file.display());
    let verified = with_agent(
        "ssh-keygen",
        &[
            "-Y",
            "verify",
            "-f",
            signers.to_str().unwrap(),
            "-I",
            "holder",
            "-n",
            "file",
            "-s",
            &signature,
        ],
        Some(&file),
    );
    assert!(verified.contains("Good \"file\" signature"), "{verified}");
    drop(agent);
}

/// What yubico-piv-tool 2.2.0 cannot make (Ed25519, X25519, RSA-3072 and
/// 4096), through the `pcsc` crate, with OpenSSL checking every answer
/// against the card's public key.
#[test]
fn ed25519_x25519_and_large_rsa_through_pcsc_checked_by_openssl() {
    use client::{AdminAlgorithm, Algorithm, DEFAULT_MGM, PivClient};
    use cms::keys::CardKey;

    let h = Harness::start(1);
    let mut c = PivClient::new(h.connect(0));
    c.select().unwrap();
    c.authenticate(AdminAlgorithm::Tdes, &DEFAULT_MGM).unwrap();
    let spki = |name: &str, algorithm: Algorithm, public: Vec<u8>| {
        let der = der::Encode::to_der(&CardKey { algorithm, public }.spki().unwrap()).unwrap();
        h.write(name, &der)
    };
    let message = b"an Ed25519 signature over the message itself";
    let msg = h.write("ed.msg", message);

    // Ed25519: the card signs the message, OpenSSL verifies it.
    let ed = c
        .generate_key(Slot::Authentication, Algorithm::Ed25519, false)
        .unwrap();
    let ed = spki("ed.der", Algorithm::Ed25519, ed);
    c.verify_pin(b"123456").unwrap();
    let sig = c
        .private_operation(Slot::Authentication, Algorithm::Ed25519, 0x81, message)
        .unwrap();
    let sig = h.write("ed.sig", &sig);
    let out = ok(
        "openssl",
        &[
            "pkeyutl",
            "-verify",
            "-pubin",
            "-keyform",
            "DER",
            "-inkey",
            ed.to_str().unwrap(),
            "-rawin",
            "-in",
            msg.to_str().unwrap(),
            "-sigfile",
            sig.to_str().unwrap(),
        ],
    );
    assert!(out.contains("Signature Verified Successfully"), "{out}");

    // X25519: the card and OpenSSL derive the same secret.
    let x = c
        .generate_key(Slot::KeyManagement, Algorithm::X25519, false)
        .unwrap();
    let x = spki("x.der", Algorithm::X25519, x);
    let peer = h.path("peer.pem");
    let peer_der = h.path("peer.der");
    ok(
        "openssl",
        &[
            "genpkey",
            "-algorithm",
            "X25519",
            "-out",
            peer.to_str().unwrap(),
        ],
    );
    ok(
        "openssl",
        &[
            "pkey",
            "-in",
            peer.to_str().unwrap(),
            "-pubout",
            "-outform",
            "DER",
            "-out",
            peer_der.to_str().unwrap(),
        ],
    );
    let peer_public = std::fs::read(&peer_der).unwrap();
    let peer_public = &peer_public[peer_public.len() - 32..];
    c.verify_pin(b"123456").unwrap();
    let card_secret = c
        .private_operation(Slot::KeyManagement, Algorithm::X25519, 0x85, peer_public)
        .unwrap();
    let shared = h.path("shared.bin");
    ok(
        "openssl",
        &[
            "pkeyutl",
            "-derive",
            "-inkey",
            peer.to_str().unwrap(),
            "-peerkey",
            x.to_str().unwrap(),
            "-peerform",
            "DER",
            "-out",
            shared.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read(&shared).unwrap(), card_secret);

    // RSA-3072 and RSA-4096: PKCS#1 v1.5 signatures OpenSSL verifies. The
    // host card generates them; the firmware card, on which generating
    // one takes QEMU minutes (CI measures generation once, in the budget
    // test), imports keys OpenSSL made.
    for (slot, algorithm) in [(0x82, Algorithm::Rsa3072), (0x83, Algorithm::Rsa4096)] {
        let slot = Slot::from_byte(slot).unwrap();
        let n = match h.kind {
            Kind::Host => c.generate_key(slot, algorithm, false).unwrap(),
            Kind::Firmware => {
                let key = rsa_key(&h, &format!("{slot:02x}"), algorithm.rsa_bits().unwrap());
                c.import_rsa(
                    slot,
                    algorithm,
                    [&key.p, &key.q, &key.dp, &key.dq, &key.qinv],
                )
                .unwrap();
                key.n
            }
        };
        let key = spki(&format!("{slot:02x}.der"), algorithm, n.clone());
        let text = ok(
            "openssl",
            &[
                "pkey",
                "-pubin",
                "-inform",
                "DER",
                "-in",
                key.to_str().unwrap(),
                "-noout",
                "-text",
            ],
        );
        let bits = algorithm.rsa_bits().unwrap();
        assert!(
            text.contains(&format!("Public-Key: ({bits} bit)")),
            "{text}"
        );
        let digest: [u8; 32] = sha2::Digest::finalize(sha2::Digest::chain_update(
            <sha2::Sha256 as sha2::Digest>::new(),
            message,
        ))
        .into();
        let key_info = CardKey {
            algorithm,
            public: n,
        };
        c.verify_pin(b"123456").unwrap();
        let sig = c
            .private_operation(slot, algorithm, 0x81, &key_info.to_sign(&digest).unwrap())
            .unwrap();
        let sig = h.write(&format!("{slot:02x}.sig"), &sig);
        ok(
            "openssl",
            &[
                "dgst",
                "-sha256",
                "-keyform",
                "DER",
                "-verify",
                key.to_str().unwrap(),
                "-signature",
                sig.to_str().unwrap(),
                msg.to_str().unwrap(),
            ],
        );
    }
}

/// `applet/tests/data/algorithms/p256.txt` (RFC 6979's signatures, RFC
/// 5903's shared secret) through pcscd: each key imported, its public
/// point read back from the card, and the card's signature compared byte
/// for byte, RFC 6979 making it deterministic. In the firmware passes this
/// is the Cortex-M4 assembly back end against the specifications.
#[test]
fn p256_known_answers_through_the_reader() {
    use client::{AdminAlgorithm, Algorithm, DEFAULT_MGM, PivClient};
    use sha2::Digest;

    let text =
        std::fs::read_to_string(root().join("applet/tests/data/algorithms/p256.txt")).unwrap();
    let blocks: Vec<std::collections::HashMap<&str, Vec<u8>>> = text
        .split("\n\n")
        .map(|block| {
            block
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split_once(' '))
                .map(|(k, v)| (k, hex::decode(v).unwrap()))
                .collect()
        })
        .filter(|b: &std::collections::HashMap<_, _>| !b.is_empty())
        .collect();
    assert_eq!(blocks.len(), 4);

    let h = Harness::start(1);
    let mut c = PivClient::new(h.connect(0));
    c.select().unwrap();
    c.authenticate(AdminAlgorithm::Tdes, &DEFAULT_MGM).unwrap();
    let slot = Slot::Authentication;
    for v in &blocks {
        c.import_ec(slot, Algorithm::P256, &v["private"]).unwrap();
        assert_eq!(c.public_key(slot).unwrap().unwrap(), v["public"]);
        c.verify_pin(b"123456").unwrap();
        if let Some(message) = v.get("message") {
            let digest: [u8; 32] = sha2::Sha256::digest(message).into();
            let der = c.sign(slot, &digest).unwrap();
            let signature = p256::ecdsa::Signature::from_der(&der).unwrap();
            let (r, s) = signature.split_bytes();
            assert_eq!((r.to_vec(), s.to_vec()), (v["r"].clone(), v["s"].clone()));
        } else {
            let shared = c
                .private_operation(slot, Algorithm::P256, 0x85, &v["peer"])
                .unwrap();
            assert_eq!(shared, v["shared"]);
            // The same point in SEC1's hybrid form, and off the curve: PIV
            // takes the uncompressed form alone, in either back end.
            let mut hybrid = v["peer"].clone();
            hybrid[0] = 0x06 | (hybrid[64] & 1);
            let mut off = v["peer"].clone();
            off[64] ^= 1;
            for point in [hybrid, off] {
                match c.private_operation(slot, Algorithm::P256, 0x85, &point) {
                    Err(client::ClientError::Refused { status, .. }) => {
                        assert_eq!(status, client::Status::IncorrectDataField)
                    }
                    other => panic!("{point:02X?}: {other:?}"),
                }
            }
        }
    }
}
