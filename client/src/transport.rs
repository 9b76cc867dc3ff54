//! What carries APDUs: a card in this process, or (feature `pcsc`) a card
//! in a PC/SC reader.

use crate::{ClientError, Result};

/// Anything that carries APDUs to a card.
pub trait Transport {
    /// Sends a command APDU, returns the response APDU.
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>>;

    /// Runs `exchange` with the card held for this application: the APDUs
    /// of one command (its chain, its GET RESPONSE parts) reach the card
    /// with no other application's between them, which would end the
    /// chain or take the rest of the answer. Over PC/SC that is a
    /// transaction; a card only this process reaches needs none.
    fn held(
        &mut self,
        exchange: &mut dyn FnMut(&mut dyn Transport) -> Result<Answer>,
    ) -> Result<Answer>
    where
        Self: Sized,
    {
        exchange(self)
    }
}

/// A command's answer: its data (every part joined) and its final status
/// word.
pub type Answer = (Vec<u8>, u16);

/// A card in this process (unit tests, benches, card images).
impl<F, R, A, const K: usize> Transport for card_os::Card<F, R, A, K>
where
    F: embedded_storage::nor_flash::NorFlash,
    R: rand_core::CryptoRng,
    A: card_os::Applets,
{
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>> {
        card_os::Card::transmit(self, apdu)
            .map(|r| r.to_vec())
            .map_err(|e| ClientError::Transport(format!("{e:?}")))
    }
}

impl<T: Transport> Transport for &mut T {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>> {
        (**self).transmit(apdu)
    }

    fn held(
        &mut self,
        exchange: &mut dyn FnMut(&mut dyn Transport) -> Result<Answer>,
    ) -> Result<Answer> {
        (**self).held(exchange)
    }
}

/// A card in a PC/SC reader.
#[cfg(feature = "pcsc")]
pub struct Pcsc {
    card: pcsc::Card,
}

#[cfg(feature = "pcsc")]
impl Pcsc {
    /// Connects to the card in the reader whose name contains `reader`,
    /// shared with other applications.
    pub fn connect(reader: &str) -> Result<Pcsc> {
        Pcsc::connect_with(reader, pcsc::ShareMode::Shared, std::time::Duration::ZERO)
    }

    /// Connects to the card in the reader whose name contains `reader`
    /// for this application alone, waiting up to `wait` for others to let
    /// go of it. What the CMS does holds the management key's and the
    /// holder's authentication between commands: no other application's
    /// APDU may come in between, to ride on them or to select another
    /// application under the flow's feet.
    pub fn connect_exclusive(reader: &str, wait: std::time::Duration) -> Result<Pcsc> {
        Pcsc::connect_with(reader, pcsc::ShareMode::Exclusive, wait)
    }

    fn connect_with(
        reader: &str,
        mode: pcsc::ShareMode,
        wait: std::time::Duration,
    ) -> Result<Pcsc> {
        let err = |e: pcsc::Error| ClientError::Transport(e.to_string());
        let ctx = pcsc::Context::establish(pcsc::Scope::User).map_err(err)?;
        let mut names = vec![0u8; ctx.list_readers_len().map_err(err)?];
        let found = ctx
            .list_readers(&mut names)
            .map_err(err)?
            .find(|r| r.to_string_lossy().contains(reader))
            .map(|r| r.to_owned())
            .ok_or_else(|| ClientError::Transport(format!("no reader matching {reader:?}")))?;
        let deadline = std::time::Instant::now() + wait;
        loop {
            match ctx.connect(&found, mode, pcsc::Protocols::ANY) {
                Ok(card) => return Ok(Pcsc { card }),
                Err(pcsc::Error::SharingViolation) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => {
                    return Err(ClientError::Transport(format!(
                        "{}: {e}",
                        found.to_string_lossy()
                    )));
                }
            }
        }
    }

    /// Connects to a reader by its exact name.
    pub fn connect_exact(reader: &str) -> Result<Pcsc> {
        let err = |e: pcsc::Error| ClientError::Transport(format!("{reader}: {e}"));
        let ctx = pcsc::Context::establish(pcsc::Scope::User).map_err(err)?;
        let name = std::ffi::CString::new(reader)
            .map_err(|_| ClientError::Transport("reader name".into()))?;
        let card = ctx
            .connect(&name, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
            .map_err(err)?;
        Ok(Pcsc { card })
    }

    /// The card's ATR, as the reader reports it.
    pub fn atr(&self) -> Result<Vec<u8>> {
        self.card
            .status2_owned()
            .map(|status| status.atr().to_vec())
            .map_err(|e| ClientError::Transport(e.to_string()))
    }

    /// Disconnects, resetting the card (its security status is gone).
    pub fn reset(self) -> Result<()> {
        self.card
            .disconnect(pcsc::Disposition::ResetCard)
            .map_err(|(_, e)| ClientError::Transport(e.to_string()))
    }
}

#[cfg(feature = "pcsc")]
impl Transport for Pcsc {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>> {
        transmit(&self.card, apdu)
    }

    fn held(
        &mut self,
        exchange: &mut dyn FnMut(&mut dyn Transport) -> Result<Answer>,
    ) -> Result<Answer> {
        let transaction = self
            .card
            .transaction()
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let answer = exchange(&mut InTransaction(&transaction));
        // Ended as it began, the card left as it is (its security status
        // with it).
        drop(transaction);
        answer
    }
}

/// The card, inside a transaction [`Pcsc::held`] began.
#[cfg(feature = "pcsc")]
struct InTransaction<'a>(&'a pcsc::Card);

#[cfg(feature = "pcsc")]
impl Transport for InTransaction<'_> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>> {
        transmit(self.0, apdu)
    }
}

#[cfg(feature = "pcsc")]
fn transmit(card: &pcsc::Card, apdu: &[u8]) -> Result<Vec<u8>> {
    let mut buf = [0u8; 258];
    card.transmit(apdu, &mut buf)
        .map(<[u8]>::to_vec)
        .map_err(|e| ClientError::Transport(e.to_string()))
}
