//! Platforms (`linux/arm64/v8`) and choosing one from a multi-platform index.

use serde::Deserialize;

use super::manifest::IndexEntry;
use crate::image::ImageError;

/// An OCI platform: `linux/amd64`, `linux/arm64/v8`, with Go's architecture names.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub(super) struct Platform {
    pub(super) os: String,
    pub(super) architecture: String,
    #[serde(default)]
    pub(super) variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(v) => write!(f, "/{v}"),
            None => Ok(()),
        }
    }
}

impl Platform {
    /// This machine: Linux and the architecture berth was built for.
    pub(super) fn host() -> Platform {
        let arch = crate::image::host::go_arch();
        let variant = (arch == "arm").then_some(if cfg!(target_feature = "v7") { "v7" } else { "v6" });
        Platform { os: "linux".to_owned(), architecture: arch.to_owned(), variant: variant.map(str::to_owned) }
            .normalised()
    }

    /// `os/arch[/variant]`, with common aliases (`x86_64`, `aarch64`, `armhf`).
    pub(super) fn parse(text: &str) -> Result<Platform, ImageError> {
        let parts: Vec<&str> = text.split('/').collect();
        let (os, arch, variant) = match parts.as_slice() {
            [os, arch] => (*os, *arch, None),
            [os, arch, variant] => (*os, *arch, Some(*variant)),
            _ => ("", "", None),
        };
        if os.is_empty() || arch.is_empty() || variant.is_some_and(str::is_empty) {
            return Err(ImageError::InvalidReference(format!(
                "invalid platform {text:?}: expected os/arch[/variant], such as linux/amd64 or linux/arm64/v8"
            )));
        }
        let platform = Platform {
            os: os.to_ascii_lowercase(),
            architecture: arch.to_ascii_lowercase(),
            variant: variant.map(str::to_ascii_lowercase),
        };
        Ok(platform.normalised())
    }

    /// Go's names, and the variants containerd implies (`arm64` is `v8`, `arm` is `v7`).
    fn normalised(mut self) -> Platform {
        let (arch, implied) = match self.architecture.as_str() {
            "x86_64" | "x86-64" => ("amd64", None),
            "aarch64" | "arm64" => ("arm64", Some("v8")),
            "x86" | "i386" | "i686" => ("386", None),
            "armhf" | "arm" => ("arm", Some("v7")),
            "armel" => ("arm", Some("v6")),
            other => (other, None),
        };
        self.architecture = arch.to_owned();
        if self.architecture == "amd64" && self.variant.as_deref() == Some("v1") {
            self.variant = None;
        }
        if self.variant.as_deref().is_none_or(str::is_empty) {
            self.variant = implied.map(str::to_owned);
        }
        self
    }

    /// How well an image for `have` suits this platform: `None` when it cannot run, else
    /// lower is better (an exact variant, then no variant, then an older arm variant).
    pub(super) fn rank(&self, have: &Platform) -> Option<u32> {
        let have = have.clone().normalised();
        if have.os != self.os || have.architecture != self.architecture {
            return None;
        }
        match (self.variant.as_deref(), have.variant.as_deref()) {
            (w, h) if w == h => Some(0),
            (None, _) | (_, None) => Some(1),
            (Some(w), Some(h)) if self.architecture == "arm" => {
                let level = |v: &str| v.strip_prefix('v').and_then(|n| n.parse::<u32>().ok());
                match (level(w), level(h)) {
                    (Some(w), Some(h)) if h < w => Some(2 + (w - h)),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// The best entry of an index for `want`, or the platforms it offers.
pub(super) fn choose_platform<'e>(entries: &'e [IndexEntry], want: &Platform) -> Result<&'e IndexEntry, Vec<String>> {
    entries
        .iter()
        .filter_map(|e| Some((want.rank(e.platform.as_ref()?)?, e)))
        .min_by_key(|(rank, _)| *rank)
        .map(|(_, e)| e)
        .ok_or_else(|| {
            let mut names: Vec<String> = entries
                .iter()
                .filter_map(|e| e.platform.as_ref())
                .filter(|p| p.os != "unknown")
                .map(ToString::to_string)
                .collect();
            names.dedup();
            names
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Platform {
        Platform::parse(text).unwrap()
    }

    fn entry(platform: &str, digest: &[u8]) -> IndexEntry {
        let mut parts = platform.split('/');
        let (os, architecture) = (parts.next().unwrap().to_owned(), parts.next().unwrap().to_owned());
        let variant = parts.next().map(str::to_owned);
        IndexEntry { digest: crate::image::Digest::of(digest), platform: Some(Platform { os, architecture, variant }) }
    }

    #[test]
    fn platforms_parse_with_go_names_and_implied_variants() {
        assert_eq!(p("linux/x86_64").to_string(), "linux/amd64");
        assert_eq!(p("linux/aarch64").to_string(), "linux/arm64/v8");
        assert_eq!(p("linux/armhf").to_string(), "linux/arm/v7");
        assert_eq!(p("Linux/ARM/v6").to_string(), "linux/arm/v6");
        for bad in ["linux", "linux/", "/amd64", "linux/arm/v7/x", "linux/arm/"] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
        let host = Platform::host();
        assert_eq!(host.os, "linux");
        if cfg!(target_arch = "x86_64") {
            assert_eq!(host.to_string(), "linux/amd64");
        }
    }

    #[test]
    fn variants_rank_exact_first_and_older_arm_after() {
        assert_eq!(p("linux/arm64").rank(&p("linux/arm64/v8")), Some(0));
        assert_eq!(p("linux/amd64").rank(&p("linux/amd64/v3")), Some(1));
        assert_eq!(p("linux/arm/v7").rank(&p("linux/arm/v6")), Some(3));
        assert_eq!(p("linux/arm/v6").rank(&p("linux/arm/v7")), None, "a v7 image does not run on v6");
        assert_eq!(p("linux/amd64").rank(&p("windows/amd64")), None);
        assert_eq!(p("linux/amd64").rank(&p("linux/arm64")), None);
    }

    #[test]
    fn the_best_entry_is_chosen_or_the_offered_platforms_listed() {
        let entries = vec![
            entry("linux/arm/v6", b"v6"),
            entry("linux/arm/v7", b"v7"),
            entry("linux/amd64", b"amd64"),
            entry("unknown/unknown", b"attestation"),
        ];
        assert_eq!(choose_platform(&entries, &p("linux/arm/v7")).unwrap().digest, crate::image::Digest::of(b"v7"));
        assert_eq!(choose_platform(&entries, &p("linux/arm/v8")).unwrap().digest, crate::image::Digest::of(b"v7"));
        assert_eq!(choose_platform(&entries, &p("linux/amd64")).unwrap().digest, crate::image::Digest::of(b"amd64"));
        let offered = choose_platform(&entries, &p("linux/s390x")).unwrap_err();
        assert_eq!(offered, ["linux/arm/v6", "linux/arm/v7", "linux/amd64"]);
    }
}
