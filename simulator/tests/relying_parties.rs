//! The staff card at the relying parties integrators test against, each a
//! real server from Debian's packages started by the test on loopback,
//! through pcscd and OpenSC as a workstation would use the card: the
//! holder is accepted, and a wrong passcode, an expired certificate or a
//! removed card are refused by the relying party itself.

#[path = "relying_parties/browser.rs"]
mod browser;
mod harness;
#[path = "relying_parties/kerberos.rs"]
mod kerberos;
#[path = "relying_parties/pam.rs"]
mod pam;
#[path = "relying_parties/smime.rs"]
mod smime;
#[path = "relying_parties/ssh.rs"]
mod ssh;
#[path = "relying_parties/support.rs"]
mod support;
#[path = "relying_parties/tls.rs"]
mod tls;

#[test]
fn ssh_login_with_a_p256_card() {
    ssh::logs_in("p256");
}

#[test]
fn ssh_login_with_an_rsa_card() {
    ssh::logs_in("rsa2048");
}

#[test]
fn tls_client_authentication_with_a_p256_card() {
    tls::authenticates("p256");
}

#[test]
fn tls_client_authentication_with_an_rsa_card() {
    tls::authenticates("rsa2048");
}

#[test]
fn a_browser_logs_in_with_the_card_and_not_without_it() {
    browser::logs_in();
}

#[test]
fn the_kiosk_module_logs_in_with_its_passcode_file_only() {
    browser::kiosk_module_rules();
}

#[test]
fn tls_refuses_an_expired_card() {
    tls::refuses_expired();
}

#[test]
fn smime_signs_and_decrypts_with_a_p256_card() {
    smime::signs_and_decrypts("p256");
}

#[test]
fn smime_signs_and_decrypts_with_an_rsa_card() {
    smime::signs_and_decrypts("rsa2048");
}

#[test]
fn mail_to_a_renewed_key_management_key_stays_readable() {
    smime::mail_to_a_renewed_key_stays_readable();
}

#[test]
fn the_signature_key_needs_the_passcode_for_every_signature() {
    smime::signature_needs_the_passcode_each_time();
}

#[test]
fn kerberos_logon_with_an_rsa_card() {
    kerberos::logs_on("rsa2048");
}

#[test]
fn kerberos_refuses_an_expired_card() {
    kerberos::refuses_expired();
}

#[test]
fn tls_refuses_a_revoked_card() {
    tls::refuses_revoked();
}

#[test]
fn kerberos_refuses_a_revoked_card() {
    kerberos::refuses_revoked();
}

#[test]
fn workstation_login_with_the_card() {
    pam::logs_in();
}

#[test]
fn workstation_refuses_a_revoked_card() {
    pam::refuses_revoked();
}

#[test]
fn workstation_locks_when_the_card_is_pulled() {
    pam::locks_on_removal();
}

#[test]
fn kerberos_refuses_a_certificate_without_the_logon_eku() {
    kerberos::refuses_a_certificate_without_the_logon_eku();
}
