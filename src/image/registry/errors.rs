//! Turning oci-client's errors into what a user needs to read: which kind of failure it was.

use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};

/// What kind of failure an oci-client error is, and its details.
pub(super) fn classify(e: &OciDistributionError) -> (&'static str, String) {
    match e {
        OciDistributionError::UnauthorizedError { .. } => ("unauthorized", "authentication required".to_owned()),
        OciDistributionError::AuthenticationFailure(why) => ("unauthorized", shorten(why)),
        OciDistributionError::RegistryError { envelope, .. } => {
            let class = match envelope.errors.first().map(|e| &e.code) {
                Some(
                    OciErrorCode::ManifestUnknown
                    | OciErrorCode::NameUnknown
                    | OciErrorCode::BlobUnknown
                    | OciErrorCode::NotFound,
                ) => "not found",
                Some(OciErrorCode::Unauthorized | OciErrorCode::Denied) => "unauthorized",
                Some(OciErrorCode::Toomanyrequests) => "too many requests",
                _ => "registry error",
            };
            let messages: Vec<&str> = envelope.errors.iter().map(|e| e.message.as_str()).collect();
            (class, messages.join("; "))
        }
        OciDistributionError::ServerError { code, message, .. } => {
            let class = match code {
                404 => "not found",
                401 | 403 => "unauthorized",
                429 => "too many requests",
                _ => "registry error",
            };
            (class, format!("HTTP {code} {}", shorten(message)).trim_end().to_owned())
        }
        OciDistributionError::DigestError(d) => ("digest mismatch", d.to_string()),
        OciDistributionError::IoError(io) if io.get_ref().is_some_and(|i| i.is::<DigestError>()) => {
            ("digest mismatch", io.to_string())
        }
        OciDistributionError::RequestError(_) | OciDistributionError::IoError(_) => ("network error", chain(e)),
        other => ("registry error", chain(other)),
    }
}

fn shorten(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default().trim();
    match line.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_owned(),
    }
}

/// An error with its causes, skipping causes whose text the previous one already shows.
pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out = format!("{out}: {text}");
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use oci_client::errors::{OciEnvelope, OciError};

    use super::*;

    fn registry_error(code: OciErrorCode, message: &str) -> OciDistributionError {
        let error = OciError { code, message: message.to_owned(), detail: serde_json::Value::Null };
        OciDistributionError::RegistryError { envelope: OciEnvelope { errors: vec![error] }, url: "u".to_owned() }
    }

    #[test]
    fn failures_are_classified() {
        assert_eq!(classify(&registry_error(OciErrorCode::ManifestUnknown, "manifest unknown")).0, "not found");
        assert_eq!(classify(&registry_error(OciErrorCode::Denied, "no")).0, "unauthorized");
        let unauthorized = OciDistributionError::UnauthorizedError { url: "u".to_owned() };
        assert_eq!(classify(&unauthorized).0, "unauthorized");
        let server =
            OciDistributionError::ServerError { code: 404, url: "u".to_owned(), message: "gone\nmore".to_owned() };
        assert_eq!(classify(&server), ("not found", "HTTP 404 gone".to_owned()));
        let digest = std::io::Error::other(DigestError::VerificationError { expected: "a".into(), actual: "b".into() });
        assert_eq!(classify(&OciDistributionError::IoError(digest)).0, "digest mismatch");
        let broken = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(classify(&OciDistributionError::IoError(broken)).0, "network error");
    }
}
