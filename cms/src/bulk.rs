//! Bulk personalisation, as the Apply for Care ID bulk upload does it: up to
//! 300 holders from a spreadsheet (CSV), each onto a new virtual card image,
//! with per-row errors reported in a result file and the batch carrying on.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use applet::algorithm::Algorithm;

use super::ca::Role;
use super::flows::{self, Cms, Request};
use client::PivClient;
use virtual_card::Entropy;

use crate::{CmsError, Result};

/// The most rows one batch takes (the Apply for Care ID bulk limit).
pub const MAX_ROWS: usize = 300;
/// The columns a bulk file must have.
pub const COLUMNS: [&str; 6] = ["uuid", "name", "email", "mobile", "role", "passcode"];
/// Serials of bulk-issued virtual cards start above this.
const SERIAL_BASE: u32 = 910_000_000;

/// How a batch went.
#[derive(Debug)]
pub struct Summary {
    /// Cards personalised.
    pub ok: usize,
    /// Rows refused.
    pub failed: usize,
    /// Wall-clock time.
    pub took: Duration,
    /// The result file.
    pub results: PathBuf,
}

/// Reads a bulk file, refusing it whole if it cannot be read, lacks the
/// columns, or has more than [`MAX_ROWS`] rows.
pub fn read(path: &Path) -> Result<Vec<csv::StringRecord>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_path(path)
        .map_err(csv_error(path))?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(csv_error(path))?
        .iter()
        .map(str::to_lowercase)
        .collect();
    if headers != COLUMNS {
        return Err(CmsError::BulkColumns {
            path: path.to_path_buf(),
            columns: COLUMNS.join(","),
        });
    }
    let rows = reader
        .records()
        .collect::<Result<Vec<_>, _>>()
        .map_err(csv_error(path))?;
    if rows.len() > MAX_ROWS {
        return Err(CmsError::BulkTooLong {
            path: path.to_path_buf(),
            rows: rows.len(),
            max: MAX_ROWS,
        });
    }
    Ok(rows)
}

fn request(row: &csv::StringRecord, algorithm: Algorithm) -> Result<Request> {
    if row.len() != COLUMNS.len() {
        return Err(CmsError::BulkFields {
            found: row.len(),
            expected: COLUMNS.len(),
        });
    }
    let opt = |i: usize| Some(row[i].to_string()).filter(|s| !s.is_empty());
    let role = match &row[4] {
        "" | "holder" => Role::Holder,
        "sponsor" => Role::Sponsor,
        other => return Err(CmsError::BadRole(other.into())),
    };
    Ok(Request {
        uuid: row[0].to_string(),
        name: row[1].to_string(),
        email: opt(2),
        mobile: opt(3),
        role,
        passcode: row[5].to_string().into(),
        serial: None,
        algorithm,
        secure_messaging: None,
    })
}

/// Personalises every valid row onto a new card image in `out`
/// (`<uuid>.s9img`) with keys of `algorithm`, writing `out/results.csv`
/// (row, uuid, serial, outcome) and calling `progress` after each row.
pub fn personalize(
    cms: &mut Cms,
    rows: &[csv::StringRecord],
    out: &Path,
    algorithm: Algorithm,
    now: u64,
    mut progress: impl FnMut(usize),
) -> Result<Summary> {
    let started = Instant::now();
    private_files::dir_all(out).map_err(CmsError::file(out))?;
    let results_path = out.join("results.csv");
    let written = csv_error(&results_path);
    let mut results = csv::Writer::from_path(&results_path).map_err(written)?;
    results
        .write_record(["row", "uuid", "serial", "outcome"])
        .map_err(written)?;
    let mut next_serial = cms
        .db
        .conn()
        .query_row("SELECT COALESCE(MAX(serial), 0) FROM cards", [], |r| {
            r.get::<_, u32>(0)
        })?
        .max(SERIAL_BASE)
        + 1;
    let mut seen = HashSet::new();
    let (mut ok, mut failed) = (0, 0);
    for (i, row) in rows.iter().enumerate() {
        let outcome = (|| -> Result<u32> {
            let r = request(row, algorithm)?;
            flows::validate(&r)?;
            if !seen.insert(r.uuid.clone()) {
                return Err(CmsError::BulkDuplicate);
            }
            if cms.db.holder(&r.uuid)?.is_some() {
                return Err(CmsError::BulkRegistered);
            }
            let image = out.join(format!("{}.s9img", r.uuid));
            let serial = next_serial;
            virtual_card::init(
                &image,
                virtual_card::Make::virtual_card(serial, applet::Profile::Series9),
                Entropy::Os,
            )?;
            next_serial += 1;
            let (_, mut sim) = virtual_card::boot(&image, Entropy::Os, true)?;
            sim.power_on();
            let done = flows::personalize(cms, &mut PivClient::new(&mut sim), &r, now);
            if done.is_err() {
                let _ = std::fs::remove_file(&image);
            }
            done.map(|d| d.serial)
        })();
        let uuid = row.get(0).unwrap_or_default();
        let record = match &outcome {
            Ok(serial) => {
                ok += 1;
                [
                    (i + 1).to_string(),
                    uuid.to_string(),
                    format!("{serial:010}"),
                    "personalised".into(),
                ]
            }
            Err(e) => {
                failed += 1;
                [
                    (i + 1).to_string(),
                    uuid.to_string(),
                    String::new(),
                    format!("error: {e}"),
                ]
            }
        };
        results.write_record(&record).map_err(written)?;
        progress(i + 1);
    }
    results.flush().map_err(|e| written(csv::Error::from(e)))?;
    Ok(Summary {
        ok,
        failed,
        took: started.elapsed(),
        results: results_path,
    })
}

/// A CSV error at `path`.
fn csv_error(path: &Path) -> impl Fn(csv::Error) -> CmsError + Copy + '_ {
    move |source| CmsError::Csv {
        path: path.to_path_buf(),
        source,
    }
}
