//! The CMS database (SQLite, bundled): holders, cards, pending security
//! codes and an append-only audit log. Schema changes are numbered
//! migrations applied in one transaction each; concurrent `s9card`
//! invocations serialise on SQLite's write lock (WAL, 10 s busy timeout).

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::{CmsError, Result};

/// The migrations, in order. Never edit one that has shipped: add another.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE holders (
        uuid TEXT PRIMARY KEY CHECK (length(uuid) = 12 AND uuid NOT GLOB '*[^0-9]*'),
        name TEXT NOT NULL,
        email TEXT,
        mobile TEXT,
        role TEXT NOT NULL CHECK (role IN ('holder', 'sponsor')),
        created INTEGER NOT NULL
    );
    CREATE TABLE cards (
        serial INTEGER PRIMARY KEY,
        holder TEXT NOT NULL REFERENCES holders(uuid),
        expiry INTEGER NOT NULL,
        virtual INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active', 'locked', 'revoked')),
        updated INTEGER NOT NULL
    );
    CREATE TABLE codes (
        serial INTEGER PRIMARY KEY REFERENCES cards(serial),
        digest BLOB NOT NULL,
        expires INTEGER NOT NULL,
        tries_left INTEGER NOT NULL,
        used INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        serial INTEGER,
        outcome TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;",
    // 2: why a card was revoked (`revoked`: lost or stolen, `replaced`:
    // a new card was issued).
    "ALTER TABLE cards ADD COLUMN reason TEXT;",
    // 3: self-service unlock's limits, kept across requests: wrong codes
    // since a sponsor last acted (and the lock they lead to), and when
    // codes were requested.
    "CREATE TABLE self_service (
        serial INTEGER PRIMARY KEY REFERENCES cards(serial),
        failures INTEGER NOT NULL DEFAULT 0,
        locked INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE code_requests (
        serial INTEGER NOT NULL REFERENCES cards(serial),
        at INTEGER NOT NULL
    );
    CREATE INDEX code_requests_by_card ON code_requests (serial, at);",
    // 4: the certificates on each card, for the CRL: when and why one was
    // revoked (RFC 5280 CRLReason). Cards issued before this migration
    // have no rows: their certificates cannot be listed.
    "CREATE TABLE certificates (
        serial TEXT PRIMARY KEY CHECK (length(serial) > 0 AND serial NOT GLOB '*[^0-9a-f]*'),
        card INTEGER NOT NULL REFERENCES cards(serial),
        slot INTEGER NOT NULL,
        not_after INTEGER NOT NULL,
        revoked INTEGER,
        reason INTEGER
    );
    CREATE INDEX certificates_by_card ON certificates (card);",
];

/// RFC 5280's CRLReason for a certificate of a card revoked as lost or
/// stolen: its keys may be in other hands.
pub const KEY_COMPROMISE: u8 = 1;
/// RFC 5280's CRLReason for a certificate a renewal or a new card replaced.
pub const SUPERSEDED: u8 = 4;

/// A certificate the CMS put on a card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    /// Its serial number (the INTEGER's content octets).
    pub serial: Vec<u8>,
    /// The key reference it certifies (`9A`, …).
    pub slot: u8,
    /// notAfter, Unix seconds.
    pub not_after: u64,
}

/// A revoked certificate, as a CRL lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revoked {
    /// Its serial number.
    pub serial: Vec<u8>,
    /// When it was revoked, Unix seconds.
    pub at: u64,
    /// RFC 5280 CRLReason.
    pub reason: u8,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| text.get(2 * i..2 * i + 2))
        .filter_map(|pair| u8::from_str_radix(pair, 16).ok())
        .collect()
}

/// Records `certificates` as `card`'s, inside the caller's transaction;
/// any earlier certificate of the card not among them was replaced, and is
/// revoked as superseded.
pub fn record_certificates(
    tx: &rusqlite::Transaction<'_>,
    card: u32,
    certificates: &[Issued],
    now: u64,
) -> Result<()> {
    let current: Vec<String> = certificates.iter().map(|c| hex(&c.serial)).collect();
    let earlier: Vec<String> = {
        let mut stmt =
            tx.prepare("SELECT serial FROM certificates WHERE card = ?1 AND revoked IS NULL")?;
        let rows = stmt.query_map([card], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    for serial in earlier.iter().filter(|s| !current.contains(s)) {
        tx.execute(
            "UPDATE certificates SET revoked = ?2, reason = ?3 WHERE serial = ?1",
            params![serial, now as i64, SUPERSEDED],
        )?;
    }
    for (c, serial) in certificates.iter().zip(&current) {
        tx.execute(
            "INSERT OR IGNORE INTO certificates (serial, card, slot, not_after) VALUES (?1, ?2, ?3, ?4)",
            params![serial, card, c.slot, c.not_after as i64],
        )?;
    }
    Ok(())
}

/// Self-service codes a card may request in an hour.
pub const REQUESTS_PER_HOUR: u32 = 3;
/// Wrong codes, across requests, after which a card's self-service unlock
/// is locked until a sponsor unlocks the card.
pub const FAILURES_BEFORE_LOCK: u32 = 5;

/// What became of one entry of a security code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The right code: it is spent.
    Right,
    /// A wrong code: a try is gone, and so is one of the card's allowance.
    Wrong {
        /// Tries this code has left.
        tries_left: u32,
        /// The card's self-service unlock is now locked.
        locked: bool,
    },
    /// No code was requested for the card.
    NoCode,
    /// The code was used, or its tries are gone.
    Void,
    /// The code's 15 minutes are over.
    Expired,
    /// Too many wrong codes: a sponsor must act.
    Locked,
}

/// Why a code was not issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestRefused {
    /// Too many wrong codes: a sponsor must act.
    Locked,
    /// [`REQUESTS_PER_HOUR`] requests in the last hour.
    TooMany,
}

/// A holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// 12-digit user identifier.
    pub uuid: String,
    /// Display name.
    pub name: String,
    /// Email address, if registered.
    pub email: Option<String>,
    /// Mobile number, if registered.
    pub mobile: Option<String>,
    /// `holder` or `sponsor`.
    pub role: super::ca::Role,
}

/// A card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardRow {
    /// Serial.
    pub serial: u32,
    /// The holder's UUID.
    pub holder: String,
    /// Certificate expiry, Unix seconds.
    pub expiry: u64,
    /// A virtual card.
    pub is_virtual: bool,
    /// `active`, or why the card may not be used: `revoked` (lost or
    /// stolen) or `replaced` (a new card was issued).
    pub status: String,
}

/// A self-service security code, as stored: its digest, never the code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeRow {
    /// HMAC of the code under the master secret, bound to the card.
    pub digest: Vec<u8>,
    /// When it stops working, Unix seconds.
    pub expires: u64,
    /// Wrong entries it still takes.
    pub tries_left: u32,
    /// Spent by a right entry.
    pub used: bool,
}

/// One audit record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// What was done.
    pub action: String,
    /// To which card.
    pub serial: Option<u32>,
    /// `ok` or why not.
    pub outcome: String,
    /// Details (never a secret).
    pub detail: String,
}

/// The database.
pub struct Db {
    conn: Connection,
}

impl Db {
    /// Opens (creating and migrating) the database at `path`.
    pub fn open(path: &Path) -> Result<Db> {
        if let Some(dir) = path.parent() {
            private_files::dir_all(dir).map_err(CmsError::file(dir))?;
        }
        // SQLite gives its journal and WAL files the database's mode.
        private_files::touch(path).map_err(CmsError::file(path))?;
        let unusable = |what| {
            move |source| CmsError::DatabaseFile {
                path: path.to_path_buf(),
                what,
                source,
            }
        };
        let conn = Connection::open(path).map_err(unusable("cannot open"))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(unusable("not a usable database"))?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut db = Db { conn };
        db.migrate()?;
        Ok(db)
    }

    /// A transaction that takes SQLite's write lock at once, so concurrent
    /// invocations serialise instead of failing half-way.
    fn write_tx(&mut self) -> Result<rusqlite::Transaction<'_>> {
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(CmsError::from)
    }

    fn migrate(&mut self) -> Result<()> {
        let tx = self.write_tx()?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (n, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)
                .map_err(|source| CmsError::Migration {
                    number: n + 1,
                    source,
                })?;
            tx.pragma_update(None, "user_version", (n + 1) as i64)?;
        }
        tx.commit().map_err(CmsError::from)
    }

    /// The schema version.
    pub fn version(&self) -> Result<i64> {
        self.conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(CmsError::from)
    }

    /// Registers a holder and their new card, with an audit record, in one
    /// transaction. Refuses a duplicate UUID or serial.
    pub fn register(
        &mut self,
        holder: &Holder,
        card: &CardRow,
        certificates: &[Issued],
        actor: &str,
        now: u64,
    ) -> Result<()> {
        let tx = self.write_tx()?;
        tx.execute(
            "INSERT INTO holders (uuid, name, email, mobile, role, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![holder.uuid, holder.name, holder.email, holder.mobile, holder.role.as_str(), now as i64],
        )
        .map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::ConstraintViolation) => {
                CmsError::HolderRegistered(holder.uuid.clone())
            }
            _ => e.into(),
        })?;
        tx.execute(
            "INSERT INTO cards (serial, holder, expiry, virtual, status, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![card.serial, card.holder, card.expiry as i64, card.is_virtual, card.status, now as i64],
        )
        .map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::ConstraintViolation) => CmsError::CardRegistered(card.serial),
            _ => e.into(),
        })?;
        record_certificates(&tx, card.serial, certificates, now)?;
        audit(
            &tx,
            now,
            actor,
            "personalise",
            Some(card.serial),
            "ok",
            &holder.uuid,
        )?;
        tx.commit().map_err(CmsError::from)
    }

    /// Whether a holder exists.
    pub fn holder(&self, uuid: &str) -> Result<Option<Holder>> {
        self.conn
            .query_row(
                "SELECT uuid, name, email, mobile, role FROM holders WHERE uuid = ?1",
                [uuid],
                |r| {
                    Ok(Holder {
                        uuid: r.get(0)?,
                        name: r.get(1)?,
                        email: r.get(2)?,
                        mobile: r.get(3)?,
                        role: super::ca::Role::parse(&r.get::<_, String>(4)?)
                            .unwrap_or(super::ca::Role::Holder),
                    })
                },
            )
            .optional()
            .map_err(CmsError::from)
    }

    /// A card by serial.
    pub fn card(&self, serial: u32) -> Result<Option<CardRow>> {
        card_row(&self.conn, serial)
    }

    /// Revokes a card (`reason`: `revoked` or `replaced`), with an audit
    /// record, in one transaction. A revoked card stays revoked.
    pub fn revoke(&mut self, serial: u32, reason: &str, actor: &str, now: u64) -> Result<()> {
        let tx = self.write_tx()?;
        let changed = tx
            .execute(
                "UPDATE cards SET status = 'revoked', reason = ?2, updated = ?3 WHERE serial = ?1 AND status != 'revoked'",
                params![serial, reason, now as i64],
            )
            ?;
        if changed == 0 {
            return Err(match card_row(&tx, serial)? {
                None => CmsError::CardNotRegistered(serial),
                Some(_) => CmsError::RevokedAlready(serial),
            });
        }
        let why = if reason == "replaced" {
            SUPERSEDED
        } else {
            KEY_COMPROMISE
        };
        tx.execute(
            "UPDATE certificates SET revoked = ?2, reason = ?3 WHERE card = ?1 AND revoked IS NULL",
            params![serial, now as i64, why],
        )?;
        audit(&tx, now, actor, "revoke", Some(serial), "ok", reason)?;
        tx.commit().map_err(CmsError::from)
    }

    /// The revoked certificates a CRL at `now` lists: those not yet
    /// expired, oldest revocation first.
    pub fn revoked_certificates(&self, now: u64) -> Result<Vec<Revoked>> {
        let mut stmt = self.conn.prepare(
            "SELECT serial, revoked, reason FROM certificates \
             WHERE revoked IS NOT NULL AND not_after > ?1 ORDER BY revoked, serial",
        )?;
        let rows = stmt.query_map([now as i64], |r| {
            Ok(Revoked {
                serial: unhex(&r.get::<_, String>(0)?),
                at: r.get::<_, i64>(1)? as u64,
                reason: r.get(2)?,
            })
        })?;
        rows.collect::<Result<_, _>>().map_err(CmsError::from)
    }

    /// The security code last requested for a card.
    pub fn code(&self, serial: u32) -> Result<Option<CodeRow>> {
        code_row(&self.conn, serial)
    }

    /// Stores a new code for a card (its digest, valid until `expires`,
    /// `tries` tries) in `tx`, unless the card's self-service unlock is
    /// locked or it asked [`REQUESTS_PER_HOUR`] times in the last hour. The
    /// wrong codes of earlier requests still count.
    pub fn new_code(
        tx: &rusqlite::Transaction<'_>,
        serial: u32,
        digest: &[u8],
        expires: u64,
        tries: u32,
        now: u64,
    ) -> Result<Result<(), RequestRefused>> {
        if self_service_locked(tx, serial)? {
            return Ok(Err(RequestRefused::Locked));
        }
        let recent: u32 = tx.query_row(
            "SELECT count(*) FROM code_requests WHERE serial = ?1 AND at > ?2",
            params![serial, now as i64 - 3600],
            |r| r.get(0),
        )?;
        if recent >= REQUESTS_PER_HOUR {
            return Ok(Err(RequestRefused::TooMany));
        }
        tx.execute(
            "INSERT INTO code_requests (serial, at) VALUES (?1, ?2)",
            params![serial, now as i64],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO codes (serial, digest, expires, tries_left, used) VALUES (?1, ?2, ?3, ?4, 0)",
            params![serial, digest, expires as i64, tries],
        )
        ?;
        Ok(Ok(()))
    }

    /// One entry of a card's code, whose digest is `given`, in one write
    /// transaction: a try is spent before the comparison (one `UPDATE …
    /// WHERE tries_left > 0 … RETURNING`), so that entries made at once,
    /// from any number of processes, never get more tries than the code
    /// has. A right code is spent with it; a wrong one counts towards the
    /// card's lock, and is audited.
    pub fn attempt_code(&mut self, serial: u32, given: &[u8], now: u64) -> Result<Attempt> {
        let tx = self.write_tx()?;
        if self_service_locked(&tx, serial)? {
            return Ok(Attempt::Locked);
        }
        let spent: Option<(Vec<u8>, u32)> = tx
            .query_row(
                "UPDATE codes SET tries_left = tries_left - 1
                 WHERE serial = ?1 AND tries_left > 0 AND used = 0 AND expires > ?2
                 RETURNING digest, tries_left",
                params![serial, now as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((digest, tries_left)) = spent else {
            // Nothing spent: say why, and change nothing.
            return Ok(match code_row(&tx, serial)? {
                None => Attempt::NoCode,
                Some(c) if c.used || c.tries_left == 0 => Attempt::Void,
                Some(_) => Attempt::Expired,
            });
        };
        let right = bool::from(subtle::ConstantTimeEq::ct_eq(given, &digest[..]));
        let attempt = if right {
            tx.execute("UPDATE codes SET used = 1 WHERE serial = ?1", [serial])?;
            // The holder has the code: earlier slips are forgiven.
            tx.execute("DELETE FROM self_service WHERE serial = ?1", [serial])?;
            Attempt::Right
        } else {
            let failures: u32 = tx.query_row(
                "INSERT INTO self_service (serial, failures) VALUES (?1, 1)
                     ON CONFLICT (serial) DO UPDATE SET failures = failures + 1
                     RETURNING failures",
                [serial],
                |r| r.get(0),
            )?;
            let locked = failures >= FAILURES_BEFORE_LOCK;
            if locked {
                tx.execute(
                    "UPDATE self_service SET locked = 1 WHERE serial = ?1",
                    [serial],
                )?;
                // The code dies with the lock.
                tx.execute("UPDATE codes SET used = 1 WHERE serial = ?1", [serial])?;
            }
            audit(
                &tx,
                now,
                "holder",
                "self-unlock",
                Some(serial),
                if locked { "locked" } else { "wrong code" },
                &format!("{failures} wrong codes"),
            )?;
            Attempt::Wrong { tries_left, locked }
        };
        tx.commit()?;
        Ok(attempt)
    }

    /// A sponsor unlocked the card: its self-service unlock starts afresh.
    pub fn self_service_reset(&mut self, serial: u32) -> Result<()> {
        self.conn
            .execute("DELETE FROM self_service WHERE serial = ?1", [serial])
            .map(drop)
            .map_err(CmsError::from)
    }

    /// Appends to the audit log on its own.
    pub fn audit(
        &mut self,
        now: u64,
        actor: &str,
        action: &str,
        serial: Option<u32>,
        outcome: &str,
        detail: &str,
    ) -> Result<()> {
        let tx = self.write_tx()?;
        audit(&tx, now, actor, action, serial, outcome, detail)?;
        tx.commit().map_err(CmsError::from)
    }

    /// The audit log, oldest first.
    pub fn audit_log(&self) -> Result<Vec<AuditEntry>> {
        let mut stmt = self
            .conn
            .prepare("SELECT action, serial, outcome, detail FROM audit ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok(AuditEntry {
                action: r.get(0)?,
                serial: r.get(1)?,
                outcome: r.get(2)?,
                detail: r.get(3)?,
            })
        })?;
        rows.collect::<Result<_, _>>().map_err(CmsError::from)
    }

    /// The connection, for the flows' own transactions.
    pub fn conn(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

/// A card by serial, on a connection or inside a transaction. A revoked
/// card's status is why it was revoked (`revoked` or `replaced`).
fn card_row(conn: &Connection, serial: u32) -> Result<Option<CardRow>> {
    conn.query_row(
        "SELECT serial, holder, expiry, virtual, status, reason FROM cards WHERE serial = ?1",
        [serial],
        |r| {
            Ok(CardRow {
                serial: r.get(0)?,
                holder: r.get(1)?,
                expiry: r.get::<_, i64>(2)? as u64,
                is_virtual: r.get(3)?,
                status: match r.get::<_, Option<String>>(5)? {
                    Some(reason) => reason,
                    None => r.get(4)?,
                },
            })
        },
    )
    .optional()
    .map_err(CmsError::from)
}

/// Appends to the audit log inside the caller's transaction, so that the
/// record lands with the change it describes or not at all.
pub fn audit(
    tx: &rusqlite::Transaction<'_>,
    now: u64,
    actor: &str,
    action: &str,
    serial: Option<u32>,
    outcome: &str,
    detail: &str,
) -> Result<()> {
    tx.execute(
        "INSERT INTO audit (at, actor, action, serial, outcome, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![now as i64, actor, action, serial, outcome, detail],
    )
    .map(drop)
        .map_err(CmsError::from)
}

fn code_row(conn: &Connection, serial: u32) -> Result<Option<CodeRow>> {
    conn.query_row(
        "SELECT digest, expires, tries_left, used FROM codes WHERE serial = ?1",
        [serial],
        |r| {
            Ok(CodeRow {
                digest: r.get(0)?,
                expires: r.get::<_, i64>(1)? as u64,
                tries_left: r.get(2)?,
                used: r.get(3)?,
            })
        },
    )
    .optional()
    .map_err(CmsError::from)
}

fn self_service_locked(conn: &Connection, serial: u32) -> Result<bool> {
    conn.query_row(
        "SELECT locked FROM self_service WHERE serial = ?1",
        [serial],
        |r| r.get(0),
    )
    .optional()
    .map(|locked| locked.unwrap_or(false))
    .map_err(CmsError::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::Role;

    fn holder(uuid: &str) -> Holder {
        Holder {
            uuid: uuid.into(),
            name: "Ann".into(),
            email: Some("ann@nhs.example".into()),
            mobile: None,
            role: Role::Holder,
        }
    }

    fn card(serial: u32, uuid: &str) -> CardRow {
        CardRow {
            serial,
            holder: uuid.into(),
            expiry: 1000,
            is_virtual: true,
            status: "active".into(),
        }
    }

    #[test]
    fn migrates_registers_and_refuses_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cms.db");
        let mut db = Db::open(&path).unwrap();
        assert_eq!(db.version().unwrap(), MIGRATIONS.len() as i64);
        db.register(
            &holder("555000111222"),
            &card(912_345_678, "555000111222"),
            &[],
            "ra",
            5,
        )
        .unwrap();
        assert!(
            db.register(
                &holder("555000111222"),
                &card(912_345_679, "555000111222"),
                &[],
                "ra",
                6
            )
            .is_err()
        );
        // The failed registration left nothing behind.
        assert_eq!(db.card(912_345_679).unwrap(), None);
        assert!(
            db.register(&holder("12345"), &card(912_345_670, "12345"), &[], "ra", 6)
                .is_err(),
            "UUID must be 12 digits"
        );
        drop(db);
        let db = Db::open(&path).unwrap();
        assert_eq!(
            db.card(912_345_678).unwrap().unwrap().holder,
            "555000111222"
        );
        assert_eq!(
            db.holder("555000111222").unwrap().unwrap().email.as_deref(),
            Some("ann@nhs.example")
        );
        assert_eq!(db.audit_log().unwrap().len(), 1);
    }

    #[test]
    fn the_audit_log_is_append_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("cms.db")).unwrap();
        db.audit(1, "ra", "test", None, "ok", "").unwrap();
        assert!(
            db.conn()
                .execute("UPDATE audit SET outcome = 'forged'", [])
                .is_err()
        );
        assert!(db.conn().execute("DELETE FROM audit", []).is_err());
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cms.db");
        std::fs::write(
            &path,
            b"this is not sqlite, not even close, and it is long enough",
        )
        .unwrap();
        assert!(Db::open(&path).is_err());
    }
}
