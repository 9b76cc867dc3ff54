//! `trace decode`: a raw trace file, as `serve --trace -` would have shown it.

use std::path::PathBuf;

use clap::Subcommand;
use virtual_reader::trace::Record;

use crate::Done;

/// Traces.
#[derive(clap::Args)]
pub struct Trace {
    #[command(subcommand)]
    command: TraceCommand,
}

#[derive(Subcommand)]
enum TraceCommand {
    /// Decode a raw trace file written by `serve --trace FILE`.
    Decode { file: PathBuf },
}

pub fn run(args: Trace) -> Done {
    let TraceCommand::Decode { file } = args.command;
    let text = std::fs::read_to_string(&file)?;
    for (n, line) in text.lines().enumerate() {
        match Record::parse(line) {
            Some(r) => println!("{}", r.decoded()),
            None if line.trim().is_empty() => {}
            None => {
                return Err(format!("{}:{}: not a raw trace line", file.display(), n + 1).into());
            }
        }
    }
    Ok(())
}
