//! BER-TLV for the host: building a command's data and reading an answer,
//! over `apdu::tlv` so host and card read TLVs the same way.

use apdu::tlv::{Reader, Tag, Tlv, Writer};

use crate::{ClientError, Result};

/// `tag len value`, with the shortest BER length.
///
/// Tags are the caller's constants (`7C`, `5C`, `53`…); a byte that is not
/// a whole one-byte tag is a bug in the caller, not a card's doing.
pub fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let tag = Tag::new(u32::from(tag)).expect("a one-byte BER tag");
    let mut out = vec![0; value.len() + 5];
    let mut writer = Writer::new(&mut out);
    writer
        .tlv(tag, value)
        .expect("five bytes cover any header of a value this long");
    let len = writer.len();
    out.truncate(len);
    out
}

/// Every TLV at the top level of `data`, with its (multi-byte) tag.
pub fn tlvs(data: &[u8]) -> Result<Vec<(u32, &[u8])>> {
    Reader::new(data)
        .map(|t| {
            t.map(|t| (t.tag.value(), t.value))
                .map_err(|_| ClientError::Malformed("TLV"))
        })
        .collect()
}

/// The value of the TLV at the front of `data`, which must have `tag`
/// (whatever follows it is ignored, as tools ignore trailing bytes).
pub fn unwrap_tlv(data: &[u8], tag: u8) -> Result<&[u8]> {
    match Tlv::parse(data) {
        Ok((t, _)) if t.tag.value() == u32::from(tag) => Ok(t.value),
        _ => Err(ClientError::Malformed("TLV")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_take_the_shortest_form() {
        assert_eq!(tlv(0x80, &[]), [0x80, 0x00]);
        assert_eq!(tlv(0x53, &[7; 0x7F])[..2], [0x53, 0x7F]);
        assert_eq!(tlv(0x53, &[7; 0x80])[..3], [0x53, 0x81, 0x80]);
        assert_eq!(tlv(0x53, &[7; 0x100])[..4], [0x53, 0x82, 0x01, 0x00]);
        assert_eq!(tlv(0x53, &[7; 0x100]).len(), 0x104);
    }

    #[test]
    fn what_is_built_reads_back() {
        let data = [tlv(0x7C, &tlv(0x82, &[1, 2, 3])), tlv(0x5C, &[0x7E])].concat();
        let all = tlvs(&data).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1], (0x5C, &[0x7E][..]));
        let inner = unwrap_tlv(&data, 0x7C).unwrap();
        assert_eq!(unwrap_tlv(inner, 0x82).unwrap(), [1, 2, 3]);
    }

    #[test]
    fn a_wrong_tag_or_a_short_value_is_malformed() {
        assert!(unwrap_tlv(&[0x7C, 0x01, 0x00], 0x7D).is_err());
        assert!(unwrap_tlv(&[0x7C, 0x03, 0x00], 0x7C).is_err());
        assert!(unwrap_tlv(&[], 0x7C).is_err());
        assert!(tlvs(&[0x53, 0x82, 0x01]).is_err());
    }
}
