//! `whittle fleet PLAN.toml`: slim many images, or one shard of them, and skip every
//! image whose destination already holds the output for the same source, flags and
//! whittle version.
//!
//! No scheduler of its own: `--jobs N` runs jobs side by side on one machine, and
//! `--shard I/N` (by default from a Kubernetes Indexed Job's `JOB_COMPLETION_INDEX` and
//! `JOB_COMPLETIONS`) takes every N-th job, so the engine that runs the shards does the
//! scheduling, retries and parallelism. Each job runs as a child `whittle slim`, so a job
//! that fails (or crashes) never stops the others.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use whittle_image::Compression;

use super::{open_source, parse_ref};
use crate::args::{ConfigFlags, Global};

/// The config label that records which source, flags and whittle version made an output.
pub const FLEET_KEY_LABEL: &str = "dev.whittle.fleet.key";

/// Arguments of `fleet`.
#[derive(Args, Debug)]
pub struct FleetArgs {
    /// The plan: `[defaults] args = [...]` and `[[job]] src = ..., dst = ..., args = [...]`.
    #[arg(value_name = "PLAN.toml")]
    plan: PathBuf,
    /// Run this many jobs at once.
    #[arg(long, value_name = "N", default_value_t = 1)]
    jobs: usize,
    /// Run only shard I of N (jobs I, I+N, I+2N, ...); default from JOB_COMPLETION_INDEX
    /// and JOB_COMPLETIONS when both are set (a Kubernetes Indexed Job), else all jobs.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    shard: Option<Shard>,
}

/// One shard of a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    index: usize,
    count: usize,
}

fn parse_shard(s: &str) -> Result<Shard, String> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not I/N (e.g. 0/4)"))?;
    let index: usize = i
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: {i:?} is not a number"))?;
    let count: usize = n
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: {n:?} is not a number"))?;
    if count == 0 || index >= count {
        return Err(format!(
            "{s:?}: the shard index must be below the count (0/1 .. N-1/N)"
        ));
    }
    Ok(Shard { index, count })
}

/// The shard a Kubernetes Indexed Job gives this pod, when its environment says.
fn shard_from_env() -> Result<Option<Shard>> {
    let (Ok(index), Ok(count)) = (
        std::env::var("JOB_COMPLETION_INDEX"),
        std::env::var("JOB_COMPLETIONS"),
    ) else {
        return Ok(None);
    };
    parse_shard(&format!("{index}/{count}"))
        .map(Some)
        .map_err(|e| anyhow::anyhow!("JOB_COMPLETION_INDEX/JOB_COMPLETIONS: {e}"))
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct Plan {
    #[serde(default)]
    defaults: Defaults,
    #[serde(default, rename = "job")]
    jobs: Vec<Job>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct Defaults {
    /// `slim` flags of every job that names none.
    #[serde(default)]
    args: Vec<String>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct Job {
    src: String,
    dst: String,
    /// `slim` flags (instead of the defaults').
    args: Option<Vec<String>>,
}

/// What became of one job: one JSON line on stdout.
#[derive(serde::Serialize, Debug)]
struct Outcome {
    job: usize,
    src: String,
    dst: String,
    /// `slimmed`, `skipped` or `failed`.
    status: &'static str,
    /// The source's config digest (what the image is, whatever the transport).
    source: Option<String>,
    /// The output's manifest digest.
    output: Option<String>,
    /// Layer bytes before and after (as stored by each side).
    source_bytes: Option<u64>,
    output_bytes: Option<u64>,
    /// The output's bottom layer (digest, bytes): images slimmed with `--layering
    /// packages` from the same base packages share it.
    #[serde(skip)]
    bottom: Option<(String, u64)>,
    seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Runs `fleet`.
pub fn run(a: FleetArgs, global: &Global) -> Result<()> {
    let text = std::fs::read_to_string(&a.plan)
        .with_context(|| format!("cannot read the plan {}", a.plan.display()))?;
    let plan: Plan = toml::from_str(&text)
        .with_context(|| format!("the plan {} is not valid", a.plan.display()))?;
    if plan.jobs.is_empty() {
        bail!("the plan {} has no [[job]]", a.plan.display());
    }
    for (i, job) in plan.jobs.iter().enumerate() {
        parse_ref(&job.src).with_context(|| format!("job {i}: src"))?;
        parse_ref(&job.dst).with_context(|| format!("job {i}: dst"))?;
    }
    let shard = match a.shard {
        Some(s) => Some(s),
        None => shard_from_env()?,
    };
    let mine: Vec<(usize, Job)> = plan
        .jobs
        .iter()
        .cloned()
        .enumerate()
        .filter(|(i, _)| shard.is_none_or(|s| i % s.count == s.index))
        .collect();
    if !global.quiet {
        let which = shard.map_or_else(String::new, |s| format!(" (shard {}/{})", s.index, s.count));
        eprintln!(
            "fleet: {} of {} jobs{which}, {} at a time",
            mine.len(),
            plan.jobs.len(),
            a.jobs.max(1)
        );
    }
    let exe = std::env::current_exe().context("cannot find whittle's own executable")?;
    let next = AtomicUsize::new(0);
    let outcomes: Mutex<Vec<Finished>> = Mutex::new(Vec::new());
    let stdout = Mutex::new(std::io::stdout());
    std::thread::scope(|scope| {
        for _ in 0..a.jobs.max(1).min(mine.len().max(1)) {
            scope.spawn(|| loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some((index, job)) = mine.get(n) else {
                    break;
                };
                let args = job.args.as_ref().unwrap_or(&plan.defaults.args);
                let outcome = run_job(*index, job, args, &exe, global);
                if let Ok(mut all) = outcomes.lock() {
                    all.push((outcome.status, outcome.bottom.clone()));
                }
                if let Ok(line) = serde_json::to_string(&outcome) {
                    if let Ok(mut out) = stdout.lock() {
                        let _ = writeln!(out, "{line}");
                        let _ = out.flush();
                    }
                }
            });
        }
    });
    let outcomes = outcomes.into_inner().unwrap_or_else(|p| p.into_inner());
    let failed = outcomes
        .iter()
        .filter(|(status, _)| *status == "failed")
        .count();
    if !global.quiet {
        summarize(&outcomes);
    }
    if failed > 0 {
        bail!("{failed} of {} jobs failed", mine.len());
    }
    Ok(())
}

/// A job's status and its output's bottom layer (digest, bytes), for the summary.
type Finished = (&'static str, Option<(String, u64)>);

/// Counts by status, and how much the outputs' shared bottom layers save a registry.
fn summarize(all: &[Finished]) {
    let count = |s: &str| all.iter().filter(|(st, _)| *st == s).count();
    let bottoms: Vec<&(String, u64)> = all.iter().filter_map(|(_, b)| b.as_ref()).collect();
    let distinct: std::collections::BTreeMap<&str, u64> =
        bottoms.iter().map(|(d, n)| (d.as_str(), *n)).collect();
    let saved: u64 = bottoms.iter().map(|(_, n)| n).sum::<u64>() - distinct.values().sum::<u64>();
    eprintln!(
        "fleet: {} slimmed, {} skipped, {} failed; the outputs use {} distinct bottom layers \
         ({} bytes a registry stores once instead of for each image)",
        count("slimmed"),
        count("skipped"),
        count("failed"),
        distinct.len(),
        saved
    );
}

/// The key of an output: the source's config digest, the flags and whittle's version.
fn fleet_key(source: &str, args: &[String]) -> String {
    let mut h = Sha256::new();
    h.update(b"whittle fleet 1\n");
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(b"\n");
    h.update(source.as_bytes());
    for a in args {
        h.update(b"\0");
        h.update(a.as_bytes());
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// What fleet needs to know of an image.
struct Described {
    config: String,
    manifest: Option<String>,
    bytes: u64,
    key: Option<String>,
    bottom: Option<(String, u64)>,
}

/// An image's config and manifest digests, layer bytes, fleet key label, bottom layer.
fn describe(reference: &str, global: &Global) -> Result<Described> {
    let r = parse_ref(reference)?;
    let image = open_source(&r, &ConfigFlags::default(), Compression::Gzip, global)?;
    let config: serde_json::Value = serde_json::from_slice(&image.config.bytes)
        .with_context(|| format!("the config of {r} is not JSON"))?;
    let key = config["config"]["Labels"][FLEET_KEY_LABEL]
        .as_str()
        .map(String::from);
    let bytes = image.layers.iter().map(|l| l.descriptor.size).sum();
    let manifest = image
        .manifest
        .as_ref()
        .map(|m| m.descriptor().digest.to_string());
    let bottom = image
        .layers
        .first()
        .map(|l| (l.descriptor.digest.to_string(), l.descriptor.size));
    Ok(Described {
        config: image.config.descriptor().digest.to_string(),
        manifest,
        bytes,
        key,
        bottom,
    })
}

fn run_job(index: usize, job: &Job, args: &[String], exe: &Path, global: &Global) -> Outcome {
    let start = Instant::now();
    let mut out = Outcome {
        job: index,
        src: job.src.clone(),
        dst: job.dst.clone(),
        status: "failed",
        source: None,
        output: None,
        source_bytes: None,
        output_bytes: None,
        bottom: None,
        seconds: 0.0,
        error: None,
    };
    let result = (|| -> Result<&'static str> {
        let source = describe(&job.src, global)?;
        out.source = Some(source.config.clone());
        out.source_bytes = Some(source.bytes);
        let key = fleet_key(&source.config, args);
        if let Ok(have) = describe(&job.dst, global) {
            if have.key.as_deref() == Some(key.as_str()) {
                out.output = have.manifest;
                out.output_bytes = Some(have.bytes);
                out.bottom = have.bottom;
                return Ok("skipped");
            }
        }
        let mut cmd = std::process::Command::new(exe);
        cmd.args(passthrough(global))
            .arg("slim")
            .arg(&job.src)
            .arg(&job.dst)
            .args(args)
            .arg("--label")
            .arg(format!("{FLEET_KEY_LABEL}={key}"))
            .stdin(std::process::Stdio::null());
        let child = cmd.output().context("cannot start whittle slim")?;
        if !child.status.success() {
            let err = String::from_utf8_lossy(&child.stderr);
            let tail: Vec<&str> = err.lines().rev().take(6).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "whittle slim failed ({}): {}",
                child.status,
                tail.join(" | ")
            );
        }
        let stdout = String::from_utf8_lossy(&child.stdout);
        out.output = stdout.lines().last().map(|l| l.trim().to_string());
        if let Ok(made) = describe(&job.dst, global) {
            out.output_bytes = Some(made.bytes);
            out.bottom = made.bottom;
        }
        Ok("slimmed")
    })();
    match result {
        Ok(status) => out.status = status,
        Err(e) => out.error = Some(format!("{e:#}")),
    }
    out.seconds = (start.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    out
}

/// The global flags a job's `whittle slim` needs from this run.
fn passthrough(global: &Global) -> Vec<String> {
    let mut v = vec!["--quiet".to_string()];
    v.push(format!("--tls-verify={}", global.tls_verify));
    v.push(format!("--max-layer-size={}", global.max_layer_size));
    if let Some(c) = &global.creds {
        v.push(format!("--creds={c}"));
    }
    if let Some(f) = &global.authfile {
        v.push(format!("--authfile={}", f.display()));
    }
    if let Some(d) = &global.cert_dir {
        v.push(format!("--cert-dir={}", d.display()));
    }
    if let Some(p) = &global.platform {
        v.push(format!("--platform={p}"));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards() {
        assert_eq!(parse_shard("1/3"), Ok(Shard { index: 1, count: 3 }));
        for bad in ["3/3", "0/0", "x/2", "1", "-1/2"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_change_with_source_and_flags() {
        let a = fleet_key("sha256:aa", &["--trace".into()]);
        assert_eq!(a, fleet_key("sha256:aa", &["--trace".into()]));
        assert_ne!(a, fleet_key("sha256:ab", &["--trace".into()]));
        assert_ne!(a, fleet_key("sha256:aa", &[]));
        // Arguments are separated: ["a b"] is not ["a", "b"].
        assert_ne!(
            fleet_key("s", &["a b".into()]),
            fleet_key("s", &["a".into(), "b".into()])
        );
    }

    #[test]
    fn plans_refuse_unknown_keys() {
        assert!(toml::from_str::<Plan>("[[job]]\nsrc = \"a\"\ndst = \"b\"\nflags = []\n").is_err());
        let p: Plan =
            toml::from_str("[defaults]\nargs = [\"--trace\"]\n[[job]]\nsrc = \"a\"\ndst = \"b\"\n")
                .unwrap();
        assert_eq!(p.jobs.len(), 1);
        assert_eq!(p.defaults.args, ["--trace"]);
    }
}
