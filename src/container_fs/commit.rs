//! `commit` and `export`.
//!
//! `commit` turns a container's writable layer (its overlay upper directory) into a layer of a
//! new image: the builder's layer writer (`build::layer_tar`) translates overlay whiteouts and
//! opaque directories to OCI whiteouts, so the layer means on any runtime what it meant here.
//! As in docker, what the container did not write itself is not in it: the init files
//! (`/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`) are bind mounts from the container's
//! directory and its volumes are mounts, neither of which lands in the upper directory.
//!
//! `export` writes the container's whole root file system as a tar: its processes' view
//! without anything mounted on it (volumes, the init files, `/proc`, `/dev`, …).

use std::io::Write;
use std::path::Path;

use super::archive::{self, TarOptions};
use super::{Container, FsError, View, with_root};
use crate::build::dockerfile::{self, InstructionKind};
use crate::build::state::{self as stage, StageState};
use crate::image::config::ConfigFile;
use crate::image::{Digest, ImageRecord, Layer, Reference, Store};
use crate::runtime::cgroups::ContainerCgroup;

/// `commit`'s flags.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// The new image's name; none makes a dangling image.
    pub reference: Option<Reference>,
    /// `-m`: the history entry's comment.
    pub message: Option<String>,
    /// `-a`: the author.
    pub author: Option<String>,
    /// `-c`: Dockerfile instructions applied to the config (CMD, ENTRYPOINT, ENV, EXPOSE,
    /// LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR).
    pub changes: Vec<String>,
    /// `-p`: freeze a running container while its layer is read.
    pub pause: bool,
}

/// The image in `store` whose layers the container runs on.
fn base_image(store: &Store, container: &Container) -> Result<ImageRecord, FsError> {
    let lower = &container.spec.rootfs.lower;
    for (record, _) in store.list()? {
        let links: Vec<&str> = record.layers.iter().rev().map(|l| &l.diff_id.hex()[..16]).collect();
        if links.len() == lower.len() && links.iter().zip(lower).all(|(a, b)| a == b) {
            return Ok(record);
        }
    }
    Err(FsError::NotFound(format!("the image of container {} is no longer in the store", container.name())))
}

/// Applies `commit -c` instructions to `config`.
pub fn apply_changes(config: ConfigFile, layers: Vec<Layer>, changes: &[String]) -> Result<ConfigFile, FsError> {
    let mut state = StageState::from_image(layers, config, String::new());
    for change in changes {
        let parsed = dockerfile::parse(&format!("FROM scratch\n{change}\n"))
            .map_err(|e| FsError::Invalid(format!("invalid change {change:?}: {e}")))?;
        for ins in parsed.instructions.iter().skip(1) {
            let allowed = matches!(
                ins.kind,
                InstructionKind::Cmd(_)
                    | InstructionKind::Entrypoint(_)
                    | InstructionKind::Env(_)
                    | InstructionKind::Expose(_)
                    | InstructionKind::Label(_)
                    | InstructionKind::Stopsignal(_)
                    | InstructionKind::User(_)
                    | InstructionKind::Volume(_)
                    | InstructionKind::Workdir(_)
            );
            if !allowed {
                return Err(FsError::Invalid(format!(
                    "invalid change {change:?}: {} is not one of CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR",
                    ins.kind.name()
                )));
            }
            stage::apply(&mut state, &ins.kind, parsed.escape)
                .map_err(|e| FsError::Invalid(format!("invalid change {change:?}: {}", e.0)))?;
        }
    }
    Ok(state.config)
}

/// The config a container of `base` runs with: docker's commit keeps the container's
/// environment and command (compose's `environment:` and `command:`).
fn container_config(base: &ImageRecord, container: &Container) -> ConfigFile {
    let mut config = base.config.clone();
    let process = &container.spec.process;
    config.config.env = Some(process.env.clone());
    let entrypoint = config.config.entrypoint.clone().unwrap_or_default();
    if process.args.starts_with(&entrypoint) {
        let cmd = process.args[entrypoint.len()..].to_vec();
        config.config.cmd = (!cmd.is_empty()).then_some(cmd);
    } else {
        // `entrypoint:` replaced the image's; it runs the same as the whole command line.
        config.config.entrypoint = Some(process.args.clone());
        config.config.cmd = None;
    }
    config
}

/// Freezes a running container until dropped.
struct Frozen(Option<ContainerCgroup>);

impl Drop for Frozen {
    fn drop(&mut self) {
        if let Some(cgroup) = &self.0 {
            let _ = cgroup.thaw();
        }
    }
}

fn freeze(container: &Container, pause: bool) -> Result<Frozen, FsError> {
    let Some(record) = container.record.as_ref().filter(|r| pause && r.is_running()) else {
        return Ok(Frozen(None));
    };
    let Some(cgroup) =
        ContainerCgroup::open(&record.id).map_err(|e| FsError::io("open the cgroup", std::io::Error::other(e)))?
    else {
        return Ok(Frozen(None));
    };
    if cgroup.is_frozen().unwrap_or(false) {
        // Paused by the user: left as it is.
        return Ok(Frozen(None));
    }
    cgroup.freeze().map_err(|e| FsError::io(format!("pause {}", container.name()), std::io::Error::other(e)))?;
    Ok(Frozen(Some(cgroup)))
}

/// Makes an image of `container`'s writable layer on top of its image; returns its record.
pub fn commit(store: &Store, container: &Container, options: &CommitOptions) -> Result<ImageRecord, FsError> {
    let _gc = store.gc_lock(false)?;
    let base = base_image(store, container)?;
    let frozen = freeze(container, options.pause)?;
    let writer = store.blob_writer()?;
    let writer = with_root(container, View::Upper, move || {
        let mut writer = writer;
        crate::build::layer_tar::write_layer_tar(Path::new("/"), &mut writer)
            .map_err(|e| FsError::io(format!("read the writable layer of {}", container.name()), e))?;
        writer.flush().map_err(|e| FsError::io("write the layer", e))?;
        Ok(writer)
    })?;
    drop(frozen);
    let (diff_id, _) = writer.commit(None)?;
    let (diff_id, size) = store.unpack_layer(&diff_id, Some(&diff_id))?;
    let mut layers = base.layers.clone();
    let new_layer = Layer {
        diff_id: diff_id.clone(),
        blob: Some(diff_id.clone()),
        media_type: "application/vnd.oci.image.layer.v1.tar".to_owned(),
        size,
    };
    let config = container_config(&base, container);
    let mut config = apply_changes(config, layers.clone(), &options.changes)?;
    layers.push(new_layer);
    let created = crate::timing::rfc3339(crate::runtime::state::now_nanos());
    config.created = Some(created.clone());
    config.author.clone_from(&options.author);
    config.rootfs.diff_ids.push(diff_id);
    let mut entry = serde_json::Map::new();
    entry.insert("created".into(), created.into());
    if let Some(author) = &options.author {
        entry.insert("author".into(), author.clone().into());
    }
    entry.insert("created_by".into(), "berth commit".into());
    if let Some(message) = &options.message {
        entry.insert("comment".into(), message.clone().into());
    }
    config.history.push(serde_json::Value::Object(entry));
    config.comment.clone_from(&options.message);
    let bytes = serde_json::to_vec(&config).map_err(|e| FsError::Invalid(e.to_string()))?;
    let id = Digest::of(&bytes);
    if !store.has_blob(&id) {
        store.write_blob(bytes.as_slice(), Some(&id))?;
    }
    let record = ImageRecord { id, manifest: None, layers, config, host_binds: base.host_binds.clone() };
    let names: Vec<Reference> = options.reference.iter().cloned().collect();
    store.commit(&record, &names)?;
    Ok(record)
}

/// Writes `container`'s root file system, without its mounts, to `out` as a tar.
pub fn export(container: &Container, out: impl Write + Send) -> Result<(), FsError> {
    let options = TarOptions { follow_top: false, one_filesystem: true };
    with_root(container, View::Live { writable: false }, move || {
        archive::write_tree(Path::new("/"), None, options, out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_dockerfile_instructions_applied_to_the_config() {
        let mut base = ConfigFile::default();
        base.config.cmd = Some(vec!["sh".into()]);
        base.config.env = Some(vec!["PATH=/bin".into()]);
        let changes = [
            "ENV A=1 B=$PATH".to_owned(),
            "CMD [\"echo\", \"hi\"]".to_owned(),
            "WORKDIR /srv".to_owned(),
            "LABEL x=y".to_owned(),
            "EXPOSE 8080".to_owned(),
            "USER 1000".to_owned(),
        ];
        let config = apply_changes(base, Vec::new(), &changes).unwrap();
        let c = &config.config;
        assert_eq!(c.env.as_deref().unwrap(), ["PATH=/bin", "A=1", "B=/bin"]);
        assert_eq!(c.cmd.as_deref().unwrap(), ["echo", "hi"]);
        assert_eq!(c.working_dir.as_deref(), Some("/srv"));
        assert_eq!(c.labels.as_ref().unwrap()["x"], "y");
        assert!(c.exposed_ports.as_ref().unwrap().contains_key("8080/tcp"));
        assert_eq!(c.user.as_deref(), Some("1000"));
        for bad in ["RUN true", "COPY a b", "FROM x", "NOPE x"] {
            assert!(apply_changes(ConfigFile::default(), Vec::new(), &[bad.to_owned()]).is_err(), "{bad}");
        }
    }
}
