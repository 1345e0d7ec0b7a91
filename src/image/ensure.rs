//! What `up` does about each service's image: compose's `pull_policy`.
//!
//! | policy | image present | image absent |
//! | --- | --- | --- |
//! | `missing` (default; also `if_not_present`) | use it | pull |
//! | `always` | pull (a no-op transfer when unchanged) | pull |
//! | `never` | use it | error |
//! | `build` | built by `up` (see `cli::build`) | built by `up` |
//! | `daily`, `weekly`, `every_<d>`, `refresh` | use it (berth keeps no pull dates yet) | pull |
//!
//! The host image (`berth.invalid/host`) is never pulled: it is made from this machine.

use std::collections::BTreeMap;

use super::host::{self, HOST_IMAGE};
use super::{ImageError, Reference, Store, registry};

/// Where images come from, so the policy can be tested without a registry.
pub trait ImageSource {
    /// Whether the store has the image.
    fn has(&self, reference: &Reference) -> Result<bool, ImageError>;
    /// Pulls the image.
    fn pull(&self, reference: &Reference) -> Result<(), ImageError>;
    /// Makes the host image.
    fn make_host_image(&self) -> Result<(), ImageError>;
}

/// What happened for one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Already in the store.
    Present,
    /// Pulled.
    Pulled,
    /// The host image was made (or was already there).
    Host,
}

/// Makes sure every service's image is available; `images` maps service → (image, policy).
/// Each image is handled once even when several services use it.
pub fn ensure_images(
    source: &dyn ImageSource,
    images: &BTreeMap<String, (String, Option<String>)>,
) -> Result<BTreeMap<String, Outcome>, ImageError> {
    let mut done: BTreeMap<String, Outcome> = BTreeMap::new();
    for (service, (image, policy)) in images {
        let reference: Reference =
            image.parse().map_err(|e| ImageError::InvalidReference(format!("service {service:?}: {e}")))?;
        let key = reference.to_string();
        if done.contains_key(&key) {
            continue;
        }
        let host: Reference = HOST_IMAGE.parse()?;
        let outcome = if reference.registry == host.registry {
            source.make_host_image()?;
            Outcome::Host
        } else {
            decide(source, service, &reference, policy.as_deref().unwrap_or("missing"))?
        };
        done.insert(key, outcome);
    }
    Ok(done)
}

fn decide(source: &dyn ImageSource, service: &str, reference: &Reference, policy: &str) -> Result<Outcome, ImageError> {
    let present = source.has(reference)?;
    let pull = |source: &dyn ImageSource| source.pull(reference).map(|()| Outcome::Pulled);
    match policy {
        "always" => pull(source),
        _ if present => Ok(Outcome::Present),
        "never" => Err(ImageError::NotFound(format!(
            "{} (service {service:?} has pull_policy: never; load or pull it first)",
            reference.familiar()
        ))),
        "build" => Err(ImageError::NotFound(format!(
            "{} (service {service:?} has pull_policy: build but nothing built it)",
            reference.familiar()
        ))),
        _ => pull(source),
    }
}

/// The store as an [`ImageSource`]: pulls from registries, makes the host image.
#[derive(Debug)]
pub struct StoreSource<'a> {
    /// The store.
    pub store: &'a Store,
    /// Pull without progress output (`--quiet-pull`).
    pub quiet: bool,
}

impl ImageSource for StoreSource<'_> {
    fn has(&self, reference: &Reference) -> Result<bool, ImageError> {
        Ok(self.store.resolve(&reference.to_string())?.is_some())
    }

    fn pull(&self, reference: &Reference) -> Result<(), ImageError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ImageError::io("tokio runtime", e))?;
        let options = registry::PullOptions {
            insecure_registries: Vec::new(),
            docker_config: None,
            progress: if self.quiet { registry::Progress::Quiet } else { registry::Progress::Auto },
            platform: None,
        };
        runtime.block_on(registry::pull(self.store, reference, &options)).map(|_| ())
    }

    fn make_host_image(&self) -> Result<(), ImageError> {
        host::ensure_host_image(self.store).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    use super::*;

    #[derive(Default)]
    struct Fake {
        present: BTreeSet<String>,
        pulled: RefCell<Vec<String>>,
        host: RefCell<u32>,
    }

    impl ImageSource for Fake {
        fn has(&self, r: &Reference) -> Result<bool, ImageError> {
            Ok(self.present.contains(&r.to_string()))
        }
        fn pull(&self, r: &Reference) -> Result<(), ImageError> {
            self.pulled.borrow_mut().push(r.familiar());
            Ok(())
        }
        fn make_host_image(&self) -> Result<(), ImageError> {
            *self.host.borrow_mut() += 1;
            Ok(())
        }
    }

    fn images(list: &[(&str, &str, Option<&str>)]) -> BTreeMap<String, (String, Option<String>)> {
        list.iter().map(|(s, i, p)| ((*s).to_owned(), ((*i).to_owned(), p.map(str::to_owned)))).collect()
    }

    #[test]
    fn policies_decide_what_is_pulled() {
        let fake = Fake { present: ["docker.io/library/redis:7".to_owned()].into(), ..Fake::default() };
        let out = ensure_images(
            &fake,
            &images(&[
                ("a", "redis:7", None),
                ("b", "busybox", None),
                ("c", "redis:7", Some("always")),
                ("d", "alpine", Some("if_not_present")),
            ]),
        )
        .unwrap();
        assert_eq!(
            out["docker.io/library/redis:7"],
            Outcome::Present,
            "the first service's policy decides a shared image"
        );
        assert_eq!(*fake.pulled.borrow(), ["busybox:latest", "alpine:latest"]);
    }

    #[test]
    fn never_and_build_fail_clearly_when_absent() {
        let fake = Fake::default();
        let e = ensure_images(&fake, &images(&[("db", "postgres", Some("never"))])).unwrap_err().to_string();
        assert!(e.contains("pull_policy: never") && e.contains("postgres:latest") && e.contains("\"db\""), "{e}");
        let e = ensure_images(&fake, &images(&[("app", "app", Some("build"))])).unwrap_err().to_string();
        assert!(e.contains("pull_policy: build"), "{e}");
        assert!(fake.pulled.borrow().is_empty());
    }

    #[test]
    fn the_host_image_is_made_not_pulled() {
        let fake = Fake::default();
        let out =
            ensure_images(&fake, &images(&[("a", "berth.invalid/host", Some("always")), ("b", HOST_IMAGE, None)]))
                .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(*fake.host.borrow(), 1);
        assert!(fake.pulled.borrow().is_empty());
    }
}
