//! `whittle`: make container images tiny and trustworthy.
//!
//! A thin command line over the library crates: it parses arguments into types,
//! calls one library function per step, and turns errors into messages and exit codes.

mod args;
mod commands;
mod interrupt;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

/// Make container images tiny and trustworthy, reproducibly and without a daemon.
#[derive(Parser)]
#[command(name = "whittle", version, about, long_about = None, after_help = whittle_transport::reference::ACCEPTED)]
struct Cli {
    #[command(flatten)]
    global: args::Global,
    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        commands::Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "whittle", &mut out);
            return finish(output::print(&String::from_utf8_lossy(&out)).map_err(Into::into));
        }
        commands::Command::Man => {
            let mut out = Vec::new();
            let rendered = clap_mangen::Man::new(Cli::command()).render(&mut out);
            let printed = rendered.and_then(|()| output::print(&String::from_utf8_lossy(&out)));
            return finish(printed.map_err(Into::into));
        }
        _ => {}
    }
    if !cli.global.quiet {
        whittle_image::progress::install(Box::new(output::Progress::new()));
    }
    use_layer_facts(cli.global.quiet);
    let result = commands::run(cli.command, &cli.global);
    // An interrupted run ends in the signal handler, with its own status.
    while interrupt::signalled() {
        std::thread::park();
    }
    finish(result)
}

/// Keeps proven layer facts (see `whittle_image::verified`) in `$WHITTLE_CACHE_DIR`
/// (set empty: nowhere), else `$XDG_CACHE_HOME/whittle`, else `~/.cache/whittle`. A
/// directory named explicitly that cannot be used is said; the default one is skipped
/// quietly (a home that is not the user's own, a read-only one).
fn use_layer_facts(quiet: bool) {
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let explicit = std::env::var_os("WHITTLE_CACHE_DIR");
    let dir = match &explicit {
        Some(d) if d.is_empty() => None,
        Some(d) => Some(PathBuf::from(d)),
        None => set("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| set("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|d| d.join("whittle")),
    };
    if let Err(e) = whittle_image::verified::use_dir(dir.as_deref()) {
        if explicit.is_some() && !quiet {
            eprintln!("warning: WHITTLE_CACHE_DIR: {e}; every layer is checked in full");
        }
    }
}

/// The exit status for a command's result (its error printed).
fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Like coreutils killed by SIGPIPE: no message, status 128 + 13.
        Err(err) if output::is_broken_pipe(&err) => ExitCode::from(141),
        Err(err) => {
            output::print_error(&err);
            ExitCode::from(1)
        }
    }
}
