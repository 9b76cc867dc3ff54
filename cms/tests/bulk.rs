//! Bulk personalisation: good rows become cards, bad rows are reported and
//! the batch carries on.

use client::PivClient;
use cms::flows::{self, Cms};
use cms::time;
use cms::{CmsError, bulk};
use virtual_card::Entropy;

#[test]
fn bad_rows_are_reported_and_the_batch_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cms.db");
    let now = time::parse("2026-11-25").unwrap();
    Cms::init_ca(&db, now).unwrap();
    let mut cms = Cms::open(&db).unwrap();
    let file = dir.path().join("users.csv");
    std::fs::write(
        &file,
        "uuid,name,email,mobile,role,passcode\n\
         555000000001,\"Smith, Ann\",ann@nhs.example,,holder,482915\n\
         55500000002,Bad Uuid,b@nhs.example,,holder,482915\n\
         555000000003,Bad Email,not-an-email,,holder,482915\n\
         555000000004,Weak Passcode,d@nhs.example,,holder,123456\n\
         555000000001,Duplicate,e@nhs.example,,holder,482915\n\
         555000000006,Sam Sponsor,,07700900123,sponsor,731026\n\
         555000000007,Bad Role,g@nhs.example,,admin,482915\n\
         555000000008,Short Row,h@nhs.example\n",
    )
    .unwrap();
    let rows = bulk::read(&file).unwrap();
    let out = dir.path().join("cards");
    let mut seen = 0;
    let summary = bulk::personalize(
        &mut cms,
        &rows,
        &out,
        applet::algorithm::Algorithm::P384,
        now,
        |n| seen = n,
    )
    .unwrap();
    assert_eq!((summary.ok, summary.failed, seen), (2, 6, 8));
    let results = std::fs::read_to_string(&summary.results).unwrap();
    let lines: Vec<&str> = results.lines().collect();
    assert_eq!(lines[0], "row,uuid,serial,outcome");
    assert!(
        lines[1].starts_with("1,555000000001,0910000001,personalised"),
        "{results}"
    );
    for (line, why) in [
        (2, "twelve digits"),
        (3, "not an email"),
        (4, "not easy to guess"),
        (5, "duplicate"),
        (7, "role"),
        (8, "fields"),
    ] {
        assert!(lines[line].contains(why), "line {line}: {results}");
    }
    assert!(lines[6].contains("0910000002,personalised"), "{results}");
    // Only the good rows left images and records behind.
    let images: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "s9img"))
        .collect();
    assert_eq!(images.len(), 2);
    assert!(cms.db.holder("555000000003").unwrap().is_none());
    // A bulk card works like any other.
    let (_, mut sim) =
        virtual_card::boot(&out.join("555000000006.s9img"), Entropy::Seed(1), false).unwrap();
    sim.power_on();
    let status = flows::status(&mut PivClient::new(&mut sim), Some(&cms.ca)).unwrap();
    let certificate = status.certificate.unwrap();
    assert_eq!(certificate.uuid, "555000000006");
    // The batch's algorithm, certified.
    assert_eq!(
        certificate.key.algorithm,
        applet::algorithm::Algorithm::P384
    );
}

#[test]
fn files_over_300_rows_or_without_the_columns_are_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.csv");
    let mut text = String::from("uuid,name,email,mobile,role,passcode\n");
    for n in 0..301 {
        text += &format!(
            "{:012},N,n@nhs.example,,holder,482915\n",
            555_000_000_000u64 + n
        );
    }
    std::fs::write(&big, text).unwrap();
    assert!(matches!(
        bulk::read(&big),
        Err(CmsError::BulkTooLong {
            rows: 301,
            max: 300,
            ..
        })
    ));
    let wrong = dir.path().join("wrong.csv");
    std::fs::write(&wrong, "id,name\n1,x\n").unwrap();
    assert!(matches!(
        bulk::read(&wrong),
        Err(CmsError::BulkColumns { .. })
    ));
}
