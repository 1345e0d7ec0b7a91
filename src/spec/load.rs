//! From files on disk to a [`Project`]: discovery, `.env`, per-file interpolation, `include`,
//! `extends`, override merging, schema validation, profiles, normalisation, semantic checks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;

use super::error::{LoadError, SpecError, Stage, Warning, io_error};
use super::interpolate::{InterpolationError, interpolate};
use super::merge::{self, Scope};
use super::model::Project;
use super::normalize::{self, ProfileSelection};
use super::schema::{self, Schema, pointer_to_yaml_path};
use super::yaml::{self, Node, Value};
use super::{dotenv, naming, paths, validate};

/// The file names compose looks for, in order of preference.
pub const DEFAULT_FILES: [&str; 4] = ["compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"];

/// How to find and read a project: the global flags and the environment. Serialisable, so
/// `up` can hand the supervisor exactly what it loaded.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ProjectOptions {
    /// `-f` files; empty means `COMPOSE_FILE`, then discovery.
    pub files: Vec<PathBuf>,
    /// `-p`.
    pub project_name: Option<String>,
    /// `--project-directory`.
    pub project_directory: Option<PathBuf>,
    /// `--env-file` (repeatable); empty means `.env` in the project directory.
    pub env_files: Vec<PathBuf>,
    /// `--profile` (repeatable); `*` enables all. Empty means `COMPOSE_PROFILES`.
    pub profiles: Vec<String>,
    /// Services named on the command line (their profiles are enabled).
    pub services: Vec<String>,
    /// `--no-interpolate` clears this.
    pub interpolate: bool,
    /// Check that every service has an image or a build (compose's consistency check).
    pub consistency: bool,
    /// The directory discovery starts from (the process's current directory).
    pub working_dir: PathBuf,
    /// The process environment (the highest-precedence variables).
    pub os_env: BTreeMap<String, String>,
    /// The text of `-f -` (standard input), read by the caller.
    pub stdin: Option<String>,
    /// A file recording documents that passed the schema (see [`super::schema::cache`]);
    /// `None` validates every time.
    pub schema_cache: Option<PathBuf>,
}

/// The name `-f -` stands for in file lists and error messages.
pub const STDIN_NAME: &str = "-";

impl ProjectOptions {
    /// Options that load one file with every profile enabled and only the given environment,
    /// so results do not depend on the machine (tests, benchmarks, tools).
    pub fn for_file(file: &Path, os_env: BTreeMap<String, String>) -> Self {
        ProjectOptions {
            files: vec![file.to_path_buf()],
            profiles: vec!["*".into()],
            interpolate: true,
            consistency: true,
            working_dir: file.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf),
            os_env,
            ..ProjectOptions::default()
        }
    }

    /// Options for this process: its current directory and environment.
    pub fn from_process() -> Self {
        ProjectOptions {
            interpolate: true,
            consistency: true,
            working_dir: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            os_env: std::env::vars().collect(),
            ..ProjectOptions::default()
        }
    }
}

/// A loaded project with what the loader had to say about it.
#[derive(Debug)]
pub struct Loaded {
    /// The project.
    pub project: Project,
    /// Warnings to print once each.
    pub warnings: Vec<Warning>,
    /// The merged raw document, for locating later errors.
    pub document: Node,
}

/// Loads a project.
pub fn load(opts: &ProjectOptions) -> Result<Loaded, LoadError> {
    let files = resolve_files(opts)?;
    let first = files.first().ok_or_else(|| SpecError::general(Stage::Io, "no stack file given"))?;
    let project_dir = match &opts.project_directory {
        Some(d) => naming::absolute(&opts.working_dir, d),
        None => first.parent().map_or_else(|| opts.working_dir.clone(), Path::to_path_buf),
    };
    let mut env = environment(opts, &project_dir)?;
    let stdin = opts.stdin.as_ref().map(|text| (opts.working_dir.join(STDIN_NAME), text.clone()));
    let mut loader = Loader {
        interpolate: opts.interpolate,
        unset: BTreeSet::new(),
        warnings: Vec::new(),
        cache: HashMap::new(),
        stdin,
    };

    let parsed = files.iter().map(|f| loader.parse(f)).collect::<Result<Vec<_>, _>>()?;
    // compose offers the project name to interpolation as COMPOSE_PROJECT_NAME; it has to be
    // known before the rest of the files are interpolated. Naming itself still sees the
    // environment as given, so an invalid explicit name is reported.
    let naming_env = env.clone();
    if opts.interpolate && !env.contains_key("COMPOSE_PROJECT_NAME") {
        let declared = parsed.iter().rev().flatten().find_map(|d| d.get("name")).and_then(Node::scalar_string);
        let declared = declared.map(|raw| interpolate(&raw, &env).map_or(raw, |done| done.value));
        if let Some(name) = naming::provisional_name(opts, declared.as_deref(), &project_dir) {
            env.insert("COMPOSE_PROJECT_NAME".to_owned(), name);
        }
    }

    let mut merged: Option<Node> = None;
    for (i, (file, doc)) in files.iter().zip(parsed).enumerate() {
        let Some(doc) = doc else {
            if i == 0 && files.len() == 1 {
                return Err(SpecError::file(Stage::Semantic, file, "empty compose file").into());
            }
            continue;
        };
        let doc = loader.resolve_file(doc, file, &env, &mut Vec::new())?;
        merged = Some(match merged {
            None => doc,
            Some(base) => merge::merge(base, doc, Scope::Document).map_err(merge_error)?,
        });
    }
    let mut doc = merged.ok_or_else(|| SpecError::file(Stage::Semantic, first, "empty compose file"))?;
    merge::strip_tags(&mut doc);
    merge::enforce_unicity(&mut doc, Scope::Document);

    let json = doc.to_json();
    let cache_key = opts.schema_cache.as_ref().map(|file| (file, schema::cache::key(&json)));
    let ignored = match cache_key.as_ref().and_then(|(file, key)| schema::cache::lookup(file, key)) {
        Some(ignored) => ignored,
        None => {
            check_schema(&doc, &json)?;
            let ignored = Schema::compiled().unsupported_keys(&json);
            if let Some((file, key)) = &cache_key {
                schema::cache::insert(file, key, &ignored);
            }
            ignored
        }
    };
    let mut warnings = loader.warnings;
    warnings.extend(loader.unset.iter().map(|v| Warning {
        location: None,
        message: format!("the {v:?} variable is not set; defaulting to a blank string"),
    }));
    warnings.extend(unsupported_key_warnings(&doc, &ignored));
    if let Some(version) = doc.get("version") {
        warnings.push(Warning {
            location: Some(version.location.clone()),
            message: "the top-level `version` key is obsolete and ignored; remove it".into(),
        });
    }

    let name = naming::project_name(opts, &naming_env, &doc, &project_dir)?;
    let profiles = if opts.profiles.is_empty() {
        env.get("COMPOSE_PROFILES")
            .map(|p| p.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default()
    } else {
        opts.profiles.clone()
    };
    let selection = ProfileSelection { profiles: &profiles, services: &opts.services };
    let (mut project, mut errors) = normalize::project(&doc, &name, &project_dir, &env, &selection);
    errors.extend(validate::project(&project, &doc, opts.consistency));
    if !errors.is_empty() {
        return Err(LoadError { errors });
    }
    project.compose_files = files;
    project.environment = env;
    Ok(Loaded { project, warnings, document: doc })
}

/// `-f` files, else `COMPOSE_FILE`, else the first default file found in the working directory
/// or a parent, plus its `.override` file.
pub fn resolve_files(opts: &ProjectOptions) -> Result<Vec<PathBuf>, LoadError> {
    if !opts.files.is_empty() {
        return Ok(opts.files.iter().map(|f| naming::absolute(&opts.working_dir, f)).collect());
    }
    if let Some(list) = opts.os_env.get("COMPOSE_FILE").filter(|s| !s.is_empty()) {
        let sep = opts.os_env.get("COMPOSE_PATH_SEPARATOR").map_or(":", String::as_str);
        return Ok(list
            .split(sep)
            .filter(|s| !s.is_empty())
            .map(|f| naming::absolute(&opts.working_dir, Path::new(f)))
            .collect());
    }
    let start = opts
        .project_directory
        .as_ref()
        .map_or_else(|| opts.working_dir.clone(), |d| naming::absolute(&opts.working_dir, d));
    for dir in start.ancestors() {
        if let Some(found) = DEFAULT_FILES.iter().map(|f| dir.join(f)).find(|p| p.is_file()) {
            let mut files = vec![found.clone()];
            let stem = found.file_stem().and_then(|s| s.to_str()).unwrap_or("compose");
            for ext in ["yaml", "yml"] {
                let over = dir.join(format!("{stem}.override.{ext}"));
                if over.is_file() {
                    files.push(over);
                    break;
                }
            }
            return Ok(files);
        }
    }
    Err(SpecError::general(
        Stage::Io,
        format!(
            "no stack file found in {} or any parent directory (looked for {})",
            start.display(),
            DEFAULT_FILES.join(", ")
        ),
    )
    .into())
}

/// The interpolation variables: the process environment over `--env-file`s (or `.env`).
fn environment(opts: &ProjectOptions, project_dir: &Path) -> Result<BTreeMap<String, String>, LoadError> {
    let mut env = opts.os_env.clone();
    let disabled =
        opts.os_env.get("COMPOSE_DISABLE_ENV_FILE").is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    let files: Vec<(PathBuf, bool)> = if !opts.env_files.is_empty() {
        opts.env_files.iter().map(|f| (naming::absolute(&opts.working_dir, f), true)).collect()
    } else if disabled {
        Vec::new()
    } else {
        vec![(project_dir.join(".env"), false)]
    };
    for (k, v) in read_dotenvs(&files, &opts.os_env)? {
        env.entry(k).or_insert(v);
    }
    Ok(env)
}

/// Reads env files in order into one map: a later file overrides an earlier one and can
/// interpolate its values; `lookup` (the process environment) is consulted first.
fn read_dotenvs(
    files: &[(PathBuf, bool)],
    lookup: &BTreeMap<String, String>,
) -> Result<IndexMap<String, String>, LoadError> {
    let mut vars = IndexMap::new();
    for (file, required) in files {
        match std::fs::read_to_string(file) {
            Ok(text) => {
                dotenv::parse_into(&text, lookup, &mut vars)
                    .map_err(|e| SpecError::file(Stage::Interpolation, file, e.to_string()))?;
            }
            Err(e)
                if !required && matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::IsADirectory) => {
            }
            Err(e) => return Err(io_error(file, &e).into()),
        }
    }
    Ok(vars)
}

struct Loader {
    interpolate: bool,
    unset: BTreeSet<String>,
    warnings: Vec<Warning>,
    /// Files read for `extends`, interpolated, by path.
    cache: HashMap<PathBuf, Option<Node>>,
    /// The path standing for `-f -` and the text read from standard input.
    stdin: Option<(PathBuf, String)>,
}

impl Loader {
    /// Reads, parses and interpolates one file (no include/extends). `None` for an empty file.
    /// Reads and parses one file, without interpolation. `None` for an empty file.
    fn parse(&self, file: &Path) -> Result<Option<Node>, LoadError> {
        let text = match &self.stdin {
            Some((path, text)) if path == file => text.clone(),
            _ => std::fs::read_to_string(file).map_err(|e| io_error(file, &e))?,
        };
        let shared: Arc<Path> = Arc::from(file);
        let doc = match yaml::parse(&text, Some(&shared)) {
            Ok(Some(doc)) => doc,
            Ok(None) => return Ok(None),
            Err(e) => {
                let location = yaml::Location { file: Some(shared), line: e.line, column: e.column };
                return Err(SpecError::at(Stage::Yaml, &location, "", e.message).into());
            }
        };
        if doc.is_null() {
            return Ok(None);
        }
        if doc.as_map().is_none() {
            return Err(SpecError::at(
                Stage::Schema,
                &doc.location,
                "",
                format!("a stack file must be a mapping, not {}", doc.kind_name()),
            )
            .into());
        }
        Ok(Some(doc))
    }

    /// Interpolates a parsed file in place (unless `--no-interpolate`).
    fn interpolate(&mut self, doc: &mut Node, env: &BTreeMap<String, String>) -> Result<(), LoadError> {
        if self.interpolate {
            let mut errors = Vec::new();
            let mut trail = Vec::new();
            interpolate_tree(doc, env, &mut trail, &mut self.unset, &mut errors);
            if !errors.is_empty() {
                return Err(LoadError { errors });
            }
        }
        Ok(())
    }

    /// Reads, parses and interpolates one file (no include/extends).
    fn read(&mut self, file: &Path, env: &BTreeMap<String, String>) -> Result<Option<Node>, LoadError> {
        let Some(mut doc) = self.parse(file)? else { return Ok(None) };
        self.interpolate(&mut doc, env)?;
        Ok(Some(doc))
    }

    /// A file with its `include`s and `extends` resolved. `chain` holds the files being
    /// included, to report include cycles.
    fn load_file(
        &mut self,
        file: &Path,
        env: &BTreeMap<String, String>,
        chain: &mut Vec<PathBuf>,
    ) -> Result<Option<Node>, LoadError> {
        if chain.iter().any(|f| f == file) {
            let mut cycle: Vec<String> = chain.iter().map(|f| f.display().to_string()).collect();
            cycle.push(file.display().to_string());
            return Err(SpecError::file(
                Stage::Composition,
                file,
                format!("include cycle detected: {}", cycle.join(" -> ")),
            )
            .into());
        }
        let Some(doc) = self.parse(file)? else { return Ok(None) };
        self.resolve_file(doc, file, env, chain).map(Some)
    }

    /// Interpolates a parsed file and resolves its `include`s and `extends`.
    fn resolve_file(
        &mut self,
        mut doc: Node,
        file: &Path,
        env: &BTreeMap<String, String>,
        chain: &mut Vec<PathBuf>,
    ) -> Result<Node, LoadError> {
        self.interpolate(&mut doc, env)?;
        chain.push(file.to_path_buf());
        let included = self.includes(&mut doc, file, env, chain);
        chain.pop();
        included?;
        self.resolve_extends(&mut doc, file, env)?;
        Ok(doc)
    }

    /// Loads each `include` entry as its own project and imports its resources.
    fn includes(
        &mut self,
        doc: &mut Node,
        file: &Path,
        env: &BTreeMap<String, String>,
        chain: &mut Vec<PathBuf>,
    ) -> Result<(), LoadError> {
        let Some(entries) = doc.as_map_mut().and_then(|m| m.shift_remove("include")) else { return Ok(()) };
        let dir = file.parent().unwrap_or(Path::new("/")).to_path_buf();
        for (i, entry) in entries.as_seq().unwrap_or_default().iter().enumerate() {
            let path = format!("include[{i}]");
            let bad = |m: &str| LoadError::from(SpecError::at(Stage::Composition, &entry.location, &path, m));
            let (files, project_dir, env_files) = match &entry.value {
                Value::String(s) => (vec![s.clone()], None, Vec::new()),
                Value::Map(m) => {
                    let files = match m.get("path").map(|n| &n.value) {
                        Some(Value::String(s)) => vec![s.clone()],
                        Some(Value::Seq(items)) => items.iter().filter_map(Node::as_str).map(str::to_owned).collect(),
                        _ => return Err(bad("an include entry needs a path")),
                    };
                    let env_files = match m.get("env_file").map(|n| &n.value) {
                        Some(Value::String(s)) => vec![s.clone()],
                        Some(Value::Seq(items)) => items.iter().filter_map(Node::as_str).map(str::to_owned).collect(),
                        _ => Vec::new(),
                    };
                    (files, m.get("project_directory").and_then(Node::as_str).map(str::to_owned), env_files)
                }
                _ => return Err(bad("an include entry is a path or a mapping with path")),
            };
            let files: Vec<PathBuf> = files.iter().map(|f| naming::absolute(&dir, Path::new(f))).collect();
            let Some(first) = files.first() else { return Err(bad("an include entry needs a path")) };
            let sub_dir = project_dir.map_or_else(
                || first.parent().unwrap_or(&dir).to_path_buf(),
                |d| naming::absolute(&dir, Path::new(&d)),
            );
            let mut sub_env = env.clone();
            let env_paths: Vec<(PathBuf, bool)> = if env_files.is_empty() {
                vec![(sub_dir.join(".env"), false)]
            } else {
                env_files.iter().map(|f| (naming::absolute(&dir, Path::new(f)), true)).collect()
            };
            for (k, v) in read_dotenvs(&env_paths, env)? {
                sub_env.entry(k).or_insert(v);
            }
            let mut merged: Option<Node> = None;
            for f in &files {
                if let Some(d) = self.load_file(f, &sub_env, chain)? {
                    merged = Some(match merged {
                        None => d,
                        Some(base) => merge::merge(base, d, Scope::Document).map_err(merge_error)?,
                    });
                }
            }
            let Some(mut sub) = merged else { continue };
            merge::strip_tags(&mut sub);
            merge::enforce_unicity(&mut sub, Scope::Document);
            paths::absolutize_document(&mut sub, &sub_dir);
            import(doc, sub, &entry.location, &path)?;
        }
        Ok(())
    }

    /// Replaces each service's `extends` with the merge of its base and itself.
    fn resolve_extends(
        &mut self,
        doc: &mut Node,
        file: &Path,
        env: &BTreeMap<String, String>,
    ) -> Result<(), LoadError> {
        let names: Vec<String> =
            doc.get("services").and_then(Node::as_map).map(|m| m.keys().cloned().collect()).unwrap_or_default();
        for name in names {
            let mut stack = Vec::new();
            let resolved = self.extended_service(doc, file, &name, env, &mut stack)?;
            if let Some(services) = doc.as_map_mut().and_then(|m| m.get_mut("services")).and_then(Node::as_map_mut) {
                services.insert(name, resolved);
            }
        }
        Ok(())
    }

    fn extended_service(
        &mut self,
        doc: &Node,
        file: &Path,
        name: &str,
        env: &BTreeMap<String, String>,
        stack: &mut Vec<(PathBuf, String)>,
    ) -> Result<Node, LoadError> {
        let path = format!("services.{name}");
        let service = doc.get("services").and_then(|s| s.get(name)).cloned().ok_or_else(|| {
            let hint = crate::graph::did_you_mean(
                name,
                doc.get("services").and_then(Node::as_map).into_iter().flatten().map(|(k, _)| k.as_str()),
            );
            let hint = hint.map(|h| format!(" (did you mean {h:?}?)")).unwrap_or_default();
            SpecError::file(
                Stage::Composition,
                file,
                format!("cannot extend service {name:?}: no such service in {}{hint}", file.display()),
            )
        })?;
        let Some(ext) = service.get("extends").cloned() else { return Ok(service) };
        let key = (file.to_path_buf(), name.to_owned());
        if stack.contains(&key) {
            let mut names: Vec<String> = stack.iter().map(|(_, s)| s.clone()).collect();
            names.push(name.to_owned());
            return Err(SpecError::at(
                Stage::Composition,
                &ext.location,
                format!("{path}.extends"),
                format!("extends cycle detected: {}", names.join(" -> ")),
            )
            .into());
        }
        let (base_name, base_file) = match &ext.value {
            Value::String(s) => (s.clone(), None),
            Value::Map(m) => (
                m.get("service").and_then(Node::as_str).unwrap_or_default().to_owned(),
                m.get("file")
                    .and_then(Node::as_str)
                    .map(|f| naming::absolute(file.parent().unwrap_or(Path::new("/")), Path::new(f))),
            ),
            _ => (String::new(), None),
        };
        if base_name.is_empty() {
            return Err(SpecError::at(
                Stage::Composition,
                &ext.location,
                format!("{path}.extends"),
                "extends needs a service name",
            )
            .into());
        }
        stack.push(key);
        let base = match &base_file {
            Some(other) if other != file => {
                if !self.cache.contains_key(other) {
                    let read = self.read(other, env).map_err(|e| with_context(e, &ext, &path))?;
                    self.cache.insert(other.clone(), read);
                }
                let other_doc = self
                    .cache
                    .get(other)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| Node::new(Value::Map(Default::default())));
                let mut base = self.extended_service(&other_doc, other, &base_name, env, stack)?;
                if let Some(other_dir) = other.parent()
                    && Some(other_dir) != file.parent()
                {
                    paths::absolutize_service(&mut base, other_dir);
                }
                base
            }
            _ => self.extended_service(doc, file, &base_name, env, stack)?,
        };
        stack.pop();
        let mut overlay = service;
        if let Some(m) = overlay.as_map_mut() {
            m.shift_remove("extends");
        }
        merge::merge(base, overlay, Scope::Service).map_err(|e| {
            let mut e = merge_error(e);
            if let Some(first) = e.errors.first_mut() {
                first.path = format!("{path}.{}", first.path);
            }
            e
        })
    }
}

fn merge_error(e: merge::MergeError) -> LoadError {
    let message = match &e {
        merge::MergeError::Incompatible { base_location, base, overlay, .. } => format!(
            "cannot merge {overlay} onto {base} (from {base_location}); write the same shape, or tag the value !override to replace it"
        ),
        merge::MergeError::BadEntry { expected, found, .. } => format!("expected {expected}, found {found}"),
    };
    SpecError::at(Stage::Composition, e.location(), e.path(), message).into()
}

fn with_context(mut e: LoadError, at: &Node, path: &str) -> LoadError {
    if let Some(first) = e.errors.first_mut()
        && first.location.is_none()
    {
        first.location = Some(at.location.clone());
        first.path = format!("{path}.extends");
    }
    e
}

/// Copies an included project's resources into the including document; a name defined on both
/// sides must be defined identically.
fn import(doc: &mut Node, sub: Node, at: &yaml::Location, path: &str) -> Result<(), LoadError> {
    let Value::Map(sub) = sub.value else { return Ok(()) };
    let Some(top) = doc.as_map_mut() else { return Ok(()) };
    for (section, value) in sub {
        let Value::Map(items) = value.value else {
            top.entry(section).or_insert(value);
            continue;
        };
        let target = top.entry(section.clone()).or_insert_with(|| Node::at(Value::Map(Default::default()), at));
        if target.is_null() {
            target.value = Value::Map(Default::default());
        }
        let Some(target) = target.as_map_mut() else { continue };
        for (k, v) in items {
            match target.get(&k) {
                Some(existing) if existing.to_json() != v.to_json() => {
                    return Err(SpecError::at(Stage::Composition, at, path, format!("included file defines {section}.{k}, which conflicts with the including file's {section}.{k}")).into());
                }
                Some(_) => {}
                None => {
                    target.insert(k, v);
                }
            }
        }
    }
    Ok(())
}

/// Interpolates every string value (never a key) in place.
fn interpolate_tree(
    node: &mut Node,
    env: &BTreeMap<String, String>,
    trail: &mut Vec<String>,
    unset: &mut BTreeSet<String>,
    errors: &mut Vec<SpecError>,
) {
    match &mut node.value {
        Value::String(s) if s.contains('$') => match interpolate(s, env) {
            Ok(done) => {
                unset.extend(done.unset);
                *s = done.value;
            }
            Err(e) => {
                let message = match e {
                    InterpolationError::Required { variable, message } => {
                        format!("required variable {variable} is missing a value: {message}")
                    }
                    other => other.to_string(),
                };
                errors.push(SpecError::at(Stage::Interpolation, &node.location, trail_path(trail), message));
            }
        },
        Value::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                trail.push(format!("[{i}]"));
                interpolate_tree(item, env, trail, unset, errors);
                trail.pop();
            }
        }
        Value::Map(map) => {
            for (k, v) in map.iter_mut() {
                trail.push(k.clone());
                interpolate_tree(v, env, trail, unset, errors);
                trail.pop();
            }
        }
        _ => {}
    }
}

fn trail_path(trail: &[String]) -> String {
    trail.iter().fold(
        String::new(),
        |acc, seg| {
            if seg.starts_with('[') { acc + seg } else { normalize::read::child(&acc, seg) }
        },
    )
}

fn check_schema(doc: &Node, json: &serde_json::Value) -> Result<(), LoadError> {
    let violations = Schema::compiled().validate(json);
    if violations.is_empty() {
        return Ok(());
    }
    let errors = violations
        .into_iter()
        .map(|v| {
            SpecError::at(Stage::Schema, &doc.locate(&v.pointer).location, pointer_to_yaml_path(&v.pointer), v.message)
        })
        .collect();
    Err(LoadError { errors })
}

fn unsupported_key_warnings(doc: &Node, ignored: &[String]) -> Vec<Warning> {
    let mut seen = BTreeSet::new();
    ignored
        .iter()
        .filter_map(|pointer| {
            let node = doc.locate(pointer);
            let key = pointer_to_yaml_path(pointer);
            // One warning per key name per section, not one per service.
            let short = pointer.rsplit('/').next().unwrap_or_default().to_owned();
            seen.insert(short).then(|| Warning {
                location: Some(node.location.clone()),
                message: format!("{key}: berth does not support this key yet; it is ignored"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trail_paths_render_like_yaml_paths() {
        assert_eq!(
            trail_path(&["services".into(), "web".into(), "ports".into(), "[1]".into()]),
            "services.web.ports[1]"
        );
    }
}
