//! Reading the image's dpkg database (status and file lists) through its root.

use whittle_elf::root::{read_small, resolve};

use crate::image_root::ImageRoot;
use crate::pkgdb;

/// Largest database file read.
const MAX_DB: usize = 256 << 20;

/// A text file of the image (symlinks followed), if it is there.
pub(crate) fn read_text(root: &ImageRoot<'_>, path: &str) -> Option<String> {
    let r = resolve(root, path).ok()?;
    let bytes = read_small(root, &r.path, MAX_DB).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// An installed package and the paths its file list names.
pub(crate) struct Installed {
    pub name: String,
    pub arch: Option<String>,
    /// Where its list is (`/var/lib/dpkg/info/NAME[:ARCH].list`).
    pub list_path: String,
    pub files: Vec<String>,
}

/// The installed packages of `status` (the status file's text) that have a file list.
pub(crate) fn installed(root: &ImageRoot<'_>, status: &str) -> Vec<Installed> {
    let mut out = Vec::new();
    for stanza in pkgdb::parse_dpkg_status(status)
        .into_iter()
        .filter(|s| s.installed)
    {
        for name in pkgdb::dpkg_list_names(&stanza.name, stanza.arch.as_deref()) {
            let list_path = format!("{}/{name}", pkgdb::DPKG_INFO_DIR);
            if let Some(text) = read_text(root, &list_path) {
                out.push(Installed {
                    name: stanza.name.clone(),
                    arch: stanza.arch.clone(),
                    list_path,
                    files: pkgdb::parse_dpkg_list(&text),
                });
                break;
            }
        }
    }
    out
}
