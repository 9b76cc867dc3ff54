//! Flash program and erase operations per PIV command, on a fresh
//! personalised-looking card, and averaged over many VERIFYs (so that the
//! occasional page opening and collection is counted too).

mod common;
use common::*;

fn main() {
    let base = boot(Flash::new()).into_parts().0;
    let mut cert = vec![
        0x5C, 0x03, 0x5F, 0xC1, 0x05, 0x53, 0x82, 0x05, 0xE3, 0x70, 0x82, 0x05, 0xDC,
    ];
    cert.extend(vec![0xC5; 1500]);
    cert.extend([0x71, 0x01, 0x00]);
    let mut rows: Vec<(&str, Vec<Vec<u8>>, bool)> = vec![
        ("VERIFY (right)", vec![VERIFY_RIGHT.to_vec()], false),
        ("VERIFY (wrong)", vec![VERIFY_WRONG.to_vec()], false),
        (
            "CHANGE REFERENCE DATA (PIN)",
            vec![
                [
                    &[0x00, 0x24, 0x00, 0x80, 0x10][..],
                    b"123456\xFF\xFF482915\xFF\xFF",
                ]
                .concat(),
            ],
            false,
        ),
        (
            "RESET RETRY COUNTER",
            vec![
                [
                    &[0x00, 0x2C, 0x00, 0x80, 0x10][..],
                    b"12345678482915\xFF\xFF",
                ]
                .concat(),
            ],
            false,
        ),
        ("GENERATE 9A", vec![GENERATE_9A.to_vec()], true),
        (
            "SET PIN RETRIES",
            vec![VERIFY_RIGHT.to_vec(), vec![0x00, 0xFA, 0x05, 0x05]],
            true,
        ),
    ];
    // PUT DATA of a 1.5 KiB certificate, chained as tools send it.
    let chained: Vec<Vec<u8>> = cert
        .chunks(255)
        .enumerate()
        .map(|(i, part)| {
            let last = (i + 1) * 255 >= cert.len();
            let mut apdu = vec![
                if last { 0x00 } else { 0x10 },
                0xDB,
                0x3F,
                0xFF,
                part.len() as u8,
            ];
            apdu.extend(part);
            apdu
        })
        .collect();
    rows.push(("PUT DATA (1.5 KiB certificate)", chained, true));

    println!("{:<32} {:>9} {:>7}", "command", "programs", "erases");
    for (name, apdus, needs_admin) in rows {
        let mut card = boot(base.clone());
        if needs_admin {
            admin(&mut card);
        }
        let (p0, e0) = (
            card.store().flash().programs(),
            card.store().flash().erase_ops(),
        );
        for apdu in &apdus {
            send(&mut card, apdu);
        }
        let (p1, e1) = (
            card.store().flash().programs(),
            card.store().flash().erase_ops(),
        );
        // A SET PIN RETRIES row counts its VERIFY too; take it off.
        let (p, e) = if apdus.len() == 2 && name.starts_with("SET") {
            (p1 - p0 - 2, e1 - e0)
        } else {
            (p1 - p0, e1 - e0)
        };
        println!("{name:<32} {p:>9} {e:>7}");
    }
    let mut card = boot(base);
    let n = 20_000u64;
    let (p0, e0) = (
        card.store().flash().programs(),
        card.store().flash().erase_ops(),
    );
    for _ in 0..n {
        send(&mut card, VERIFY_RIGHT);
    }
    let (p1, e1) = (
        card.store().flash().programs(),
        card.store().flash().erase_ops(),
    );
    println!(
        "VERIFY averaged over {n}: {:.3} programs, {:.4} erases (page openings and collection included)",
        (p1 - p0) as f64 / n as f64,
        (e1 - e0) as f64 / n as f64
    );
}
