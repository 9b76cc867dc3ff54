//! The object identifiers relying parties look for in what the CMS issues,
//! in one table: FIPS 201-3 Appendix B's PIV identifiers, Kerberos PKINIT's
//! (RFC 4556), Microsoft's for Active Directory smartcard logon, and ICAO
//! 9303's for the Security Object. The IETF's own come from `const-oid`.

use const_oid::ObjectIdentifier as Oid;

/// CHUID signatures: the content is the CHUID without its signature.
pub const PIV_CHUID_SECURITY_OBJECT: Oid = Oid::new_unwrap("2.16.840.1.101.3.6.1");
/// Signed attribute: the subject name of the CHUID's signer.
pub const PIV_SIGNER_DN: Oid = Oid::new_unwrap("2.16.840.1.101.3.6.5");
/// subjectAltName otherName: the card's FASC-N (OCTET STRING).
pub const PIV_FASC_N: Oid = Oid::new_unwrap("2.16.840.1.101.3.6.6");
/// Extended key usage: signs CHUIDs and the Security Object.
pub const PIV_CONTENT_SIGNING: Oid = Oid::new_unwrap("2.16.840.1.101.3.6.7");
/// Extended key usage: the Card Authentication key (9E).
pub const PIV_CARD_AUTH: Oid = Oid::new_unwrap("2.16.840.1.101.3.6.8");

/// Extended key usage: a Kerberos client's PKINIT certificate.
pub const PKINIT_CLIENT_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.2.3.4");
/// Extended key usage: a KDC's PKINIT certificate.
pub const PKINIT_KDC: Oid = Oid::new_unwrap("1.3.6.1.5.2.3.5");
/// subjectAltName otherName: a Kerberos principal (KRB5PrincipalName).
pub const PKINIT_SAN: Oid = Oid::new_unwrap("1.3.6.1.5.2.2");

/// Extended key usage: Windows smartcard logon.
pub const MS_SMARTCARD_LOGON: Oid = Oid::new_unwrap("1.3.6.1.4.1.311.20.2.2");
/// subjectAltName otherName: the Active Directory user principal name.
pub const MS_UPN: Oid = Oid::new_unwrap("1.3.6.1.4.1.311.20.2.3");

/// The Security Object's content: ICAO 9303's LDSSecurityObject.
pub const LDS_SECURITY_OBJECT: Oid = Oid::new_unwrap("2.23.136.1.1.1");
