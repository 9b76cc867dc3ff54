//! The staff card at the relying parties integrators test against, each a
//! real server from Debian's packages started by the test on loopback,
//! through pcscd and OpenSC as a workstation would use the card: the
//! holder is accepted, and a wrong passcode, an expired certificate or a
//! removed card are refused by the relying party itself.

mod harness;
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
fn tls_refuses_an_expired_card() {
    tls::refuses_expired();
}
