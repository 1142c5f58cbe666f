//! Writing a flattened filesystem out to a directory, so that an image's own
//! program can run from it (chroot or pivot_root) in the tracing sandbox.
//!
//! Images are untrusted, so no path the image controls goes through the
//! host's ordinary lookup: every parent directory is opened with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` below the destination,
//! and entries are made with `*at` calls on that handle. A symlink in the
//! image is written as a symlink and never followed, wherever it points.
//!
//! The order keeps it fast and correct: every directory first (sorted order
//! puts parents before children), then file data on every core, then hard
//! links, symlinks and special files, and directory owners and modes last,
//! children before parents, so that a read-only directory can still be filled.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read, Write};
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use rustix::fs::{AtFlags, Dev, FileType, Gid, Mode, OFlags, ResolveFlags, Uid, XattrFlags};
use rustix::io::Errno;

use crate::entries::{EntryKind, Meta};
use crate::flatten::{FlatView, Node};
use crate::mutate::Flat;
use crate::{Error, Result};

/// What [`unpack`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Regular files written; a set of hard links counts once.
    pub files: u64,
    /// Bytes of file data written.
    pub bytes: u64,
}

/// A file whose owner could not be given (the caller may not give files
/// away): its image ids, for the caller to give inside a user namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeferredOwner {
    /// Absolute path inside the root.
    pub path: String,
    /// The image's owner.
    pub uid: u32,
    /// The image's group.
    pub gid: u32,
    /// The image's mode (a change of owner clears set-id bits).
    pub mode: u32,
    /// Whether it is a symlink.
    pub symlink: bool,
}

/// Maps an image's `(uid, gid)` to the host ids to write; `None` leaves the caller's.
pub type IdMapper<'a> = &'a (dyn Fn(u32, u32) -> Option<(u32, u32)> + Sync);

/// How [`unpack_with`] writes.
#[derive(Clone, Copy, Default)]
pub struct UnpackOptions<'a> {
    /// Host ids for the image's ids (a user namespace's map); without it the image's ids are written as they are.
    pub ids: Option<IdMapper<'a>>,
    /// Write an empty file for each device node instead of the node (a sandbox's root).
    pub no_devices: bool,
}

/// What [`unpack_with`] wrote, and the owners it left to the caller.
#[derive(Clone, Debug, Default)]
pub struct Unpacked {
    /// Counts.
    pub stats: UnpackStats,
    /// Owners the process was not allowed to give.
    pub deferred: Vec<DeferredOwner>,
}

/// Each worker's copy buffer.
const BUF_SIZE: usize = 256 << 10;

/// The one extended attribute a program's run can depend on (file capabilities).
const CAPABILITY: &str = "security.capability";

/// Writes `view`, with file data from `flat`, into `dest`, an existing empty
/// directory.
///
/// Everything is recreated: regular files (content, owner, mode including
/// setuid, setgid and sticky bits, and `security.capability` where the
/// kernel allows it), directories, symlinks, hard links (paths sharing an
/// inode number), fifos and device nodes. Without the privilege to give
/// files away (not root, or ids outside the user namespace) ownership is left
/// to the caller; without the privilege to make device nodes, a device
/// becomes an empty regular file. A node beneath a non-directory is an
/// error, as is a path that is not plainly relative; a parent directory the
/// view leaves out is made with mode 0755, owned by root. The root node (the
/// empty path), when present, sets `dest`'s own owner and mode.
pub fn unpack(flat: &Flat, view: &FlatView, dest: &Path) -> Result<UnpackStats> {
    unpack_with(flat, view, dest, UnpackOptions::default()).map(|u| u.stats)
}

/// [`unpack`] with ids mapped (for a user namespace) and, optionally, no device nodes.
/// Owners the process may not give are listed in the result rather than skipped.
pub fn unpack_with(
    flat: &Flat,
    view: &FlatView,
    dest: &Path,
    options: UnpackOptions<'_>,
) -> Result<Unpacked> {
    let plan = Plan::new(view)?;
    let root = rustix::fs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("cannot open", dest, e.into()))?;
    let out = Out {
        root: root.as_fd(),
        dest,
        options,
        deferred: Mutex::new(Vec::new()),
    };
    out.make_dirs(&plan)?;
    let stats = out.write_files(flat, &plan)?;
    out.make_others(&plan)?;
    out.finish_dirs(&plan)?;
    if let Some(node) = view.nodes.get("").filter(|n| n.kind == EntryKind::Dir) {
        out.set_owner_mode(root.as_fd(), "", &node.meta, false)?;
    } else if let Some(map) = options.ids {
        // The root directory belongs to the image's root.
        if let Some((u, g)) = map(0, 0) {
            let r = rustix::fs::fchown(&root, Some(Uid::from_raw(u)), Some(Gid::from_raw(g)));
            allow_denied(r).map_err(|e| out.error("cannot change the owner of", "", e))?;
        }
    }
    let mut deferred = out.deferred.into_inner().unwrap_or_default();
    deferred.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Unpacked { stats, deferred })
}

/// How a path that is neither a directory nor a data-carrying file is made.
enum Other<'v> {
    /// A hard link to this path, made earlier.
    Link(&'v str),
    /// A symlink with this target.
    Symlink(&'v str),
    /// A fifo or device node.
    Special(FileType, Dev),
}

/// The view sorted into the order it is written in.
struct Plan<'v> {
    /// Directories, sorted; `None` for a parent the view leaves out.
    dirs: Vec<(&'v str, Option<&'v Meta>)>,
    /// Regular files that carry data (the first path of each inode), sorted.
    files: Vec<(&'v str, &'v Node)>,
    /// Everything else, sorted.
    others: Vec<(&'v str, &'v Node, Other<'v>)>,
}

impl<'v> Plan<'v> {
    /// Checks every path before anything touches the disk.
    fn new(view: &'v FlatView) -> Result<Plan<'v>> {
        let mut dirs: BTreeMap<&str, Option<&Meta>> = BTreeMap::new();
        let mut first: HashMap<u64, &str> = HashMap::new();
        let mut files = Vec::new();
        let mut others = Vec::new();
        for (path, node) in &view.nodes {
            let path = path.as_str();
            if path.is_empty() {
                continue;
            }
            check_name(path)?;
            check_parents(view, path, &mut dirs)?;
            ids(path, &node.meta)?;
            let link = match node.inode {
                0 => None,
                _ if node.kind == EntryKind::Dir => None,
                inode => match first.get(&inode) {
                    Some(target) => Some(*target),
                    None => {
                        first.insert(inode, path);
                        None
                    }
                },
            };
            let other = match (&node.kind, link) {
                (EntryKind::Dir, _) => {
                    dirs.insert(path, Some(&node.meta));
                    continue;
                }
                (_, Some(target)) => Other::Link(target),
                (EntryKind::File, None) => {
                    files.push((path, node));
                    continue;
                }
                (EntryKind::Symlink(target), None) => Other::Symlink(target),
                (EntryKind::CharDevice(major, minor), None) => Other::Special(
                    FileType::CharacterDevice,
                    rustix::fs::makedev(*major, *minor),
                ),
                (EntryKind::BlockDevice(major, minor), None) => Other::Special(
                    FileType::BlockDevice,
                    rustix::fs::makedev(*major, *minor),
                ),
                (EntryKind::Fifo, None) => Other::Special(FileType::Fifo, 0),
                (EntryKind::Hardlink(target), None) => {
                    return Err(unpack_error(
                        path,
                        format!(
                            "it is an unresolved hard link to /{target}; a flattened view holds hard links as shared inode numbers"
                        ),
                    ))
                }
            };
            others.push((path, node, other));
        }
        Ok(Plan {
            dirs: dirs.into_iter().collect(),
            files,
            others,
        })
    }
}

fn unpack_error(path: &str, reason: String) -> Error {
    Error::Unpack {
        path: path.to_string(),
        reason,
    }
}

/// Refuses anything but a plain relative path: one that names no `.` or `..`
/// and has no empty component, so that it stays beneath the destination.
fn check_name(path: &str) -> Result<()> {
    if path.contains('\0')
        || path
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(unpack_error(
            path,
            "the path is not plainly relative to the image root (it has an empty, '.' or '..' component, a leading '/' or a NUL byte)".into(),
        ));
    }
    Ok(())
}

/// Refuses a path beneath a non-directory and notes parents the view leaves out.
fn check_parents<'v>(
    view: &'v FlatView,
    path: &'v str,
    dirs: &mut BTreeMap<&'v str, Option<&'v Meta>>,
) -> Result<()> {
    let mut child = path;
    while let Some((parent, _)) = child.rsplit_once('/') {
        match view.nodes.get(parent) {
            Some(node) if node.kind == EntryKind::Dir => return Ok(()),
            Some(node) => {
                return Err(unpack_error(
                    path,
                    format!(
                        "it lies beneath /{parent}, which is a {}, not a directory; whittle does not write through links",
                        node.kind.name()
                    ),
                ))
            }
            None => {
                dirs.entry(parent).or_insert(None);
            }
        }
        child = parent;
    }
    Ok(())
}

/// A node's owner and group as Linux ids.
fn ids(path: &str, meta: &Meta) -> Result<(Uid, Gid)> {
    let id = |value: u64, what: &str| {
        u32::try_from(value)
            .ok()
            .filter(|v| *v != u32::MAX)
            .ok_or_else(|| {
                unpack_error(
                    path,
                    format!("its {what} id {value} is out of Linux's range"),
                )
            })
    };
    Ok((
        Uid::from_raw(id(meta.uid, "owner")?),
        Gid::from_raw(id(meta.gid, "group")?),
    ))
}

fn mode(meta: &Meta) -> Mode {
    Mode::from_raw_mode(meta.mode & 0o7777)
}

/// `(parent, name)` of a root-relative path; the root's parent is "".
fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

/// Ownership the process may not give (it is not root, or the ids are not
/// mapped in its user namespace) is left as it is.
fn allow_denied(result: rustix::io::Result<()>) -> rustix::io::Result<()> {
    match result {
        Err(Errno::PERM) | Err(Errno::INVAL) => Ok(()),
        other => other,
    }
}

/// Set once openat2 turns out to be missing (Linux before 5.6) or filtered.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Opens `path` below `dir` without following any symlink and without
/// leaving `dir`.
fn open_beneath(dir: BorrowedFd<'_>, path: &str, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        match rustix::fs::openat2(
            dir,
            path,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        ) {
            Err(Errno::NOSYS) | Err(Errno::PERM) => NO_OPENAT2.store(true, Ordering::Relaxed),
            result => return result,
        }
    }
    walk_beneath(dir, path, flags)
}

/// What openat2 guarantees, without it: one component at a time, each
/// opened with `O_NOFOLLOW`, and no `.` or `..`.
fn walk_beneath(dir: BorrowedFd<'_>, path: &str, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let mut parts = path.split('/').peekable();
    let mut current: Option<OwnedFd> = None;
    while let Some(part) = parts.next() {
        if part.is_empty() || part == "." || part == ".." {
            return Err(Errno::INVAL);
        }
        let how = match parts.peek() {
            Some(_) => OFlags::PATH | OFlags::DIRECTORY,
            None => flags,
        };
        let base = current.as_ref().map_or(dir, |fd| fd.as_fd());
        current = Some(rustix::fs::openat(
            base,
            part,
            how | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?);
    }
    current.ok_or(Errno::INVAL)
}

/// The last parent directory opened, so that siblings share one open.
struct DirCache<'a> {
    root: BorrowedFd<'a>,
    last: Option<(String, OwnedFd)>,
}

impl<'a> DirCache<'a> {
    fn new(root: BorrowedFd<'a>) -> Self {
        DirCache { root, last: None }
    }

    fn get(&mut self, parent: &str) -> rustix::io::Result<BorrowedFd<'_>> {
        if parent.is_empty() {
            return Ok(self.root);
        }
        let entry = match self.last.take() {
            Some((path, fd)) if path == parent => (path, fd),
            _ => (
                parent.to_string(),
                open_beneath(self.root, parent, OFlags::PATH | OFlags::DIRECTORY)?,
            ),
        };
        Ok(self.last.insert(entry).1.as_fd())
    }
}

/// The destination, and how its errors are named.
struct Out<'a> {
    root: BorrowedFd<'a>,
    dest: &'a Path,
    options: UnpackOptions<'a>,
    deferred: Mutex<Vec<DeferredOwner>>,
}

impl Out<'_> {
    /// Gives `path` its owner through `chown` (mapped when asked); an owner the
    /// process may not give is recorded for the caller.
    fn chown(
        &self,
        path: &str,
        meta: &Meta,
        symlink: bool,
        chown: impl FnOnce(Uid, Gid) -> rustix::io::Result<()>,
    ) -> Result<()> {
        let (uid, gid) = ids(path, meta)?;
        let host = match self.options.ids {
            None => Some((uid, gid)),
            Some(map) => {
                map(uid.as_raw(), gid.as_raw()).map(|(u, g)| (Uid::from_raw(u), Gid::from_raw(g)))
            }
        };
        let Some((hu, hg)) = host else {
            return Ok(());
        };
        match chown(hu, hg) {
            Ok(()) => Ok(()),
            Err(Errno::PERM) | Err(Errno::INVAL) => {
                if let Ok(mut d) = self.deferred.lock() {
                    d.push(DeferredOwner {
                        path: format!("/{path}"),
                        uid: uid.as_raw(),
                        gid: gid.as_raw(),
                        mode: meta.mode & 0o7777,
                        symlink,
                    });
                }
                Ok(())
            }
            Err(e) => Err(self.error("cannot change the owner of", path, e)),
        }
    }

    fn error(&self, what: &'static str, path: &str, e: Errno) -> Error {
        Error::io(what, self.dest.join(path), e.into())
    }

    fn parent<'c>(&self, cache: &'c mut DirCache<'_>, path: &str) -> Result<BorrowedFd<'c>> {
        let (parent, _) = split(path);
        cache
            .get(parent)
            .map_err(|e| self.error("cannot open the directory", parent, e))
    }

    /// Directories, parents first, private (0700) until [`Out::finish_dirs`].
    fn make_dirs(&self, plan: &Plan<'_>) -> Result<()> {
        let mut cache = DirCache::new(self.root);
        for (path, _) in &plan.dirs {
            let parent = self.parent(&mut cache, path)?;
            rustix::fs::mkdirat(parent, split(path).1, Mode::RWXU)
                .map_err(|e| self.error("cannot create the directory", path, e))?;
        }
        Ok(())
    }

    /// Regular files, in chunks of consecutive paths on every core.
    fn write_files(&self, flat: &Flat, plan: &Plan<'_>) -> Result<UnpackStats> {
        let workers = crate::parallel::cores();
        let chunks = chunks(&plan.files, workers);
        let buffers: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
        let done = crate::parallel::map_indexed(chunks.len(), workers, |i| {
            let mut buf = buffers
                .lock()
                .ok()
                .and_then(|mut free| free.pop())
                .unwrap_or_else(|| vec![0; BUF_SIZE]);
            let mut cache = DirCache::new(self.root);
            let mut stats = UnpackStats::default();
            for (path, node) in &plan.files[chunks[i].clone()] {
                stats.bytes += self.write_file(flat, &mut cache, path, node, &mut buf)?;
                stats.files += 1;
            }
            if let Ok(mut free) = buffers.lock() {
                free.push(buf);
            }
            Ok(stats)
        })?;
        Ok(done
            .into_iter()
            .fold(UnpackStats::default(), |a, b| UnpackStats {
                files: a.files + b.files,
                bytes: a.bytes + b.bytes,
            }))
    }

    fn write_file(
        &self,
        flat: &Flat,
        cache: &mut DirCache<'_>,
        path: &str,
        node: &Node,
        buf: &mut [u8],
    ) -> Result<u64> {
        let parent = self.parent(cache, path)?;
        let fd =
            create_file(parent, split(path).1).map_err(|e| self.error("cannot create", path, e))?;
        let mut file = File::from(fd);
        let mut written = 0;
        if let Some(data) = node.data {
            let mut reader = flat.reader(data)?;
            loop {
                let n = match reader.read(buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(crate::blob::find_error(&e).unwrap_or_else(|| {
                            Error::io("cannot read the image's data for", self.dest.join(path), e)
                        }))
                    }
                };
                file.write_all(&buf[..n])
                    .map_err(|e| Error::io("cannot write", self.dest.join(path), e))?;
                written += n as u64;
            }
        }
        self.set_owner_mode(file.as_fd(), path, &node.meta, true)?;
        Ok(written)
    }

    /// Owner, then file capabilities (which a change of owner clears), then
    /// mode (which a change of owner strips of setuid and setgid).
    fn set_owner_mode(
        &self,
        fd: BorrowedFd<'_>,
        path: &str,
        meta: &Meta,
        capability: bool,
    ) -> Result<()> {
        self.chown(path, meta, false, |u, g| {
            rustix::fs::fchown(fd, Some(u), Some(g))
        })?;
        if capability {
            if let Some((_, value)) = meta.xattrs.iter().find(|(k, _)| k == CAPABILITY) {
                // Best effort: without CAP_SETFCAP or xattr support the program
                // still runs, as root in the sandbox.
                let _ = rustix::fs::fsetxattr(fd, CAPABILITY, value, XattrFlags::empty());
            }
        }
        rustix::fs::fchmod(fd, mode(meta))
            .map_err(|e| self.error("cannot set the mode of", path, e))
    }

    /// Hard links, symlinks, fifos and devices, in sorted order, so that a
    /// link's first path (written before, or earlier here) exists.
    fn make_others(&self, plan: &Plan<'_>) -> Result<()> {
        let mut cache = DirCache::new(self.root);
        let mut sources = DirCache::new(self.root);
        for (path, node, other) in &plan.others {
            let name = split(path).1;
            match other {
                Other::Link(target) => {
                    let source = self.parent(&mut sources, target)?;
                    let parent = self.parent(&mut cache, path)?;
                    rustix::fs::linkat(source, split(target).1, parent, name, AtFlags::empty())
                        .map_err(|e| self.error("cannot create the hard link", path, e))?;
                }
                Other::Symlink(target) => {
                    let parent = self.parent(&mut cache, path)?;
                    rustix::fs::symlinkat(*target, parent, name)
                        .map_err(|e| self.error("cannot create the symlink", path, e))?;
                    self.chown(path, &node.meta, true, |u, g| {
                        rustix::fs::chownat(
                            parent,
                            name,
                            Some(u),
                            Some(g),
                            AtFlags::SYMLINK_NOFOLLOW,
                        )
                    })?;
                }
                Other::Special(kind, dev) => {
                    let parent = self.parent(&mut cache, path)?;
                    self.make_special(parent, path, *kind, *dev, &node.meta)?;
                }
            }
        }
        Ok(())
    }

    fn make_special(
        &self,
        parent: BorrowedFd<'_>,
        path: &str,
        kind: FileType,
        dev: Dev,
        meta: &Meta,
    ) -> Result<()> {
        let name = split(path).1;
        let device = matches!(kind, FileType::CharacterDevice | FileType::BlockDevice);
        let made = if device && self.options.no_devices {
            Err(Errno::PERM)
        } else {
            rustix::fs::mknodat(parent, name, kind, Mode::RUSR | Mode::WUSR, dev)
        };
        match made {
            Ok(()) => {
                self.chown(path, meta, false, |u, g| {
                    rustix::fs::chownat(parent, name, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW)
                })?;
                // Not a symlink: mknodat just made it, in a directory only we write to.
                rustix::fs::chmodat(parent, name, mode(meta), AtFlags::empty())
                    .map_err(|e| self.error("cannot set the mode of", path, e))
            }
            Err(Errno::PERM) => {
                // No CAP_MKNOD (a user namespace, a container): an empty file keeps the path.
                let fd =
                    create_file(parent, name).map_err(|e| self.error("cannot create", path, e))?;
                self.set_owner_mode(fd.as_fd(), path, meta, false)
            }
            Err(e) => Err(self.error("cannot create", path, e)),
        }
    }

    /// Directory owners and modes, children before parents.
    fn finish_dirs(&self, plan: &Plan<'_>) -> Result<()> {
        let implicit = Meta {
            mode: 0o755,
            ..Default::default()
        };
        for (path, meta) in plan.dirs.iter().rev() {
            let fd = open_beneath(self.root, path, OFlags::RDONLY | OFlags::DIRECTORY)
                .map_err(|e| self.error("cannot open the directory", path, e))?;
            self.set_owner_mode(fd.as_fd(), path, meta.unwrap_or(&implicit), false)?;
        }
        Ok(())
    }
}

/// A new regular file, never through an existing path of any kind.
fn create_file(parent: BorrowedFd<'_>, name: &str) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        parent,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::RUSR | Mode::WUSR,
    )
}

/// Splits the files into runs of consecutive paths (siblings share a parent
/// open) of about equal cost, several per worker so that one large file does
/// not leave the other cores idle.
fn chunks(files: &[(&str, &Node)], workers: usize) -> Vec<Range<usize>> {
    // Creating, owning and closing a file costs about as much as copying this many bytes.
    const PER_FILE: u64 = 16 << 10;
    let cost = |node: &Node| node.size().saturating_add(PER_FILE);
    let total: u64 = files.iter().map(|(_, n)| cost(n)).sum();
    let target = (total / (workers.max(1) as u64 * 8)).max(1);
    let mut out = Vec::new();
    let (mut start, mut acc) = (0, 0u64);
    for (i, (_, node)) in files.iter().enumerate() {
        acc = acc.saturating_add(cost(node));
        if acc >= target {
            out.push(start..i + 1);
            (start, acc) = (i + 1, 0);
        }
    }
    if start < files.len() {
        out.push(start..files.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entries::ReadOptions;
    use crate::layer_write::LayerWriter;
    use crate::{Compression, Image, Limits, MediaType, RawDoc, Scratch};
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    use std::sync::Arc;

    struct Item {
        path: &'static str,
        kind: EntryKind,
        mode: u32,
        uid: u64,
        data: Vec<u8>,
    }

    fn item(path: &'static str, kind: EntryKind, mode: u32) -> Item {
        Item {
            path,
            kind,
            mode,
            uid: 0,
            data: Vec::new(),
        }
    }

    fn file(path: &'static str, mode: u32, uid: u64, data: Vec<u8>) -> Item {
        Item {
            uid,
            data,
            ..item(path, EntryKind::File, mode)
        }
    }

    /// A one-layer image made with the crate's own layer writer, read back as a [`Flat`].
    fn flat(scratch: &Arc<Scratch>, items: &[Item]) -> Flat {
        let mut writer = LayerWriter::create(scratch.new_file("layer"), Compression::None).unwrap();
        for it in items {
            let meta = Meta {
                mode: it.mode,
                uid: it.uid,
                gid: it.uid,
                ..Default::default()
            };
            let mut data = &it.data[..];
            let reader = (it.kind == EntryKind::File).then_some(&mut data as &mut dyn Read);
            writer
                .append(it.path, &it.kind, &meta, it.data.len() as u64, reader)
                .unwrap();
        }
        let written = writer.finish().unwrap();
        scratch
            .adopt(&written.path, &written.descriptor.digest)
            .unwrap();
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [written.diff_id.to_string()]},
        });
        let image = Image::new(
            None,
            RawDoc::new(MediaType::OciConfig, serde_json::to_vec(&config).unwrap()),
            vec![written.descriptor],
            scratch.clone(),
        )
        .unwrap();
        Flat::read(&image, scratch, &Limits::default(), ReadOptions::default()).unwrap()
    }

    fn running_as_root(dir: &Path) -> bool {
        std::fs::metadata(dir).unwrap().uid() == 0
    }

    fn mode_of(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn a_sandbox_root_maps_owners_and_never_makes_device_nodes() {
        let tmp = tempfile::tempdir().unwrap();
        let scratch = Arc::new(Scratch::new_in(tmp.path()).unwrap());
        let flat = flat(
            &scratch,
            &[
                item("dev/kmsg", EntryKind::CharDevice(1, 11), 0o666),
                item("dev/sda", EntryKind::BlockDevice(8, 0), 0o660),
                file("etc/app", 0o644, 33, b"x".to_vec()),
                file("etc/root", 0o600, 0, b"r".to_vec()),
            ],
        );
        let dest = tmp.path().join("root");
        std::fs::create_dir(&dest).unwrap();
        // A map where only the image's root is ours to give (an ordinary user's own id),
        // and image id 33 is a host id this process may not give.
        let me = std::fs::metadata(&dest).unwrap();
        let (uid, gid) = (me.uid(), me.gid());
        let map = move |u: u32, g: u32| match (u, g) {
            (0, 0) => Some((uid, gid)),
            (33, 33) => Some((
                if uid == 0 { 100_033 } else { 1 },
                if uid == 0 { 100_033 } else { 1 },
            )),
            _ => None,
        };
        let options = UnpackOptions {
            ids: Some(&map),
            no_devices: true,
        };
        let out = unpack_with(&flat, &flat.view, &dest, options).unwrap();
        for dev in ["dev/kmsg", "dev/sda"] {
            let md = std::fs::symlink_metadata(dest.join(dev)).unwrap();
            assert!(md.file_type().is_file(), "{dev} is not an empty stand-in");
            assert_eq!(md.len(), 0);
        }
        assert_eq!(std::fs::metadata(dest.join("etc/root")).unwrap().uid(), uid);
        if uid == 0 {
            // Root gives the mapped owner on the host; nothing is left to do inside.
            assert_eq!(
                std::fs::metadata(dest.join("etc/app")).unwrap().uid(),
                100_033
            );
            assert!(out.deferred.is_empty(), "{:?}", out.deferred);
        } else {
            // Not allowed here: handed back with the image's ids, for the namespace.
            assert_eq!(
                out.deferred,
                vec![DeferredOwner {
                    path: "/etc/app".into(),
                    uid: 33,
                    gid: 33,
                    mode: 0o644,
                    symlink: false,
                }]
            );
        }
    }

    #[test]
    fn writes_files_dirs_links_and_special_files() {
        let tmp = tempfile::tempdir().unwrap();
        let scratch = Arc::new(Scratch::new_in(tmp.path()).unwrap());
        let big: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        let flat = flat(
            &scratch,
            &[
                item("usr", EntryKind::Dir, 0o755),
                item("usr/bin", EntryKind::Dir, 0o555),
                file("usr/bin/tool", 0o4755, 1000, big.clone()),
                item("bin", EntryKind::Symlink("usr/bin".into()), 0o777),
                file("etc/a", 0o640, 0, b"A\n".to_vec()),
                item("etc/b", EntryKind::Hardlink("etc/a".into()), 0),
                item("run/fifo", EntryKind::Fifo, 0o600),
                item("dev/null", EntryKind::CharDevice(1, 3), 0o666),
                item("tmp", EntryKind::Dir, 0o1777),
            ],
        );
        let dest = tmp.path().join("root");
        std::fs::create_dir(&dest).unwrap();
        let stats = unpack(&flat, &flat.view, &dest).unwrap();
        assert_eq!(
            stats,
            UnpackStats {
                files: 2,
                bytes: 600_002
            }
        );

        let tool = dest.join("usr/bin/tool");
        assert_eq!(std::fs::read(&tool).unwrap(), big);
        assert_eq!(mode_of(&tool), 0o4755);
        if running_as_root(tmp.path()) {
            let meta = std::fs::metadata(&tool).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (1000, 1000));
        }
        assert_eq!(mode_of(&dest.join("usr/bin")), 0o555);
        assert_eq!(mode_of(&dest.join("tmp")), 0o1777);
        // etc is a parent no entry listed: the flattener made it up with 0755.
        assert_eq!(mode_of(&dest.join("etc")), 0o755);

        assert_eq!(
            std::fs::read_link(dest.join("bin")).unwrap(),
            Path::new("usr/bin")
        );
        let a = std::fs::metadata(dest.join("etc/a")).unwrap();
        let b = std::fs::metadata(dest.join("etc/b")).unwrap();
        assert_eq!((a.ino(), a.nlink()), (b.ino(), 2));
        assert_eq!(a.mode() & 0o7777, 0o640);
        assert_eq!(std::fs::read(dest.join("etc/b")).unwrap(), b"A\n");

        let fifo = std::fs::symlink_metadata(dest.join("run/fifo")).unwrap();
        assert!(fifo.file_type().is_fifo());
        assert_eq!(fifo.mode() & 0o7777, 0o600);
        // A device node where mknod is allowed, else an empty stand-in.
        let null = std::fs::symlink_metadata(dest.join("dev/null")).unwrap();
        assert!(
            null.file_type().is_char_device() || (null.is_file() && null.len() == 0),
            "{null:?}"
        );
        assert_eq!(null.mode() & 0o7777, 0o666);
        // Without root, a 0555 directory would stop the temporary directory's removal.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dest.join("usr/bin"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }

    fn node(kind: EntryKind, data: Option<crate::flatten::DataRef>) -> Node {
        Node {
            kind,
            meta: Meta {
                mode: 0o644,
                ..Default::default()
            },
            data,
            inode: 0,
            layer: 0,
            implicit: false,
            elf: None,
        }
    }

    #[test]
    fn never_writes_through_a_symlink_in_the_view() {
        let tmp = tempfile::tempdir().unwrap();
        let scratch = Arc::new(Scratch::new_in(tmp.path()).unwrap());
        let flat = flat(&scratch, &[file("x", 0o644, 0, b"pwned".to_vec())]);
        let data = flat.view.nodes["x"].data;
        let outer = tmp.path().join("outer");
        let dest = outer.join("root");
        std::fs::create_dir_all(&dest).unwrap();
        // The flattener refuses this across layers; a hand-made view must be refused here too.
        for target in ["/", "..", "../..", "/tmp"] {
            let mut view = FlatView::default();
            view.nodes
                .insert("evil".into(), node(EntryKind::Symlink(target.into()), None));
            view.nodes
                .insert("evil/x".into(), node(EntryKind::File, data));
            let err = unpack(&flat, &view, &dest).unwrap_err();
            assert!(
                matches!(&err, Error::Unpack { path, .. } if path == "evil/x"),
                "{err}"
            );
            assert!(
                err.to_string()
                    .contains("beneath /evil, which is a symlink"),
                "{err}"
            );
            assert!(!outer.join("x").exists());
            assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 0);
        }
        for bad in ["../x", "a/../../x", "a//x", "./x"] {
            let mut view = FlatView::default();
            view.nodes.insert(bad.into(), node(EntryKind::File, data));
            let err = unpack(&flat, &view, &dest).unwrap_err();
            assert!(err.to_string().contains("not plainly relative"), "{err}");
        }
    }

    #[test]
    fn parent_lookups_refuse_symlinks_on_disk() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("root");
        std::fs::create_dir_all(dest.join("real")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), dest.join("abs")).unwrap();
        std::os::unix::fs::symlink("..", dest.join("up")).unwrap();
        std::os::unix::fs::symlink("real", dest.join("real/loop")).unwrap();
        let root = File::open(&dest).unwrap();
        let flags = OFlags::PATH | OFlags::DIRECTORY;
        for open in [open_beneath, walk_beneath] {
            assert!(open(root.as_fd(), "real", flags).is_ok());
            for path in ["abs", "up", "real/loop", "abs/root", "..", "real/../.."] {
                assert!(open(root.as_fd(), path, flags).is_err(), "{path}");
            }
        }
    }

    #[test]
    fn makes_parents_a_view_leaves_out_and_shares_the_work_in_chunks() {
        let tmp = tempfile::tempdir().unwrap();
        let scratch = Arc::new(Scratch::new_in(tmp.path()).unwrap());
        let flat = flat(&scratch, &[file("x", 0o600, 0, b"data".to_vec())]);
        let mut view = FlatView::default();
        for i in 0..40 {
            view.nodes.insert(
                format!("a/b{}/f{i}", i % 3),
                node(EntryKind::File, flat.view.nodes["x"].data),
            );
        }
        let dest = tmp.path().join("root");
        std::fs::create_dir(&dest).unwrap();
        let stats = unpack(&flat, &view, &dest).unwrap();
        assert_eq!(
            stats,
            UnpackStats {
                files: 40,
                bytes: 160
            }
        );
        assert_eq!(mode_of(&dest.join("a/b2")), 0o755);
        assert_eq!(std::fs::read(dest.join("a/b1/f37")).unwrap(), b"data");

        let files: Vec<(&str, &Node)> = view.nodes.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let parts = chunks(&files, 2);
        assert!(parts.len() > 2, "{parts:?}");
        assert_eq!(parts.first().map(|r| r.start), Some(0));
        assert_eq!(parts.last().map(|r| r.end), Some(40));
        assert!(parts.windows(2).all(|w| w[0].end == w[1].start));
        assert!(chunks(&[], 2).is_empty());
    }
}
