//! The flattened filesystem of an image as a [`whittle_elf::Root`]: the
//! analysis reads the image's own files, never the host's.

use std::io;

use whittle_elf::{NodeKind, Root};
use whittle_image::entries::EntryKind;
use whittle_image::flatten::Node;
use whittle_image::mutate::Flat;

/// A read-only root over a flattened image.
pub struct ImageRoot<'a> {
    flat: &'a Flat,
}

/// The view's key for an absolute path (`/usr/bin` -> `usr/bin`).
pub fn key(path: &str) -> &str {
    path.trim_start_matches('/')
}

/// The absolute path for a view key.
pub fn absolute(key: &str) -> String {
    format!("/{key}")
}

impl<'a> ImageRoot<'a> {
    /// Wraps a flattened image.
    pub fn new(flat: &'a Flat) -> Self {
        ImageRoot { flat }
    }

    /// The node at an absolute path.
    pub fn node(&self, path: &str) -> Option<&'a Node> {
        self.flat.view.nodes.get(key(path))
    }

    /// Every path at or below the directory `path`, sorted (absolute).
    pub fn tree(&self, path: &str) -> Vec<String> {
        let k = key(path);
        if k.is_empty() {
            return self.flat.view.nodes.keys().map(|k| absolute(k)).collect();
        }
        let prefix = format!("{k}/");
        let mut out = vec![absolute(k)];
        out.extend(
            self.flat
                .view
                .nodes
                .range(prefix.clone()..)
                .map(|(k, _)| k)
                .take_while(|k| k.starts_with(&prefix))
                .map(|k| absolute(k)),
        );
        out
    }
}

impl Root for ImageRoot<'_> {
    fn lstat(&self, path: &str) -> Option<NodeKind> {
        if key(path).is_empty() {
            return Some(NodeKind::Dir);
        }
        let node = self.node(path)?;
        Some(match &node.kind {
            EntryKind::Dir => NodeKind::Dir,
            EntryKind::File => NodeKind::File(node.size()),
            EntryKind::Symlink(t) => NodeKind::Symlink(t.clone()),
            _ => NodeKind::Other,
        })
    }

    fn read_at(&self, path: &str, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let node = self.node(path).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{path} is not in the image"),
            )
        })?;
        match node.data {
            Some(data) => self.flat.read_at(data, offset, buf),
            None => Ok(0),
        }
    }

    fn list(&self, path: &str) -> Vec<String> {
        let k = key(path);
        let prefix = if k.is_empty() {
            String::new()
        } else {
            format!("{k}/")
        };
        self.flat
            .view
            .nodes
            .range(prefix.clone()..)
            .map(|(k, _)| k)
            .take_while(|k| k.starts_with(&prefix))
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
            .map(String::from)
            .collect()
    }
}
