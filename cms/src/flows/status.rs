//! What `s9card status` reads from a card and shows.

use crate::Result;
use crate::ca::{self, CertInfo, Role, TestCa};
use crate::time::{self, DAY};
use client::{PivClient, Transport, unwrap_tlv};

/// What `s9card status` shows.
#[derive(Clone, Debug)]
pub struct Status {
    /// Serial.
    pub serial: u32,
    /// Virtual or physical.
    pub is_virtual: bool,
    /// The holder, from the authentication certificate.
    pub certificate: Option<CertInfo>,
    /// PIN tries (left, allowed).
    pub pin: (u8, u8),
    /// PUK tries (left, allowed).
    pub puk: (u8, u8),
}

/// Reads a card's status; `ca` checks the certificate if given.
pub fn status<T: Transport>(card: &mut PivClient<T>, ca: Option<&TestCa>) -> Result<Status> {
    card.select()?;
    let info = card.card_info()?;
    let certificate = match (card.get_object(0x5FC105)?, ca) {
        (Some(object), Some(ca)) => Some(ca::inspect(ca, unwrap_tlv(&object, 0x70)?)?),
        _ => None,
    };
    Ok(Status {
        serial: info.serial,
        is_virtual: info.is_virtual,
        certificate,
        pin: card.tries(0x80)?,
        puk: card.tries(0x81)?,
    })
}

impl Status {
    /// The lines `s9card status` prints.
    pub fn render(&self, now: u64) -> String {
        let mut out = format!(
            "serial        {:010}\ncard          {}\n",
            self.serial,
            if self.is_virtual {
                "virtual"
            } else {
                "physical"
            }
        );
        match &self.certificate {
            Some(c) => {
                let days = (c.not_after as i64 - now as i64).div_euclid(DAY as i64);
                out += &format!(
                    "holder        {} ({})\n",
                    c.uuid,
                    c.role.map_or("unknown role", Role::as_str)
                );
                out += &format!(
                    "certificates  expire {} ({} days left)\n",
                    time::date(c.not_after),
                    days
                );
            }
            None => out += "holder        none (not personalised)\n",
        }
        out += &format!(
            "passcode      {} of {} tries left{}\n",
            self.pin.0,
            self.pin.1,
            if self.pin.0 == 0 { " (LOCKED)" } else { "" }
        );
        out += &format!(
            "PUK           {} of {} tries left{}\n",
            self.puk.0,
            self.puk.1,
            if self.puk.0 == 0 {
                " (BLOCKED: re-issue needed)"
            } else {
                ""
            }
        );
        out
    }
}
