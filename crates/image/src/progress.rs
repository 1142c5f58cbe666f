//! Progress of long transfers, reported to whoever installed a reporter (the
//! CLI draws bars on a terminal); without one, tracking costs nothing.

use std::io::{self, Read};
use std::sync::OnceLock;

/// One transfer being tracked.
pub trait Task: Send {
    /// `n` more bytes done.
    fn advance(&self, n: u64);
    /// The transfer ended (complete or not).
    fn finish(&self);
}

/// Makes a [`Task`] per transfer.
pub trait Reporter: Send + Sync {
    /// A transfer of `total` bytes named `label` starts.
    fn start(&self, label: &str, total: u64) -> Box<dyn Task>;
}

static REPORTER: OnceLock<Box<dyn Reporter>> = OnceLock::new();

/// Installs the process's reporter (once; later calls are ignored).
pub fn install(reporter: Box<dyn Reporter>) {
    let _ = REPORTER.set(reporter);
}

/// Wraps `inner` so that reading it reports progress, when a reporter is installed.
pub fn track<'a, R: Read + Send + 'a>(
    label: &str,
    total: u64,
    inner: R,
) -> Box<dyn Read + Send + 'a> {
    match REPORTER.get() {
        Some(r) => Box::new(Tracked {
            inner,
            task: r.start(label, total),
        }),
        None => Box::new(inner),
    }
}

struct Tracked<R> {
    inner: R,
    task: Box<dyn Task>,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.task.advance(n as u64);
        Ok(n)
    }
}

impl<R> Drop for Tracked<R> {
    fn drop(&mut self) {
        self.task.finish();
    }
}
