//! Host-side writes beneath a run root that never leave it.
//!
//! The root holds the image's own symlinks, and an image is hostile: a
//! `WORKDIR` through `/app -> /etc`, or a builder image's `/in/src -> /root`,
//! must not make whittle create, replace or write a host path. Every lookup
//! here is `openat2(RESOLVE_IN_ROOT)` from the root's fd (symlinks resolve as
//! they would inside the container, never above it), and every create or
//! remove is one `*at` call on one name in a directory already resolved so.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::TraceError;

/// An open run root.
pub struct RootDir {
    fd: OwnedFd,
    path: PathBuf,
    /// The host ids of the container's root, given to what is created here.
    owner: Option<(u32, u32)>,
}

fn err(what: &'static str, path: &Path, e: Errno) -> TraceError {
    TraceError::io(what, path, e.into())
}

fn components(inside: &str) -> Vec<&str> {
    inside
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}

impl RootDir {
    /// Opens `path`; what is created beneath it is given to `owner` (host uid, gid).
    pub fn open(path: &Path, owner: Option<(u32, u32)>) -> Result<RootDir, TraceError> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| err("cannot open", path, e))?;
        Ok(RootDir {
            fd,
            path: path.to_path_buf(),
            owner,
        })
    }

    fn shown(&self, inside: &str) -> PathBuf {
        self.path.join(inside.trim_start_matches('/'))
    }

    /// Opens `inside` (symlinks resolved inside the root) with `flags`.
    pub fn resolve(&self, inside: &str, flags: OFlags) -> Result<OwnedFd, Errno> {
        let rel = inside.trim_start_matches('/');
        rustix::fs::openat2(
            &self.fd,
            if rel.is_empty() { "." } else { rel },
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
    }

    /// Gives what whittle made at `name` in `dir` its mode whatever the umask (0755 for
    /// directories, 0644 for files, as container runtimes make them) and the root's owner.
    fn made(&self, dir: BorrowedFd<'_>, name: &str, mode: u32) -> Result<(), Errno> {
        rustix::fs::chmodat(dir, name, Mode::from_raw_mode(mode), AtFlags::empty())?;
        self.give(dir, name)
    }

    fn give(&self, dir: BorrowedFd<'_>, name: &str) -> Result<(), Errno> {
        if let Some((uid, gid)) = self.owner {
            rustix::fs::chownat(
                dir,
                name,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )?;
        }
        Ok(())
    }

    /// Makes the top-level `name` (`proc`, `dev`, `sys`) a real, empty-or-not
    /// directory to mount on: a symlink or file the image has there is
    /// removed (one name in the root itself, so nothing outside is touched).
    pub fn mount_point(&self, name: &str) -> Result<(), TraceError> {
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => return Ok(()),
            Ok(_) => rustix::fs::unlinkat(&self.fd, name, AtFlags::empty())
                .map_err(|e| err("cannot replace", &self.shown(name), e))?,
            Err(Errno::NOENT) => {}
            Err(e) => return Err(err("cannot inspect", &self.shown(name), e)),
        }
        rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(0o755))
            .map_err(|e| err("cannot create", &self.shown(name), e))?;
        self.made(self.fd.as_fd(), name, 0o755)
            .map_err(|e| err("cannot change the owner of", &self.shown(name), e))
    }

    /// Makes the directory `inside` and its missing parents as the container
    /// would (`mkdir -p` inside the root: symlinks followed, but only within it)
    /// and returns it opened.
    pub fn mkdir_all(&self, inside: &str) -> Result<OwnedFd, TraceError> {
        self.mkdir_all_links(inside, 0)
    }

    fn mkdir_all_links(&self, inside: &str, links: u32) -> Result<OwnedFd, TraceError> {
        let comps = components(inside);
        let mut dir = self
            .resolve("", OFlags::PATH | OFlags::DIRECTORY)
            .map_err(|e| err("cannot open", &self.path, e))?;
        for (i, name) in comps.iter().enumerate() {
            let prefix = comps[..=i].join("/");
            match self.resolve(&prefix, OFlags::PATH | OFlags::DIRECTORY) {
                Ok(fd) => dir = fd,
                Err(Errno::NOENT) => {
                    // A dangling symlink: make its target instead, as `mkdir -p` in the container would.
                    if let Ok(target) = rustix::fs::readlinkat(&dir, *name, Vec::new()) {
                        if links >= 40 {
                            return Err(err("cannot create", &self.shown(inside), Errno::LOOP));
                        }
                        let target = target.to_string_lossy().into_owned();
                        let base = if target.starts_with('/') {
                            target
                        } else {
                            format!("{}/{target}", comps[..i].join("/"))
                        };
                        let rest = comps[i + 1..].join("/");
                        return self.mkdir_all_links(&format!("{base}/{rest}"), links + 1);
                    }
                    rustix::fs::mkdirat(&dir, *name, Mode::from_raw_mode(0o755))
                        .map_err(|e| err("cannot create", &self.shown(&prefix), e))?;
                    self.made(dir.as_fd(), name, 0o755)
                        .map_err(|e| err("cannot change the owner of", &self.shown(&prefix), e))?;
                    dir = self
                        .resolve(&prefix, OFlags::PATH | OFlags::DIRECTORY)
                        .map_err(|e| err("cannot open", &self.shown(&prefix), e))?;
                }
                Err(e) => return Err(err("cannot open", &self.shown(&prefix), e)),
            }
        }
        Ok(dir)
    }

    /// Makes `inside` a regular file to bind-mount a file on (`/etc/hosts`):
    /// parents made inside the root, a link or other non-directory there replaced
    /// by an empty file. Returns its path relative to the root with every link
    /// resolved, so that the mount cannot follow one.
    pub fn mount_file(&self, inside: &str) -> Result<String, TraceError> {
        let comps = components(inside);
        let Some((name, parents)) = comps.split_last() else {
            return Err(TraceError::Config(format!("{inside:?} is not a file path")));
        };
        let parent = self.mkdir_all(&parents.join("/"))?;
        let shown = self.shown(inside);
        match rustix::fs::statat(&parent, *name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {}
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                return Err(TraceError::Config(format!(
                    "{inside} is a directory in the image; a file is mounted there"
                )))
            }
            other => {
                if other.is_ok() {
                    rustix::fs::unlinkat(&parent, *name, AtFlags::empty())
                        .map_err(|e| err("cannot replace", &shown, e))?;
                }
                let fd = rustix::fs::openat(
                    &parent,
                    *name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o644),
                )
                .map_err(|e| err("cannot create", &shown, e))?;
                drop(fd);
                self.made(parent.as_fd(), name, 0o644)
                    .map_err(|e| err("cannot change the owner of", &shown, e))?;
            }
        }
        let fd = rustix::fs::openat(
            &parent,
            *name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| err("cannot open", &shown, e))?;
        match self.beneath(&fd, inside)?.strip_prefix(self.real()?) {
            Ok(rel) if !rel.as_os_str().is_empty() => Ok(rel.to_string_lossy().into_owned()),
            _ => Err(TraceError::Config(format!(
                "{inside} lies outside the root"
            ))),
        }
    }

    /// The root's own host path with every link resolved.
    fn real(&self) -> Result<PathBuf, TraceError> {
        fd_path(&self.fd).map_err(|e| TraceError::io("cannot locate", &self.path, e))
    }

    /// The host path of `fd`, an open file `inside` the root, checked to lie beneath it.
    pub fn beneath(&self, fd: &OwnedFd, inside: &str) -> Result<PathBuf, TraceError> {
        let real =
            fd_path(fd).map_err(|e| TraceError::io("cannot locate", Path::new(inside), e))?;
        if !real.starts_with(self.real()?) {
            return Err(TraceError::Config(format!(
                "{inside} lies outside the root"
            )));
        }
        Ok(real)
    }

    /// Removes whatever is at `name` in `dir` (a file, a symlink — never
    /// followed — or a whole tree).
    fn remove(&self, dir: BorrowedFd<'_>, name: &str, shown: &Path) -> Result<(), TraceError> {
        match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(err("cannot inspect", shown, e)),
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                let sub = open_subdir(dir, name, shown)?;
                let names = list(&sub).map_err(|e| err("cannot list", shown, e))?;
                for child in names {
                    let s = shown.join(OsStr::from_bytes(&child));
                    let Ok(c) = std::str::from_utf8(&child) else {
                        return Err(TraceError::Config(format!(
                            "{}: a name that is not UTF-8",
                            s.display()
                        )));
                    };
                    self.remove(sub.as_fd(), c, &s)?;
                }
                rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
                    .map_err(|e| err("cannot remove", shown, e))
            }
            Ok(_) => rustix::fs::unlinkat(dir, name, AtFlags::empty())
                .map_err(|e| err("cannot remove", shown, e)),
        }
    }

    /// Copies the host file or tree `src` to `inside` (replacing what the
    /// image has there), without write permission: inputs are read-only.
    pub fn copy_in_read_only(&self, src: &Path, inside: &str) -> Result<(), TraceError> {
        let comps = components(inside);
        let Some((name, parents)) = comps.split_last() else {
            return Err(TraceError::Config(format!(
                "{inside:?} names the root itself, not a path in it"
            )));
        };
        let parent = self.mkdir_all(&parents.join("/"))?;
        let parent = rustix::fs::openat(
            &parent,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| err("cannot open", &self.shown(&parents.join("/")), e))?;
        let shown = self.shown(inside);
        self.remove(parent.as_fd(), name, &shown)?;
        self.copy_tree(src, parent.as_fd(), name, &shown)
    }

    fn copy_tree(
        &self,
        src: &Path,
        dir: BorrowedFd<'_>,
        name: &str,
        shown: &Path,
    ) -> Result<(), TraceError> {
        let md =
            std::fs::symlink_metadata(src).map_err(|e| TraceError::io("cannot read", src, e))?;
        let mode = Mode::from_raw_mode(md.permissions().mode() & 0o7555);
        if md.is_dir() {
            rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700))
                .map_err(|e| err("cannot create", shown, e))?;
            let sub = open_subdir(dir, name, shown)?;
            let mut entries: Vec<_> = std::fs::read_dir(src)
                .map_err(|e| TraceError::io("cannot list", src, e))?
                .collect::<Result<_, _>>()
                .map_err(|e| TraceError::io("cannot list", src, e))?;
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                let file_name = entry.file_name();
                let Some(child) = file_name.to_str() else {
                    return Err(TraceError::Config(format!(
                        "{}: a name that is not UTF-8",
                        entry.path().display()
                    )));
                };
                self.copy_tree(&entry.path(), sub.as_fd(), child, &shown.join(child))?;
            }
            self.give(dir, name)
                .map_err(|e| err("cannot change the owner of", shown, e))?;
            rustix::fs::fchmod(&sub, mode).map_err(|e| err("cannot chmod", shown, e))
        } else if md.file_type().is_symlink() {
            let target =
                std::fs::read_link(src).map_err(|e| TraceError::io("cannot read", src, e))?;
            rustix::fs::symlinkat(target.as_os_str(), dir, name)
                .map_err(|e| err("cannot create", shown, e))?;
            self.give(dir, name)
                .map_err(|e| err("cannot change the owner of", shown, e))
        } else if md.is_file() {
            let mut from =
                std::fs::File::open(src).map_err(|e| TraceError::io("cannot read", src, e))?;
            let to = rustix::fs::openat(
                dir,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .map_err(|e| err("cannot create", shown, e))?;
            let mut to = std::fs::File::from(to);
            let mut buf = vec![0u8; 256 << 10];
            loop {
                let n = from
                    .read(&mut buf)
                    .map_err(|e| TraceError::io("cannot read", src, e))?;
                if n == 0 {
                    break;
                }
                to.write_all(&buf[..n])
                    .map_err(|e| TraceError::io("cannot write", shown, e))?;
            }
            self.give(dir, name)
                .map_err(|e| err("cannot change the owner of", shown, e))?;
            rustix::fs::fchmod(&to, mode).map_err(|e| err("cannot chmod", shown, e))
        } else {
            Err(TraceError::Config(format!(
                "{}: only files, directories and symlinks can be inputs",
                src.display()
            )))
        }
    }
}

/// Removes a run root. An ordinary user whose subordinate ids own some of its
/// files removes it as root of a user namespace with the same map; anyone else
/// directly (after making directories writable, which a read-only image
/// directory is not).
pub fn remove_tree(path: &Path, ids: &crate::IdMapping) -> Result<(), TraceError> {
    if !path.exists() {
        return Ok(());
    }
    if !nix::unistd::geteuid().is_root() && ids.method == crate::idmap::MapMethod::Helpers {
        return remove_in_namespace(path, ids);
    }
    if std::fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    whittle_image::scratch::make_tree_removable(path);
    std::fs::remove_dir_all(path).map_err(|e| TraceError::io("cannot remove", path, e))
}

fn remove_in_namespace(path: &Path, ids: &crate::IdMapping) -> Result<(), TraceError> {
    let rm = ["/usr/bin/rm", "/bin/rm"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or_else(|| TraceError::Unsupported("rm is missing".into()))?;
    let strings = [rm.as_bytes(), b"-rf", b"--", path.as_os_str().as_bytes()]
        .iter()
        .map(|s| std::ffi::CString::new(*s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TraceError::Config(format!("{} contains a NUL byte", path.display())))?;
    let mut argv: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
    argv.push(std::ptr::null());
    let (sync_read, sync_write) = crate::sandbox::pipe()?;
    let sync_fd = std::os::fd::AsRawFd::as_raw_fd(&sync_read);
    // SAFETY: the child runs only `remove_in_namespace` on memory prepared above.
    let pid = unsafe {
        let rc = libc::fork();
        if rc == 0 {
            crate::child::remove_in_namespace(sync_fd, &argv);
        }
        rc
    };
    if pid < 0 {
        return Err(TraceError::Sys("cannot fork", nix::errno::Errno::last()));
    }
    drop(sync_read);
    // The child unshares before it reads: wait until its user namespace is new.
    let own = std::fs::read_link("/proc/self/ns/user").ok();
    for _ in 0..1000 {
        if std::fs::read_link(format!("/proc/{pid}/ns/user")).ok() != own {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let mapped = ids.apply(pid);
    let _ = crate::sandbox::release(sync_write);
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    mapped?;
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) || path.exists() {
        return Err(TraceError::Start(format!(
            "cannot remove {} inside the user namespace",
            path.display()
        )));
    }
    Ok(())
}

/// The path the kernel gives an open file (`/proc/self/fd/N`).
fn fd_path(fd: &OwnedFd) -> std::io::Result<PathBuf> {
    std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(fd)
    ))
}

/// Opens the directory `name` in `dir` for reading, never through a link.
fn open_subdir(dir: BorrowedFd<'_>, name: &str, shown: &Path) -> Result<OwnedFd, TraceError> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err("cannot open", shown, e))
}

/// The names in a directory opened for reading.
fn list(dir: &OwnedFd) -> Result<Vec<Vec<u8>>, Errno> {
    let dup = rustix::fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    let mut d = rustix::fs::Dir::read_from(dup)?;
    while let Some(entry) = d.read() {
        let entry = entry?;
        let n = entry.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A root with `/app -> <outside>` and `/in -> /etc-like` links that lead out of it.
    fn hostile_root() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("precious"), "host data").unwrap();
        symlink(&outside, root.join("app")).unwrap();
        symlink("../../outside/precious", root.join("etc/x")).unwrap();
        (dir, root, outside)
    }

    fn listing(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            out.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
        }
        out.sort();
        out
    }

    #[test]
    fn mkdir_all_stays_inside_through_absolute_links() {
        let (_d, root, outside) = hostile_root();
        let before = listing(&outside);
        let r = RootDir::open(&root, None).unwrap();
        r.mkdir_all("/app/work/dir").unwrap();
        // `/app` resolves to the host path *inside* the root: a new tree there.
        assert!(root
            .join(outside.strip_prefix("/").unwrap())
            .join("work/dir")
            .is_dir());
        assert_eq!(listing(&outside), before, "the host directory was touched");
    }

    #[test]
    fn copy_in_replaces_a_link_rather_than_writing_through_it() {
        let (d, root, outside) = hostile_root();
        let src = d.path().join("input.txt");
        std::fs::write(&src, "input").unwrap();
        let r = RootDir::open(&root, None).unwrap();
        r.copy_in_read_only(&src, "/etc/x").unwrap();
        assert_eq!(
            std::fs::read_to_string(outside.join("precious")).unwrap(),
            "host data"
        );
        let copied = root.join("etc/x");
        assert!(!copied.symlink_metadata().unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&copied).unwrap(), "input");
        assert_eq!(copied.metadata().unwrap().permissions().mode() & 0o222, 0);
        // Through the `/app` link: a tree inside the root, nothing outside.
        let tree = d.path().join("tree");
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::fs::write(tree.join("sub/f"), "f").unwrap();
        r.copy_in_read_only(&tree, "/app/src").unwrap();
        assert_eq!(listing(&outside).len(), 1);
        assert!(r.copy_in_read_only(&tree, "/").is_err());
    }

    #[test]
    fn mount_points_replace_links_in_the_root_only() {
        let (_d, root, outside) = hostile_root();
        symlink(&outside, root.join("proc")).unwrap();
        let r = RootDir::open(&root, None).unwrap();
        r.mount_point("proc").unwrap();
        r.mount_point("dev").unwrap();
        assert!(root.join("proc").symlink_metadata().unwrap().is_dir());
        assert!(root.join("dev").is_dir());
        assert!(outside.join("precious").exists());
    }
}
