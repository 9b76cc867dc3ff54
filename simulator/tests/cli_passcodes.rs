//! Passcodes reach the `s9card` command without showing in `ps`: from a
//! file descriptor (`--passcode-fd`, as gpg's `--passphrase-fd`) or an
//! environment variable; the flags still work, with a warning.

use std::process::{Command, Output, Stdio};

fn s9card(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_s9card"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Runs `s9card` through the shell, with `text` on file descriptor 3.
fn with_fd3(args: &str, text: &str) -> Output {
    let script = format!("printf '%s\\n' \"$PASS\" | \"$S9CARD\" {args} 3<&0 0</dev/null");
    Command::new("bash")
        .args(["-c", &script])
        .env("S9CARD", env!("CARGO_BIN_EXE_s9card"))
        .env("PASS", text)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn personalize(dir: &std::path::Path, n: u32) -> (String, String) {
    let image = dir.join(format!("card{n}.s9img"));
    let out = s9card(
        &[
            "init",
            "--image",
            image.to_str().unwrap(),
            "--serial",
            &format!("09000001{n:02}"),
            "--virtual",
        ],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    let db = dir.join("cms.db");
    (image.display().to_string(), db.display().to_string())
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn passcodes_from_a_descriptor_or_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cms.db");
    assert!(
        s9card(&["ca", "init", "--db", db.to_str().unwrap()], &[])
            .status
            .success()
    );
    let common = |image: &str, uuid: &str| {
        format!(
            "personalize --image {image} --uuid {uuid} --name Holder --db {}",
            db.display()
        )
    };

    // File descriptor 3.
    let (image, _) = personalize(dir.path(), 1);
    let out = with_fd3(
        &format!("{} --passcode-fd 3", common(&image, "555000111201")),
        "482915",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));

    // The environment.
    let (image, _) = personalize(dir.path(), 2);
    let args: Vec<String> = common(&image, "555000111202")
        .split(' ')
        .map(String::from)
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s9card(&args, &[("S9CARD_PASSCODE", "593017")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));

    // The flag: works, and says why not to.
    let (image, _) = personalize(dir.path(), 3);
    let mut args: Vec<String> = common(&image, "555000111203")
        .split(' ')
        .map(String::from)
        .collect();
    args.extend(["--passcode".into(), "730164".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = s9card(&args, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("visible to every user"),
        "{}",
        stderr(&out)
    );

    // Each card took the passcode it was given: a wrong one is refused at
    // renewal, the right one renews.
    for (n, pass) in [(1, "482915"), (2, "593017"), (3, "730164")] {
        let image = dir.path().join(format!("card{n}.s9img"));
        let renew = |pass: &str| {
            s9card(
                &[
                    "renew",
                    "--image",
                    image.to_str().unwrap(),
                    "--db",
                    db.to_str().unwrap(),
                    "--now",
                    "2028-10-01",
                ],
                &[("S9CARD_PASSCODE", pass)],
            )
        };
        let wrong = renew("000000");
        assert!(
            stderr(&wrong).contains("passcode refused"),
            "card {n}: {}",
            stderr(&wrong)
        );
        let right = renew(pass);
        assert!(right.status.success(), "card {n}: {}", stderr(&right));
    }
}
