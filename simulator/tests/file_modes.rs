//! Every file the `s9card` command writes that holds a secret is readable
//! by its owner only, whatever the umask: card images (the device key is in
//! their header), traces, the CMS database with its journal, the master
//! secret and the test CA's key.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn s9card(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_s9card"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "s9card {args:?}: {out:?}");
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn secret_files_are_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    // A permissive directory: what the files get must not come from it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let at = |name: &str| dir.path().join(name);
    let image = at("card.s9img");
    let db = at("cms/cms.db");
    s9card(&[
        "init",
        "--image",
        image.to_str().unwrap(),
        "--serial",
        "0900000042",
        "--virtual",
    ]);
    s9card(&["ca", "init", "--db", db.to_str().unwrap()]);
    s9card(&[
        "personalize",
        "--image",
        image.to_str().unwrap(),
        "--uuid",
        "555000111222",
        "--name",
        "Holder",
        "--passcode",
        "482915",
        "--db",
        db.to_str().unwrap(),
    ]);

    // A server writing a trace (no vpcd needed to open the file).
    let trace = at("trace.raw");
    let mut server = Command::new(env!("CARGO_BIN_EXE_s9card"))
        .args(["serve", "--image", image.to_str().unwrap(), "--trace"])
        .arg(&trace)
        .arg("--control")
        .arg(at("control.sock"))
        .args(["--vpcd", "127.0.0.1:1"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !trace.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = server.kill();
    let _ = server.wait();

    let cms = db.parent().unwrap();
    let mut files = vec![image, trace, db.clone()];
    for entry in std::fs::read_dir(cms).unwrap() {
        files.push(entry.unwrap().path());
    }
    assert!(
        files.len() >= 6,
        "database, journal, master secret, CA: {files:?}"
    );
    for f in &files {
        let want = if f.is_dir() { 0o700 } else { 0o600 };
        if f.extension().is_some_and(|e| e == "pem") {
            // The CA's certificate is public.
            continue;
        }
        assert_eq!(mode(f), want, "{}", f.display());
    }
    assert_eq!(mode(cms), 0o700);
}
