//! Signed card content: the CHUID with its issuer asymmetric signature
//! (FIPS 201-3 §4.2.1, SP 800-73-4 Part 1 §3.1.2), the Printed Information,
//! and the Security Object (SP 800-73-4 Part 1 §3.1.8) with the digests of
//! the objects it maps, so that a relying party can check from outside
//! the card that they came from the issuer unchanged.
//!
//! Both signatures are CMS SignedData by the CA's PIV content signer: a
//! P-256 key with a certificate from the test CA's root carrying
//! `id-PIV-content-signing`, kept beside the root (`content-signer.key`,
//! readable by its owner only, and `content-signer.pem`), made the first
//! time a card needs it. The signer's certificate travels in each
//! SignedData, as FIPS 201 has it, so a relying party needs only the root.

use cms_types::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms_types::content_info::{CmsVersion, ContentInfo};
use cms_types::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use const_oid::db::rfc5911::{ID_CONTENT_TYPE, ID_MESSAGE_DIGEST, ID_SIGNED_DATA};
use const_oid::db::rfc5912::{ECDSA_WITH_SHA_256, ID_SHA_256};
use der::asn1::{ObjectIdentifier, OctetString, SetOfVec};
use der::{Any, Encode, Sequence};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, SigningKey};
use sha2::{Digest, Sha256};
use x509_cert::attr::Attribute;
use x509_cert::certificate::Certificate;
use x509_cert::spki::AlgorithmIdentifierOwned;

use crate::ca::TestCa;
use crate::oid;
use crate::time;
use crate::{CmsError, Result};

/// The CHUID's container.
pub const CHUID: u32 = 0x5FC102;
/// The Printed Information container.
pub const PRINTED_INFORMATION: u32 = 0x5FC109;
/// The Security Object container.
pub const SECURITY_OBJECT: u32 = 0x5FC106;

/// The data groups the Security Object maps, with the legacy container ID
/// SP 800-73-4 Table 12 gives each, and the object they stand for.
pub const MAPPED: [(u8, u16, u32); 2] = [(1, 0x3000, CHUID), (2, 0x3001, PRINTED_INFORMATION)];

fn err(e: impl std::fmt::Display) -> CmsError {
    CmsError::encoding(e)
}

/// The CA's PIV content signer.
pub struct ContentSigner {
    key: SigningKey,
    /// Its certificate, from the CA's root.
    pub certificate: Certificate,
}

impl ContentSigner {
    /// The content signer of `ca`, made (and its certificate issued) the
    /// first time.
    pub fn load_or_create(ca: &TestCa, now: u64) -> Result<ContentSigner> {
        let (key, certificate) = ca.signer(
            "content-signer",
            "CN=s9card PIV content signer,O=s9card",
            Some(oid::PIV_CONTENT_SIGNING),
            now,
        )?;
        Ok(ContentSigner { key, certificate })
    }

    /// A SignedData (in its ContentInfo) over `content` of type
    /// `content_type`: detached when `encapsulate` is false. Signed
    /// attributes: the content type, its SHA-256, and whatever `extra` adds.
    fn sign(
        &self,
        content_type: ObjectIdentifier,
        content: &[u8],
        encapsulate: bool,
        extra: Vec<Attribute>,
    ) -> Result<Vec<u8>> {
        let digest = Sha256::digest(content);
        let mut attrs = vec![
            attribute(
                ID_CONTENT_TYPE,
                Any::encode_from(&content_type).map_err(err)?,
            )?,
            attribute(
                ID_MESSAGE_DIGEST,
                Any::encode_from(&OctetString::new(digest.as_slice()).map_err(err)?)
                    .map_err(err)?,
            )?,
        ];
        attrs.extend(extra);
        let signed_attrs = SetOfVec::try_from(attrs).map_err(err)?;
        // The signature covers the attributes' DER as a SET (RFC 5652 §5.4).
        let signature: DerSignature = self.key.sign(&signed_attrs.to_der().map_err(err)?);
        let sha256 = AlgorithmIdentifierOwned {
            oid: ID_SHA_256,
            parameters: None,
        };
        let tbs = self.certificate.tbs_certificate();
        let signer = SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: tbs.issuer().clone(),
                serial_number: tbs.serial_number().clone(),
            }),
            digest_alg: sha256.clone(),
            signed_attrs: Some(signed_attrs),
            signature_algorithm: AlgorithmIdentifierOwned {
                oid: ECDSA_WITH_SHA_256,
                parameters: None,
            },
            signature: OctetString::new(signature.as_bytes()).map_err(err)?,
            unsigned_attrs: None,
        };
        let econtent = if encapsulate {
            Some(Any::encode_from(&OctetString::new(content).map_err(err)?).map_err(err)?)
        } else {
            None
        };
        let mut digests = SetOfVec::new();
        digests.insert(sha256).map_err(err)?;
        let certificates = CertificateSet::try_from(vec![CertificateChoices::Certificate(
            self.certificate.clone(),
        )])
        .map_err(err)?;
        let signed = SignedData {
            // v3: the content is not id-data (RFC 5652 §5.1).
            version: CmsVersion::V3,
            digest_algorithms: digests,
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: content_type,
                econtent,
            },
            certificates: Some(certificates),
            crls: None,
            signer_infos: SignerInfos::try_from(vec![signer]).map_err(err)?,
        };
        ContentInfo {
            content_type: ID_SIGNED_DATA,
            content: Any::encode_from(&signed).map_err(err)?,
        }
        .to_der()
        .map_err(err)
    }

    /// A CHUID for the card `guid` whose certificates expire at `expiry`:
    /// FASC-N, GUID, expiration date, the issuer asymmetric signature and
    /// the error detection code. The signature is over every field but
    /// itself, in order (`id-PIV-CHUIDSecurityObject`), detached, with the
    /// signer's name as the `pivSigner-DN` attribute.
    pub fn chuid(&self, guid: &[u8; 16], expiry: u64) -> Result<Vec<u8>> {
        let mut fields = Vec::new();
        push_tlv(&mut fields, 0x30, &applet::objects::FASC_N);
        push_tlv(&mut fields, 0x34, guid);
        push_tlv(&mut fields, 0x35, time::compact_date(expiry).as_bytes());
        let edc = [0xFE, 0x00];
        let signed = [fields.as_slice(), &edc].concat();
        let signer_dn =
            Any::encode_from(self.certificate.tbs_certificate().subject()).map_err(err)?;
        let extra = vec![attribute(oid::PIV_SIGNER_DN, signer_dn)?];
        let signature = self.sign(oid::PIV_CHUID_SECURITY_OBJECT, &signed, false, extra)?;
        push_tlv(&mut fields, 0x3E, &signature);
        fields.extend_from_slice(&edc);
        Ok(fields)
    }

    /// The Security Object over `objects` (each data group's object
    /// content, as GET DATA returns it inside `53`, in [`MAPPED`]'s order):
    /// the mapping of data groups to containers (`BA`), then an
    /// LDSSecurityObject with each one's SHA-256, signed and encapsulated
    /// (`BB`), then the error detection code.
    pub fn security_object(&self, objects: &[&[u8]; MAPPED.len()]) -> Result<Vec<u8>> {
        let mut mapping = Vec::new();
        let mut hashes = Vec::new();
        for ((group, container, _), content) in MAPPED.iter().zip(objects) {
            mapping.push(*group);
            mapping.extend_from_slice(&container.to_be_bytes());
            hashes.push(DataGroupHash {
                number: u32::from(*group),
                hash: OctetString::new(Sha256::digest(content).as_slice()).map_err(err)?,
            });
        }
        let lds = LdsSecurityObject {
            version: 0,
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: ID_SHA_256,
                parameters: None,
            },
            hashes,
        }
        .to_der()
        .map_err(err)?;
        let signature = self.sign(oid::LDS_SECURITY_OBJECT, &lds, true, Vec::new())?;
        let mut out = Vec::new();
        push_tlv(&mut out, 0xBA, &mapping);
        push_tlv(&mut out, 0xBB, &signature);
        out.extend_from_slice(&[0xFE, 0x00]);
        Ok(out)
    }
}

/// A signed attribute with its one value.
fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute> {
    let mut values = SetOfVec::new();
    values.insert(value).map_err(err)?;
    Ok(Attribute { oid, values })
}

/// ICAO 9303 Part 10's LDSSecurityObject (version 0: no LDS version info).
#[derive(Sequence)]
struct LdsSecurityObject {
    version: u8,
    hash_algorithm: AlgorithmIdentifierOwned,
    hashes: Vec<DataGroupHash>,
}

#[derive(Sequence)]
struct DataGroupHash {
    number: u32,
    hash: OctetString,
}

/// The Printed Information (SP 800-73-4 Part 1 Table 13): the holder's
/// name, affiliation (their role), the card's expiry as printed
/// (`2028DEC04`), the card's serial and the issuer.
pub fn printed_information(name: &str, role: &str, expiry: u64, serial: u32) -> Vec<u8> {
    let clip = |s: &str, max: usize| -> Vec<u8> {
        let mut end = s.len().min(max);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.as_bytes()[..end].to_vec()
    };
    let mut out = Vec::new();
    push_tlv(&mut out, 0x01, &clip(name, 125));
    push_tlv(&mut out, 0x02, &clip(role, 20));
    push_tlv(&mut out, 0x04, time::printed_date(expiry).as_bytes());
    push_tlv(&mut out, 0x05, format!("{serial:010}").as_bytes());
    push_tlv(&mut out, 0x06, b"s9card");
    out.extend_from_slice(&[0xFE, 0x00]);
    out
}

/// A BER-TLV with a one-byte tag, as the card's objects are written (and
/// DER, for the short values the CMS writes: at most 65,535 bytes).
pub(crate) fn push_tlv(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(value);
}

/// A GUID for a new card: a version-4 (random) UUID, RFC 9562 §5.4.
pub fn new_guid() -> Result<[u8; 16]> {
    let mut guid = [0u8; 16];
    getrandom::fill(&mut guid).map_err(CmsError::Random)?;
    guid[6] = (guid[6] & 0x0F) | 0x40;
    guid[8] = (guid[8] & 0x3F) | 0x80;
    Ok(guid)
}
