//! `whittle inspect IMAGE`.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use clap::Args;
use whittle_image::inspect::{inspect, Inspection};
use whittle_image::Compression;

use super::{open_source, parse_ref};
use crate::args::{ConfigFlags, Global};
use crate::output::human;

/// Arguments of `inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The image to report on.
    #[arg(value_name = "IMAGE")]
    image: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `inspect`.
pub fn run(a: InspectArgs, global: &Global) -> Result<()> {
    let r = parse_ref(&a.image)?;
    // Sources may be downloaded to the temp directory: a signal must not leave them there.
    crate::interrupt::install(&[]);
    crate::interrupt::install(&[]);
    let image = open_source(&r, &ConfigFlags::default(), Compression::None, global)?;
    let report =
        inspect(&image, &global.limits()).with_context(|| format!("cannot inspect {r}"))?;
    if a.json {
        let mut v = serde_json::to_value(&report)?;
        if let Some(map) = v.as_object_mut() {
            map.insert("reference".into(), serde_json::Value::String(r.to_string()));
        }
        crate::output::print(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
    } else {
        crate::output::print(&table(&r.to_string(), &report))?;
    }
    Ok(())
}

/// The run configuration, one key a line (only the keys the image sets).
fn run_config(o: &mut String, c: &serde_json::Value) {
    let Some(map) = c.as_object().filter(|m| !m.is_empty()) else {
        let _ = writeln!(o, "Run config  (none)\n");
        return;
    };
    let _ = writeln!(o, "Run config");
    for key in [
        "Entrypoint",
        "Cmd",
        "User",
        "WorkingDir",
        "Env",
        "ExposedPorts",
        "Volumes",
        "StopSignal",
        "Labels",
    ] {
        let Some(v) = map
            .get(key)
            .filter(|v| !v.is_null() && v.as_str() != Some(""))
        else {
            continue;
        };
        let shown = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Object(m) if key != "Labels" => {
                m.keys().cloned().collect::<Vec<_>>().join(", ")
            }
            other => other.to_string(),
        };
        let _ = writeln!(o, "  {key:<12} {shown}");
    }
    let _ = writeln!(o);
}

/// The build history, one step a line (empty layers marked).
fn history(o: &mut String, h: &serde_json::Value) {
    let Some(steps) = h.as_array().filter(|a| !a.is_empty()) else {
        return;
    };
    let _ = writeln!(o, "History");
    for step in steps {
        let by = step["created_by"].as_str().unwrap_or("");
        let by: String = by.chars().take(100).collect();
        let empty = if step["empty_layer"].as_bool() == Some(true) {
            " (no layer)"
        } else {
            ""
        };
        let _ = writeln!(o, "  {by}{empty}");
    }
    let _ = writeln!(o);
}

fn short(d: &str) -> &str {
    &d[..d.len().min(19)]
}

fn table(name: &str, r: &Inspection) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Image     {name}");
    let _ = writeln!(o, "Platform  {}/{}", r.os, r.architecture);
    let _ = writeln!(o, "Manifest  {}", r.manifest_digest);
    let _ = writeln!(o, "Config    {}", r.config_digest);
    let _ = writeln!(o);
    run_config(&mut o, &r.config);
    history(&mut o, &r.history);
    let _ = writeln!(
        o,
        "{:>3}  {:<19}  {:>11}  {:>12}  {:>8}  {:>7}  {:>7}  {:>7}",
        "#", "layer", "compressed", "uncompressed", "entries", "added", "changed", "deleted"
    );
    for l in &r.layers {
        let _ = writeln!(
            o,
            "{:>3}  {:<19}  {:>11}  {:>12}  {:>8}  {:>7}  {:>7}  {:>7}",
            l.index,
            short(&l.digest),
            human(l.compressed_size),
            human(l.uncompressed_size),
            l.stats.entries,
            l.stats.added,
            l.stats.changed,
            l.stats.deleted
        );
    }
    let _ = writeln!(
        o,
        "total     {} compressed, {} uncompressed, {} files",
        human(r.total_compressed_size),
        human(r.total_uncompressed_size),
        r.files
    );
    let _ = writeln!(
        o,
        "wasted    {} (overwritten or deleted by later layers)",
        human(r.wasted_bytes)
    );
    let _ = writeln!(o, "efficiency {:.1}%", r.efficiency * 100.0);
    let _ = writeln!(o);
    let _ = writeln!(o, "Largest files");
    for f in &r.largest_files {
        let _ = writeln!(
            o,
            "  {:>10}  {}  (layer {})",
            human(f.size),
            f.path,
            f.layer
        );
    }
    let count = |k: &str| r.elf.iter().filter(|e| e.linkage == k).count();
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "ELF       {} files: {} dynamic, {} static, {} shared objects",
        r.elf.len(),
        count("dynamic"),
        count("static"),
        count("shared-object")
    );
    let mut interps: Vec<(&str, bool)> = r
        .elf
        .iter()
        .filter_map(|e| {
            Some((
                e.interpreter.as_deref()?,
                e.interpreter_present.unwrap_or(false),
            ))
        })
        .collect();
    interps.sort();
    interps.dedup();
    for (i, present) in interps {
        let _ = writeln!(
            o,
            "  interpreter {i}: {}",
            if present { "present" } else { "MISSING" }
        );
    }
    if !r.warnings.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "Warnings");
        for w in &r.warnings {
            let _ = writeln!(o, "  {w}");
        }
    }
    o
}
