//! A stage being built: its layers, its image config, the build arguments in scope and its
//! cache key; and the instructions that change only the config (ENV, LABEL, WORKDIR, USER,
//! CMD, ENTRYPOINT, EXPOSE, VOLUME, HEALTHCHECK, STOPSIGNAL, SHELL).

use std::collections::BTreeMap;

use super::dockerfile::{Command, Healthcheck, InstructionKind, expand};
use crate::image::Layer;
use crate::image::config::{ConfigFile, HealthConfig};

/// docker's default SHELL.
pub const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// A stage as far as it is built.
#[derive(Debug, Clone)]
pub struct StageState {
    /// The layers, base first.
    pub layers: Vec<Layer>,
    /// The image config so far (history included).
    pub config: ConfigFile,
    /// The cache key of the last step.
    pub key: String,
    /// Build arguments in scope (declared by ARG in this stage), with their values.
    pub args: BTreeMap<String, String>,
    /// SHELL.
    pub shell: Vec<String>,
    /// Whether this stage set CMD (an ENTRYPOINT then keeps it).
    pub cmd_set: bool,
}

impl StageState {
    /// A stage starting from an image's layers and config.
    pub fn from_image(layers: Vec<Layer>, mut config: ConfigFile, key: String) -> StageState {
        config.created = None;
        StageState {
            layers,
            config,
            key,
            args: BTreeMap::new(),
            shell: DEFAULT_SHELL.iter().map(|s| (*s).to_owned()).collect(),
            cmd_set: false,
        }
    }

    /// The value of `name` for expansion: ENV wins over ARG, as in docker.
    pub fn var(&self, name: &str) -> Option<String> {
        self.env_value(name).or_else(|| self.args.get(name).cloned())
    }

    fn env_value(&self, name: &str) -> Option<String> {
        self.config.config.env.iter().flatten().find_map(|e| match e.split_once('=') {
            Some((k, v)) if k == name => Some(v.to_owned()),
            _ => None,
        })
    }

    /// Sets an ENV variable, replacing an earlier value in place.
    pub fn set_env(&mut self, key: &str, value: &str) {
        let env = self.config.config.env.get_or_insert_with(Vec::new);
        let entry = format!("{key}={value}");
        match env.iter_mut().find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key) {
            Some(existing) => *existing = entry,
            None => env.push(entry),
        }
    }

    /// The build arguments a RUN sees in its environment: those not shadowed by ENV.
    pub fn run_args(&self) -> BTreeMap<String, String> {
        self.args.iter().filter(|(k, _)| self.env_value(k).is_none()).map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The build arguments in scope as one cache-key part.
    pub fn args_key(&self) -> String {
        self.args.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
    }

    /// The working directory, `/` when none is set.
    pub fn workdir(&self) -> String {
        self.config.config.working_dir.clone().filter(|w| !w.is_empty()).unwrap_or_else(|| "/".to_owned())
    }

    /// A shell-form command as argv: SHELL plus the text.
    pub fn shell_argv(&self, text: &str) -> Vec<String> {
        let mut argv = self.shell.clone();
        argv.push(text.to_owned());
        argv
    }

    /// Appends a history entry.
    pub fn record(&mut self, created_by: &str, created: Option<&str>, empty_layer: bool) {
        let mut entry = serde_json::Map::new();
        if let Some(c) = created {
            entry.insert("created".into(), c.into());
        }
        entry.insert("created_by".into(), created_by.into());
        entry.insert("comment".into(), "berth build".into());
        if empty_layer {
            entry.insert("empty_layer".into(), true.into());
        }
        self.config.history.push(serde_json::Value::Object(entry));
    }
}

/// Why a config instruction could not be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

/// Expands one word with the stage's variables.
pub fn expand_word(state: &StageState, word: &str, escape: char) -> Result<String, ConfigError> {
    expand(word, &|name: &str| state.var(name), escape).map_err(|e| ConfigError(e.to_string()))
}

/// Applies an instruction that changes only the config. Returns false for one that is not
/// such an instruction (FROM, ARG, RUN, COPY, ADD).
pub fn apply(state: &mut StageState, kind: &InstructionKind, escape: char) -> Result<bool, ConfigError> {
    let x = |state: &StageState, w: &str| expand_word(state, w, escape);
    match kind {
        InstructionKind::Env(pairs) => {
            // Every value of one ENV sees the variables from before it, as in docker.
            let mut expanded = Vec::new();
            for (k, v) in pairs {
                expanded.push((x(state, k)?, x(state, v)?));
            }
            for (k, v) in expanded {
                state.set_env(&k, &v);
            }
        }
        InstructionKind::Label(pairs) => {
            let mut expanded = Vec::new();
            for (k, v) in pairs {
                expanded.push((x(state, k)?, x(state, v)?));
            }
            state.config.config.labels.get_or_insert_with(BTreeMap::new).extend(expanded);
        }
        InstructionKind::Workdir(path) => {
            let path = x(state, path)?;
            let joined = if path.starts_with('/') { path } else { format!("{}/{path}", state.workdir()) };
            state.config.config.working_dir = Some(crate::spec::volumes::clean_absolute(&joined));
        }
        InstructionKind::User(user) => {
            let user = x(state, user)?;
            state.config.config.user = Some(user);
        }
        InstructionKind::Cmd(command) => {
            let argv = argv(state, command);
            state.config.config.cmd = Some(argv);
            state.cmd_set = true;
        }
        InstructionKind::Entrypoint(command) => {
            let argv = argv(state, command);
            state.config.config.entrypoint = Some(argv);
            // docker: an ENTRYPOINT resets a CMD the stage did not set itself (the base's).
            if !state.cmd_set {
                state.config.config.cmd = None;
            }
        }
        InstructionKind::Expose(ports) => {
            let mut expanded = Vec::new();
            for p in ports {
                let p = x(state, p)?;
                let p = if p.contains('/') { p.to_ascii_lowercase() } else { format!("{p}/tcp") };
                expanded.push(p);
            }
            let exposed = state.config.config.exposed_ports.get_or_insert_with(BTreeMap::new);
            for p in expanded {
                exposed.insert(p, serde_json::json!({}));
            }
        }
        InstructionKind::Volume(paths) => {
            let mut expanded = Vec::new();
            for p in paths {
                expanded.push(x(state, p)?);
            }
            let volumes = state.config.config.volumes.get_or_insert_with(BTreeMap::new);
            for p in expanded {
                volumes.insert(p, serde_json::json!({}));
            }
        }
        InstructionKind::Stopsignal(signal) => {
            let signal = x(state, signal)?;
            state.config.config.stop_signal = Some(signal);
        }
        InstructionKind::Shell(argv) => state.shell = argv.clone(),
        InstructionKind::Healthcheck(check) => {
            let health = healthcheck(check)?;
            state.config.config.healthcheck = Some(health);
        }
        InstructionKind::From { .. }
        | InstructionKind::Arg(_)
        | InstructionKind::Run { .. }
        | InstructionKind::Copy(_)
        | InstructionKind::Add(_) => return Ok(false),
    }
    Ok(true)
}

/// CMD, ENTRYPOINT and HEALTHCHECK commands: exec form as is, shell form through SHELL.
fn argv(state: &StageState, command: &Command) -> Vec<String> {
    match command {
        Command::Exec(argv) => argv.clone(),
        Command::Shell(text) => state.shell_argv(text),
    }
}

fn healthcheck(check: &Healthcheck) -> Result<HealthConfig, ConfigError> {
    let Healthcheck::Cmd { interval, timeout, start_period, start_interval, retries, command } = check else {
        return Ok(HealthConfig { test: vec!["NONE".to_owned()], ..HealthConfig::default() });
    };
    let nanos = |flag: &str, value: &Option<String>| -> Result<Option<i64>, ConfigError> {
        let Some(text) = value else { return Ok(None) };
        let d = crate::spec::units::parse_duration(text)
            .map_err(|e| ConfigError(format!("HEALTHCHECK --{flag}={text}: {e}")))?;
        Ok(Some(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)))
    };
    let test = match command {
        Command::Exec(argv) => std::iter::once("CMD".to_owned()).chain(argv.iter().cloned()).collect(),
        Command::Shell(text) => vec!["CMD-SHELL".to_owned(), text.clone()],
    };
    Ok(HealthConfig {
        test,
        interval: nanos("interval", interval)?,
        timeout: nanos("timeout", timeout)?,
        start_period: nanos("start-period", start_period)?,
        start_interval: nanos("start-interval", start_interval)?,
        retries: retries.map(i64::from),
    })
}

/// How an instruction appears in progress lines and the image's history.
pub fn describe(kind: &InstructionKind) -> String {
    let command = |c: &Command| match c {
        Command::Shell(text) => text.clone(),
        Command::Exec(argv) => serde_json::to_string(argv).unwrap_or_default(),
    };
    let pairs = |p: &[(String, String)]| p.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
    let name = kind.name();
    let rest = match kind {
        InstructionKind::From { image, name, .. } => match name {
            Some(n) => format!("{image} AS {n}"),
            None => image.clone(),
        },
        InstructionKind::Run { command: c, .. } | InstructionKind::Cmd(c) | InstructionKind::Entrypoint(c) => {
            command(c)
        }
        InstructionKind::Copy(a) | InstructionKind::Add(a) => {
            let flags: String = [("from", &a.from), ("chown", &a.chown), ("chmod", &a.chmod)]
                .iter()
                .filter_map(|(name, value)| Some(format!("--{name}={} ", value.as_ref()?)))
                .collect();
            format!("{flags}{} {}", a.sources.join(" "), a.dest)
        }
        InstructionKind::Env(p) | InstructionKind::Label(p) => pairs(p),
        InstructionKind::Arg(args) => args
            .iter()
            .map(|(k, v)| v.as_ref().map_or_else(|| k.clone(), |v| format!("{k}={v}")))
            .collect::<Vec<_>>()
            .join(" "),
        InstructionKind::Workdir(s) | InstructionKind::User(s) | InstructionKind::Stopsignal(s) => s.clone(),
        InstructionKind::Expose(v) | InstructionKind::Volume(v) => v.join(" "),
        InstructionKind::Shell(v) => serde_json::to_string(v).unwrap_or_default(),
        InstructionKind::Healthcheck(Healthcheck::None) => "NONE".to_owned(),
        InstructionKind::Healthcheck(Healthcheck::Cmd { command: c, .. }) => format!("CMD {}", command(c)),
    };
    format!("{name} {rest}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::dockerfile::parse;

    fn state() -> StageState {
        StageState::from_image(Vec::new(), ConfigFile::default(), "k".into())
    }

    fn apply_all(state: &mut StageState, text: &str) {
        let df = parse(&format!("FROM scratch\n{text}")).unwrap();
        for ins in &df.instructions[1..] {
            assert!(apply(state, &ins.kind, '\\').unwrap(), "{:?}", ins.kind);
        }
    }

    #[test]
    fn config_instructions_expand_and_set_the_config() {
        let mut s = state();
        s.args.insert("VERSION".into(), "1.2".into());
        apply_all(
            &mut s,
            "ENV APP=/srv/app V=${VERSION}\nWORKDIR $APP\nWORKDIR sub/../data\nUSER app:app\n\
             LABEL version=\"$V\"\nEXPOSE 80 53/UDP\nVOLUME /data\nSTOPSIGNAL SIGQUIT\n\
             CMD [\"serve\"]\nENTRYPOINT run.sh\nHEALTHCHECK --interval=5s --retries=2 CMD true",
        );
        let c = &s.config.config;
        assert_eq!(c.env.as_deref(), Some(&["APP=/srv/app".to_owned(), "V=1.2".to_owned()][..]));
        assert_eq!(c.working_dir.as_deref(), Some("/srv/app/data"));
        assert_eq!(c.user.as_deref(), Some("app:app"));
        assert_eq!(c.labels.as_ref().unwrap()["version"], "1.2");
        assert!(c.exposed_ports.as_ref().unwrap().contains_key("53/udp"));
        assert!(c.exposed_ports.as_ref().unwrap().contains_key("80/tcp"));
        assert!(c.volumes.as_ref().unwrap().contains_key("/data"));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGQUIT"));
        // CMD was set in this stage, so ENTRYPOINT keeps it.
        assert_eq!(c.cmd.as_deref(), Some(&["serve".to_owned()][..]));
        assert_eq!(c.entrypoint.as_deref(), Some(&["/bin/sh".to_owned(), "-c".to_owned(), "run.sh".to_owned()][..]));
        let h = c.healthcheck.as_ref().unwrap();
        assert_eq!(h.test, ["CMD-SHELL", "true"]);
        assert_eq!((h.interval, h.retries), (Some(5_000_000_000), Some(2)));
    }

    #[test]
    fn env_wins_over_arg_and_run_sees_only_unshadowed_args() {
        let mut s = state();
        s.args.insert("A".into(), "arg".into());
        s.args.insert("B".into(), "arg".into());
        apply_all(&mut s, "ENV A=env");
        assert_eq!(s.var("A").as_deref(), Some("env"));
        assert_eq!(s.run_args().into_iter().collect::<Vec<_>>(), [("B".to_owned(), "arg".to_owned())]);
    }

    #[test]
    fn an_entrypoint_clears_the_base_images_cmd() {
        let mut s = state();
        s.config.config.cmd = Some(vec!["base".into()]);
        apply_all(&mut s, "ENTRYPOINT [\"/app\"]");
        assert_eq!(s.config.config.cmd, None);
    }
}
