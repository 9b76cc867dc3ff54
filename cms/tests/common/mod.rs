//! What several CMS tests share.
#![allow(dead_code)]

use client::{ClientError, Result, Transport};
use cms::ca::Role;
use cms::flows::{Cms, Request};
use cms::time;
use virtual_card::{Entropy, Make};

/// A CMS with its CA (created on 2026-11-25) and a factory-fresh Series 9
/// card image for it, in a directory of their own.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub cms: Cms,
    pub image: std::path::PathBuf,
    pub now: u64,
}

pub fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cms.db");
    let now = time::parse("2026-11-25").unwrap();
    Cms::init_ca(&db, now).unwrap();
    let image = dir.path().join("card.s9img");
    virtual_card::init(
        &image,
        Make::virtual_card(912_345_678, applet::Profile::Series9),
        Entropy::Seed(1),
    )
    .unwrap();
    Setup {
        cms: Cms::open(&db).unwrap(),
        image,
        now,
        dir,
    }
}

/// Ann's card request, P-256 unless changed.
pub fn request(uuid: &str) -> Request {
    Request {
        uuid: uuid.into(),
        name: "Ann Example".into(),
        email: Some("ann@nhs.example".into()),
        mobile: None,
        role: Role::Holder,
        passcode: String::from("482915").into(),
        serial: None,
        algorithm: applet::algorithm::Algorithm::P256,
        secure_messaging: None,
    }
}

/// A reader that loses the card after `left` APDUs: a card pulled out, or a
/// host gone, in the middle of a flow.
pub struct Flaky<'a, T: Transport> {
    pub inner: &'a mut T,
    pub left: usize,
}

impl<T: Transport> Transport for Flaky<'_, T> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>> {
        if self.left == 0 {
            return Err(ClientError::Transport("card removed".into()));
        }
        self.left -= 1;
        self.inner.transmit(apdu)
    }
}
