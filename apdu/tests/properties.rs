//! Property tests: no input makes the codec panic, and writing then parsing
//! gives back exactly what was written.

use apdu::tlv::{self, Reader, Tag, Writer};
use apdu::{Command, Header, LengthForm, Response, Status};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn any_bytes_parse_without_panic_and_reencode_exactly(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(cmd) = Command::parse(&bytes) {
            let mut out = vec![0u8; cmd.encoded_len()];
            prop_assert_eq!(cmd.write_to(&mut out), Ok(bytes.len()));
            prop_assert_eq!(out, bytes.clone());
            // The data field is where `data_offset` says.
            let at = cmd.data_offset();
            prop_assert_eq!(&bytes[at..at + cmd.data().len()], cmd.data());
        }
        if let Ok(rsp) = Response::parse(&bytes) {
            let mut out = vec![0u8; rsp.encoded_len()];
            prop_assert_eq!(rsp.write_to(&mut out), Ok(bytes.len()));
            prop_assert_eq!(out, bytes.clone());
        }
        for t in Reader::new(&bytes).flatten() {
            // Walking into every value must be just as safe.
            for inner in t.children() { let _ = inner; }
        }
    }

    #[test]
    fn generated_commands_round_trip(
        header in any::<[u8; 4]>(),
        data in proptest::collection::vec(any::<u8>(), 0..700),
        ne in proptest::option::of(1u32..=65_536),
        extended in any::<bool>(),
    ) {
        let header = Header::new(header[0], header[1], header[2], header[3]);
        let form = if extended { LengthForm::Extended } else { LengthForm::Short };
        match Command::with_form(header, &data, ne, form) {
            Ok(cmd) => {
                let mut out = vec![0u8; cmd.encoded_len()];
                let n = cmd.write_to(&mut out).unwrap();
                prop_assert_eq!(n, out.len());
                prop_assert_eq!(Command::parse(&out), Ok(cmd));
                // One byte short of room is refused, never a partial write.
                if n > 0 {
                    let mut small = vec![0u8; n - 1];
                    prop_assert!(cmd.write_to(&mut small).is_err());
                }
            }
            Err(_) => {
                // Only lengths the form cannot carry are refused.
                prop_assert!(!extended);
                prop_assert!(data.len() > 255 || ne.is_some_and(|n| n > 256));
                prop_assert!(Command::new(header, &data, ne).is_ok());
            }
        }
    }

    #[test]
    fn generated_responses_round_trip(data in proptest::collection::vec(any::<u8>(), 0..600), sw in any::<u16>()) {
        let rsp = Response::with_sw(&data, sw);
        let mut out = vec![0u8; rsp.encoded_len()];
        rsp.write_to(&mut out).unwrap();
        let back = Response::parse(&out).unwrap();
        prop_assert_eq!(back.data(), &data[..]);
        prop_assert_eq!(back.sw(), sw);
        if let Some(status) = Status::from_sw(sw) {
            prop_assert_eq!(status.sw(), sw);
        }
    }

    #[test]
    fn generated_tlv_trees_round_trip(trees in proptest::collection::vec(node(), 0..6)) {
        let mut buf = vec![0u8; 1 << 16];
        let mut w = Writer::new(&mut buf);
        for t in &trees {
            write_node(&mut w, t).unwrap();
        }
        let written = w.written().to_vec();
        let expected_len: usize = trees.iter().map(Node::encoded_len).sum();
        prop_assert_eq!(written.len(), expected_len);
        prop_assert_eq!(read_nodes(&written), trees);
    }
}

/// A generated TLV tree. Constructed tags hold children, others bytes.
#[derive(Clone, Debug, PartialEq)]
enum Node {
    Leaf(Tag, Vec<u8>),
    Branch(Tag, Vec<Node>),
}

impl Node {
    fn content_len(&self) -> usize {
        match self {
            Node::Leaf(_, v) => v.len(),
            Node::Branch(_, kids) => kids.iter().map(Node::encoded_len).sum(),
        }
    }

    fn encoded_len(&self) -> usize {
        let tag = match self {
            Node::Leaf(t, _) | Node::Branch(t, _) => *t,
        };
        tlv::encoded_len(tag, self.content_len())
    }
}

fn tag(constructed: bool) -> impl Strategy<Value = Tag> {
    let class_bits = prop_oneof![Just(0x00u32), Just(0x40), Just(0x80), Just(0xC0)];
    let form = if constructed { 0x20 } else { 0x00 };
    (class_bits, 0u32..3, 1u32..0x1F, 0u32..0x80, 0u32..0x80).prop_map(
        move |(class, width, low, b2, b3)| {
            // `FF` is padding, never a tag: a private constructed multi-byte tag
            // would start with it, so that class is moved to application.
            let class = if class == 0xC0 && constructed && width > 0 {
                0x40
            } else {
                class
            };
            let first = class | form;
            let value = match width {
                0 => first | low.min(0x1E),
                1 => ((first | 0x1F) << 8) | b2,
                _ => ((first | 0x1F) << 16) | ((b2 | 0x80) << 8) | b3,
            };
            Tag::new(value).expect("generated tags are valid")
        },
    )
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = (tag(false), proptest::collection::vec(any::<u8>(), 0..300))
        .prop_map(|(t, v)| Node::Leaf(t, v));
    leaf.prop_recursive(3, 24, 4, |inner| {
        (tag(true), proptest::collection::vec(inner, 0..4))
            .prop_map(|(t, kids)| Node::Branch(t, kids))
    })
}

fn write_node(w: &mut Writer<'_>, n: &Node) -> Result<(), apdu::Error> {
    match n {
        Node::Leaf(t, v) => w.tlv(*t, v),
        Node::Branch(t, kids) => w.nested(*t, |w| {
            for k in kids {
                write_node(w, k)?;
            }
            Ok(())
        }),
    }
}

fn read_nodes(bytes: &[u8]) -> Vec<Node> {
    Reader::new(bytes)
        .map(|t| {
            let t = t.expect("written TLVs parse");
            if t.tag.is_constructed() {
                Node::Branch(t.tag, read_nodes(t.value))
            } else {
                Node::Leaf(t.tag, t.value.to_vec())
            }
        })
        .collect()
}

#[test]
fn tag_validation() {
    for ok in [0x53, 0x7F49, 0x5FC105, 0x5C, 0x7E, 0x5F2F] {
        assert!(Tag::new(ok).is_some(), "{ok:X}");
    }
    for bad in [
        0x00,
        0xFF,
        0x1F,
        0x5F81,
        0x5FC1,
        0x53_01,
        0x5FC1_8101,
        0x01_0000,
    ] {
        assert!(Tag::new(bad).is_none(), "{bad:X}");
    }
    assert!(Tag::constant(0x7F49).is_constructed());
    assert!(!Tag::constant(0x53).is_constructed());
}

#[test]
fn nested_writer_uses_minimal_lengths_and_reports_full_buffers() {
    let mut buf = [0u8; 300];
    let mut w = Writer::new(&mut buf);
    w.nested(Tag::constant(0x7C), |w| {
        w.tlv(Tag::constant(0x82), &[0xAB; 200])
    })
    .unwrap();
    assert_eq!(&w.written()[..6], &[0x7C, 0x81, 0xCB, 0x82, 0x81, 0xC8]);
    assert_eq!(w.len(), 3 + 3 + 200);

    let mut small = [0u8; 8];
    let mut w = Writer::new(&mut small);
    assert_eq!(
        w.tlv(Tag::constant(0x53), &[0; 7]),
        Err(apdu::Error::BufferTooSmall)
    );
    assert_eq!(
        w.nested(Tag::constant(0x7C), |w| w.tlv(Tag::constant(0x82), &[0; 8])),
        Err(apdu::Error::BufferTooSmall)
    );
    assert!(w.is_empty(), "a failed write leaves nothing behind");
}

/// A failure takes a TLV back from `len`, but the bytes it wrote stay in
/// the buffer until wiped: `high_water` says how far they reach.
#[test]
fn high_water_covers_what_failures_took_back() {
    let mut buf = [0u8; 64];
    let mut w = Writer::new(&mut buf);
    w.tlv(Tag::constant(0x53), &[1; 4]).unwrap();
    let taken_back = w.nested(Tag::constant(0x7C), |w| {
        w.tlv(Tag::constant(0x82), &[0xEE; 20])?;
        Err(apdu::Error::TlvInvalidLength)
    });
    assert_eq!(taken_back, Err(apdu::Error::TlvInvalidLength));
    assert_eq!(w.len(), 6);
    assert!(w.high_water() >= 6 + 1 + 4 + 2 + 20, "{}", w.high_water());
    assert!(buf[6..].contains(&0xEE), "the bytes are still there");
}
