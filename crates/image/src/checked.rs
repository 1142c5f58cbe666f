//! Copying a layer blob unchanged while still checking what it holds: the
//! compressed bytes pass through (digest and size checked inline), and a second
//! thread decompresses a copy of them to check the diff_id and the size bound,
//! so the check costs a core rather than wall time. A blob whose content was proven
//! before (see [`crate::verified`]) needs only its digest checked.

use std::io::{self, Read};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use sha2::{Digest as _, Sha256};

use crate::blob::VerifiedReader;
use crate::compress::Decoder;
use crate::verified::LayerFact;
use crate::{Compression, Digest, Error, Layer, Limits, Result};

const CHUNK: usize = 256 * 1024;

/// Reads a channel of byte chunks as a stream.
struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(c) => {
                    self.chunk = c;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn check_content(
    src: ChannelReader,
    compression: Compression,
    layer: Digest,
    diff_id: Digest,
    limit: u64,
) -> Result<u64> {
    let bad = |reason: String| Error::BadLayer {
        layer: layer.clone(),
        reason,
    };
    let mut dec = Decoder::new(src, compression)
        .map_err(|e| bad(format!("cannot start decompressing: {e}")))?;
    let mut hasher = Sha256::new();
    let mut count = 0u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = dec
            .read(&mut buf)
            .map_err(|e| bad(format!("cannot decompress: {e}")))?;
        if n == 0 {
            break;
        }
        count += n as u64;
        if count > limit {
            return Err(Error::LimitExceeded {
                layer,
                what: "uncompressed size",
                limit,
            });
        }
        hasher.update(&buf[..n]);
    }
    // Whatever follows the compressed stream still has to be taken off the channel.
    let _ = io::copy(dec.source_mut(), &mut io::sink());
    let found = Digest::from_hasher(hasher);
    if found != diff_id {
        return Err(Error::DiffIdMismatch {
            layer,
            expected: diff_id,
            found,
        });
    }
    Ok(count)
}

/// A layer blob's bytes, checked against digest and size inline and against
/// diff_id and the size bound on a helper thread; see [`Layer::open_blob_checked`].
pub struct CheckedBlobReader<'a> {
    inner: VerifiedReader<Box<dyn Read + Send + 'a>>,
    pending: Vec<u8>,
    tx: Option<SyncSender<Vec<u8>>>,
    worker: Option<JoinHandle<Result<u64>>>,
    /// The blob and the diff_id its content was checked against, for the fact recorded
    /// once both checks have passed.
    checked: Option<(Digest, Digest)>,
}

impl<'a> CheckedBlobReader<'a> {
    /// A reader whose digest check is the only one left to make.
    fn digest_only(inner: VerifiedReader<Box<dyn Read + Send + 'a>>) -> Self {
        CheckedBlobReader {
            inner,
            pending: Vec::new(),
            tx: None,
            worker: None,
            checked: None,
        }
    }

    /// The checker's verdict: the tar's length when its content matched the diff_id.
    fn worker_result(&mut self) -> io::Result<Option<u64>> {
        self.tx = None;
        match self.worker.take().map(|w| w.join()) {
            None => Ok(None),
            Some(Ok(Ok(size))) => Ok(Some(size)),
            Some(Ok(Err(e))) => Err(io::Error::other(e)),
            Some(Err(_)) => Err(io::Error::other("the layer checking thread failed")),
        }
    }

    fn send_pending(&mut self) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.pending, Vec::with_capacity(CHUNK));
        let sent = self
            .tx
            .as_ref()
            .map(|tx| tx.send(chunk).is_ok())
            .unwrap_or(true);
        if !sent {
            // The checker stopped early: it found a problem.
            self.worker_result()?;
        }
        Ok(())
    }
}

impl Read for CheckedBlobReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.tx.is_none() {
            return Ok(n);
        }
        if n == 0 && !buf.is_empty() {
            if !self.pending.is_empty() {
                self.send_pending()?;
            }
            // The blob digest held (the inner reader ended without error) and so did
            // the content: a fact worth keeping.
            if let (Some(size), Some((blob, diff_id))) = (self.worker_result()?, &self.checked) {
                crate::verified::record(
                    blob,
                    &LayerFact {
                        diff_id: diff_id.clone(),
                        size,
                    },
                );
            }
            return Ok(0);
        }
        self.pending.extend_from_slice(&buf[..n]);
        if self.pending.len() >= CHUNK {
            self.send_pending()?;
        }
        Ok(n)
    }
}

impl Layer {
    /// The blob's bytes for copying unchanged, with every check a full read
    /// makes: digest and size, and (decompressing on another thread) diff_id
    /// and `limits.max_layer_bytes`. Errors surface before the stream ends.
    pub fn open_blob_checked(&self, limits: &Limits) -> Result<CheckedBlobReader<'_>> {
        let compression = self.compression()?;
        let inner = self.open_blob()?;
        if compression == Compression::None {
            // The digest check is the diff_id check; the size is known up front.
            if self.descriptor.digest != self.diff_id {
                return Err(Error::DiffIdMismatch {
                    layer: self.descriptor.digest.clone(),
                    expected: self.diff_id.clone(),
                    found: self.descriptor.digest.clone(),
                });
            }
            if self.descriptor.size > limits.max_layer_bytes {
                return Err(Error::LimitExceeded {
                    layer: self.descriptor.digest.clone(),
                    what: "uncompressed size",
                    limit: limits.max_layer_bytes,
                });
            }
            return Ok(CheckedBlobReader::digest_only(inner));
        }
        if self.proven(limits.max_layer_bytes)? {
            // This blob's content is that tar, so checking the digest (the bytes are
            // that blob's) checks the content too.
            return Ok(CheckedBlobReader::digest_only(inner));
        }
        let (tx, rx) = mpsc::sync_channel(8);
        let (layer, diff_id, limit) = (
            self.descriptor.digest.clone(),
            self.diff_id.clone(),
            limits.max_layer_bytes,
        );
        let checked = Some((layer.clone(), diff_id.clone()));
        let worker = std::thread::spawn(move || {
            let src = ChannelReader {
                rx,
                chunk: Vec::new(),
                pos: 0,
            };
            check_content(src, compression, layer, diff_id, limit)
        });
        Ok(CheckedBlobReader {
            inner,
            pending: Vec::with_capacity(CHUNK),
            tx: Some(tx),
            worker: Some(worker),
            checked,
        })
    }
}
