//! Build stages of a parsed Dockerfile and the stages a target needs.

use super::{Dockerfile, DockerfileError, Instruction, InstructionKind};

/// One build stage: a FROM and the instructions up to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Its 0-based position, which `COPY --from=<n>` may use.
    pub index: usize,
    /// The name after `AS`, lower-cased (stage names are case-insensitive).
    pub name: Option<String>,
    /// The base: an image reference or an earlier stage's name, as written.
    pub base: String,
    /// `FROM --platform=`.
    pub platform: Option<String>,
    /// The line of the FROM.
    pub line: usize,
    /// The instructions after the FROM.
    pub instructions: Vec<Instruction>,
}

/// The ARGs before the first FROM (the global args FROM lines may use), in order.
pub fn global_args(df: &Dockerfile) -> Vec<(String, Option<String>)> {
    df.instructions
        .iter()
        .take_while(|i| !matches!(i.kind, InstructionKind::From { .. }))
        .filter_map(|i| match &i.kind {
            InstructionKind::Arg(args) => Some(args.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Splits the file into its stages; instructions before the first FROM are the global ARGs
/// (see [`global_args`]) and belong to no stage.
pub fn stages(df: &Dockerfile) -> Vec<Stage> {
    let mut out: Vec<Stage> = Vec::new();
    for ins in &df.instructions {
        match &ins.kind {
            InstructionKind::From { platform, image, name } => out.push(Stage {
                index: out.len(),
                name: name.as_ref().map(|n| n.to_ascii_lowercase()),
                base: image.clone(),
                platform: platform.clone(),
                line: ins.line,
                instructions: Vec::new(),
            }),
            _ => {
                if let Some(stage) = out.last_mut() {
                    stage.instructions.push(ins.clone());
                }
            }
        }
    }
    out
}

/// The stages `target` (a stage name; `None`: the last stage) needs, itself included, in build
/// order. A stage needs the stage it is `FROM`, and those named by `COPY --from=<name|index>`
/// and `RUN --mount=...,from=<name|index>`. A reference can only name an earlier stage; anything
/// else is an image. References using variables (`FROM $BASE`) are not resolved.
pub fn needed_stages(stages: &[Stage], target: Option<&str>) -> Result<Vec<usize>, DockerfileError> {
    let target = match target {
        None => stages.len().checked_sub(1).ok_or(DockerfileError::NoStages)?,
        Some(t) => stages
            .iter()
            .position(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(t)))
            .ok_or_else(|| DockerfileError::UnknownTarget(t.to_string()))?,
    };
    let mut needed = vec![false; stages.len()];
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if std::mem::replace(&mut needed[i], true) {
            continue;
        }
        todo.extend(stage_deps(stages, i).into_iter().filter(|d| !needed[*d]));
    }
    Ok(needed.iter().enumerate().filter(|(_, n)| **n).map(|(i, _)| i).collect())
}

/// The earlier stages stage `i` refers to.
fn stage_deps(stages: &[Stage], i: usize) -> Vec<usize> {
    let resolve = |reference: &str| -> Option<usize> {
        if let Ok(n) = reference.parse::<usize>() {
            return (n < i).then_some(n);
        }
        stages[..i].iter().rposition(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(reference)))
    };
    let mut deps: Vec<usize> =
        resolve(&stages[i].base).filter(|_| stages[i].base.parse::<usize>().is_err()).into_iter().collect();
    for ins in &stages[i].instructions {
        match &ins.kind {
            InstructionKind::Copy(args) => deps.extend(args.from.as_deref().and_then(resolve)),
            InstructionKind::Run { flags, .. } => {
                for f in flags.iter().filter(|f| f.name == "mount") {
                    let from =
                        f.value.as_deref().unwrap_or_default().split(',').find_map(|kv| kv.strip_prefix("from="));
                    deps.extend(from.and_then(resolve));
                }
            }
            _ => {}
        }
    }
    deps
}
