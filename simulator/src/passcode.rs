//! Where a passcode comes from, in order: the flag (with a warning: the
//! command line is visible to every user of the machine), a file
//! descriptor (as gpg's `--passphrase-fd`), an environment variable, or an
//! unechoed prompt.

use zeroize::Zeroizing;

/// The places one passcode may come from.
pub struct PasscodeFrom<'a> {
    pub flag: Option<String>,
    pub flag_name: &'a str,
    pub fd: Option<u32>,
    pub env: &'a str,
    pub prompt: &'a str,
}

/// Reads the passcode from the first place that has one.
pub fn read(from: PasscodeFrom<'_>) -> Result<Zeroizing<String>, Box<dyn std::error::Error>> {
    if let Some(p) = from.flag {
        eprintln!(
            "warning: {} on the command line is visible to every user of this machine (ps); use {}-fd, ${} or the prompt",
            from.flag_name, from.flag_name, from.env
        );
        return Ok(Zeroizing::new(p));
    }
    if let Some(fd) = from.fd {
        // /dev/fd/N opens the inherited descriptor without unsafe code.
        let path = format!("/dev/fd/{fd}");
        let text = Zeroizing::new(
            std::fs::read_to_string(&path)
                .map_err(|e| format!("{}-fd {fd}: {e}", from.flag_name))?,
        );
        let line = text.lines().next().unwrap_or_default();
        return Ok(Zeroizing::new(line.to_string()));
    }
    if let Ok(p) = std::env::var(from.env) {
        return Ok(Zeroizing::new(p));
    }
    Ok(Zeroizing::new(rpassword::prompt_password(from.prompt)?))
}
