//! Layer compression: streaming decoders for reading, deterministic encoders for writing.

use std::io::{self, BufReader, Read, Write};

use crate::pgzip::ParallelGzWriter;
use crate::Compression;

/// libdeflate level for written gzip layers, fixed so that bytes are stable. On the real
/// layers of bench/copy-real.sh (1 MiB members): level 1 writes 0.356 of the input at
/// 240 MB/s a core, level 2 0.344 at 179 MB/s, level 3 0.340 at 163 MB/s; skopeo's
/// default gzip writes 0.348. Level 2 is the fastest that stays smaller than skopeo.
pub const GZIP_LEVEL: i32 = 2;
/// zstd level for written layers.
pub const ZSTD_LEVEL: i32 = 3;

/// libzstd worker threads for one stream, taken from a process-wide budget of one per
/// core and given back when the stream ends: the first of several layers compressed at
/// once gets every free core, later ones what is left (at least one). Each stream
/// starting a worker per core made threads and memory grow with the core count's square
/// (1 GB at 32 threads on the bench image). The bytes do not depend on the count.
pub struct ZstdThreads {
    count: usize,
    from_budget: usize,
}

static ZSTD_FREE: std::sync::Mutex<Option<usize>> = std::sync::Mutex::new(None);

impl ZstdThreads {
    fn take() -> Self {
        let mut free = ZSTD_FREE.lock().unwrap_or_else(|p| p.into_inner());
        let left = free.get_or_insert_with(crate::parallel::cores);
        let from_budget = *left;
        *left = 0;
        ZstdThreads {
            count: from_budget.max(1),
            from_budget,
        }
    }
}

impl Drop for ZstdThreads {
    fn drop(&mut self) {
        let mut free = ZSTD_FREE.lock().unwrap_or_else(|p| p.into_inner());
        *free.get_or_insert(0) += self.from_budget;
    }
}

/// A decoder that can hand back its source, so the caller can drain what
/// follows the compressed stream (and so let a digest check see every byte).
pub enum Decoder<R: Read> {
    /// No compression.
    Plain(R),
    /// gzip, possibly multi-member.
    Gzip(Box<flate2::read::MultiGzDecoder<R>>),
    /// zstd.
    Zstd(Box<zstd::stream::read::Decoder<'static, BufReader<R>>>),
}

impl<R: Read> Decoder<R> {
    /// Wraps `src` in the decoder for `compression`.
    pub fn new(src: R, compression: Compression) -> io::Result<Self> {
        Ok(match compression {
            Compression::None => Decoder::Plain(src),
            Compression::Gzip => Decoder::Gzip(Box::new(flate2::read::MultiGzDecoder::new(src))),
            Compression::Zstd => Decoder::Zstd(Box::new(zstd::stream::read::Decoder::new(src)?)),
        })
    }

    /// The compressed source.
    pub fn source_mut(&mut self) -> &mut R {
        match self {
            Decoder::Plain(r) => r,
            Decoder::Gzip(d) => d.get_mut(),
            Decoder::Zstd(d) => d.get_mut().get_mut(),
        }
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(d) => d.read(buf),
            Decoder::Zstd(d) => d.read(buf),
        }
    }
}

/// A deterministic encoder: the same input always gives the same bytes.
pub enum Encoder<W: Write> {
    /// No compression.
    Plain(W),
    /// whittle's parallel gzip.
    Gzip(ParallelGzWriter<W>),
    /// libzstd's multithreaded encoder (its output is the same for any worker count ≥ 1),
    /// with the threads it took from the budget.
    Zstd(zstd::stream::write::Encoder<'static, W>, ZstdThreads),
}

impl<W: Write> Encoder<W> {
    /// Starts an encoder for `compression` writing into `dst`.
    pub fn new(dst: W, compression: Compression) -> io::Result<Self> {
        Ok(match compression {
            Compression::None => Encoder::Plain(dst),
            Compression::Gzip => Encoder::Gzip(ParallelGzWriter::shared(dst, GZIP_LEVEL)?),
            Compression::Zstd => {
                let threads = ZstdThreads::take();
                let mut e = zstd::stream::write::Encoder::new(dst, ZSTD_LEVEL)?;
                // Always the multithreaded mode: its bytes differ from single-threaded mode.
                e.multithread(threads.count as u32)?;
                Encoder::Zstd(e, threads)
            }
        })
    }

    /// Ends the stream and returns the destination.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Plain(w) => Ok(w),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e, _threads) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e, _) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e, _) => e.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_compression_round_trips() {
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let mut e = Encoder::new(Vec::new(), c).unwrap();
            e.write_all(&data).unwrap();
            let bytes = e.finish().unwrap();
            let mut back = Vec::new();
            Decoder::new(&bytes[..], c)
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "{c}");
        }
    }
}
