//! The PIV client: the commands tools send, with chaining, GET RESPONSE
//! and the management-key handshake.

use apdu::Status;
use applet::admin::ManagementKey;
use applet::ins::{Instruction, KEY_REF_ADMIN};
use applet::slot::{AdminAlgorithm, Slot, TouchPolicy};

use crate::cvc::Cvc;
use crate::sm::{Request, Session};
use crate::tlv::{tlv, tlvs, unwrap_tlv};
use crate::{Algorithm, Answer, ClientError, Result, Transport};
use applet::sm::{ESTABLISH_P2, Suite};

/// What CARD INFO says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardInfo {
    /// The serial.
    pub serial: u32,
    /// A simulated card.
    pub is_virtual: bool,
    /// Slots with a staged renewal key.
    pub staged: Vec<u8>,
}

/// `90 00`, as [`PivClient::exchange`] returns it.
pub const SW_OK: u16 = Status::Success.sw();

fn sw(rsp: &[u8]) -> u16 {
    match rsp {
        [.., a, b] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    }
}

fn pin_field(pin: &[u8]) -> Result<[u8; 8]> {
    if pin.len() > 8 {
        return Err(ClientError::Malformed(
            "passcodes have at most 8 characters",
        ));
    }
    let mut field = [0xFF; 8];
    field[..pin.len()].copy_from_slice(pin);
    Ok(field)
}

/// The longest answer a card may give to one command: an extended APDU's
/// whole data field. The largest PIV answers, certificates of RSA-4096
/// keys, are a few KiB.
pub const MAX_RESPONSE: usize = 65_536;
/// The most `61 xx` parts one answer may come in (each at least one byte,
/// at most 256).
pub const MAX_RESPONSE_PARTS: usize = 512;

/// A PIV card, through a transport.
pub struct PivClient<T> {
    transport: T,
    /// The secure messaging session, once opened: every command but
    /// SELECT then goes protected.
    sm: Option<Session>,
}

impl<T: Transport> PivClient<T> {
    /// A client over `transport`; call [`PivClient::select`] first.
    pub fn new(transport: T) -> Self {
        PivClient {
            transport,
            sm: None,
        }
    }

    /// The transport, lent (to read what it counted, say).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// The transport back.
    pub fn into_inner(self) -> T {
        self.transport
    }

    /// Sends one APDU as it is.
    pub fn raw(&mut self, apdu: &[u8]) -> Result<Vec<u8>> {
        self.transport.transmit(apdu)
    }

    /// Sends a command as tools do: chained above 255 bytes, with Le, and
    /// collecting `61 xx` parts. Returns the data and the final SW. Inside
    /// a secure messaging session the command goes protected, and what
    /// comes back is the card's answer opened; an answer that is not the
    /// session's ends the session.
    pub fn exchange(&mut self, header: [u8; 4], data: &[u8]) -> Result<(Vec<u8>, u16)> {
        if header[1] == Instruction::Select.byte() {
            return self.exchange_clear(header, data);
        }
        let Some(mut session) = self.sm.take() else {
            return self.exchange_clear(header, data);
        };
        let wrapped = session.wrap(header, data);
        let (answer, sw) =
            self.exchange_clear([0x0C, header[1], header[2], header[3]], &wrapped)?;
        if sw != SW_OK {
            // `69 87`, `69 88`: the card ended the session; `69 82`: it had
            // none.
            return Ok((Vec::new(), sw));
        }
        let opened = session.unwrap(&answer)?;
        self.sm = Some(session);
        Ok(opened)
    }

    /// Whether a secure messaging session is open.
    pub fn is_secure(&self) -> bool {
        self.sm.is_some()
    }

    /// The cipher suite the card offers for secure messaging, from its
    /// SELECT answer (`AC { 80 27 }` or `80 2E`); `None` if it offers none.
    pub fn secure_messaging_suite(&mut self) -> Result<Option<Suite>> {
        let answer = self.select_answer()?;
        let template = unwrap_tlv(&answer, 0x61)?;
        for (tag, value) in tlvs(template)? {
            if tag != 0xAC {
                continue;
            }
            for (tag, value) in tlvs(value)? {
                if let (0x80, [id]) = (tag, value)
                    && let Some(suite) = Suite::from_id(*id)
                {
                    return Ok(Some(suite));
                }
            }
        }
        Ok(None)
    }

    /// Opens a secure messaging session with `suite` (SP 800-73-4 Part 2
    /// §4.1), checking the card's CVC against the Secure Messaging
    /// Certificate Signer's key `signer` (an uncompressed point; see
    /// [`crate::cvc::signer_key`]) when given. Any session open before is
    /// over. The card's CVC.
    pub fn open_secure_messaging(&mut self, suite: Suite, signer: Option<&[u8]>) -> Result<Cvc> {
        self.sm = None;
        let request = Request::new(suite)?;
        let (p1, data) = request.command();
        let answer = self.call(Instruction::GeneralAuthenticate, p1, ESTABLISH_P2, &data)?;
        let established = request.finish(&answer, signer)?;
        self.sm = Some(established.session);
        Ok(established.cvc)
    }

    /// Forgets the secure messaging session (the card keeps it until it
    /// is reset or another one is opened).
    pub fn close_secure_messaging(&mut self) {
        self.sm = None;
    }

    /// The session, taken out of this client (to carry it to another
    /// client of the same card, as a program that opens one client per
    /// operation does).
    pub fn take_secure_session(&mut self) -> Option<Session> {
        self.sm.take()
    }

    /// Goes on in `session`, opened by another client of this card.
    pub fn resume_secure_session(&mut self, session: Session) {
        self.sm = Some(session);
    }

    /// Sends a command in the clear (the protected form, too, is sent so),
    /// its parts with the card held (see [`Transport::held`]).
    fn exchange_clear(&mut self, header: [u8; 4], data: &[u8]) -> Result<Answer> {
        self.transport
            .held(&mut |card| exchange_parts(card, header, data))
    }

    /// [`PivClient::exchange`] of the instruction `ins`, failing unless
    /// the card answers `90 00`.
    pub fn call(&mut self, ins: Instruction, p1: u8, p2: u8, data: &[u8]) -> Result<Vec<u8>> {
        match self.exchange([0x00, ins.byte(), p1, p2], data)? {
            (out, SW_OK) => Ok(out),
            (_, sw) => Err(ClientError::refused(ins, sw)),
        }
    }

    /// Selects the PIV application.
    pub fn select(&mut self) -> Result<()> {
        self.select_answer().map(drop)
    }

    /// Selects the PIV application: its application property template.
    pub fn select_answer(&mut self) -> Result<Vec<u8>> {
        self.call(
            Instruction::Select,
            0x04,
            0x00,
            &[0xA0, 0x00, 0x00, 0x03, 0x08],
        )
    }

    /// Verifies the PIN.
    pub fn verify_pin(&mut self, pin: &[u8]) -> Result<()> {
        let field = pin_field(pin)?;
        self.call(Instruction::Verify, 0x00, 0x80, &field).map(drop)
    }

    /// Tries left and allowed for the PIN (`0x80`) or PUK (`0x81`).
    pub fn tries(&mut self, reference: u8) -> Result<(u8, u8)> {
        let meta = self.call(Instruction::GetMetadata, 0x00, reference, &[])?;
        match meta.windows(4).find(|w| w[0] == 0x06 && w[1] == 0x02) {
            Some(w) => Ok((w[3], w[2])),
            None => Err(ClientError::Malformed("metadata without retries")),
        }
    }

    /// Whether the PIN (`0x80`), PUK (`0x81`) or management key (`0x9B`)
    /// still has its factory value (GET METADATA's tag `05`).
    pub fn is_default(&mut self, reference: u8) -> Result<bool> {
        let meta = self.call(Instruction::GetMetadata, 0x00, reference, &[])?;
        match meta.windows(3).find(|w| w[0] == 0x05 && w[1] == 0x01) {
            Some(w) => Ok(w[2] == 1),
            None => Err(ClientError::Malformed("metadata without the default flag")),
        }
    }

    /// Mutual management-key authentication.
    pub fn authenticate(&mut self, alg: AdminAlgorithm, key: &[u8]) -> Result<()> {
        // The applet's own cipher: the host's half is the same code.
        let key = ManagementKey::new(alg, TouchPolicy::NEVER, key)
            .map_err(|_| ClientError::Malformed("management key length"))?;
        let cipher_failed = |_| ClientError::Malformed("management key block");
        let b = alg.block_len();
        let ga = Instruction::GeneralAuthenticate;
        let rsp = self.call(ga, alg.byte(), KEY_REF_ADMIN, &[0x7C, 0x02, 0x80, 0x00])?;
        let witness = rsp.get(4..4 + b).ok_or(ClientError::Malformed("witness"))?;
        let mut witness = witness.to_vec();
        key.decrypt(&mut witness).map_err(cipher_failed)?;
        let mut challenge = vec![0u8; b];
        getrandom::fill(&mut challenge).map_err(|e| ClientError::Transport(e.to_string()))?;
        let mut data = vec![0x7C, 4 + 2 * b as u8, 0x80, b as u8];
        data.extend(&witness);
        data.extend([0x81, b as u8]);
        data.extend(&challenge);
        let rsp = self.call(ga, alg.byte(), KEY_REF_ADMIN, &data)?;
        let mut expected = challenge;
        key.encrypt(&mut expected).map_err(cipher_failed)?;
        if rsp.get(4..4 + b) != Some(&expected[..]) {
            return Err(ClientError::Malformed(
                "the card does not hold this management key",
            ));
        }
        Ok(())
    }

    /// GENERATE (or, `staged`, STAGE KEY) a P-256 key; returns the point.
    pub fn generate(&mut self, slot: Slot, staged: bool) -> Result<Vec<u8>> {
        self.generate_key(slot, Algorithm::P256, staged)
    }

    /// GENERATE (or, `staged`, STAGE KEY) a key of `algorithm`; returns its
    /// public key as the card keeps it: the RSA modulus (the exponent is
    /// 65537), an uncompressed EC point, or a 25519 public key.
    pub fn generate_key(
        &mut self,
        slot: Slot,
        algorithm: Algorithm,
        staged: bool,
    ) -> Result<Vec<u8>> {
        let ins = if staged {
            Instruction::StageKey
        } else {
            Instruction::Generate
        };
        let rsp = self.call(
            ins,
            0x00,
            slot.byte(),
            &[0xAC, 0x03, 0x80, 0x01, algorithm.byte()],
        )?;
        let template = match tlvs(&rsp)?.as_slice() {
            [(0x7F49, template)] => *template,
            _ => return Err(ClientError::Malformed("public key template")),
        };
        public_from_template(template, algorithm)
    }

    /// IMPORT ASYMMETRIC KEY (Yubico's `FE`) of an RSA key of `algorithm`
    /// from its CRT parts, big-endian: p, q, dP, dQ and qInv, each padded
    /// or trimmed to half the modulus (as the card stores them). The card
    /// checks the parts and computes the modulus itself.
    pub fn import_rsa(
        &mut self,
        slot: Slot,
        algorithm: Algorithm,
        parts: [&[u8]; 5],
    ) -> Result<()> {
        let half = algorithm
            .rsa_bits()
            .ok_or(ClientError::Malformed("not an RSA algorithm"))?
            / 16;
        let mut data = Vec::new();
        for (tag, part) in (0x01..).zip(parts) {
            let digits = &part[part.iter().take_while(|&&b| b == 0).count()..];
            if digits.len() > half {
                return Err(ClientError::Malformed(
                    "an RSA part longer than half the modulus",
                ));
            }
            let mut field = vec![0u8; half - digits.len()];
            field.extend_from_slice(digits);
            data.extend(tlv(tag, &field));
        }
        self.call(Instruction::ImportKey, algorithm.byte(), slot.byte(), &data)
            .map(drop)
    }

    /// IMPORT ASYMMETRIC KEY of an elliptic-curve key of `algorithm` (P-256,
    /// P-384) from its private scalar, big-endian (tag `06`); the card
    /// computes the public point itself.
    pub fn import_ec(&mut self, slot: Slot, algorithm: Algorithm, scalar: &[u8]) -> Result<()> {
        self.call(
            Instruction::ImportKey,
            algorithm.byte(),
            slot.byte(),
            &tlv(0x06, scalar),
        )
        .map(drop)
    }

    /// The public point of the key in `slot`, if any.
    pub fn public_key(&mut self, slot: Slot) -> Result<Option<Vec<u8>>> {
        Ok(self.key_metadata(slot)?.map(|(_, public)| public))
    }

    /// The algorithm and public key (as [`PivClient::generate_key`] gives
    /// it) of the key in `slot`, from GET METADATA; `None` if the slot is
    /// empty.
    pub fn key_metadata(&mut self, slot: Slot) -> Result<Option<(Algorithm, Vec<u8>)>> {
        let ins = Instruction::GetMetadata;
        let meta = match self.exchange([0x00, ins.byte(), 0x00, slot.byte()], &[])? {
            (meta, SW_OK) => meta,
            (_, sw) if sw == Status::ReferenceNotFound.sw() => return Ok(None),
            (_, sw) => return Err(ClientError::refused(ins, sw)),
        };
        let (mut algorithm, mut public) = (None, None);
        for (tag, value) in tlvs(&meta)? {
            match (tag, value) {
                (0x01, [b]) => algorithm = Algorithm::from_byte(*b),
                (0x04, v) => public = Some(v),
                _ => {}
            }
        }
        match (algorithm, public) {
            (Some(a), Some(p)) => Ok(Some((a, public_from_template(p, a)?))),
            _ => Err(ClientError::Malformed("key metadata")),
        }
    }

    /// An ECDSA signature (DER) over a 32-byte digest.
    pub fn sign(&mut self, slot: Slot, digest: &[u8; 32]) -> Result<Vec<u8>> {
        self.private_operation(slot, Algorithm::P256, 0x81, digest)
    }

    /// GENERAL AUTHENTICATE with the key in `slot`: `tag` `81` (a digest to
    /// sign, an Ed25519 message, an RSA block) or `85` (a peer's public key
    /// to agree with). Returns what comes back in `82`.
    pub fn private_operation(
        &mut self,
        slot: Slot,
        algorithm: Algorithm,
        tag: u8,
        input: &[u8],
    ) -> Result<Vec<u8>> {
        let mut inner = vec![0x82, 0x00];
        inner.extend(tlv(tag, input));
        let data = tlv(0x7C, &inner);
        let rsp = self.call(
            Instruction::GeneralAuthenticate,
            algorithm.byte(),
            slot.byte(),
            &data,
        )?;
        let template = unwrap_tlv(&rsp, 0x7C)?;
        Ok(unwrap_tlv(template, 0x82)?.to_vec())
    }

    /// Reads a data object's content (inside `53`), `None` if absent.
    pub fn get_object(&mut self, tag: u32) -> Result<Option<Vec<u8>>> {
        let t = tag.to_be_bytes();
        let ins = Instruction::GetData;
        match self.exchange(
            [0x00, ins.byte(), 0x3F, 0xFF],
            &[0x5C, 0x03, t[1], t[2], t[3]],
        )? {
            (data, SW_OK) => Ok(Some(unwrap_tlv(&data, 0x53)?.to_vec())),
            (_, sw) if sw == Status::NotFound.sw() => Ok(None),
            (_, sw) => Err(ClientError::refused(ins, sw)),
        }
    }

    /// Writes a data object; empty content deletes it.
    pub fn put_object(&mut self, tag: u32, content: &[u8]) -> Result<()> {
        let t = tag.to_be_bytes();
        let mut data = vec![0x5C, 0x03, t[1], t[2], t[3]];
        data.extend(tlv(0x53, content));
        self.call(Instruction::PutData, 0x3F, 0xFF, &data).map(drop)
    }

    /// A certificate object as PIV stores it: `70 cert 71 00 FE`.
    pub fn certificate_object(der: &[u8]) -> Vec<u8> {
        let mut object = tlv(0x70, der);
        object.extend([0x71, 0x01, 0x00, 0xFE, 0x00]);
        object
    }

    /// CHANGE REFERENCE DATA for the PIN (`0x80`) or PUK (`0x81`).
    pub fn change(&mut self, reference: u8, old: &[u8], new: &[u8]) -> Result<()> {
        let mut data = pin_field(old)?.to_vec();
        data.extend(pin_field(new)?);
        self.call(Instruction::ChangeReference, 0x00, reference, &data)
            .map(drop)
    }

    /// RESET RETRY COUNTER: PUK and a new PIN.
    pub fn unblock(&mut self, puk: &[u8], new_pin: &[u8]) -> Result<()> {
        let mut data = pin_field(puk)?.to_vec();
        data.extend(pin_field(new_pin)?);
        self.call(Instruction::ResetRetry, 0x00, 0x80, &data)
            .map(drop)
    }

    /// SET MANAGEMENT KEY.
    pub fn set_management_key(&mut self, alg: AdminAlgorithm, key: &[u8]) -> Result<()> {
        let mut data = vec![alg.byte(), 0x9B, key.len() as u8];
        data.extend(key);
        self.call(Instruction::SetManagementKey, 0xFF, 0xFF, &data)
            .map(drop)
    }

    /// CARD INFO (vendor).
    pub fn card_info(&mut self) -> Result<CardInfo> {
        let data = self.call(Instruction::CardInfo, 0x00, 0x00, &[])?;
        let mut info = CardInfo {
            serial: 0,
            is_virtual: false,
            staged: Vec::new(),
        };
        let mut rest = data.as_slice();
        while let [tag, len, tail @ ..] = rest {
            let len = usize::from(*len);
            let value = tail.get(..len).ok_or(ClientError::Malformed("CARD INFO"))?;
            match tag {
                0x01 => {
                    info.serial = u32::from_be_bytes(
                        value
                            .try_into()
                            .map_err(|_| ClientError::Malformed("serial"))?,
                    )
                }
                0x02 => info.is_virtual = value.first().is_some_and(|f| f & 1 != 0),
                0x04 => info.staged = value.to_vec(),
                _ => {}
            }
            rest = &tail[len..];
        }
        Ok(info)
    }

    /// COMMIT RENEWAL (vendor): the staged key and its certificate, at once.
    pub fn commit_renewal(&mut self, slot: Slot, certificate_der: &[u8]) -> Result<()> {
        let data = tlv(0x53, &Self::certificate_object(certificate_der));
        self.call(Instruction::CommitRenewal, 0x00, slot.byte(), &data)
            .map(drop)
    }

    /// COMMIT RENEWAL of the key management key that keeps the key it
    /// replaces: in the same card transaction the old key moves to
    /// `retired` (an empty `82`-`95` slot) and `history` becomes the Key
    /// History object's content. The retired certificate object goes first,
    /// by [`PivClient::put_object`].
    pub fn commit_renewal_retiring(
        &mut self,
        slot: Slot,
        certificate_der: &[u8],
        retired: Slot,
        history: &[u8],
    ) -> Result<()> {
        let mut data = tlv(0x53, &Self::certificate_object(certificate_der));
        data.extend(tlv(0x53, history));
        self.call(
            Instruction::CommitRenewal,
            retired.byte(),
            slot.byte(),
            &data,
        )
        .map(drop)
    }

    /// MOVE KEY (Yubico) to nowhere: deletes the key in `slot`.
    pub fn delete_key(&mut self, slot: Slot) -> Result<()> {
        self.call(Instruction::MoveKey, 0xFF, slot.byte(), &[])
            .map(drop)
    }

    /// SET SERIAL (vendor): only on a card in its factory state.
    pub fn set_serial(&mut self, serial: u32) -> Result<()> {
        self.call(Instruction::SetSerial, 0x00, 0x00, &serial.to_be_bytes())
            .map(drop)
    }

    /// ABORT RENEWAL (vendor).
    pub fn abort_renewal(&mut self, slot: Slot) -> Result<()> {
        self.call(Instruction::AbortRenewal, 0x00, slot.byte(), &[])
            .map(drop)
    }
}

/// The public key in a `7F49` template (GENERATE) or metadata's `04`: RSA
/// `81` modulus with `82` exponent 65537, or an `86` point.
fn public_from_template(template: &[u8], algorithm: Algorithm) -> Result<Vec<u8>> {
    let fields = tlvs(template)?;
    let public = if algorithm.rsa_bits().is_some() {
        let modulus = fields.iter().find(|(t, _)| *t == 0x81);
        let exponent = fields.iter().find(|(t, _)| *t == 0x82);
        if exponent.map(|(_, e)| *e) != Some(&[0x01, 0x00, 0x01][..]) {
            return Err(ClientError::Malformed("RSA public exponent"));
        }
        modulus.map(|(_, n)| *n)
    } else {
        fields.iter().find(|(t, _)| *t == 0x86).map(|(_, p)| *p)
    };
    match public {
        Some(p) if p.len() == algorithm.public_len() => Ok(p.to_vec()),
        _ => Err(ClientError::Malformed("public key template")),
    }
}

/// The APDUs of one command: its chain above 255 bytes, then GET RESPONSE
/// while the card says `61 xx`.
fn exchange_parts(card: &mut dyn Transport, header: [u8; 4], data: &[u8]) -> Result<Answer> {
    let parts: Vec<&[u8]> = if data.is_empty() {
        vec![&[][..]]
    } else {
        data.chunks(255).collect()
    };
    let mut rsp = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let mut apdu = vec![
            header[0] | if last { 0 } else { 0x10 },
            header[1],
            header[2],
            header[3],
        ];
        if !part.is_empty() {
            apdu.push(part.len() as u8);
            apdu.extend_from_slice(part);
        }
        if last {
            apdu.push(0);
        }
        rsp = card.transmit(&apdu)?;
        if !last && sw(&rsp) != SW_OK {
            return Ok((Vec::new(), sw(&rsp)));
        }
    }
    // The card decides how often `61 xx` comes back: a hostile or broken
    // one could say it forever, so the parts and their bytes are
    // bounded by what a real answer can be.
    let mut out = Vec::new();
    for _ in 0..=MAX_RESPONSE_PARTS {
        let s = sw(&rsp);
        out.extend_from_slice(rsp.get(..rsp.len().saturating_sub(2)).unwrap_or_default());
        if out.len() > MAX_RESPONSE {
            return Err(ClientError::Malformed(
                "an answer longer than any PIV answer (64 KiB)",
            ));
        }
        let Some(Status::MoreData(left)) = Status::from_sw(s) else {
            return Ok((out, s));
        };
        rsp = card.transmit(&[0x00, Instruction::GetResponse.byte(), 0x00, 0x00, left])?;
    }
    Err(ClientError::Malformed(
        "more GET RESPONSE parts than any PIV answer has",
    ))
}
