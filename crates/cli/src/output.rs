//! How results and errors look on a terminal.

/// Prints an error and its causes, one per line.
pub fn print_error(err: &anyhow::Error) {
    eprintln!("whittle: error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}

/// Bytes in human units (powers of 1024).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Draws one bar per transfer on a terminal, or prints a plain line per finished
/// transfer otherwise.
pub struct Progress {
    bars: Option<indicatif::MultiProgress>,
}

impl Progress {
    /// Bars when stderr is a terminal, plain lines otherwise.
    pub fn new() -> Progress {
        use std::io::IsTerminal;
        Progress {
            bars: std::io::stderr()
                .is_terminal()
                .then(indicatif::MultiProgress::new),
        }
    }
}

struct BarTask(indicatif::ProgressBar);

impl whittle_image::progress::Task for BarTask {
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
    fn finish(&self) {
        self.0.finish();
    }
}

struct LineTask {
    label: String,
    total: u64,
    done: std::sync::atomic::AtomicU64,
    started: std::time::Instant,
}

impl whittle_image::progress::Task for LineTask {
    fn advance(&self, n: u64) {
        self.done.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
    fn finish(&self) {
        let done = self.done.load(std::sync::atomic::Ordering::Relaxed);
        if done >= self.total && self.total > 0 {
            eprintln!(
                "  {}  {} in {:.1}s",
                self.label,
                human(done),
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

impl whittle_image::progress::Reporter for Progress {
    fn start(&self, label: &str, total: u64) -> Box<dyn whittle_image::progress::Task> {
        // sha256:0123456789ab: enough to tell layers apart.
        let short: String = label.chars().take(19).collect();
        match &self.bars {
            Some(multi) => {
                let bar = multi.add(indicatif::ProgressBar::new(total));
                if let Ok(style) = indicatif::ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} eta {eta}",
                ) {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar.set_prefix(short);
                Box::new(BarTask(bar))
            }
            None => Box::new(LineTask {
                label: short,
                total,
                done: std::sync::atomic::AtomicU64::new(0),
                started: std::time::Instant::now(),
            }),
        }
    }
}

/// Writes `text` to stdout. A reader that went away (`whittle inspect --json | head -1`)
/// surfaces as a broken-pipe error, which `main` ends quietly (see [`is_broken_pipe`]).
pub fn print(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Whether an error is stdout's reader having gone away: not worth a message.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
