//! Ctrl-C and SIGTERM: remove this process's temporary files, then exit.
//!
//! Temporary files and directories are named `.whittle-PID-*` (see
//! `whittle_image::temp_prefix`) and live beside the output, inside an existing
//! OCI layout's blob directory, or in the system temp directory. Destinations
//! themselves are only ever replaced by rename, so they are never touched here.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use whittle_transport::ImageRef;

/// Exit status after a signal, as shells report SIGINT.
const INTERRUPTED: i32 = 130;

/// Set when a signal arrived: the handler owns the exit from then on.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

/// Whether a signal arrived. The main thread must then leave the exit to the
/// handler: killing the sandbox or sweeping scratch makes the command fail, and
/// its error exit would race the handler's (the status must be 130, not 1).
pub fn signalled() -> bool {
    SIGNALLED.load(Ordering::SeqCst)
}

fn sweep(dirs: &[PathBuf]) {
    let prefix = whittle_image::temp_prefix();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if !entry.file_name().to_string_lossy().starts_with(&prefix) {
                continue;
            }
            let path = entry.path();
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

/// Installs the handler for a run that writes `outputs`.
pub fn install(outputs: &[&ImageRef]) {
    let mut dirs = vec![
        std::env::temp_dir(),
        PathBuf::from(crate::commands::MEMORY_DIR),
    ];
    for r in outputs {
        dirs.push(whittle_transport::output_parent(r));
        if let ImageRef::Oci { dir, .. } = r {
            dirs.push(dir.join("blobs/sha256"));
        }
    }
    // If a handler cannot be installed, a signal simply ends the process as before.
    let _ = ctrlc::set_handler(move || {
        SIGNALLED.store(true, Ordering::SeqCst);
        // A sandboxed program first: its private root is among what the sweep removes.
        whittle_trace::kill_running();
        sweep(&dirs);
        eprintln!("whittle: interrupted; temporary files removed, the destination is unchanged");
        std::process::exit(INTERRUPTED);
    });
}
