//! Secure messaging at issuance (SP 800-73-4 Part 2 §4.1.5): the CA's
//! Secure Messaging Certificate Signer, the card-verifiable certificate it
//! issues for a card's key `04`, and the step that makes a card ready for
//! secure messaging and the virtual contact interface: key `04` generated
//! on the card, its CVC, the signer's certificate in `5FC122`, and a
//! pairing code.
//!
//! The signer is a P-256 key with a certificate from the test CA's root,
//! kept beside it (`sm-signer.key`, readable by its owner only, and
//! `sm-signer.pem`), made the first time a card needs it. It signs CVCs
//! with the suite's hash (SHA-256 for CS2, SHA-384 for CS7), which is what
//! clients check them with.

use client::{PivClient, Slot, Suite, Transport};
use der::Encode;
use p256::ecdsa::SigningKey;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use sha2::Digest;
use x509_cert::certificate::Certificate;
use zeroize::Zeroizing;

use crate::ca::TestCa;
use crate::{CmsError, Result};

/// The Pairing Code Reference Data Container: PUT DATA there sets the code.
pub const PAIRING_CODE_OBJECT: u32 = 0x5FC123;
/// The Secure Messaging Certificate Signer object.
pub const SIGNER_OBJECT: u32 = 0x5FC122;

fn err(e: impl std::fmt::Display) -> CmsError {
    CmsError::encoding(e)
}

/// The CA's Secure Messaging Certificate Signer.
pub struct SmSigner {
    key: SigningKey,
    /// Its certificate, from the CA's root.
    pub certificate: Certificate,
}

impl SmSigner {
    /// The signer of the CA in `dir`, made (and its certificate issued by
    /// `ca`) the first time.
    pub fn load_or_create(ca: &TestCa, now: u64) -> Result<SmSigner> {
        let (key, certificate) = ca.signer(
            "sm-signer",
            "CN=s9card secure messaging certificate signer,O=s9card",
            None,
            now,
        )?;
        Ok(SmSigner { key, certificate })
    }

    /// The `5FC122` object's content: `70 {certificate} 71 00 FE 00`.
    pub fn object(&self) -> Result<Vec<u8>> {
        let der = self.certificate.to_der().map_err(err)?;
        Ok(PivClient::<NoTransport>::certificate_object(&der))
    }

    /// The issuer identification number CVCs carry: the first 8 bytes of
    /// the SHA-256 of the signer's public key.
    pub fn issuer_id(&self) -> [u8; 8] {
        let point = self.key.verifying_key().to_sec1_point(false);
        let digest = sha2::Sha256::digest(point.as_bytes());
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        id
    }

    /// A CVC for the card `guid`'s key `04` (`point`) for `suite`.
    pub fn cvc(&self, suite: Suite, guid: &[u8; 16], point: &[u8]) -> Result<Vec<u8>> {
        client::cvc::build(suite, &self.issuer_id(), guid, point, |body| {
            let digest = client::cvc::hash(suite, body);
            let signature: p256::ecdsa::Signature = self
                .key
                .sign_prehash(&digest)
                .map_err(|_| client::ClientError::Malformed("the CVC could not be signed"))?;
            Ok(signature.to_der().as_bytes().to_vec())
        })
        .map_err(CmsError::from)
    }

    /// The signer's public point, as a client checks a CVC with it.
    pub fn point(&self) -> Vec<u8> {
        self.key
            .verifying_key()
            .to_sec1_point(false)
            .as_bytes()
            .to_vec()
    }
}

/// A transport that is never used: for the client's associated functions.
struct NoTransport;

impl Transport for NoTransport {
    fn transmit(&mut self, _: &[u8]) -> client::Result<Vec<u8>> {
        Err(client::ClientError::Transport("no card".into()))
    }
}

/// A fresh pairing code: 8 digits drawn uniformly.
pub fn new_pairing_code() -> Result<Zeroizing<String>> {
    let mut code = Zeroizing::new(String::with_capacity(8));
    while code.len() < 8 {
        let mut b = [0u8; 1];
        getrandom::fill(&mut b).map_err(CmsError::Random)?;
        // 250 = 25 × 10: below it each digit is equally likely.
        if b[0] < 250 {
            code.push(char::from(b'0' + b[0] % 10));
        }
    }
    Ok(code)
}

/// The pairing code's container content: `99 08 digits FE 00`.
pub fn pairing_code_object(code: &str) -> Result<Zeroizing<Vec<u8>>> {
    if code.len() != 8 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CmsError::BadPairingCode);
    }
    let mut out = Zeroizing::new(vec![0x99, 0x08]);
    out.extend_from_slice(code.as_bytes());
    out.extend_from_slice(&[0xFE, 0x00]);
    Ok(out)
}

/// Makes a card ready for secure messaging: key `04` for `suite`
/// generated on the card, its CVC for the card `guid`, the signer's
/// certificate, and `pairing_code` (none: the virtual contact interface
/// opens with the session). The management key must be authenticated.
pub fn make_ready<T: Transport>(
    card: &mut PivClient<T>,
    signer: &SmSigner,
    suite: Suite,
    guid: &[u8; 16],
    pairing_code: Option<&str>,
) -> Result<()> {
    let public = card.generate_key(Slot::SecureMessaging, suite.algorithm(), false)?;
    let point = public
        .get(public.len().saturating_sub(suite.point_len())..)
        .unwrap_or_default();
    let cvc = signer.cvc(suite, guid, point)?;
    card.put_object(applet::objects::SM_CVC, &cvc)?;
    card.put_object(SIGNER_OBJECT, &signer.object()?)?;
    match pairing_code {
        Some(code) => card.put_object(PAIRING_CODE_OBJECT, &pairing_code_object(code)?)?,
        None => card.put_object(PAIRING_CODE_OBJECT, &[])?,
    }
    Ok(())
}

/// The GUID a CHUID carries (`34`), for the CVC's subject.
pub fn guid_of(chuid: &[u8]) -> Option<[u8; 16]> {
    client::tlvs(chuid)
        .ok()?
        .into_iter()
        .find(|(tag, _)| *tag == 0x34)
        .and_then(|(_, v)| v.try_into().ok())
}

/// Opens the virtual contact interface with a contactless card: a secure
/// messaging session, the card's CVC checked against the signer on the
/// card (and that signer against `ca`'s root), then the pairing code.
pub fn open_vci<T: Transport>(
    card: &mut PivClient<T>,
    ca: Option<&TestCa>,
    pairing_code: Option<&str>,
) -> Result<()> {
    let suite = card
        .secure_messaging_suite()?
        .ok_or(CmsError::NoSecureMessaging)?;
    let object = card
        .get_object(SIGNER_OBJECT)?
        .ok_or(CmsError::NoSecureMessaging)?;
    if let Some(ca) = ca {
        ca.check_issued(&object)?;
    }
    let signer = client::cvc::signer_key(&object)?;
    card.open_secure_messaging(suite, Some(&signer))?;
    if let Some(code) = pairing_code {
        let field = pairing_code_object(code)?;
        card.call(client::Instruction::Verify, 0x00, 0x98, &field[2..10])?;
    }
    Ok(())
}

/// The factory management key's algorithm: Series 9 cards are made with
/// 3DES, YubiKey-compatible ones with AES-192 (the same bytes).
fn factory_admin(profile: applet::Profile) -> client::AdminAlgorithm {
    match profile {
        applet::Profile::Series9 => client::AdminAlgorithm::Tdes,
        applet::Profile::YubiKey { .. } => client::AdminAlgorithm::Aes192,
    }
}

/// Makes a factory-fresh card image ready for secure messaging with the
/// CA in `ca_dir` (made there the first time), as `s9card up` and the
/// test fixture serve their cards: see [`make_ready`]. The GUID is the
/// card's own, from its factory CHUID.
pub fn ready_image(
    image: &std::path::Path,
    ca_dir: &std::path::Path,
    suite: Suite,
    pairing_code: Option<&str>,
    now: u64,
) -> Result<()> {
    let ca = match TestCa::load(ca_dir) {
        Ok(ca) => ca,
        Err(CmsError::NoCa { .. }) => TestCa::init(ca_dir, now)?,
        Err(e) => return Err(e),
    };
    let signer = SmSigner::load_or_create(&ca, now)?;
    let (header, mut card) = virtual_card::boot(image, virtual_card::Entropy::Os, true)?;
    let profile = applet::Profile::of(&header).unwrap_or_default();
    card.power_on();
    let mut piv = PivClient::new(&mut card);
    piv.select()?;
    piv.authenticate(factory_admin(profile), &client::DEFAULT_MGM)?;
    let chuid = piv
        .get_object(applet::objects::CHUID)?
        .ok_or(CmsError::Encoding("a card without a CHUID".into()))?;
    let guid = guid_of(&chuid).ok_or(CmsError::Encoding("CHUID without a GUID".into()))?;
    make_ready(&mut piv, &signer, suite, &guid, pairing_code)
}
