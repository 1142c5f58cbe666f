//! A pigz-style parallel gzip encoder whose output does not depend on the
//! number of threads.
//!
//! The input is cut into fixed 128 KiB blocks. Each block is deflated on its own
//! (on a worker thread) with the previous block's last 32 KiB as preset
//! dictionary and ended with a sync flush, so the blocks concatenate into one
//! valid deflate stream; a final empty block closes it. Because block boundaries
//! and dictionaries are fixed by the input alone, the bytes are identical on a
//! machine with one core or sixty-four.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, FlushCompress};

const BLOCK: usize = 128 * 1024;
const WINDOW: usize = 32 * 1024;
/// A fixed-Huffman final block holding only end-of-block: `BFINAL=1, BTYPE=01, EOB`.
const FINAL_EMPTY_BLOCK: [u8; 2] = [0x03, 0x00];
/// gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS "unknown".
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

type Job = (Vec<u8>, Vec<u8>, SyncSender<io::Result<Vec<u8>>>);

/// Writes a gzip stream, deflating blocks on a small pool of threads.
pub struct ParallelGzWriter<W: Write> {
    inner: Option<W>,
    block: Vec<u8>,
    dictionary: Vec<u8>,
    crc: crc32fast::Hasher,
    length: u64,
    pending: VecDeque<Receiver<io::Result<Vec<u8>>>>,
    max_pending: usize,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl<W: Write> ParallelGzWriter<W> {
    /// Starts a stream at deflate `level` (0–9) with `threads` workers (at least one).
    pub fn new(mut inner: W, level: u32, threads: usize) -> io::Result<Self> {
        inner.write_all(&HEADER)?;
        let threads = threads.max(1);
        let (tx, rx) = mpsc::sync_channel::<Job>(threads * 2);
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..threads)
            .map(|_| {
                let rx = Arc::clone(&rx);
                std::thread::spawn(move || loop {
                    // A poisoned lock means a worker panicked; stop taking work.
                    let job = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    let Ok((data, dict, reply)) = job else { return };
                    let _ = reply.send(deflate_block(level, &dict, &data));
                })
            })
            .collect();
        Ok(ParallelGzWriter {
            inner: Some(inner),
            block: Vec::with_capacity(BLOCK),
            dictionary: Vec::new(),
            crc: crc32fast::Hasher::new(),
            length: 0,
            pending: VecDeque::new(),
            max_pending: threads * 3,
            jobs: Some(tx),
            workers,
        })
    }

    fn submit_block(&mut self) -> io::Result<()> {
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
        let next_dictionary = data[data.len().saturating_sub(WINDOW)..].to_vec();
        let dictionary = std::mem::replace(&mut self.dictionary, next_dictionary);
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        let jobs = self
            .jobs
            .as_ref()
            .ok_or_else(|| io::Error::other("gzip stream already finished"))?;
        jobs.send((data, dictionary, reply_tx))
            .map_err(|_| io::Error::other("gzip worker threads stopped"))?;
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

    /// Flushes every block, writes the trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.block.is_empty() {
            self.submit_block()?;
        }
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        let crc = std::mem::take(&mut self.crc).finalize();
        // ISIZE is the length modulo 2^32 by definition.
        let isize = ((self.length & 0xffff_ffff) as u32).to_le_bytes();
        let out = self.out()?;
        out.write_all(&FINAL_EMPTY_BLOCK)?;
        out.write_all(&crc.to_le_bytes())?;
        out.write_all(&isize)?;
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
        self.crc.update(&buf[..n]);
        self.length += n as u64;
        if self.block.len() == BLOCK {
            self.submit_block()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn deflate_block(level: u32, dictionary: &[u8], data: &[u8]) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(flate2::Compression::new(level), false);
    if !dictionary.is_empty() {
        c.set_dictionary(dictionary).map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(data.len() / 2 + 4096);
    loop {
        if out.capacity() - out.len() < 4096 {
            out.reserve(out.capacity().max(4096));
        }
        let consumed = c.total_in() as usize;
        c.compress_vec(&data[consumed..], &mut out, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        // zlib's rule: a flush is complete when it returns with output space to spare.
        if c.total_in() as usize == data.len() && out.len() < out.capacity() {
            return Ok(out);
        }
    }
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
        let mut enc = ParallelGzWriter::new(Vec::new(), 6, threads).unwrap();
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
            flate2::read::GzDecoder::new(&gz[..])
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
}
