//! `whittle why IMAGE PATH`: why a slimmed image kept a path.

use anyhow::{bail, Context, Result};
use clap::Args;
use whittle_slim::{Report, REPORT_LABEL};

use super::{open_source, parse_ref};
use crate::args::{ConfigFlags, Global};

/// Arguments of `why`.
#[derive(Args, Debug)]
pub struct WhyArgs {
    /// An image written by `whittle slim` or `whittle extract`.
    #[arg(value_name = "IMAGE")]
    image: String,
    /// An absolute path in it.
    #[arg(value_name = "PATH")]
    path: String,
}

/// Runs `why`.
pub fn run(a: WhyArgs, global: &Global) -> Result<()> {
    let r = parse_ref(&a.image)?;
    // Sources may be downloaded to the temp directory: a signal must not leave them there.
    crate::interrupt::install(&[]);
    let image = open_source(
        &r,
        &ConfigFlags::default(),
        whittle_image::Compression::Gzip,
        global,
    )?;
    let config: serde_json::Value = serde_json::from_slice(&image.config.bytes)
        .with_context(|| format!("the config of {r} is not JSON"))?;
    let Some(label) = config["config"]["Labels"][REPORT_LABEL].as_str() else {
        bail!("{r} was not made by whittle slim or extract (it has no {REPORT_LABEL} label)");
    };
    let report = Report::from_label(label)?;
    let path = whittle_elf::root::normalize("/", &a.path);
    let mut text = String::new();
    let kept = match report.find(&path) {
        Some(kept) => kept,
        None => {
            // The path as a program would name it (`/lib/...` through `/lib -> usr/lib`):
            // resolved inside the image, and explained as what it resolves to.
            let scratch = whittle_image::Scratch::new_in(&std::env::temp_dir())?;
            let flat = whittle_image::mutate::Flat::read(
                &image,
                &scratch,
                &global.limits(),
                whittle_image::entries::ReadOptions::default(),
            )
            .with_context(|| format!("cannot read {r}"))?;
            let root = whittle_slim::ImageRoot::new(&flat);
            let resolved = whittle_elf::root::resolve(&root, &path).ok();
            let Some((resolved, kept)) =
                resolved.and_then(|res| report.find(&res.path).map(|k| (res, k)))
            else {
                bail!("{path} is not in {r}: slim did not keep it");
            };
            text.push_str(&format!(
                "{path} is {} in this image (through {})\n",
                resolved.path,
                resolved.links.join(", ")
            ));
            kept
        }
    };
    for (i, step) in kept.chain.iter().enumerate() {
        text.push_str(if i == 0 { "" } else { "  <- " });
        text.push_str(step);
        text.push('\n');
    }
    crate::output::print(&text)?;
    Ok(())
}
