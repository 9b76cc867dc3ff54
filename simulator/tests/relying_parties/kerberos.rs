//! Kerberos smartcard logon (PKINIT, RFC 4556), the protocol of Active
//! Directory's: an MIT KDC (Debian's krb5-kdc and krb5-pkinit) on
//! loopback with a realm the test creates, its certificate from the CMS's
//! CA; `kinit` with `X509_user_identity=PKCS11:…` gets a ticket-granting
//! ticket with the card, the passcode typed on its standard input.
//!
//! RSA holders only: MIT krb5 1.20 (Debian 12) signs PKINIT requests on a
//! PKCS#11 token with `CKM_RSA_PKCS` alone, so its client cannot use an EC
//! card key (kinit fails at the token's signature, before the KDC sees
//! the request).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::harness::*;
use crate::support::*;

/// The test realm: not the CMS's default, so that the CA's `--realm` is
/// what puts it in the holders' certificates.
pub const REALM: &str = "NHS.EXAMPLE";

/// A KDC for [`REALM`] on loopback, trusting `issuer`'s root for PKINIT,
/// with the principals `principals` (no keys: the card is their only way
/// in).
pub struct Kdc {
    pub service: Service,
    pub dir: PathBuf,
}

/// The KDC's certificate: EKU id-pkinit-KPKdc and the krbtgt principal in
/// subjectAltName, as PKINIT clients check (MIT's PKINIT documentation
/// gives this OpenSSL recipe).
fn kdc_certificate(dir: &Path, issuer: &Issuer) -> (PathBuf, PathBuf) {
    server_certificate(
        dir,
        issuer,
        "kdc",
        "kdc.nhs.example",
        &format!(
            "basicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment,keyAgreement\n\
             extendedKeyUsage=1.3.6.1.5.2.3.5\n\
             subjectAltName=otherName:1.3.6.1.5.2.2;SEQUENCE:kdc_principal\n\
             [kdc_principal]\nrealm=EXP:0,GeneralString:{REALM}\n\
             principal_name=EXP:1,SEQUENCE:kdc_name\n\
             [kdc_name]\nname_type=EXP:0,INTEGER:2\nname_string=EXP:1,SEQUENCE:kdc_parts\n\
             [kdc_parts]\npart1=GeneralString:krbtgt\npart2=GeneralString:{REALM}\n"
        ),
    )
}

impl Kdc {
    /// With `crl`, the KDC checks client certificates against it.
    pub fn start(h: &Harness, issuer: &Issuer, principals: &[&str], crl: Option<&Path>) -> Kdc {
        let dir = h.path("kdc");
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = kdc_certificate(&dir, issuer);
        let port = free_port();
        std::fs::write(
            dir.join("krb5.conf"),
            format!(
                "[libdefaults]\n default_realm = {REALM}\n dns_lookup_kdc = false\n\
                 dns_lookup_realm = false\n rdns = false\n udp_preference_limit = 1\n\
                 [realms]\n {REALM} = {{\n  kdc = 127.0.0.1:{port}\n  pkinit_anchors = FILE:{}\n }}\n",
                s(&issuer.root)
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("kdc.conf"),
            format!(
                "[logging]\n kdc = STDERR\n[kdcdefaults]\n kdc_listen = 127.0.0.1:{port}\n kdc_tcp_listen = 127.0.0.1:{port}\n\
                 [realms]\n {REALM} = {{\n  database_name = {db}\n  key_stash_file = {stash}\n\
                 \x20 acl_file = {acl}\n  pkinit_identity = FILE:{cert},{key}\n\
                 \x20 pkinit_anchors = FILE:{root}\n{revoke} }}\n",
                db = s(&dir.join("principal")),
                stash = s(&dir.join("stash")),
                acl = s(&dir.join("kadm5.acl")),
                cert = s(&cert),
                key = s(&key),
                root = s(&issuer.root),
                revoke = crl
                    .map(|c| format!(
                        "  pkinit_revoke = FILE:{}\n  pkinit_require_crl_checking = true\n",
                        s(c)
                    ))
                    .unwrap_or_default(),
            ),
        )
        .unwrap();
        std::fs::write(dir.join("kadm5.acl"), "").unwrap();
        let master = format!("{:x}", std::process::id() as u64 * 0x9E37_79B9);
        kdc_tool(
            &dir,
            "kdb5_util",
            &["-r", REALM, "create", "-s", "-P", &master],
        );
        for p in principals {
            kdc_tool(
                &dir,
                "kadmin.local",
                &[
                    "-r",
                    REALM,
                    "-q",
                    &format!("addprinc -nokey +requires_preauth {p}"),
                ],
            );
        }
        let mut krb5kdc = Command::new("krb5kdc");
        krb5kdc.args(["-n", "-r", REALM]).envs(env(&dir));
        let service = Service::start("krb5kdc", port, dir.join("krb5kdc.log"), &mut krb5kdc);
        Kdc { service, dir }
    }

    /// `kinit` as `principal` with the card in the PKCS#11 slot `slot`
    /// (its `9A` certificate, id 01), `passcode` typed on standard input.
    pub fn kinit(
        &self,
        h: &Harness,
        principal: &str,
        slot: &str,
        passcode: &str,
    ) -> (bool, String) {
        use std::io::Write;
        let identity =
            format!("X509_user_identity=PKCS11:module_name={PKCS11}:slotid={slot}:certid=01");
        let mut kinit = h
            .command("kinit")
            .args(["-X", &identity, &format!("{principal}@{REALM}")])
            .envs(env(&self.dir))
            .env(
                "KRB5CCNAME",
                format!("FILE:{}", s(&self.dir.join("ccache"))),
            )
            .env("KRB5_TRACE", "/dev/stderr")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kinit (is krb5-user installed? see scripts/setup)");
        let _ = writeln!(kinit.stdin.take().unwrap(), "{passcode}");
        let out = kinit.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// The ticket cache, as `klist` lists it.
    pub fn klist(&self) -> String {
        let mut klist = Command::new("klist");
        klist.envs(env(&self.dir)).env(
            "KRB5CCNAME",
            format!("FILE:{}", s(&self.dir.join("ccache"))),
        );
        outcome(&mut klist).1
    }

    /// What the KDC logged.
    pub fn log(&self) -> String {
        self.service.output()
    }
}

fn env(dir: &Path) -> Vec<(String, String)> {
    vec![
        ("KRB5_CONFIG".into(), s(&dir.join("krb5.conf")).into()),
        ("KRB5_KDC_PROFILE".into(), s(&dir.join("kdc.conf")).into()),
    ]
}

fn kdc_tool(dir: &Path, program: &str, args: &[&str]) {
    let mut command = Command::new(program);
    command.args(args).envs(env(dir));
    let (ok, text) = outcome(&mut command);
    assert!(ok, "{program} {args:?}:\n{text}");
}

/// The PKCS#11 slot id (decimal) of the card in the harness's first
/// reader, as kinit sees it.
pub fn slot_id(h: &Harness) -> String {
    own_token(h).0
}

/// A holder gets a TGT with her card; a wrong passcode gets none and
/// costs a try.
pub fn logs_on(algorithm: &str) {
    let h = Harness::start(1);
    let issuer = Issuer::in_realm(&h, REALM);
    let uuid = "555000501001";
    issuer.personalise(&h, 0, uuid, algorithm, None);
    let kdc = Kdc::start(&h, &issuer, &[uuid], None);
    let slot = slot_id(&h);

    let before = tries_left(&h);
    let (ok, text) = kdc.kinit(&h, uuid, &slot, "000000");
    assert!(!ok, "a wrong passcode got a ticket:\n{text}");
    assert_eq!(tries_left(&h), before - 1, "{text}");

    let (ok, text) = kdc.kinit(&h, uuid, &slot, PASSCODE);
    assert!(ok, "{text}\nKDC:\n{}", kdc.log());
    let tickets = kdc.klist();
    assert!(
        tickets.contains(&format!("krbtgt/{REALM}@{REALM}")),
        "{tickets}"
    );
    assert!(
        kdc.log()
            .contains(&format!("{uuid}@{REALM} for krbtgt/{REALM}@{REALM}")),
        "{}",
        kdc.log()
    );
}

/// A card whose certificate expired gets no ticket. MIT's client checks
/// its own certificate's chain before it sends anything, so the refusal
/// is kinit's (the KDC runs the same OpenSSL check on what it receives).
pub fn refuses_expired() {
    let h = Harness::start(1);
    let issuer = Issuer::in_realm(&h, REALM);
    let uuid = "555000501002";
    issuer.personalise(&h, 0, uuid, "rsa2048", Some("2022-01-10"));
    let kdc = Kdc::start(&h, &issuer, &[uuid], None);
    let (ok, text) = kdc.kinit(&h, uuid, &slot_id(&h), PASSCODE);
    assert!(!ok, "an expired certificate got a ticket:\n{text}");
    assert!(text.contains("certificate has expired"), "{text}");
    assert!(!kdc.klist().contains("krbtgt"));
}

/// A card reported lost gets no ticket from a KDC that has the CA's CRL.
pub fn refuses_revoked() {
    let h = Harness::start(1);
    let issuer = Issuer::in_realm(&h, REALM);
    let uuid = "555000501004";
    let serial = issuer.personalise(&h, 0, uuid, "rsa2048", None);
    let slot = slot_id(&h);
    let crl = issuer.revoke(&h, &serial);
    let kdc = Kdc::start(&h, &issuer, &[uuid], Some(&crl));
    let (ok, text) = kdc.kinit(&h, uuid, &slot, PASSCODE);
    assert!(!ok, "a revoked certificate got a ticket:\n{text}");
    assert!(kdc.log().contains("revoked"), "{}", kdc.log());
}

/// A certificate from the same CA naming the same principal, but without
/// the PKINIT client or smartcard-logon EKU, gets no ticket: the KDC
/// refuses it. The card is set up by hand (factory management key,
/// yubico-piv-tool), its certificate issued with OpenSSL.
pub fn refuses_a_certificate_without_the_logon_eku() {
    let h = Harness::start(1);
    let issuer = Issuer::in_realm(&h, REALM);
    let uuid = "555000501003";
    let public = h.path("9a.pub.pem");
    yubico(
        &h,
        &[
            "-a",
            "generate",
            "-s",
            "9a",
            "-A",
            "RSA2048",
            "-o",
            s(&public),
        ],
    );
    let ext = h.path("client.ext");
    std::fs::write(
        &ext,
        format!(
            "[client]\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n\
             extendedKeyUsage=clientAuth\n\
             subjectAltName=otherName:1.3.6.1.5.2.2;SEQUENCE:principal\n\
             [principal]\nrealm=EXP:0,GeneralString:{REALM}\n\
             principal_name=EXP:1,SEQUENCE:name\n\
             [name]\nname_type=EXP:0,INTEGER:1\nname_string=EXP:1,SEQUENCE:parts\n\
             [parts]\npart1=GeneralString:{uuid}\n"
        ),
    )
    .unwrap();
    let cert = h.path("9a.pem");
    ok(
        "openssl",
        &[
            "x509",
            "-new",
            "-force_pubkey",
            s(&public),
            "-subj",
            &format!("/UID={uuid}/CN=Ann"),
            "-CA",
            s(&issuer.root),
            "-CAkey",
            s(&issuer.ca_key),
            "-days",
            "2",
            "-extfile",
            s(&ext),
            "-extensions",
            "client",
            "-out",
            s(&cert),
        ],
    );
    yubico(
        &h,
        &["-a", "import-certificate", "-s", "9a", "-i", s(&cert)],
    );
    yubico(&h, &["-a", "change-pin", "-P", "123456", "-N", PASSCODE]);
    let kdc = Kdc::start(&h, &issuer, &[uuid], None);
    let (ok, text) = kdc.kinit(&h, uuid, &slot_id(&h), PASSCODE);
    assert!(
        !ok,
        "a certificate without the logon EKU got a ticket:\n{text}"
    );
    assert!(
        kdc.log()
            .contains("preauth (pkinit) verify failure: Inconsistent key purpose"),
        "{}\nkinit:\n{text}",
        kdc.log()
    );
}
