//! The test certificate authority: a P-256 root that issues the holders'
//! certificates. Built with `x509-cert`'s builder; the root key is kept as
//! PKCS#8 PEM, readable by its owner only.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use const_oid::db::rfc4519::{OU, UID};
use der::{Decode, Encode, EncodePem};
use p256::ecdsa::{DerSignature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::certificate::{Certificate, TbsCertificate};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{SubjectPublicKeyInfo, SubjectPublicKeyInfoRef};
use x509_cert::time::{Time, Validity};

use applet::algorithm::Algorithm;
use const_oid::ObjectIdentifier;
use const_oid::db::rfc5912::{ID_KP_CLIENT_AUTH, ID_KP_EMAIL_PROTECTION};
use der::Any;
use der::asn1::{Ia5String, OctetString, Utf8StringRef};
use x509_cert::ext::pkix::name::{GeneralName, OtherName};
use x509_cert::ext::pkix::{ExtendedKeyUsage, SubjectAltName};

use super::db::{self, Revoked};
use super::keys::CardKey;
use super::oid;
use super::time::DAY;
use crate::{CmsError, Result};
use x509_cert::spki::AlgorithmIdentifierOwned;

/// How long holders' certificates are valid: two years, as on NHS cards.
pub const CERT_DAYS: u64 = 730;

/// A holder's role, carried in the certificate subject's OU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A card holder.
    Holder,
    /// A sponsor, who may unlock and renew others' cards.
    Sponsor,
}

impl Role {
    /// The role's name, as stored and as in the certificate.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Holder => "holder",
            Role::Sponsor => "sponsor",
        }
    }

    /// Parses a stored role.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "holder" => Some(Role::Holder),
            "sponsor" => Some(Role::Sponsor),
            _ => None,
        }
    }
}

/// The test CA.
pub struct TestCa {
    key: SigningKey,
    /// The root certificate.
    pub root: Certificate,
    dir: PathBuf,
    realm: Realm,
}

/// The file beside the CA's key that names its realm (public; absent for a
/// CA in the default realm).
const REALM_FILE: &str = "realm";

/// What a certificate is: the root, a signer the CA keeps beside it, or a
/// holder's key. Each carries the extensions its relying parties check.
struct Profile {
    issuer: Name,
    subject: Name,
    extensions: Vec<Extension>,
}

impl BuilderProfile for Profile {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        _spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        Ok(self.extensions.clone())
    }
}

/// The PIV key a holder's certificate certifies, which decides what
/// relying parties find in it (FIPS 201-3 §4.2.2 and the Common Policy's
/// PIV certificate profiles).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// `9A`: workstation and domain logon (PKINIT, Windows smartcard
    /// logon), TLS client authentication, SSH.
    Authentication,
    /// `9C`: signatures on documents and mail.
    Signature,
    /// `9D`: decryption and key agreement (S/MIME).
    KeyManagement,
    /// `9E`: the card itself, without the holder (no PIN).
    CardAuthentication,
}

/// The Kerberos realm a holder's principal and UPN are in: the test KDC's,
/// or the Active Directory domain an integrator's relying parties expect
/// (`s9card ca init --realm`). Upper case, as Kerberos writes realms; the
/// UPN's domain is its lower case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Realm(String);

impl Realm {
    /// The realm s9card's tests use unless told otherwise.
    pub const DEFAULT: &str = "S9CARD.TEST";

    /// A realm: DNS labels of letters, digits and hyphens, joined by dots,
    /// at most 253 characters; written upper case whatever the case given.
    pub fn new(text: &str) -> Result<Realm> {
        let bad = || CmsError::BadRealm(text.to_string());
        if text.is_empty() || text.len() > 253 {
            return Err(bad());
        }
        for label in text.split('.') {
            let ok = !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !ok {
                return Err(bad());
            }
        }
        Ok(Realm(text.to_ascii_uppercase()))
    }

    /// The realm as Kerberos writes it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The domain of UPNs: the realm in lower case, as AD writes it.
    pub fn domain(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl Default for Realm {
    fn default() -> Realm {
        Realm(Realm::DEFAULT.to_string())
    }
}

/// Who and which card a holder's certificate names.
#[derive(Clone, Debug)]
pub struct Identity {
    /// 12-digit UUID (the subject's UID, the principal's name).
    pub uuid: String,
    /// The holder's name (the subject's CN).
    pub name: String,
    /// Holder or sponsor (the subject's OU).
    pub role: Role,
    /// Mail address, for the signature and key management certificates.
    pub email: Option<String>,
    /// The card's GUID, the CHUID's: a version-4 UUID, in the
    /// certificates as `urn:uuid:…`.
    pub guid: [u8; 16],
}

impl Identity {
    /// The user principal name in `realm`: `uuid@domain`, lower case as AD
    /// writes it.
    pub fn upn(&self, realm: &Realm) -> String {
        format!("{}@{}", self.uuid, realm.domain())
    }
}

/// `urn:uuid:` and the GUID in RFC 4122's text form.
pub fn guid_urn(guid: &[u8; 16]) -> String {
    let h = hex(guid);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// KRB5PrincipalName (RFC 4556 §3.2.2) for `name@realm`, an NT-PRINCIPAL:
/// written out by hand, as `der` has no GeneralString.
fn krb5_principal_name(name: &str, realm: &str) -> Result<Any> {
    fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        super::content::push_tlv(&mut out, tag, value);
        out
    }
    let general = |s: &str| tlv(0x1B, s.as_bytes());
    let name_type = tlv(0xA0, &tlv(0x02, &[0x01]));
    let strings = tlv(0xA1, &tlv(0x30, &general(name)));
    let principal = tlv(0x30, &[name_type, strings].concat());
    let der = tlv(
        0x30,
        &[tlv(0xA0, &general(realm)), tlv(0xA1, &principal)].concat(),
    );
    Any::from_der(&der).map_err(err)
}

fn other_name(type_id: ObjectIdentifier, value: Any) -> GeneralName {
    GeneralName::OtherName(OtherName { type_id, value })
}

fn ia5(s: &str) -> Result<Ia5String> {
    Ia5String::new(s).map_err(err)
}

/// The extensions of a holder's certificate for `purpose`.
fn holder_extensions(
    subject: &Name,
    purpose: Purpose,
    id: &Identity,
    key: &CardKey,
    realm: &Realm,
) -> Result<Vec<Extension>> {
    use x509_cert::ext::ToExtension;
    let fasc_n =
        Any::encode_from(&OctetString::new(applet::objects::FASC_N).map_err(err)?).map_err(err)?;
    let card_names = || -> Result<Vec<GeneralName>> {
        Ok(vec![
            other_name(oid::PIV_FASC_N, fasc_n.clone()),
            GeneralName::UniformResourceIdentifier(ia5(&guid_urn(&id.guid))?),
        ])
    };
    let email = || -> Result<Vec<GeneralName>> {
        id.email
            .iter()
            .map(|e| Ok(GeneralName::Rfc822Name(ia5(e)?)))
            .collect()
    };
    let is_rsa = !matches!(
        key.algorithm,
        Algorithm::P256 | Algorithm::P384 | Algorithm::Ed25519 | Algorithm::X25519
    );
    let (usage, purposes, names) = match purpose {
        Purpose::Authentication => {
            let upn =
                Any::encode_from(&Utf8StringRef::new(&id.upn(realm)).map_err(err)?).map_err(err)?;
            let mut names = vec![
                other_name(oid::MS_UPN, upn),
                other_name(
                    oid::PKINIT_SAN,
                    krb5_principal_name(&id.uuid, realm.as_str())?,
                ),
            ];
            names.extend(card_names()?);
            (
                KeyUsages::DigitalSignature.into(),
                vec![
                    ID_KP_CLIENT_AUTH,
                    oid::PKINIT_CLIENT_AUTH,
                    oid::MS_SMARTCARD_LOGON,
                ],
                names,
            )
        }
        Purpose::Signature => (
            KeyUsages::DigitalSignature | KeyUsages::NonRepudiation,
            vec![ID_KP_EMAIL_PROTECTION],
            email()?,
        ),
        Purpose::KeyManagement => (
            if is_rsa {
                KeyUsages::KeyEncipherment.into()
            } else {
                KeyUsages::KeyAgreement.into()
            },
            vec![ID_KP_EMAIL_PROTECTION],
            email()?,
        ),
        Purpose::CardAuthentication => (
            KeyUsages::DigitalSignature.into(),
            vec![oid::PIV_CARD_AUTH],
            card_names()?,
        ),
    };
    let mut out = vec![
        BasicConstraints {
            ca: false,
            path_len_constraint: None,
        }
        .to_extension(subject, &[])
        .map_err(err)?,
        KeyUsage(usage).to_extension(subject, &[]).map_err(err)?,
        ExtendedKeyUsage(purposes)
            .to_extension(subject, &[])
            .map_err(err)?,
    ];
    if !names.is_empty() {
        out.push(
            SubjectAltName(names)
                .to_extension(subject, &[])
                .map_err(err)?,
        );
    }
    Ok(out)
}

/// The extensions of a certificate the CA keeps beside it to sign with:
/// a signing key for `purpose`, not a CA.
fn signer_extensions(subject: &Name, purpose: Option<ObjectIdentifier>) -> Result<Vec<Extension>> {
    use x509_cert::ext::ToExtension;
    let mut out = vec![
        BasicConstraints {
            ca: false,
            path_len_constraint: None,
        }
        .to_extension(subject, &[])
        .map_err(err)?,
        KeyUsage(KeyUsages::DigitalSignature.into())
            .to_extension(subject, &[])
            .map_err(err)?,
    ];
    if let Some(purpose) = purpose {
        out.push(
            ExtendedKeyUsage(vec![purpose])
                .to_extension(subject, &[])
                .map_err(err)?,
        );
    }
    Ok(out)
}

fn err(e: impl std::fmt::Display) -> CmsError {
    CmsError::encoding(e)
}

/// Escapes a value for an RFC 4514 name string.
fn escape(value: &str) -> String {
    let mut out = String::new();
    for (i, c) in value.chars().enumerate() {
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && matches!(c, '#' | ' '))
        {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn at(t: u64) -> Result<Time> {
    Ok(Time::GeneralTime(
        der::asn1::GeneralizedTime::from_unix_duration(Duration::from_secs(t)).map_err(err)?,
    ))
}

fn validity(now: u64, days: u64) -> Result<Validity> {
    Ok(Validity::new(at(now)?, at(now + days * DAY)?))
}

fn serial() -> Result<SerialNumber> {
    let mut s = [0u8; 16];
    getrandom::fill(&mut s).map_err(CmsError::Random)?;
    s[0] = (s[0] & 0x7F) | 0x40;
    SerialNumber::new(&s).map_err(err)
}

impl TestCa {
    /// Creates a CA in `dir` (`ca.key`, `ca.pem`); refuses to replace one.
    pub fn init(dir: &Path, now: u64) -> Result<TestCa> {
        TestCa::init_in_realm(dir, now, Realm::default())
    }

    /// [`TestCa::init`] for holders in `realm`.
    pub fn init_in_realm(dir: &Path, now: u64, realm: Realm) -> Result<TestCa> {
        private_files::dir_all(dir).map_err(CmsError::file(dir))?;
        let key_path = dir.join("ca.key");
        if key_path.exists() {
            return Err(CmsError::CaExists(dir.to_path_buf()));
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(CmsError::Random)?;
        let key = SigningKey::from_slice(&seed).map_err(err)?;
        let subject = Name::from_str("CN=s9card test CA,O=s9card").map_err(err)?;
        let spki = SubjectPublicKeyInfo::from_key(key.verifying_key()).map_err(err)?;
        let extensions = {
            use x509_cert::ext::ToExtension;
            vec![
                BasicConstraints {
                    ca: true,
                    path_len_constraint: None,
                }
                .to_extension(&subject, &[])
                .map_err(err)?,
                KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign)
                    .to_extension(&subject, &[])
                    .map_err(err)?,
            ]
        };
        let profile = Profile {
            issuer: subject.clone(),
            subject,
            extensions,
        };
        let builder = CertificateBuilder::new(profile, serial()?, validity(now, 20 * 365)?, spki)
            .map_err(err)?;
        let root = builder.build::<_, DerSignature>(&key).map_err(err)?;
        let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(err)?;
        private_files::write_new(&key_path, pem.as_bytes()).map_err(CmsError::file(&key_path))?;
        let cert_path = dir.join("ca.pem");
        std::fs::write(&cert_path, root.to_pem(LineEnding::LF).map_err(err)?)
            .map_err(CmsError::file(&cert_path))?;
        let realm_path = dir.join(REALM_FILE);
        std::fs::write(&realm_path, format!("{}\n", realm.as_str()))
            .map_err(CmsError::file(&realm_path))?;
        Ok(TestCa {
            key,
            root,
            dir: dir.to_path_buf(),
            realm,
        })
    }

    /// The realm the CA's holders are in.
    pub fn realm(&self) -> &Realm {
        &self.realm
    }

    /// Loads the CA in `dir`.
    pub fn load(dir: &Path) -> Result<TestCa> {
        let pem = std::fs::read_to_string(dir.join("ca.key")).map_err(|source| CmsError::NoCa {
            dir: dir.to_path_buf(),
            source,
        })?;
        let key = SigningKey::from_pkcs8_pem(&pem).map_err(err)?;
        let cert_path = dir.join("ca.pem");
        let cert_pem = std::fs::read_to_string(&cert_path).map_err(CmsError::file(&cert_path))?;
        let (_, der) = der::pem::decode_vec(cert_pem.as_bytes()).map_err(err)?;
        let root = Certificate::from_der(&der).map_err(err)?;
        let realm_path = dir.join(REALM_FILE);
        let realm = match std::fs::read_to_string(&realm_path) {
            Ok(text) => Realm::new(text.trim())?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Realm::default(),
            Err(e) => return Err(CmsError::file(&realm_path)(e)),
        };
        Ok(TestCa {
            key,
            root,
            dir: dir.to_path_buf(),
            realm,
        })
    }

    /// Where the CA keeps its files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The root certificate's PEM file (for `openssl verify -CAfile`).
    pub fn root_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Issues a two-year certificate for a card key, for `purpose`. The
    /// subject names the holder by UUID (`UID`, the userid attribute), name
    /// (`CN`) and role (`OU`: `holder` or `sponsor`, which a sponsor unlock
    /// checks); the extensions are what the purpose's relying parties
    /// check (see [`Purpose`]).
    pub fn issue(
        &self,
        id: &Identity,
        purpose: Purpose,
        key: &CardKey,
        now: u64,
    ) -> Result<Vec<u8>> {
        self.issue_for(id, purpose, key, now, now + CERT_DAYS * DAY)
    }

    /// [`TestCa::issue`] with the validity given: a test's expired holder.
    pub fn issue_for(
        &self,
        id: &Identity,
        purpose: Purpose,
        key: &CardKey,
        not_before: u64,
        not_after: u64,
    ) -> Result<Vec<u8>> {
        let spki = key.spki()?;
        let subject = Name::from_str(&format!(
            "UID={},CN={},OU={},O=s9card",
            escape(&id.uuid),
            escape(&id.name),
            id.role.as_str()
        ))
        .map_err(err)?;
        let extensions = holder_extensions(&subject, purpose, id, key, &self.realm)?;
        let profile = Profile {
            issuer: self.root.tbs_certificate().subject().clone(),
            subject,
            extensions,
        };
        let validity = Validity::new(at(not_before)?, at(not_after)?);
        let builder = CertificateBuilder::new(profile, serial()?, validity, spki).map_err(err)?;
        let cert = builder.build::<_, DerSignature>(&self.key).map_err(err)?;
        cert.to_der().map_err(err)
    }
}

impl TestCa {
    /// Issues the Secure Messaging Certificate Signer's certificate: a
    /// signing key, not a CA (it signs CVCs, which are not X.509).
    pub fn issue_signer(
        &self,
        subject: Name,
        purpose: Option<ObjectIdentifier>,
        spki: SubjectPublicKeyInfo<x509_cert::der::Any, x509_cert::der::asn1::BitString>,
        now: u64,
    ) -> Result<Certificate> {
        let extensions = signer_extensions(&subject, purpose)?;
        let profile = Profile {
            issuer: self.root.tbs_certificate().subject().clone(),
            subject,
            extensions,
        };
        let builder = CertificateBuilder::new(profile, serial()?, validity(now, 20 * 365)?, spki)
            .map_err(err)?;
        builder.build::<_, DerSignature>(&self.key).map_err(err)
    }

    /// A signing key the CA keeps beside its root under `name`
    /// (`NAME.key`, PKCS#8, readable by its owner only, and `NAME.pem`,
    /// its certificate from the root for `subject` and `purpose`): loaded,
    /// or made and certified the first time.
    pub fn signer(
        &self,
        name: &str,
        subject: &str,
        purpose: Option<ObjectIdentifier>,
        now: u64,
    ) -> Result<(SigningKey, Certificate)> {
        let key_path = self.dir.join(format!("{name}.key"));
        let cert_path = self.dir.join(format!("{name}.pem"));
        if key_path.exists() {
            let pem = zeroize::Zeroizing::new(
                std::fs::read_to_string(&key_path).map_err(CmsError::file(&key_path))?,
            );
            let key = SigningKey::from_pkcs8_pem(&pem).map_err(err)?;
            let cert_pem =
                std::fs::read_to_string(&cert_path).map_err(CmsError::file(&cert_path))?;
            let (_, der) = der::pem::decode_vec(cert_pem.as_bytes()).map_err(err)?;
            return Ok((key, Certificate::from_der(&der).map_err(err)?));
        }
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut *seed).map_err(CmsError::Random)?;
        let key = SigningKey::from_slice(&*seed).map_err(err)?;
        let spki = SubjectPublicKeyInfo::from_key(key.verifying_key()).map_err(err)?;
        let subject = Name::from_str(subject).map_err(err)?;
        let certificate = self.issue_signer(subject, purpose, spki, now)?;
        let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(err)?;
        private_files::write_new(&key_path, pem.as_bytes()).map_err(CmsError::file(&key_path))?;
        std::fs::write(&cert_path, certificate.to_pem(LineEnding::LF).map_err(err)?)
            .map_err(CmsError::file(&cert_path))?;
        Ok((key, certificate))
    }

    /// Checks that the certificate in a certificate object (`70 {…} …`)
    /// was issued by this CA's root.
    pub fn check_issued(&self, object: &[u8]) -> Result<()> {
        let der = client::unwrap_tlv(object, 0x70)?;
        verify_issued(self, &Certificate::from_der(der).map_err(err)?)
    }
}

impl TestCa {
    /// The CA's CRL at `now` (RFC 5280 §5, v2), listing `revoked` with
    /// their reasons; valid for [`CRL_DAYS`], numbered by `now` so that a
    /// later CRL has a higher number.
    pub fn crl(&self, revoked: &[Revoked], now: u64) -> Result<Vec<u8>> {
        use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
        use x509_cert::ext::ToExtension;
        use x509_cert::ext::pkix::{CrlNumber, CrlReason};
        let issuer = self.root.tbs_certificate().subject().clone();
        let reason = |code: u8| match code {
            db::KEY_COMPROMISE => CrlReason::KeyCompromise,
            db::SUPERSEDED => CrlReason::Superseded,
            _ => CrlReason::Unspecified,
        };
        let entries = revoked
            .iter()
            .map(|r| {
                Ok(RevokedCert {
                    serial_number: SerialNumber::<x509_cert::certificate::Rfc5280>::new(&r.serial)
                        .map_err(err)?,
                    revocation_date: at(r.at)?,
                    crl_entry_extensions: Some(vec![
                        reason(r.reason).to_extension(&issuer, &[]).map_err(err)?,
                    ]),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let number = CrlNumber(der::asn1::Uint::new(&now.to_be_bytes()).map_err(err)?);
        let algorithm = AlgorithmIdentifierOwned {
            oid: const_oid::db::rfc5912::ECDSA_WITH_SHA_256,
            parameters: None,
        };
        let tbs = TbsCertList {
            version: x509_cert::Version::V2,
            signature: algorithm.clone(),
            issuer: issuer.clone(),
            this_update: at(now)?,
            next_update: Some(at(now + CRL_DAYS * DAY)?),
            revoked_certificates: (!entries.is_empty()).then_some(entries),
            crl_extensions: Some(vec![number.to_extension(&issuer, &[]).map_err(err)?]),
        };
        let signature: DerSignature = {
            use p256::ecdsa::signature::Signer;
            self.key.sign(&tbs.to_der().map_err(err)?)
        };
        CertificateList {
            tbs_cert_list: tbs,
            signature_algorithm: algorithm,
            signature: der::asn1::BitString::from_bytes(signature.as_bytes()).map_err(err)?,
        }
        .to_der()
        .map_err(err)
    }
}

/// PEM (RFC 7468) of `der` under `label`.
pub fn pem(label: &str, der: &[u8]) -> Result<String> {
    der::pem::encode_string(label, LineEnding::LF, der).map_err(err)
}

/// How long a CRL is current: relying parties fetch the next within it.
pub const CRL_DAYS: u64 = 7;

/// Checks `cert`'s signature with the root's key.
fn verify_issued(ca: &TestCa, cert: &Certificate) -> Result<()> {
    use p256::ecdsa::signature::Verifier;
    let tbs = cert.tbs_certificate();
    if tbs.issuer() != ca.root.tbs_certificate().subject() {
        return Err(CmsError::ForeignCertificate);
    }
    let root_key = VerifyingKey::from_sec1_bytes(
        ca.root
            .tbs_certificate()
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes(),
    )
    .map_err(err)?;
    let sig = p256::ecdsa::Signature::from_der(cert.signature().raw_bytes()).map_err(err)?;
    root_key
        .verify(&tbs.to_der().map_err(err)?, &sig)
        .map_err(|_| CmsError::BadCertificateSignature)
}

/// What the CMS reads back from a card's certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// The UUID in the subject's UID.
    pub uuid: String,
    /// The role in the subject's OU.
    pub role: Option<Role>,
    /// notAfter, Unix seconds.
    pub not_after: u64,
    /// The certified key.
    pub key: CardKey,
    /// The certificate's serial number (the INTEGER's content octets).
    pub serial: Vec<u8>,
}

/// Parses and checks a certificate: issued by `ca`'s root, signature valid.
pub fn inspect(ca: &TestCa, der: &[u8]) -> Result<CertInfo> {
    let cert = Certificate::from_der(der).map_err(err)?;
    verify_issued(ca, &cert)?;
    let tbs = cert.tbs_certificate();
    let mut uuid = String::new();
    let mut role = None;
    {
        for atv in tbs.subject().iter() {
            let value = atv
                .value
                .decode_as::<der::asn1::Utf8StringRef<'_>>()
                .map(|s| s.as_str().to_string())
                .or_else(|_| {
                    atv.value
                        .decode_as::<der::asn1::PrintableStringRef<'_>>()
                        .map(|s| s.as_str().to_string())
                })
                .unwrap_or_default();
            match atv.oid {
                UID => uuid = value,
                OU => role = Role::parse(&value),
                _ => {}
            }
        }
    }
    let not_after = tbs.validity().not_after.to_unix_duration().as_secs();
    let key = CardKey::from_spki(tbs.subject_public_key_info())?;
    Ok(CertInfo {
        uuid,
        role,
        not_after,
        key,
        serial: tbs.serial_number().as_bytes().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::elliptic_curve::Generate;
    use p256::elliptic_curve::sec1::ToSec1Point;

    #[test]
    fn a_realm_is_dns_labels_written_in_upper_case() {
        let realm = Realm::new("nhs.Example").unwrap();
        assert_eq!(realm.as_str(), "NHS.EXAMPLE");
        assert_eq!(realm.domain(), "nhs.example");
        assert_eq!(Realm::default().as_str(), "S9CARD.TEST");
        let long = [
            "A".repeat(63),
            "B".repeat(63),
            "C".repeat(63),
            "D".repeat(61),
        ]
        .join(".");
        assert!(Realm::new(&long).is_ok(), "253 characters");
        for bad in [
            "",
            ".",
            "NHS..EXAMPLE",
            "NHS.EXAMPLE.",
            "-NHS.EXAMPLE",
            "NHS-.EXAMPLE",
            "NHS EXAMPLE",
            "ÄRZTE.DE",
            "NHS@EXAMPLE",
            &"A".repeat(64),
            &format!("{long}E"),
        ] {
            assert!(
                matches!(Realm::new(bad), Err(CmsError::BadRealm(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_ca_keeps_its_realm_and_names_it_in_principals() {
        let dir = tempfile::tempdir().unwrap();
        let now = super::super::time::parse("2026-11-25").unwrap();
        let realm = Realm::new("NHS.EXAMPLE").unwrap();
        TestCa::init_in_realm(dir.path(), now, realm.clone()).unwrap();
        let ca = TestCa::load(dir.path()).unwrap();
        assert_eq!(ca.realm(), &realm);
        let key = p256::SecretKey::generate();
        let card_key = CardKey {
            algorithm: applet::algorithm::Algorithm::P256,
            public: key.public_key().to_sec1_point(false).as_bytes().to_vec(),
        };
        let id = Identity {
            uuid: "555000111222".into(),
            name: "Ann".into(),
            role: Role::Holder,
            email: None,
            guid: [0x42; 16],
        };
        let der = ca
            .issue(&id, Purpose::Authentication, &card_key, now)
            .unwrap();
        let has = |needle: &[u8]| der.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"555000111222@nhs.example"), "the UPN");
        assert!(has(b"NHS.EXAMPLE"), "the Kerberos principal's realm");
        assert!(!has(b"s9card.test") && !has(b"S9CARD.TEST"));
        // A CA made before realms were kept is in the default one.
        std::fs::remove_file(dir.path().join(REALM_FILE)).unwrap();
        assert_eq!(TestCa::load(dir.path()).unwrap().realm(), &Realm::default());
    }

    #[test]
    fn issues_certificates_that_openssl_style_checks_accept() {
        let dir = tempfile::tempdir().unwrap();
        let now = super::super::time::parse("2026-11-25").unwrap();
        let ca = TestCa::init(dir.path(), now).unwrap();
        assert!(
            TestCa::init(dir.path(), now).is_err(),
            "never replaces a CA"
        );
        let ca = {
            drop(ca);
            TestCa::load(dir.path()).unwrap()
        };
        let key = p256::SecretKey::generate();
        let point = key.public_key().to_sec1_point(false);
        let card_key = CardKey {
            algorithm: applet::algorithm::Algorithm::P256,
            public: point.as_bytes().to_vec(),
        };
        let id = Identity {
            uuid: "555000111222".into(),
            name: "Ann O'Neil, RN".into(),
            role: Role::Sponsor,
            email: None,
            guid: [0x42; 16],
        };
        let der = ca
            .issue(&id, Purpose::Authentication, &card_key, now)
            .unwrap();
        let info = inspect(&ca, &der).unwrap();
        assert_eq!(info.uuid, "555000111222");
        assert_eq!(info.role, Some(Role::Sponsor));
        assert_eq!(info.not_after, now + CERT_DAYS * DAY);
        assert_eq!(info.key, card_key);
        let mut tampered = der.clone();
        let last = tampered.len() - 5;
        tampered[last] ^= 1;
        assert!(inspect(&ca, &tampered).is_err());
    }

    #[test]
    fn issues_for_every_key_type_and_reads_the_key_back() {
        use applet::algorithm::Algorithm;
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::init(dir.path(), 1_750_000_000).unwrap();
        let p384 = p384::SecretKey::from_slice(&[3; 48]).unwrap();
        let p384 =
            p384::elliptic_curve::sec1::ToSec1Point::to_sec1_point(&p384.public_key(), false);
        let mut modulus = vec![0xC5; 256];
        modulus[255] = 0x01;
        for key in [
            CardKey {
                algorithm: Algorithm::Rsa2048,
                public: modulus,
            },
            CardKey {
                algorithm: Algorithm::P384,
                public: p384.as_bytes().to_vec(),
            },
            CardKey {
                algorithm: Algorithm::Ed25519,
                public: vec![0x3B; 32],
            },
            CardKey {
                algorithm: Algorithm::X25519,
                public: vec![0x09; 32],
            },
        ] {
            let id = Identity {
                uuid: "555000111333".into(),
                name: "Bea".into(),
                role: Role::Holder,
                email: Some("bea@nhs.example".into()),
                guid: [7; 16],
            };
            let der = ca
                .issue(&id, Purpose::KeyManagement, &key, 1_750_000_000)
                .unwrap();
            assert_eq!(inspect(&ca, &der).unwrap().key, key, "{:?}", key.algorithm);
        }
    }
}
