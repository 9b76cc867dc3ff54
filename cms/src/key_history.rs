//! PIV key history (SP 800-73-4 Part 1, Key History object `5FC10C`): a
//! renewal keeps the key management key it replaces in the next retired
//! slot, so that mail encrypted to an earlier certificate stays readable.
//! Retired keys fill `82`, `83`, … in the order they were retired, each
//! with its certificate in the matching object (`5FC10D`, …), and the
//! object counts them: middleware such as OpenSC looks only at as many
//! retired slots as it says. Once all twenty are used, each renewal
//! replaces the oldest.

use client::{PivClient, Slot, Transport, tlvs};

use crate::{CmsError, Result};

/// The Key History object.
pub const KEY_HISTORY: u32 = 0x5FC10C;
/// Retired key management slots a card has (`82`-`95`).
pub const RETIRED_SLOTS: usize = 20;
const FIRST_RETIRED: u8 = 0x82;

const ON_CARD: u8 = 0xC1;
const OFF_CARD: u8 = 0xC2;
const URL: u8 = 0xF3;
const LRC: u8 = 0xFE;

/// The retired key management slots, `82` to `95`.
pub fn retired_slots() -> impl Iterator<Item = Slot> {
    (0..RETIRED_SLOTS as u8).filter_map(|n| Slot::from_byte(FIRST_RETIRED + n).ok())
}

/// What a Key History object says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyHistory {
    /// Retired keys whose certificates are on the card.
    pub on_card: u8,
    /// Retired keys whose certificates are kept elsewhere.
    pub off_card: u8,
    /// Where those are.
    pub url: Option<Vec<u8>>,
}

impl KeyHistory {
    /// Parses the object's content; a card without one has no history.
    pub fn parse(content: &[u8]) -> Result<KeyHistory> {
        let bad = || CmsError::Encoding("a malformed Key History object".into());
        let mut history = KeyHistory::default();
        for (tag, value) in tlvs(content).map_err(|_| bad())? {
            match (u8::try_from(tag).map_err(|_| bad())?, value) {
                (ON_CARD, [n]) => history.on_card = *n,
                (OFF_CARD, [n]) => history.off_card = *n,
                (URL, url) => history.url = Some(url.to_vec()),
                (LRC, _) => {}
                _ => return Err(bad()),
            }
        }
        Ok(history)
    }

    /// The object's content.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = client::tlv(ON_CARD, &[self.on_card]);
        out.extend(client::tlv(OFF_CARD, &[self.off_card]));
        if let Some(url) = &self.url {
            out.extend(client::tlv(URL, url));
        }
        out.extend(client::tlv(LRC, &[]));
        out
    }

    /// The card's key history (none if it has no object).
    pub fn read<T: Transport>(card: &mut PivClient<T>) -> Result<KeyHistory> {
        match card.get_object(KEY_HISTORY)? {
            Some(content) => KeyHistory::parse(&content),
            None => Ok(KeyHistory::default()),
        }
    }

    /// Where the next retired key goes, and the history that counts it;
    /// [`CmsError::KeyHistoryFull`] once all twenty slots are used (a
    /// renewal then replaces the oldest).
    /// Keys with off-card certificates follow the on-card ones in the
    /// slots, so another on-card key has no place after them: such a
    /// card (another issuer's history) is refused rather than renumbered.
    pub fn retire(&self) -> Result<(Slot, KeyHistory)> {
        if self.off_card != 0 {
            return Err(CmsError::Encoding(
                "the card's key history has certificates kept off the card; this CMS keeps them on it".into(),
            ));
        }
        let used = usize::from(self.on_card);
        let slot = u8::try_from(used)
            .ok()
            .filter(|&n| usize::from(n) < RETIRED_SLOTS)
            .and_then(|n| Slot::from_byte(FIRST_RETIRED + n).ok())
            .ok_or(CmsError::KeyHistoryFull(used))?;
        let next = KeyHistory {
            on_card: self.on_card + 1,
            ..self.clone()
        };
        Ok((slot, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_without_history_retires_into_82() {
        let (slot, next) = KeyHistory::default().retire().unwrap();
        assert_eq!(slot.byte(), 0x82);
        assert_eq!(next.encode(), [0xC1, 1, 1, 0xC2, 1, 0, 0xFE, 0]);
    }

    #[test]
    fn retired_keys_fill_the_slots_in_order_and_keep_the_url() {
        let content = [
            0xC1, 1, 2, 0xC2, 1, 0, 0xF3, 4, b'h', b't', b't', b'p', 0xFE, 0,
        ];
        let history = KeyHistory::parse(&content).unwrap();
        assert_eq!(history.url.as_deref(), Some(&b"http"[..]));
        assert_eq!(history.encode(), content);
        let (slot, next) = history.retire().unwrap();
        assert_eq!(slot.byte(), 0x84);
        assert_eq!((next.on_card, next.off_card), (3, 0));
    }

    #[test]
    fn a_history_with_off_card_certificates_is_not_extended() {
        let history = KeyHistory {
            on_card: 1,
            off_card: 1,
            url: None,
        };
        assert!(matches!(history.retire(), Err(CmsError::Encoding(_))));
    }

    #[test]
    fn twenty_retired_keys_are_all_a_card_keeps() {
        let history = KeyHistory {
            on_card: 19,
            ..KeyHistory::default()
        };
        assert_eq!(history.retire().unwrap().0.byte(), 0x95);
        let full = KeyHistory {
            on_card: 20,
            ..KeyHistory::default()
        };
        assert!(matches!(full.retire(), Err(CmsError::KeyHistoryFull(20))));
    }

    #[test]
    fn a_malformed_object_is_refused() {
        assert!(KeyHistory::parse(&[0xC1, 2, 0, 0]).is_err());
        assert!(KeyHistory::parse(&[0xC1, 5]).is_err());
        assert!(KeyHistory::parse(&[0x99, 0]).is_err());
    }
}
