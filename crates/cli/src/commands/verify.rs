//! `whittle verify ORIG SLIM`: run both under the same probes; any difference
//! in how the program ended or what the probes saw fails, and the paths the
//! slimmed run looked for that only the original has are listed as the likely cause.

use anyhow::{bail, Context, Result};
use clap::Args;
use whittle_image::entries::ReadOptions;
use whittle_image::mutate::Flat;
use whittle_trace::syscalls::Access;
use whittle_trace::RunOutcome;

use super::probe::{require_probes_ok, traced_run, TraceFlags};
use super::{open_source, parse_ref};
use crate::args::{ConfigFlags, Global};

/// Arguments of `verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The original image.
    #[arg(value_name = "ORIG")]
    orig: String,
    /// The image made from it (by `whittle slim`, `extract` or any other tool).
    #[arg(value_name = "SLIM")]
    slim: String,
    #[command(flatten)]
    trace: TraceFlags,
}

/// How many missing paths to list.
const SHOW_MISSING: usize = 40;

/// Runs `verify`.
pub fn run(a: VerifyArgs, global: &Global) -> Result<()> {
    crate::interrupt::install(&[]);
    let (orig_ref, slim_ref) = (parse_ref(&a.orig)?, parse_ref(&a.slim)?);
    let none = ConfigFlags::default();
    let orig = open_source(&orig_ref, &none, whittle_image::Compression::Gzip, global)?;
    let slim = open_source(&slim_ref, &none, whittle_image::Compression::Gzip, global)?;
    let scratch = whittle_image::Scratch::new_in(&std::env::temp_dir())?;
    let limits = global.limits();
    let orig_flat = Flat::read(&orig, &scratch, &limits, ReadOptions::default())
        .with_context(|| format!("cannot read {orig_ref}"))?;
    let slim_flat = Flat::read(&slim, &scratch, &limits, ReadOptions::default())
        .with_context(|| format!("cannot read {slim_ref}"))?;
    let mut flags = a.trace.clone();
    flags.trace = true;
    let profile = match &flags.seccomp_profile {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("cannot read --seccomp-profile {}", path.display()))?;
            let rules = whittle_trace::profile::ProfileRules::parse(&bytes)
                .map_err(|e| anyhow::anyhow!("--seccomp-profile {}: {e}", path.display()))?;
            Some((path.clone(), rules))
        }
        None => None,
    };
    // Only the slimmed run is held to the profile (and pays for recording every call).
    let orig_flags = TraceFlags {
        seccomp_profile: None,
        ..flags.clone()
    };
    let orig_run = traced_run(
        "original",
        &orig_flat,
        &orig.config.bytes,
        &scratch,
        &orig_flags,
        global.quiet,
    )?;
    // "Behaves like the original" means something only when the original behaved.
    require_probes_ok("original", &orig_run, &flags)?;
    let slim_run = traced_run(
        "slimmed",
        &slim_flat,
        &slim.config.bytes,
        &scratch,
        &flags,
        global.quiet,
    )?;
    let mut differences = compare(&orig_run, &slim_run, &orig_flat, &slim_flat);
    if let Some((path, rules)) = &profile {
        differences.extend(refused_calls(&slim_run, rules, path));
    }
    if differences.is_empty() {
        if !global.quiet {
            eprintln!("verify: {slim_ref} behaves like {orig_ref} under these probes");
            if let Some((path, _)) = &profile {
                eprintln!(
                    "verify: every system call it made is one {} allows",
                    path.display()
                );
            }
        }
        return Ok(());
    }
    print_differences(&differences);
    let count = differences
        .iter()
        .filter(|d| !d.starts_with(MISSING))
        .count();
    bail!("{slim_ref} behaves differently from {orig_ref} ({count} differences)")
}

const MISSING: &str = "the slimmed run looked for";

/// The calls of a recorded run that `rules` refuse, one line per program: under that
/// profile each would have failed (EPERM, or worse), so the run would not have gone as it did.
fn refused_calls(
    run: &RunOutcome,
    rules: &whittle_trace::profile::ProfileRules,
    path: &std::path::Path,
) -> Vec<String> {
    let mut by_program: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for ((abi, nr), by) in &run.trace.syscalls {
        if rules.allows(*abi, *nr) {
            continue;
        }
        let name = whittle_trace::profile::syscall_name(*abi, *nr)
            .map(String::from)
            .unwrap_or_else(|| format!("#{nr}"));
        let name = match abi {
            whittle_trace::syscalls::Abi::X86_64 => name,
            whittle_trace::syscalls::Abi::I386 => format!("{name} (i386)"),
        };
        let by = if by.is_empty() { "the program" } else { by };
        by_program.entry(by).or_default().push(name);
    }
    by_program
        .into_iter()
        .map(|(by, mut calls)| {
            calls.sort();
            format!(
                "{by} made calls that {} refuses (under it they fail): {}",
                path.display(),
                calls.join(", ")
            )
        })
        .collect()
}

/// What differs between two runs; empty when they behave alike. A last entry
/// lists paths the slimmed run looked up that only the original has.
pub fn compare(
    orig: &RunOutcome,
    slim: &RunOutcome,
    orig_flat: &Flat,
    slim_flat: &Flat,
) -> Vec<String> {
    let mut out = Vec::new();
    let ending = |o: &RunOutcome| match (o.exit, o.killed) {
        (Some(e), true) => format!("{e} (killed after the stop timeout)"),
        (Some(e), false) => e.to_string(),
        (None, _) => "unknown".into(),
    };
    if (orig.exit, orig.killed) != (slim.exit, slim.killed) {
        out.push(format!(
            "the program ended with {} in the original, {} in the slimmed image",
            ending(orig),
            ending(slim)
        ));
    }
    for (o, s) in orig.probes.iter().zip(&slim.probes) {
        if o.fingerprint != s.fingerprint || o.ok != s.ok {
            out.push(format!(
                "probe {}: original {}, slimmed {}",
                o.name, o.summary, s.summary
            ));
        }
    }
    if out.is_empty() {
        return out;
    }
    let missing: Vec<&String> = slim
        .trace
        .paths
        .iter()
        .filter(|(p, t)| t.access != Access::Modify && !whittle_slim::is_run_time_path(p))
        .map(|(p, _)| p)
        .filter(|p| !whittle_slim::resolves(slim_flat, p) && whittle_slim::resolves(orig_flat, p))
        .collect();
    if !missing.is_empty() {
        let mut text =
            format!("{MISSING} these paths, which only the original has (the likely cause):");
        for p in missing.iter().take(SHOW_MISSING) {
            text.push_str(&format!("\n    {p}"));
        }
        if missing.len() > SHOW_MISSING {
            text.push_str(&format!(
                "\n    ... and {} more",
                missing.len() - SHOW_MISSING
            ));
        }
        out.push(text);
    }
    out
}

/// Prints the differences for people.
pub fn print_differences(differences: &[String]) {
    eprintln!("verify: differences:");
    for d in differences {
        eprintln!("  - {d}");
    }
}
