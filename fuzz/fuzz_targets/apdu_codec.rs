//! Any bytes: command, response and TLV parsing never panic, and whatever
//! parses re-encodes to the same bytes (TLVs: to the same tree).
#![no_main]

use apdu::tlv::{Reader, Writer};
use apdu::{Command, Response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cmd) = Command::parse(data) {
        let mut out = vec![0u8; cmd.encoded_len()];
        assert_eq!(cmd.write_to(&mut out), Ok(data.len()));
        assert_eq!(out, data);
    }
    if let Ok(rsp) = Response::parse(data) {
        let mut out = vec![0u8; rsp.encoded_len()];
        assert_eq!(rsp.write_to(&mut out), Ok(data.len()));
        assert_eq!(out, data);
    }
    let tlvs: Vec<_> = Reader::new(data).collect();
    if tlvs.iter().all(Result::is_ok) {
        let mut buf = vec![0u8; data.len() * 2 + 16];
        let mut w = Writer::new(&mut buf);
        for t in tlvs.iter().flatten() {
            w.tlv(t.tag, t.value).unwrap();
        }
        let again: Vec<_> = Reader::new(w.written()).map(Result::unwrap).collect();
        let first: Vec<_> = tlvs.into_iter().map(Result::unwrap).collect();
        assert_eq!(again, first);
    }
});
