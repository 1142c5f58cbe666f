//! A parallel gzip encoder whose output does not depend on the number of threads.
//!
//! The input is cut into fixed 1 MiB blocks. Each block becomes one complete gzip
//! member (header, deflate stream, CRC-32 and length), compressed by libdeflate on a
//! worker thread of a pool that every stream of the process shares (one worker per core,
//! three blocks in flight per worker, so layers compressed at once share the cores and
//! memory stays linear in them); the members are written in input order. Concatenated members are one
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
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use libdeflater::{CompressionLvl, Compressor};

const BLOCK: usize = 1 << 20;
/// Blocks a pool holds in flight (read, being compressed, or compressed and not yet
/// written) per worker: enough to keep every worker busy while the oldest is written.
const BLOCKS_PER_WORKER: usize = 3;

type Reply = io::Result<Vec<u8>>;
type Job = (CompressionLvl, Vec<u8>, SyncSender<Reply>);

/// Compression workers and a budget of blocks in flight, shared by the streams that use
/// them. Streams compressed at once (one per layer, layers in parallel) share the pool,
/// so threads and memory grow with the core count, not with its square.
struct Pool {
    jobs: Mutex<Sender<Job>>,
    free: Mutex<usize>,
    freed: Condvar,
}

impl Pool {
    fn new(workers: usize) -> Arc<Pool> {
        let workers = workers.max(1);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..workers {
            let rx = Arc::clone(&rx);
            std::thread::spawn(move || compress_jobs(&rx));
        }
        Arc::new(Pool {
            jobs: Mutex::new(tx),
            free: Mutex::new(workers * BLOCKS_PER_WORKER),
            freed: Condvar::new(),
        })
    }

    /// The process's pool: one worker per core (see [`crate::parallel::cores`]).
    fn shared() -> Arc<Pool> {
        static SHARED: OnceLock<Arc<Pool>> = OnceLock::new();
        Arc::clone(SHARED.get_or_init(|| Pool::new(crate::parallel::cores())))
    }

    fn try_take(&self) -> bool {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        if *free == 0 {
            return false;
        }
        *free -= 1;
        true
    }

    fn wait_take(&self) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
    }

    fn give_back(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        *free += n;
        self.freed.notify_all();
    }

    fn submit(&self, job: Job) -> io::Result<()> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.send(job)
            .map_err(|_| io::Error::other("gzip worker threads stopped"))
    }
}

/// A worker: compresses blocks until every sender is gone. libdeflate keeps nothing
/// between calls, so one compressor serves every stream of the same level.
fn compress_jobs(rx: &Mutex<Receiver<Job>>) {
    let mut compressor: Option<(CompressionLvl, Compressor)> = None;
    loop {
        // A poisoned lock means a worker panicked; stop taking work.
        let job = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        let Ok((level, data, reply)) = job else {
            return;
        };
        let c = match &mut compressor {
            Some((l, c)) if *l == level => c,
            _ => &mut compressor.insert((level, Compressor::new(level))).1,
        };
        let _ = reply.send(gzip_member(c, &data));
    }
}

/// Writes a gzip stream, compressing blocks on a pool of threads.
pub struct ParallelGzWriter<W: Write> {
    inner: Option<W>,
    level: CompressionLvl,
    block: Vec<u8>,
    /// Whether any member was written (an empty input still needs one).
    wrote: bool,
    /// Blocks submitted and not yet written, oldest first; each holds one of the pool's
    /// in-flight places until it is written.
    pending: VecDeque<Receiver<Reply>>,
    pool: Arc<Pool>,
}

impl<W: Write> ParallelGzWriter<W> {
    /// Starts a stream at libdeflate `level` (0–12) on the process's shared pool.
    pub fn shared(inner: W, level: i32) -> io::Result<Self> {
        Self::on_pool(inner, level, Pool::shared())
    }

    /// Starts a stream at libdeflate `level` (0–12) on a pool of its own with `threads`
    /// workers (at least one).
    pub fn new(inner: W, level: i32, threads: usize) -> io::Result<Self> {
        Self::on_pool(inner, level, Pool::new(threads))
    }

    fn on_pool(inner: W, level: i32, pool: Arc<Pool>) -> io::Result<Self> {
        let level = CompressionLvl::new(level)
            .map_err(|_| io::Error::other(format!("gzip level {level} is not 0 to 12")))?;
        Ok(ParallelGzWriter {
            inner: Some(inner),
            level,
            block: Vec::with_capacity(BLOCK),
            wrote: false,
            pending: VecDeque::new(),
            pool,
        })
    }

    fn submit_block(&mut self) -> io::Result<()> {
        // A place in flight: free, or made by writing this stream's oldest block, or
        // (holding none) waited for from the other streams, which give theirs back as
        // they write.
        while !self.pool.try_take() {
            if self.pending.is_empty() {
                self.pool.wait_take();
                break;
            }
            self.write_oldest()?;
        }
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        if let Err(e) = self.pool.submit((self.level, data, reply_tx)) {
            self.pool.give_back(1);
            return Err(e);
        }
        self.wrote = true;
        self.pending.push_back(reply_rx);
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(rx) = self.pending.pop_front() {
            let reply = rx.recv();
            self.pool.give_back(1);
            let bytes = reply.map_err(|_| io::Error::other("a gzip worker thread died"))??;
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
        self.inner
            .take()
            .ok_or_else(|| io::Error::other("gzip stream already finished"))
    }
}

impl<W: Write> Drop for ParallelGzWriter<W> {
    /// A stream given up (an error) hands its places back to the pool.
    fn drop(&mut self) {
        let held = self.pending.len();
        self.pending.clear();
        self.pool.give_back(held);
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

    #[test]
    fn streams_sharing_a_pool_write_what_each_writes_alone() {
        let pool = Pool::new(2);
        let inputs: Vec<Vec<u8>> = (0..6).map(|i| sample((i + 1) * BLOCK + i * 999)).collect();
        let shared: Vec<Vec<u8>> = std::thread::scope(|s| {
            let handles: Vec<_> = inputs
                .iter()
                .map(|data| {
                    let pool = Arc::clone(&pool);
                    s.spawn(move || {
                        let mut enc = ParallelGzWriter::on_pool(
                            Vec::new(),
                            crate::compress::GZIP_LEVEL,
                            pool,
                        )
                        .unwrap();
                        for chunk in data.chunks(100_000) {
                            enc.write_all(chunk).unwrap();
                        }
                        enc.finish().unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (data, gz) in inputs.iter().zip(&shared) {
            assert_eq!(gz, &encode(data, 1));
        }
        assert_eq!(*pool.free.lock().unwrap(), 2 * BLOCKS_PER_WORKER);
    }

    #[test]
    fn a_stream_given_up_hands_its_places_back() {
        let pool = Pool::new(1);
        let mut abandoned =
            ParallelGzWriter::on_pool(Vec::new(), crate::compress::GZIP_LEVEL, Arc::clone(&pool))
                .unwrap();
        abandoned.write_all(&sample(3 * BLOCK)).unwrap();
        assert_eq!(*pool.free.lock().unwrap(), 0, "three blocks in flight");
        drop(abandoned);
        // With the places lost, this stream would wait for them forever.
        let (tx, rx) = mpsc::channel();
        let next = Arc::clone(&pool);
        std::thread::spawn(move || {
            let mut enc =
                ParallelGzWriter::on_pool(Vec::new(), crate::compress::GZIP_LEVEL, next).unwrap();
            enc.write_all(&sample(5 * BLOCK)).unwrap();
            let _ = tx.send(enc.finish().map(|v| v.len()));
        });
        let written = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the second stream never finished");
        assert!(written.unwrap() > 0);
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
