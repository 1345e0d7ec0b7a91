//! COPY and ADD: the sources are checksummed for the cache key, then copied through an
//! overlay of the stage (mounted in a private mount namespace) whose upper directory becomes
//! the step's layer.

use std::collections::BTreeMap;
use std::os::fd::AsFd;

use super::{Run, earlier_stage};
use crate::build::BuildError;
use crate::build::cache::{self, Entry};
use crate::build::context::{CopyError, SourceTree};
use crate::build::copy::{self, CopyOptions};
use crate::build::dockerfile::{CopyArgs, Instruction, Stage};
use crate::build::mounted::{LayerStack, Scratch, with_mounted};
use crate::build::state::StageState;
use crate::image::Layer;

/// Where the files come from.
enum Origin {
    /// The build context.
    Context,
    /// An earlier stage's or an image's layers, and the cache key that stands for them.
    Layers(Vec<Layer>, String),
}

impl Run<'_, '_> {
    /// Runs (or finds in the cache) a COPY or ADD; returns its cache key and entry.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn copy(
        &mut self,
        state: &StageState,
        stages: &[Stage],
        index: usize,
        built: &BTreeMap<usize, StageState>,
        ins: &Instruction,
        args: &CopyArgs,
        add: bool,
    ) -> Result<(String, Entry), BuildError> {
        let name = ins.kind.name();
        let copy_error =
            |source: CopyError| BuildError::Copy { file: self.file.clone(), line: ins.line, instruction: name, source };
        if let Some(flag) = args.flags.first() {
            return Err(self.instruction_error(ins, format!("--{} is not supported", flag.name)));
        }
        let dest = self.expand(state, ins, &args.dest)?;
        let dest = if dest.starts_with('/') {
            dest
        } else {
            let base = state.workdir();
            format!("{}/{dest}", base.trim_end_matches('/'))
        };
        let owner_spec = args.chown.as_deref().map(|c| self.expand(state, ins, c)).transpose()?;
        let mode = match &args.chmod {
            Some(text) => {
                let text = self.expand(state, ins, text)?;
                Some(copy::parse_chmod(&text).map_err(copy_error)?)
            }
            None => None,
        };
        let mut inline: Vec<(String, Vec<u8>)> = Vec::new();
        let mut paths: Vec<String> = Vec::new();
        for source in &args.sources {
            if let Some(tag) = source.strip_prefix("<<") {
                let tag = tag.trim_start_matches('-').trim_matches(['"', '\'']);
                let doc = ins
                    .heredocs
                    .iter()
                    .find(|h| h.name == tag)
                    .ok_or_else(|| self.instruction_error(ins, format!("heredoc {source} has no body")))?;
                inline.push((doc.name.clone(), doc.content.clone().into_bytes()));
                continue;
            }
            let path = self.expand(state, ins, source)?;
            if add && (path.contains("://") || path.starts_with("git@")) {
                return Err(self.instruction_error(ins, format!("{path}: remote sources are not supported")));
            }
            paths.push(path);
        }
        let origin = match &args.from {
            None => Origin::Context,
            Some(from) => {
                let from = self.expand(state, ins, from)?;
                match earlier_stage(stages, index, &from) {
                    Some(i) => {
                        let s = built.get(&i).ok_or_else(|| {
                            self.instruction_error(ins, format!("--from={from}: that stage was not built"))
                        })?;
                        Origin::Layers(s.layers.clone(), s.key.clone())
                    }
                    None => {
                        let image = self.base_image(&from, ins.line)?;
                        Origin::Layers(image.layers, format!("image:{}", image.id))
                    }
                }
            }
        };
        let (selected, inputs) = match &origin {
            Origin::Context => {
                let selected = self.context.select(&paths).map_err(copy_error)?;
                let sum = self.context.checksum(&selected).map_err(copy_error)?;
                (Some(selected), sum.to_string())
            }
            Origin::Layers(_, key) => (None, key.clone()),
        };
        let key = cache::chain(
            &state.key,
            &[&format!("{:?}", ins.kind), &format!("{:?}", ins.heredocs), &state.args_key(), &inputs],
        );
        if let Some(entry) = self.cached(&key) {
            return Ok((key, entry));
        }
        let store = self.builder.store;
        let staging = store.staging_dir()?;
        let outcome = (|| {
            let scratch = Scratch::create(&staging)?;
            let stack = self.stack(&state.layers);
            let source_stack = match &origin {
                Origin::Layers(layers, _) => Some(self.stack(layers)),
                Origin::Context => None,
            };
            let context = &self.context;
            let (file, line) = (self.file.clone(), ins.line);
            with_mounted(&stack, source_stack.as_ref(), &scratch, move |root, source| {
                let wrap = |source: CopyError| BuildError::Copy { file: file.clone(), line, instruction: name, source };
                let root = rustix::fs::open(
                    root,
                    rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )
                .map_err(|e| BuildError::io(root, e.into()))?;
                let owner = match &owner_spec {
                    Some(spec) => Some(copy::resolve_chown(root.as_fd(), spec).map_err(wrap)?),
                    None => None,
                };
                let options = CopyOptions { owner, mode, extract_archives: add };
                for (name, content) in &inline {
                    copy::write_inline(root.as_fd(), &dest, name, content, &options).map_err(wrap)?;
                }
                if paths.is_empty() {
                    return Ok(());
                }
                match (source, &selected) {
                    (Some(dir), _) => {
                        let tree = SourceTree::root(dir);
                        let selected = tree.select(&paths).map_err(wrap)?;
                        copy::copy(&tree, &selected, root.as_fd(), &dest, &options).map_err(wrap)?;
                    }
                    (None, Some(selected)) => {
                        copy::copy(context, selected, root.as_fd(), &dest, &options).map_err(wrap)?;
                    }
                    (None, None) => {}
                }
                Ok(())
            })?;
            self.adopt(&scratch.upper)
        })();
        let _ = std::fs::remove_dir_all(&staging);
        let entry = outcome?;
        self.ran += 1;
        Ok((key, entry))
    }

    /// Layers as overlay lower directories, top first.
    fn stack(&self, layers: &[Layer]) -> LayerStack {
        let store = self.builder.store;
        LayerStack {
            layer_root: store.dir().join("l"),
            lower: layers
                .iter()
                .rev()
                .map(|l| {
                    store
                        .layer_link(&l.diff_id)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                })
                .collect(),
        }
    }
}
