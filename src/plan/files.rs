//! A service's `secrets` and `configs` as files bound read-only into the container.
//!
//! compose (without swarm) bind-mounts a file secret from the host and copies an environment
//! secret into the container; berth gives every one the same form: a file it writes into the
//! container's own directory when the container is created (see `ContainerDirs::create`),
//! owned by `uid`:`gid` (default root) with `mode` (default `0444`), bound read-only at the
//! target. Where they land follows compose: a secret at `/run/secrets/<source>`, a relative
//! target under `/run/secrets`, an absolute one as is; a config at `/<source>` or `/<target>`.
//!
//! `up` and `run` check the sources first, with the stack file's line (`spec::preflight`);
//! the errors here are for a project that skipped that check.

use std::path::PathBuf;

use crate::runtime::spec::{FileSource, Mount, MountKind};
use crate::spec::model::{FileMount, FileObject};
use crate::spec::preflight::{FileKind, grants};
use crate::spec::{Project, Service};

use super::{PlanError, invalid};

/// The default mode of a secret or config, as compose gives a copied one.
pub const DEFAULT_MODE: u32 = 0o444;

/// The service's secrets then configs, as mounts; `file-<n>` names their files in the
/// container's directory.
pub(super) fn mounts(project: &Project, service: &Service) -> Result<Vec<Mount>, PlanError> {
    grants(service).enumerate().map(|(n, (kind, grant))| mount(project, service, kind, grant, n)).collect()
}

fn mount(
    project: &Project,
    service: &Service,
    kind: FileKind,
    grant: &FileMount,
    n: usize,
) -> Result<Mount, PlanError> {
    let key = kind.key();
    let noun = kind.noun();
    let source = &grant.source;
    let object = kind
        .defined(project)
        .get(source)
        .ok_or_else(|| invalid(service, key, format!("{noun} {source:?} is not defined at the top level")))?;
    let bytes = source_of(project, kind, source, object).map_err(|message| invalid(service, key, message))?;
    let id = |which: &str, value: Option<&str>| match value.filter(|v| !v.is_empty()) {
        None => Ok(0),
        Some(v) => v.parse::<u32>().map_err(|_| {
            invalid(service, key, format!("{noun} {source:?}: {which} {v:?} must be a number (berth maps no names)"))
        }),
    };
    Ok(Mount {
        kind: MountKind::File {
            name: format!("file-{n}"),
            source: bytes,
            uid: id("uid", grant.uid.as_deref())?,
            gid: id("gid", grant.gid.as_deref())?,
            mode: grant.mode.unwrap_or(DEFAULT_MODE),
        },
        target: kind.target(grant),
        read_only: true,
    })
}

/// Where the bytes of `object` come from, or why they cannot be had (the message names the
/// top-level key and what to change).
pub fn source_of(project: &Project, kind: FileKind, key: &str, object: &FileObject) -> Result<FileSource, String> {
    let noun = kind.noun();
    if object.external {
        return Err(format!(
            "{noun} {key:?} is external: berth runs no swarm to hold it; give it a file{} or environment source",
            if kind == FileKind::Config { ", content" } else { "" }
        ));
    }
    if let Some(file) = object.file.as_deref() {
        return Ok(FileSource::Host(PathBuf::from(file)));
    }
    if let Some(var) = object.environment.as_deref() {
        return project
            .environment
            .get(var)
            .map(|value| FileSource::Inline(value.clone()))
            .ok_or_else(|| format!("environment variable {var:?} required by {noun} {key:?} is not set"));
    }
    if let Some(content) = &object.content {
        return Ok(FileSource::Inline(content.clone()));
    }
    Err(format!("{noun} {key:?} has no source: give it a file, environment or content"))
}
