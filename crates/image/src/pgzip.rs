//! A parallel gzip encoder whose output does not depend on the number of threads.
//!
//! The input is cut into fixed 1 MiB blocks. Each block becomes one complete gzip
//! member (header, deflate stream, CRC-32 and length), compressed by libdeflate on a
//! worker thread; the members are written in input order. Concatenated members are one
//! gzip file (RFC 1952, section 2.2) that every gzip reader reads whole — Go's, zlib's,
//! pigz's. Because block boundaries are fixed by the input alone and libdeflate keeps no
//! state between calls, the bytes are identical on a machine with one core or sixty-four.
//!
//! Why libdeflate and whole members rather than zlib with a sync flush and the previous
//! block's window as dictionary: on real layers it deflates about twice as fast as zlib
//! at the same level and still writes smaller output than zlib's level 6 (the window lost
//! at each 1 MiB boundary costs less than libdeflate's better block splitting gains).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use libdeflater::{CompressionLvl, Compressor};

const BLOCK: usize = 1 << 20;

type Job = (Vec<u8>, SyncSender<io::Result<Vec<u8>>>);

/// Writes a gzip stream, compressing blocks on a small pool of threads.
pub struct ParallelGzWriter<W: Write> {
    inner: Option<W>,
    block: Vec<u8>,
    /// Whether any member was written (an empty input still needs one).
    wrote: bool,
    pending: VecDeque<Receiver<io::Result<Vec<u8>>>>,
    max_pending: usize,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl<W: Write> ParallelGzWriter<W> {
    /// Starts a stream at libdeflate `level` (0–12) with `threads` workers (at least one).
    pub fn new(inner: W, level: i32, threads: usize) -> io::Result<Self> {
        let level = CompressionLvl::new(level)
            .map_err(|_| io::Error::other(format!("gzip level {level} is not 0 to 12")))?;
        let threads = threads.max(1);
        let (tx, rx) = mpsc::sync_channel::<Job>(threads * 2);
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..threads)
            .map(|_| {
                let rx = Arc::clone(&rx);
                std::thread::spawn(move || {
                    // libdeflate keeps nothing between calls: one compressor per worker.
                    let mut compressor = Compressor::new(level);
                    loop {
                        // A poisoned lock means a worker panicked; stop taking work.
                        let job = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => return,
                        };
                        let Ok((data, reply)) = job else { return };
                        let _ = reply.send(gzip_member(&mut compressor, &data));
                    }
                })
            })
            .collect();
        Ok(ParallelGzWriter {
            inner: Some(inner),
            block: Vec::with_capacity(BLOCK),
            wrote: false,
            pending: VecDeque::new(),
            max_pending: threads * 3,
            jobs: Some(tx),
            workers,
        })
    }

    fn submit_block(&mut self) -> io::Result<()> {
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("gzip stream already finished"))?;
        jobs.send((data, reply_tx))
            .map_err(|_| io::Error::other("gzip worker threads stopped"))?;
        self.wrote = true;
        self.pending.push_back(reply_rx);
        while self.pending.len() >= self.max_pending {
            self.write_oldest()?;
        }
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(rx) = self.pending.pop_front() {
            let bytes = rx
                .recv()
                .map_err(|_| io::Error::other("a gzip worker thread died"))??;
            self.out()?.write_all(&bytes)?;
        }
        Ok(())
    }

    fn out(&mut self) -> io::Result<&mut W> {
        self.inner
            .as_mut()
            .ok_or_else(|| io::Error::other("gzip stream already finished"))
    }

    /// Writes the last block and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        // An empty input is one empty member: a gzip file is never zero bytes.
        if !self.block.is_empty() || !self.wrote {
            self.submit_block()?;
        }
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        self.jobs = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
        self.inner
            .take()
            .ok_or_else(|| io::Error::other("gzip stream already finished"))
    }
}

impl<W: Write> Write for ParallelGzWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(BLOCK - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == BLOCK {
            self.submit_block()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `data` as one gzip member (libdeflate's header: no name, mtime 0, OS "unknown").
fn gzip_member(compressor: &mut Compressor, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = vec![0u8; compressor.gzip_compress_bound(data.len())];
    let n = compressor
        .gzip_compress(data, &mut out)
        .map_err(|e| io::Error::other(format!("gzip: {e}")))?;
    out.truncate(n);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(len: usize) -> Vec<u8> {
        // Compressible but not trivial: a repeating text with a counter.
        let mut v = Vec::with_capacity(len);
        let mut i = 0u64;
        while v.len() < len {
            v.extend_from_slice(format!("line {i} of the sample {}\n", i % 7).as_bytes());
            i += 1;
        }
        v.truncate(len);
        v
    }

    fn encode(data: &[u8], threads: usize) -> Vec<u8> {
        let mut enc =
            ParallelGzWriter::new(Vec::new(), crate::compress::GZIP_LEVEL, threads).unwrap();
        for chunk in data.chunks(7777) {
            enc.write_all(chunk).unwrap();
        }
        enc.finish().unwrap()
    }

    #[test]
    fn round_trips_through_a_standard_decoder() {
        for len in [0, 1, 1000, BLOCK, BLOCK + 1, 5 * BLOCK + 17] {
            let data = sample(len);
            let gz = encode(&data, 2);
            let mut back = Vec::new();
            flate2::read::MultiGzDecoder::new(&gz[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "length {len}");
        }
    }

    #[test]
    fn bytes_do_not_depend_on_thread_count() {
        let data = sample(9 * BLOCK + 5);
        let one = encode(&data, 1);
        assert_eq!(one, encode(&data, 2));
        assert_eq!(one, encode(&data, 5));
    }

    /// The bytes are part of every output digest: a change of libdeflate's version, the
    /// level or the block size changes them, and must be a deliberate one.
    #[test]
    fn bytes_are_those_of_this_version() {
        use sha2::Digest as _;
        let gz = encode(&sample(2 * BLOCK + 12345), 2);
        let digest = hex::encode(sha2::Sha256::digest(&gz));
        assert_eq!(
            digest,
            "b33d225f2c6377f262847041365873e83b1fcfe91a057b80730a916935345e9a",
            "{} bytes",
            gz.len()
        );
    }
}
