//! STUB (replaced by the helper's module).
#![allow(missing_docs, unused_variables)]
use super::context::{CopyError, Selected, SourceTree};
use std::os::fd::BorrowedFd;
#[derive(Debug)]
pub struct CopyOptions {
    pub owner: Option<(u32, u32)>,
    pub mode: Option<u32>,
    pub extract_archives: bool,
}
pub fn resolve_chown(dest_root: BorrowedFd<'_>, spec: &str) -> Result<(u32, u32), CopyError> {
    Err(CopyError("stub".into()))
}
pub fn copy(
    tree: &SourceTree,
    selected: &[Selected],
    dest_root: BorrowedFd<'_>,
    dest: &str,
    options: &CopyOptions,
) -> Result<usize, CopyError> {
    Err(CopyError("stub".into()))
}
pub fn write_inline(
    dest_root: BorrowedFd<'_>,
    dest: &str,
    name: &str,
    content: &[u8],
    options: &CopyOptions,
) -> Result<(), CopyError> {
    Err(CopyError("stub".into()))
}
