//! `s9card`: virtual NHS Series 9-style staff smartcards for PC/SC.
//!
//! This file parses the command line and dispatches; each group of
//! subcommands is a module that turns its arguments into calls on the
//! library crates: serving cards to readers ([`serving`], on
//! `virtual-reader`), bringing readers and cards up for CI ([`kit`]), card
//! images ([`images`], on `virtual-card`), credential management
//! ([`credentials`], on `cms`) and traces ([`traces`]).

mod credentials;
mod images;
mod kit;
mod passcode;
mod paths;
mod serving;
mod traces;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// What a subcommand's failure is: printed after `s9card: `, exit 1.
type Done = Result<(), Box<dyn std::error::Error>>;

#[derive(Parser)]
#[command(
    name = "s9card",
    version,
    about = "Virtual Series 9-style staff smartcards for PC/SC (vsmartcard vpcd)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Serve(serving::Serve),
    Up(kit::Up),
    Down(kit::Down),
    Scenario(serving::Scenario),
    Image(images::Image),
    Init(images::Init),
    Eject(serving::Eject),
    Readers(serving::Readers),
    Pcscd(kit::Pcscd),
    Insert(serving::Insert),
    Trace(traces::Trace),
    Ca(credentials::Ca),
    Personalize(credentials::Personalize),
    Renew(credentials::Renew),
    Unlock(credentials::Unlock),
    SelfUnlock(credentials::SelfUnlock),
    Revoke(credentials::Revoke),
    Status(credentials::Status),
}

fn run(command: Command) -> Done {
    match command {
        Command::Serve(args) => serving::serve(args),
        Command::Up(args) => kit::up(args),
        Command::Down(args) => kit::down(args),
        Command::Scenario(args) => serving::scenario(args),
        Command::Image(args) => images::convert(args),
        Command::Init(args) => images::init(args),
        Command::Eject(args) => serving::eject(args),
        Command::Readers(args) => serving::readers(args),
        Command::Pcscd(args) => kit::pcscd(args),
        Command::Insert(args) => serving::insert(args),
        Command::Trace(args) => traces::run(args),
        Command::Ca(args) => credentials::ca(args),
        Command::Personalize(args) => credentials::personalize(args),
        Command::Renew(args) => credentials::renew(args),
        Command::Unlock(args) => credentials::unlock(args),
        Command::SelfUnlock(args) => credentials::self_unlock(args),
        Command::Revoke(args) => credentials::revoke(args),
        Command::Status(args) => credentials::status(args),
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("S9CARD_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("s9card: {e}");
            ExitCode::FAILURE
        }
    }
}
