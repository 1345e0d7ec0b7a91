//! The manifests berth reads: OCI and Docker v2 schema 2 image manifests and indexes.

use serde::Deserialize;

use super::platform::Platform;
use crate::image::Digest;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(super) const CONFIG_TYPES: [&str; 2] =
    ["application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"];

/// What berth asks a registry for: OCI and Docker v2 schema 2 manifests and indexes.
pub(super) const MANIFEST_TYPES: [&str; 4] = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// A content descriptor in a manifest.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Descriptor {
    #[serde(default)]
    pub(super) media_type: String,
    pub(super) digest: Digest,
    pub(super) size: u64,
}

/// An entry of an index (manifest list).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct IndexEntry {
    pub(super) digest: Digest,
    #[serde(default)]
    pub(super) platform: Option<Platform>,
}

/// An image manifest or an index, OCI or Docker v2 schema 2: the fields berth reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Manifest {
    #[serde(default)]
    pub(super) schema_version: u32,
    #[serde(default)]
    pub(super) media_type: Option<String>,
    #[serde(default)]
    pub(super) config: Option<Descriptor>,
    #[serde(default)]
    pub(super) layers: Vec<Descriptor>,
    #[serde(default)]
    pub(super) manifests: Option<Vec<IndexEntry>>,
}

impl Manifest {
    /// An index (manifest list) by its media type, or, for an OCI index that omits it, by its shape.
    pub(super) fn is_index(&self) -> bool {
        match self.media_type.as_deref() {
            Some(t) => t == OCI_INDEX || t == DOCKER_LIST,
            None => self.manifests.is_some() && self.config.is_none(),
        }
    }
}

/// A layer berth can unpack: a tar, plain, gzip or zstd (docker's are always gzip).
pub(super) fn is_layer_type(media_type: &str) -> bool {
    let oci = ["application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.nondistributable.v1.tar"];
    oci.iter().any(|base| media_type.strip_prefix(base).is_some_and(|rest| matches!(rest, "" | "+gzip" | "+zstd")))
        || matches!(
            media_type,
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
                | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_are_told_from_manifests() {
        let parse = |json: &str| serde_json::from_str::<Manifest>(json).unwrap();
        assert!(parse(&format!(r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[]}}"#)).is_index());
        assert!(parse(r#"{"schemaVersion":2,"manifests":[]}"#).is_index(), "an OCI index without mediaType");
        let d = Digest::of(b"");
        let image = parse(&format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{}","digest":"{d}","size":0}},"layers":[]}}"#,
            CONFIG_TYPES[0]
        ));
        assert!(!image.is_index());
        assert!(serde_json::from_str::<Manifest>(r#"{"layers":[{"digest":"sha512:00","size":1}]}"#).is_err());
    }

    #[test]
    fn layer_media_types() {
        for ok in [
            "application/vnd.oci.image.layer.v1.tar",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.oci.image.layer.v1.tar+zstd",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        ] {
            assert!(is_layer_type(ok), "{ok}");
        }
        for bad in [
            "application/vnd.oci.image.layer.v1.tar+encrypted",
            "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
            "",
        ] {
            assert!(!is_layer_type(bad), "{bad}");
        }
    }
}
