//! The short hashes names are made of (a leaf: the renderer and the Kubernetes names both use
//! it).

use sha2::{Digest, Sha256};

/// First 10 hex digits of the SHA-256 of `text`: names ConfigMaps and rolls pods on change.
pub fn short_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(5).map(|b| format!("{b:02x}")).collect()
}
