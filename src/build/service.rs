//! A service's `build:` section as a build request.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{BuildError, BuildRequest, DockerfileSource};
use crate::image::{ImageError, Reference};
use crate::spec::{Project, Service};

/// How to build.
#[derive(Debug, Default, Clone)]
pub struct BuildOptions {
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--pull`.
    pub pull: bool,
    /// `--build-arg`s, over the stack file's.
    pub args: BTreeMap<String, String>,
    /// No progress lines.
    pub quiet: bool,
}

/// The build of `service` as its stack file describes it.
pub fn request<'p>(
    project: &'p Project,
    service: &Service,
    options: &BuildOptions,
) -> Result<BuildRequest<'p>, BuildError> {
    let invalid = |key: &str, message: String| BuildError::Service {
        service: service.name.clone(),
        key: format!("build.{key}"),
        message,
    };
    let build = service.build.as_ref().ok_or_else(|| invalid("context", "the service has no build section".into()))?;
    if build.context.contains("://") || build.context.starts_with("git@") {
        return Err(invalid("context", format!("{:?}: only local directories can be built", build.context)));
    }
    let context = PathBuf::from(&build.context);
    if !context.is_dir() {
        return Err(invalid("context", format!("{} is not a directory", context.display())));
    }
    let dockerfile = match (&build.dockerfile_inline, &build.dockerfile) {
        (Some(text), _) => DockerfileSource::Inline(text.clone()),
        (None, Some(file)) => DockerfileSource::File(context.join(file)),
        (None, None) => DockerfileSource::File(context.join("Dockerfile")),
    };
    let mut args = BTreeMap::new();
    for (key, value) in &build.args {
        // An argument without a value takes the project environment's, or is left out.
        let value = value.clone().or_else(|| project.environment.get(key).cloned());
        if let Some(v) = value {
            args.insert(key.clone(), v);
        }
    }
    args.extend(options.args.clone());
    let image = service.image_name(&project.name).unwrap_or_default();
    let mut names = Vec::new();
    for name in std::iter::once(&image).chain(&build.tags) {
        let reference: Reference = name.parse().map_err(|e: ImageError| invalid("tags", format!("{name:?}: {e}")))?;
        names.push(reference);
    }
    Ok(BuildRequest {
        project,
        service: service.name.clone(),
        context,
        dockerfile,
        target: build.target.clone(),
        args,
        labels: build.labels.clone(),
        names,
        no_cache: options.no_cache,
        pull: options.pull,
    })
}
