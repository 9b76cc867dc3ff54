//! Replays the hand-written vectors in `tests/data/vectors.txt`.

use apdu::tlv::Reader;
use apdu::{Command, Error, LengthForm, Response};

fn hex(text: &str) -> Vec<u8> {
    let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if digits == "-" {
        return Vec::new();
    }
    hex::decode(&digits).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn error_name(e: Error) -> String {
    format!("{e:?}")
}

fn check_command(name: &str, bytes: &[u8], expected: &str) {
    match Command::parse(bytes) {
        Err(e) => assert_eq!(format!("err={}", error_name(e)), expected, "{name}"),
        Ok(cmd) => {
            let ne = cmd.expected().map_or("-".to_string(), |n| n.to_string());
            let form = match cmd.form() {
                LengthForm::Short => "short",
                LengthForm::Extended => "extended",
            };
            let got = format!(
                "case={} nc={} ne={} form={}",
                cmd.case(),
                cmd.data().len(),
                ne,
                form
            );
            assert_eq!(got, expected, "{name}");
            let mut out = vec![0u8; cmd.encoded_len()];
            assert_eq!(cmd.write_to(&mut out), Ok(bytes.len()), "{name}");
            assert_eq!(out, bytes, "{name}: re-encoding differs");
        }
    }
}

fn check_response(name: &str, bytes: &[u8], expected: &str) {
    match Response::parse(bytes) {
        Err(e) => assert_eq!(format!("err={}", error_name(e)), expected, "{name}"),
        Ok(rsp) => {
            let got = format!("len={} sw={:04X}", rsp.data().len(), rsp.sw());
            assert_eq!(got, expected, "{name}");
            let mut out = vec![0u8; bytes.len()];
            assert_eq!(rsp.write_to(&mut out), Ok(bytes.len()));
            assert_eq!(out, bytes, "{name}: re-encoding differs");
        }
    }
}

fn check_tlv(name: &str, bytes: &[u8], expected: &str) {
    let mut tags = Vec::new();
    for tlv in Reader::new(bytes) {
        match tlv {
            Ok(tlv) => tags.push(format!("{:X}", tlv.tag.value())),
            Err(e) => {
                assert_eq!(format!("err={}", error_name(e)), expected, "{name}");
                return;
            }
        }
    }
    assert_eq!(format!("tags={}", tags.join(",")), expected, "{name}");
}

#[test]
fn hand_written_vectors() {
    let text = include_str!("data/vectors.txt");
    let mut counts = [0usize; 3];
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('|').map(str::trim).collect();
        let [kind, name, bytes, expected] = fields[..] else {
            panic!("malformed vector line: {line}");
        };
        let bytes = hex(bytes);
        match kind {
            "cmd" => {
                check_command(name, &bytes, expected);
                counts[0] += 1;
            }
            "rsp" => {
                check_response(name, &bytes, expected);
                counts[1] += 1;
            }
            "tlv" => {
                check_tlv(name, &bytes, expected);
                counts[2] += 1;
            }
            other => panic!("unknown vector kind {other}"),
        }
    }
    assert!(
        counts.iter().all(|&n| n >= 5),
        "vector file lost entries: {counts:?}"
    );
}
