//! PIV secure messaging, the client's side (SP 800-73-4 Part 2 §4): key
//! establishment with the card's key `04` (steps H1–H12) and the wrapping
//! of commands and unwrapping of answers in the session that follows.
//!
//! The card's side is `applet::sm`; this is written again from the
//! specification rather than calling it, so that each side checks the
//! other (and both are checked against OpenSSL's vectors and OpenSC).

use aes::cipher::block_padding::Iso7816;
use aes::cipher::{BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, KeyInit, KeyIvInit};
use aes::{Aes128, Aes256};
use applet::sm::Suite;
use cmac::{Cmac, Mac};
use sha2::Digest;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::cvc::Cvc;
use crate::error::{ClientError, Result};
use crate::tlv::{tlv, unwrap_tlv};

/// The client identifier ID_sH this client sends: its name, as OpenSC sends
/// its process number (a card may keep it, none needs it unique).
pub const HOST_ID: [u8; 8] = *b"s9client";

fn failed(why: &'static str) -> ClientError {
    ClientError::SecureMessaging(why)
}

fn cmac_with<C: cmac::block_api::CmacCipher + KeyInit>(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut mac = <Cmac<C> as KeyInit>::new_from_slice(key).expect("an AES key");
    for part in parts {
        mac.update(part);
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

fn cmac(suite: Suite, key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    match suite {
        Suite::Cs2 => cmac_with::<Aes128>(key, parts),
        Suite::Cs7 => cmac_with::<Aes256>(key, parts),
    }
}

fn block(suite: Suite, key: &[u8], input: [u8; 16]) -> [u8; 16] {
    let mut b = aes::Block::from(input);
    match suite {
        Suite::Cs2 => Aes128::new_from_slice(key)
            .expect("AES-128")
            .encrypt_block(&mut b),
        Suite::Cs7 => Aes256::new_from_slice(key)
            .expect("AES-256")
            .encrypt_block(&mut b),
    }
    b.into()
}

fn cbc_encrypt(suite: Suite, key: &[u8], iv: &[u8; 16], data: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; (data.len() / 16 + 1) * 16];
    buf[..data.len()].copy_from_slice(data);
    let n = match suite {
        Suite::Cs2 => cbc::Encryptor::<Aes128>::new_from_slices(key, iv)
            .expect("AES-128")
            .encrypt_padded::<Iso7816>(&mut buf, data.len())
            .expect("room for the padding")
            .len(),
        Suite::Cs7 => cbc::Encryptor::<Aes256>::new_from_slices(key, iv)
            .expect("AES-256")
            .encrypt_padded::<Iso7816>(&mut buf, data.len())
            .expect("room for the padding")
            .len(),
    };
    buf.truncate(n);
    buf
}

fn cbc_decrypt(suite: Suite, key: &[u8], iv: &[u8; 16], data: &[u8]) -> Result<Vec<u8>> {
    let mut buf = data.to_vec();
    let n = match suite {
        Suite::Cs2 => cbc::Decryptor::<Aes128>::new_from_slices(key, iv)
            .expect("AES-128")
            .decrypt_padded::<Iso7816>(&mut buf)
            .map(<[u8]>::len),
        Suite::Cs7 => cbc::Decryptor::<Aes256>::new_from_slices(key, iv)
            .expect("AES-256")
            .decrypt_padded::<Iso7816>(&mut buf)
            .map(<[u8]>::len),
    }
    .map_err(|_| failed("an answer's padding is wrong"))?;
    buf.truncate(n);
    Ok(buf)
}

/// A counter as a 16-byte big-endian block, `first` in its first byte.
fn counter_block(first: u8, n: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0] = first;
    b[12..].copy_from_slice(&n.to_be_bytes());
    b
}

/// The card's answer to a key establishment, and what the client learnt.
#[derive(Debug)]
pub struct Established {
    /// The session.
    pub session: Session,
    /// The card's CVC, as it sent it.
    pub cvc: Cvc,
}

/// An open session, the client's end.
pub struct Session {
    suite: Suite,
    mac: Zeroizing<Vec<u8>>,
    enc: Zeroizing<Vec<u8>>,
    rmac: Zeroizing<Vec<u8>>,
    counter: u32,
    c_mcv: [u8; 16],
    r_mcv: [u8; 16],
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("suite", &self.suite)
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.c_mcv.zeroize();
        self.r_mcv.zeroize();
    }
}

/// An ephemeral key pair for one establishment.
enum Ephemeral {
    P256(p256::SecretKey),
    P384(p384::SecretKey),
}

impl Ephemeral {
    fn generate(suite: Suite) -> Result<Ephemeral> {
        let mut seed = Zeroizing::new([0u8; 48]);
        // A scalar drawn uniformly: retried in the (2^-32) case the bytes
        // are not one.
        for _ in 0..64 {
            getrandom::fill(&mut seed[..]).map_err(|e| ClientError::Transport(e.to_string()))?;
            let key = match suite {
                Suite::Cs2 => p256::SecretKey::from_slice(&seed[..32])
                    .ok()
                    .map(Ephemeral::P256),
                Suite::Cs7 => p384::SecretKey::from_slice(&seed[..48])
                    .ok()
                    .map(Ephemeral::P384),
            };
            if let Some(key) = key {
                return Ok(key);
            }
        }
        Err(failed("no ephemeral key could be drawn"))
    }

    fn public(&self) -> Vec<u8> {
        use p256::elliptic_curve::sec1::ToSec1Point;
        match self {
            Ephemeral::P256(k) => k.public_key().to_sec1_point(false).as_bytes().to_vec(),
            Ephemeral::P384(k) => k.public_key().to_sec1_point(false).as_bytes().to_vec(),
        }
    }

    fn agree(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let bad = || failed("the CVC's public key is not a point of the suite's curve");
        Ok(Zeroizing::new(match self {
            Ephemeral::P256(k) => {
                let q = p256::PublicKey::from_sec1_bytes(peer).map_err(|_| bad())?;
                p256::ecdh::diffie_hellman(k.to_nonzero_scalar(), q.as_affine())
                    .raw_secret_bytes()
                    .to_vec()
            }
            Ephemeral::P384(k) => {
                let q = p384::PublicKey::from_sec1_bytes(peer).map_err(|_| bad())?;
                p384::ecdh::diffie_hellman(k.to_nonzero_scalar(), q.as_affine())
                    .raw_secret_bytes()
                    .to_vec()
            }
        }))
    }
}

/// A key establishment in progress: the command to send, and what checks
/// the card's answer.
pub struct Request {
    suite: Suite,
    ephemeral: Ephemeral,
    point: Vec<u8>,
}

impl Request {
    /// A fresh ephemeral key for `suite`.
    pub fn new(suite: Suite) -> Result<Request> {
        let ephemeral = Ephemeral::generate(suite)?;
        let point = ephemeral.public();
        Ok(Request {
            suite,
            ephemeral,
            point,
        })
    }

    /// GENERAL AUTHENTICATE's P1 (the suite) and data: `7C { 81 { CB_H
    /// ID_sH Q_eH } 82 {} }`.
    pub fn command(&self) -> (u8, Vec<u8>) {
        let request = [&[0x00][..], &HOST_ID, &self.point].concat();
        let data = tlv(0x7C, &[tlv(0x81, &request), tlv(0x82, &[])].concat());
        (self.suite.id(), data)
    }

    /// Checks the card's answer: the CVC against the signer's key (if
    /// given; SP 800-73-4 has the client check it, and a test may not
    /// have the signer), then the key confirmation. The session.
    pub fn finish(self, answer: &[u8], signer: Option<&[u8]>) -> Result<Established> {
        let suite = self.suite;
        let bad = || failed("the card's key establishment answer is malformed");
        let body = unwrap_tlv(answer, 0x7C).map_err(|_| bad())?;
        let body = unwrap_tlv(body, 0x82).map_err(|_| bad())?;
        let n = suite.nonce_len();
        if body.len() < 1 + n + 16 {
            return Err(bad());
        }
        let (control, rest) = body.split_at(1);
        let (nonce, rest) = rest.split_at(n);
        let (cryptogram, cvc_bytes) = rest.split_at(16);
        if control != [0x00] {
            return Err(failed("the card refused the key establishment (CB_ICC)"));
        }
        let cvc = Cvc::parse(cvc_bytes)?;
        if cvc.suite() != Some(suite) {
            return Err(failed("the card's CVC is not for the suite asked for"));
        }
        if let Some(signer) = signer {
            cvc.verify(signer)?;
        }
        let card_id: [u8; 8] = sha2::Sha256::digest(cvc_bytes)[..8]
            .try_into()
            .expect("8 bytes");
        let z = self.ephemeral.agree(&cvc.point)?;
        drop(self.ephemeral);
        let xy = &self.point[1..];
        let algorithm_id = match suite {
            Suite::Cs2 => 0x09,
            Suite::Cs7 => 0x0D,
        };
        let other = [
            &[4, algorithm_id, algorithm_id, algorithm_id, algorithm_id][..],
            &[8],
            &HOST_ID,
            &[1, 0x00],
            &[16],
            &xy[..16],
            &[8],
            &card_id,
            &[n as u8],
            nonce,
            &[1, 0x00],
        ]
        .concat();
        let len = 4 * suite.key_len();
        let mut keying = Zeroizing::new(Vec::new());
        let mut counter = 1u32;
        while keying.len() < len {
            let input = [&counter.to_be_bytes()[..], &z, &other];
            match suite {
                Suite::Cs2 => keying.extend_from_slice(&sha2::Sha256::digest(input.concat())),
                Suite::Cs7 => keying.extend_from_slice(&sha2::Sha384::digest(input.concat())),
            }
            counter += 1;
        }
        let k = suite.key_len();
        let key = |i: usize| Zeroizing::new(keying[i * k..(i + 1) * k].to_vec());
        let expected = cmac(suite, &key(0), &[b"KC_1_V", &card_id, &HOST_ID, xy]);
        if !bool::from(expected.ct_eq(cryptogram)) {
            return Err(failed("the card's key confirmation does not verify"));
        }
        Ok(Established {
            session: Session {
                suite,
                mac: key(1),
                enc: key(2),
                rmac: key(3),
                counter: 0,
                c_mcv: [0; 16],
                r_mcv: [0; 16],
            },
            cvc,
        })
    }
}

impl Session {
    /// The session's suite.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The data field of the protected form of command `header` (class
    /// `0C`; the chaining bit is the sender's business) with `data`,
    /// asking for an answer.
    pub fn wrap(&mut self, header: [u8; 4], data: &[u8]) -> Vec<u8> {
        self.counter += 1;
        let mut body = Vec::new();
        if !data.is_empty() {
            let iv = block(self.suite, &self.enc, counter_block(0, self.counter));
            let cryptogram = cbc_encrypt(self.suite, &self.enc, &iv, data);
            body.extend(tlv(0x87, &[&[0x01][..], &cryptogram].concat()));
        }
        body.extend(tlv(0x97, &[0x00]));
        let mut head = [0u8; 16];
        head[..5].copy_from_slice(&[0x0C, header[1], header[2], header[3], 0x80]);
        self.c_mcv = cmac(self.suite, &self.mac, &[&self.c_mcv, &head, &body]);
        body.extend(tlv(0x8E, &self.c_mcv[..8]));
        body
    }

    /// Checks and opens the card's protected answer: its data and status
    /// word. Any fault ends the session (the caller drops it).
    pub fn unwrap(&mut self, answer: &[u8]) -> Result<(Vec<u8>, u16)> {
        let bad = || failed("a protected answer that is not the session's");
        let mac_at = answer.len().checked_sub(10).ok_or(bad())?;
        let (before, mac) = answer.split_at(mac_at);
        if mac[..2] != [0x8E, 0x08] {
            return Err(bad());
        }
        let expected = cmac(self.suite, &self.rmac, &[&self.r_mcv, before]);
        if !bool::from(expected[..8].ct_eq(&mac[2..])) {
            return Err(failed("a protected answer's MAC does not verify"));
        }
        self.r_mcv = expected;
        let status_at = before.len().checked_sub(4).ok_or(bad())?;
        let (cryptogram, status) = before.split_at(status_at);
        if status[..2] != [0x99, 0x02] {
            return Err(bad());
        }
        let sw = u16::from_be_bytes([status[2], status[3]]);
        if cryptogram.is_empty() {
            return Ok((Vec::new(), sw));
        }
        let value = unwrap_tlv(cryptogram, 0x87).map_err(|_| bad())?;
        let Some((&0x01, encrypted)) = value.split_first() else {
            return Err(bad());
        };
        if encrypted.is_empty() || encrypted.len() % 16 != 0 {
            return Err(bad());
        }
        let iv = block(self.suite, &self.enc, counter_block(0x80, self.counter));
        Ok((cbc_decrypt(self.suite, &self.enc, &iv, encrypted)?, sw))
    }
}
