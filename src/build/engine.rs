//! The builder: a Dockerfile's needed stages, step by step, into an image in berth's store.
//!
//! Each stage starts from an image, `scratch` or an earlier stage. Instructions that change
//! only the config (ENV, WORKDIR, ...) change it in place; RUN, COPY and ADD each add one
//! layer, taken straight from an overlay upper directory (the RUN container's, or the one the
//! copy wrote through), hashed as its OCI tar for the diff id, and renamed into the store:
//! no tar is written and nothing is unpacked. Every layer step is looked up in the cache
//! first (see [`super::cache`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::BuildError;
use super::cache::{self, Cache, Entry};
use super::dockerfile::{self, Dockerfile, Instruction, InstructionKind, Stage};
use super::run_step::{self, RunCommand, RunContext};
use super::state::{self, StageState};
use crate::image::config::{ConfigFile, RootFs};
use crate::image::ensure::ImageSource;
use crate::image::{Digest, ImageRecord, Layer, Reference, Store};
use crate::runtime::spawner::Spawner;
use crate::spec::Project;

mod copy_step;

/// Where the Dockerfile comes from.
#[derive(Debug, Clone)]
pub enum DockerfileSource {
    /// A file.
    File(PathBuf),
    /// `dockerfile_inline`.
    Inline(String),
}

/// One image to build.
#[derive(Debug)]
pub struct BuildRequest<'a> {
    /// The project: its name and networks.
    pub project: &'a Project,
    /// The service the image is for.
    pub service: String,
    /// The build context directory.
    pub context: PathBuf,
    /// The Dockerfile.
    pub dockerfile: DockerfileSource,
    /// `build.target`.
    pub target: Option<String>,
    /// Build arguments (`build.args`, resolved).
    pub args: BTreeMap<String, String>,
    /// `build.labels`.
    pub labels: BTreeMap<String, String>,
    /// The names the image gets.
    pub names: Vec<Reference>,
    /// Run every step even when the cache has it.
    pub no_cache: bool,
    /// Pull base images even when they are in the store.
    pub pull: bool,
}

/// The build's tools.
pub struct Builder<'a> {
    /// The state root.
    pub state_root: &'a Path,
    /// The image store.
    pub store: &'a Store,
    /// Forks the RUN containers.
    pub spawner: &'a Spawner,
    /// Pulls base images.
    pub images: &'a dyn ImageSource,
    /// Where progress lines go.
    pub progress: &'a dyn Fn(&str),
    /// Set when the build is to stop (Ctrl-C): checked between steps, and a running RUN is
    /// killed. The build then fails with [`BuildError::Interrupted`], having removed what it
    /// made.
    pub cancel: Option<&'a std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Builder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder").field("state_root", &self.state_root).finish_non_exhaustive()
    }
}

/// A finished build.
#[derive(Debug)]
pub struct Built {
    /// The image.
    pub record: ImageRecord,
    /// Layer steps run.
    pub ran: usize,
    /// Layer steps taken from the cache.
    pub cached: usize,
}

/// What one build keeps while it runs.
struct Run<'r, 'a> {
    builder: &'r Builder<'a>,
    req: &'r BuildRequest<'a>,
    file: String,
    escape: char,
    cache: Cache,
    context: super::context::SourceTree,
    run_ctx: RunContext<'r>,
    ran: usize,
    cached: usize,
}

impl Builder<'_> {
    /// Builds `req` and names the image.
    pub fn build(&self, req: &BuildRequest<'_>) -> Result<Built, BuildError> {
        let _gc = self.store.gc_lock(false)?;
        let (text, file, dockerfile_path) = match &req.dockerfile {
            DockerfileSource::File(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| BuildError::Read { path: path.clone(), source })?;
                (text, path.display().to_string(), Some(path.clone()))
            }
            DockerfileSource::Inline(text) => (text.clone(), "dockerfile_inline".to_owned(), None),
        };
        let df = dockerfile::parse(&text).map_err(|source| BuildError::Parse { file: file.clone(), source })?;
        for note in &df.notes {
            (self.progress)(&format!("[{}] note: {note}", req.service));
        }
        let context = super::context::SourceTree::context(&req.context, dockerfile_path.as_deref())
            .map_err(|source| BuildError::Copy { file: file.clone(), line: 0, instruction: "COPY", source })?;
        let mut run = Run {
            builder: self,
            req,
            file,
            escape: df.escape,
            cache: Cache::open(self.store),
            context,
            run_ctx: RunContext {
                state_root: self.state_root,
                store: self.store,
                spawner: self.spawner,
                project: req.project,
                service: &req.service,
                network: std::cell::RefCell::new(None),
                cancel: self.cancel,
                context: &req.context,
            },
            ran: 0,
            cached: 0,
        };
        let result = run.stages(&df).and_then(|state| run.commit(state));
        // The build's network goes with the build, however it ended.
        if let Some(network) = run.run_ctx.network.take() {
            let name = network.name();
            if let Err(e) = network.remove() {
                run.progress(&format!(
                    "[{}] warning: could not remove build network {name}: {e} (the next build removes it)",
                    req.service
                ));
            }
        }
        let record = result?;
        Ok(Built { record, ran: run.ran, cached: run.cached })
    }
}

impl Run<'_, '_> {
    fn progress(&self, text: &str) {
        (self.builder.progress)(text);
    }

    fn instruction_error(&self, ins: &Instruction, message: impl Into<String>) -> BuildError {
        BuildError::Instruction {
            file: self.file.clone(),
            line: ins.line,
            instruction: ins.kind.name(),
            message: message.into(),
        }
    }

    /// Builds the stages the target needs; returns the target's state.
    fn stages(&mut self, df: &Dockerfile) -> Result<StageState, BuildError> {
        let mut global: BTreeMap<String, String> = BTreeMap::new();
        let mut consumed: BTreeSet<String> = BTreeSet::new();
        for (name, default) in dockerfile::global_args(df) {
            consumed.insert(name.clone());
            let value = match self.req.args.get(&name) {
                Some(v) => Some(v.clone()),
                None => match default {
                    Some(d) => Some(dockerfile::expand(&d, &|n: &str| global.get(n).cloned(), self.escape).map_err(
                        |source| BuildError::Expand { file: self.file.clone(), line: 0, instruction: "ARG", source },
                    )?),
                    None => None,
                },
            };
            if let Some(v) = value {
                global.insert(name, v);
            }
        }
        let mut stages = dockerfile::stages(df);
        for stage in &mut stages {
            stage.base =
                dockerfile::expand(&stage.base, &|n: &str| global.get(n).cloned(), self.escape).map_err(|source| {
                    BuildError::Expand { file: self.file.clone(), line: stage.line, instruction: "FROM", source }
                })?;
        }
        let needed = dockerfile::needed_stages(&stages, self.req.target.as_deref())
            .map_err(|source| BuildError::Parse { file: self.file.clone(), source })?;
        let mut built: BTreeMap<usize, StageState> = BTreeMap::new();
        for &i in &needed {
            let state = self.stage(&stages, i, &built, &global, &mut consumed)?;
            built.insert(i, state);
        }
        let unused: Vec<&str> = self.req.args.keys().filter(|k| !consumed.contains(*k)).map(String::as_str).collect();
        if !unused.is_empty() {
            self.progress(&format!(
                "[{}] warning: build arguments not consumed by any ARG: {}",
                self.req.service,
                unused.join(", ")
            ));
        }
        let last = needed.last().copied().unwrap_or_default();
        built
            .remove(&last)
            .ok_or_else(|| BuildError::Parse { file: self.file.clone(), source: dockerfile::DockerfileError::NoStages })
    }

    fn stage(
        &mut self,
        stages: &[Stage],
        index: usize,
        built: &BTreeMap<usize, StageState>,
        global: &BTreeMap<String, String>,
        consumed: &mut BTreeSet<String>,
    ) -> Result<StageState, BuildError> {
        let stage = &stages[index];
        let label = stage.name.clone().unwrap_or_else(|| format!("stage-{index}"));
        let total = stage.instructions.len() + 1;
        let step = |k: usize| format!("[{} {label} {k}/{total}]", self.req.service);
        let mut state = match earlier_stage(stages, index, &stage.base) {
            Some(from) => {
                let mut s = built.get(&from).cloned().ok_or_else(|| BuildError::Instruction {
                    file: self.file.clone(),
                    line: stage.line,
                    instruction: "FROM",
                    message: format!("stage {:?} was not built", stage.base),
                })?;
                s.args.clear();
                s.cmd_set = false;
                s.shell = state::DEFAULT_SHELL.iter().map(|x| (*x).to_owned()).collect();
                s
            }
            None if stage.base.eq_ignore_ascii_case("scratch") => {
                StageState::from_image(Vec::new(), ConfigFile::default(), cache::chain("scratch", &[]))
            }
            None => {
                let image = self.base_image(&stage.base, stage.line)?;
                let key = cache::chain(&format!("image:{}", image.id), &[]);
                StageState::from_image(image.layers, image.config, key)
            }
        };
        self.progress(&format!("{} FROM {}", step(1), stage.base));
        for (k, ins) in stage.instructions.iter().enumerate() {
            if self.run_ctx.cancelled() {
                return Err(BuildError::Interrupted);
            }
            let prefix = step(k + 2);
            let described = state::describe(&ins.kind);
            self.progress(&format!("{prefix} {described}"));
            match &ins.kind {
                InstructionKind::Arg(args) => {
                    for (name, default) in args {
                        consumed.insert(name.clone());
                        let value = match (self.req.args.get(name), default) {
                            (Some(v), _) => Some(v.clone()),
                            (None, Some(d)) => Some(self.expand(&state, ins, d)?),
                            (None, None) => global.get(name).cloned(),
                        };
                        match value {
                            Some(v) => state.args.insert(name.clone(), v),
                            None => state.args.remove(name),
                        };
                    }
                    state.key = cache::chain(&state.key, &[&format!("{:?}", ins.kind), &state.args_key()]);
                }
                InstructionKind::Run { flags, command } => {
                    let (mounts, no_network) =
                        run_step::parse_flags(flags, &self.run_ctx).map_err(|m| self.instruction_error(ins, m))?;
                    let argv = match command {
                        dockerfile::Command::Exec(argv) => argv.clone(),
                        dockerfile::Command::Shell(text) => state.shell_argv(&shell_script(text, &ins.heredocs)),
                    };
                    let key = cache::chain(
                        &state.key,
                        &[&format!("{:?}", ins.kind), &format!("{:?}", ins.heredocs), &state.args_key()],
                    );
                    let entry = match self.cached(&key) {
                        Some(entry) => entry,
                        None => {
                            let command = RunCommand { argv, mounts, no_network };
                            self.run(&state, ins, command)?
                        }
                    };
                    self.add_layer(&mut state, key, &entry, &described);
                }
                InstructionKind::Copy(args) | InstructionKind::Add(args) => {
                    let add = matches!(ins.kind, InstructionKind::Add(_));
                    let (key, entry) = self.copy(&state, stages, index, built, ins, args, add)?;
                    self.add_layer(&mut state, key, &entry, &described);
                }
                InstructionKind::From { .. } => {}
                other => {
                    state::apply(&mut state, other, self.escape).map_err(|e| self.instruction_error(ins, e.0))?;
                    state.key = cache::chain(&state.key, &[&format!("{:?}", ins.kind)]);
                    state.record(&described, None, true);
                }
            }
        }
        Ok(state)
    }

    /// The cache entry for `key`, unless the build ignores the cache.
    pub(super) fn cached(&mut self, key: &str) -> Option<Entry> {
        if self.req.no_cache {
            return None;
        }
        let entry = self.cache.get(self.builder.store, key)?;
        self.cached += 1;
        self.progress("  CACHED");
        Some(entry)
    }

    fn add_layer(&self, state: &mut StageState, key: String, entry: &Entry, described: &str) {
        if let Some(diff_id) = &entry.layer {
            state.layers.push(Layer {
                diff_id: diff_id.clone(),
                blob: None,
                media_type: "application/vnd.oci.image.layer.v1.tar".to_owned(),
                size: entry.size,
            });
        }
        state.record(described, Some(&entry.created), entry.layer.is_none());
        self.cache.put(&key, entry);
        state.key = key;
    }

    fn run(&mut self, state: &StageState, ins: &Instruction, command: RunCommand) -> Result<Entry, BuildError> {
        let output = |line: &str| (self.builder.progress)(&format!("  {line}"));
        let result = run_step::run(&self.run_ctx, state, command, &output)?;
        if result.status.code != 0 {
            let text = state::describe(&ins.kind);
            let short: String = text.trim_start_matches("RUN ").chars().take(60).collect();
            return Err(BuildError::RunFailed {
                file: self.file.clone(),
                line: ins.line,
                command: short,
                code: result.status.code,
            });
        }
        crate::fault::point("after-run");
        let entry = self.adopt(&result.layer());
        let _ = std::fs::remove_dir_all(&result.staging);
        self.ran += 1;
        entry
    }

    /// Turns an upper directory into a store layer; an empty one is no layer.
    pub(super) fn adopt(&self, dir: &Path) -> Result<Entry, BuildError> {
        let created = crate::timing::rfc3339(crate::runtime::state::now_nanos());
        let empty = std::fs::read_dir(dir).map_err(|e| BuildError::io(dir, e))?.next().is_none();
        if empty {
            return Ok(Entry { layer: None, size: 0, created });
        }
        let (diff_id, size) = super::layer_tar::diff_id(dir).map_err(|e| BuildError::io(dir, e))?;
        self.builder.store.adopt_layer_dir(dir, &diff_id, size)?;
        Ok(Entry { layer: Some(diff_id), size, created })
    }

    pub(super) fn expand(&self, state: &StageState, ins: &Instruction, word: &str) -> Result<String, BuildError> {
        state::expand_word(state, word, self.escape).map_err(|e| self.instruction_error(ins, e.0))
    }

    /// A base image from the store, pulled when missing (or always, with `--pull`).
    pub(super) fn base_image(&self, name: &str, line: usize) -> Result<ImageRecord, BuildError> {
        let reference: Reference = name.parse().map_err(|e: crate::image::ImageError| BuildError::Instruction {
            file: self.file.clone(),
            line,
            instruction: "FROM",
            message: e.to_string(),
        })?;
        let images = self.builder.images;
        let at_line = |e: crate::image::ImageError| BuildError::Instruction {
            file: self.file.clone(),
            line,
            instruction: "FROM",
            message: e.to_string(),
        };
        if self.req.pull || !images.has(&reference).map_err(at_line)? {
            images.pull(&reference).map_err(at_line)?;
        }
        self.builder.store.resolve(&reference.to_string())?.ok_or_else(|| BuildError::Instruction {
            file: self.file.clone(),
            line,
            instruction: "FROM",
            message: format!("image {name} is not in the store"),
        })
    }

    /// Writes the target stage's image and names it.
    fn commit(&self, state: StageState) -> Result<ImageRecord, BuildError> {
        let mut config = state.config;
        config.architecture = crate::image::host::go_arch().to_owned();
        config.os = "linux".to_owned();
        config.rootfs =
            RootFs { kind: "layers".to_owned(), diff_ids: state.layers.iter().map(|l| l.diff_id.clone()).collect() };
        config.created = config.history.iter().filter_map(|h| h.get("created")?.as_str()).max().map(str::to_owned);
        if !self.req.labels.is_empty() {
            config.config.labels.get_or_insert_with(BTreeMap::new).extend(self.req.labels.clone());
        }
        let bytes = serde_json::to_vec(&config).map_err(|e| crate::image::ImageError::Malformed(e.to_string()))?;
        let id = Digest::of(&bytes);
        let store = self.builder.store;
        if !store.has_blob(&id) {
            store.write_blob(&bytes[..], Some(&id))?;
        }
        let record = ImageRecord { id, manifest: None, layers: state.layers, config, host_binds: Vec::new() };
        store.commit(&record, &self.req.names)?;
        Ok(record)
    }
}

/// The earlier stage `base` names, by name or (as docker allows) by index.
pub(super) fn earlier_stage(stages: &[Stage], index: usize, base: &str) -> Option<usize> {
    if let Ok(n) = base.parse::<usize>() {
        return (n < index).then_some(n);
    }
    stages[..index].iter().rposition(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(base)))
}

/// A shell-form RUN with its heredocs as one script: `RUN <<EOF` alone runs the heredoc as
/// the script (BuildKit's rule); otherwise the heredoc bodies follow the command line, where
/// the shell itself reads them.
fn shell_script(text: &str, heredocs: &[dockerfile::Heredoc]) -> String {
    let trimmed = text.trim();
    if let [only] = heredocs
        && trimmed.starts_with("<<")
        && !trimmed.contains(char::is_whitespace)
    {
        return only.content.clone();
    }
    let mut script = text.to_owned();
    for h in heredocs {
        script.push('\n');
        script.push_str(&h.content);
        script.push_str(&h.name);
    }
    script
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::dockerfile::Heredoc;

    fn heredoc(name: &str, content: &str) -> Heredoc {
        Heredoc { name: name.into(), content: content.into(), expand: true, strip_tabs: false }
    }

    #[test]
    fn heredoc_runs_become_one_script() {
        assert_eq!(shell_script("<<EOF", &[heredoc("EOF", "echo a\necho b\n")]), "echo a\necho b\n");
        assert_eq!(shell_script("cat > /f <<EOF", &[heredoc("EOF", "x\n")]), "cat > /f <<EOF\nx\nEOF");
        assert_eq!(shell_script("echo hi", &[]), "echo hi");
    }
}
