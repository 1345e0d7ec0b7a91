//! Errors of the stack-file loader: each names the file, the line and column where the parser
//! gives them, and the YAML path of the offending key.

use std::fmt;
use std::path::PathBuf;

use super::yaml::Location;

/// Which stage of loading rejected the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Reading a file from disk.
    Io,
    /// YAML syntax.
    Yaml,
    /// `${VAR}` interpolation.
    Interpolation,
    /// include / extends / override files.
    Composition,
    /// The JSON schema.
    Schema,
    /// Values the schema accepts but compose does not (ports, durations, cycles, …).
    Semantic,
}

/// One problem found in a stack file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    /// The stage that found it.
    pub stage: Stage,
    /// Where it is, when known.
    pub location: Option<Location>,
    /// The YAML path of the key, such as `services.web.ports[1]`; empty for the whole file.
    pub path: String,
    /// What is wrong, in words a compose user can act on.
    pub message: String,
}

impl SpecError {
    /// An error at a node.
    pub fn at(stage: Stage, location: &Location, path: impl Into<String>, message: impl Into<String>) -> Self {
        SpecError { stage, location: Some(location.clone()), path: path.into(), message: message.into() }
    }

    /// An error about a file as a whole.
    pub fn file(stage: Stage, file: &std::path::Path, message: impl Into<String>) -> Self {
        let location = Location { file: Some(file.into()), line: 0, column: 0 };
        SpecError { stage, location: Some(location), path: String::new(), message: message.into() }
    }

    /// An error with no place in a file (a bad option, a missing default file).
    pub fn general(stage: Stage, message: impl Into<String>) -> Self {
        SpecError { stage, location: None, path: String::new(), message: message.into() }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(location) = &self.location {
            write!(f, "{location}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Loading failed; every problem found is listed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct LoadError {
    /// The problems, in the order found (at least one).
    pub errors: Vec<SpecError>,
}

impl LoadError {
    /// The first problem's stage.
    pub fn stage(&self) -> Option<Stage> {
        self.errors.first().map(|e| e.stage)
    }
}

impl From<SpecError> for LoadError {
    fn from(e: SpecError) -> Self {
        LoadError { errors: vec![e] }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A problem that does not stop loading: an unset variable, an unsupported key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// Where, when known.
    pub location: Option<Location>,
    /// What.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(l) => write!(f, "{l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// A path that could not be read.
pub fn io_error(path: &std::path::Path, e: &std::io::Error) -> SpecError {
    let why = match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        _ => e.to_string(),
    };
    SpecError::general(Stage::Io, format!("{}: {why}", PathBuf::from(path).display()))
}
