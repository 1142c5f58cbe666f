//! The keep-set: which files of an image its program needs at run time, and why.
#![deny(missing_docs)]

pub mod pkgdb;
