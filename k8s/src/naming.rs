//! Every generated object and volume name, in one place. Names are valid DNS labels (at most
//! 63 characters, lowercase alphanumerics and '-'): a name that would be longer is cut and
//! given a hash suffix, so two long names that share a prefix still differ. (A TracedApp's own
//! name is already a DNS label; the cut matters for names built from it.)

use kube::ResourceExt;
use tracedapp_api::TracedApp;
use tracedapp_api::hash::short_hash;

pub use tracedapp_api::sidecar::{APP_CONTAINER, COLLECTOR_CONTAINER, TMP_VOLUME};

/// Longest DNS label.
pub const MAX: usize = 63;

/// The pod volume holding the collector's configuration (from its ConfigMap).
pub const CONFIG_VOLUME: &str = "collector-config";

/// `name` itself if it fits, else its first characters, '-', and a 10-hex-digit hash of it.
pub fn fit(name: &str) -> String {
    if name.len() <= MAX {
        return name.to_owned();
    }
    let hash = short_hash(name);
    let keep = MAX - hash.len() - 1;
    let prefix = name[..keep].trim_end_matches('-');
    format!("{prefix}-{hash}")
}

/// The Deployment, Service and ServiceAccount: the TracedApp's own name.
pub fn workload(app: &TracedApp) -> String {
    fit(&app.name_any())
}

/// The value of the owner label on every child (and the selector's): the workload's name, so
/// that a label names the app exactly as the objects do.
pub fn owner_label_value(app: &TracedApp) -> String {
    workload(app)
}

/// The ConfigMap holding the collector configuration whose short hash is `config_hash`.
/// The hash always survives truncation: it is what makes a config change a new object.
pub fn collector_config_map(app: &TracedApp, config_hash: &str) -> String {
    config_map_for(&app.name_any(), config_hash)
}

fn config_map_for(app: &str, config_hash: &str) -> String {
    let suffix = format!("-collector-{config_hash}");
    let base = fit(app);
    let keep = MAX.saturating_sub(suffix.len()).min(base.len());
    format!("{}{suffix}", base[..keep].trim_end_matches('-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracedapp_api::validate::is_dns_label;

    #[test]
    fn short_names_are_kept() {
        assert_eq!(fit("shop"), "shop");
        assert_eq!(
            config_map_for("shop", "0123456789"),
            "shop-collector-0123456789"
        );
    }

    #[test]
    fn long_names_are_cut_with_a_hash_and_stay_distinct() {
        let a = "a".repeat(60) + "-one";
        let b = "a".repeat(60) + "-two";
        let (fa, fb) = (fit(&a), fit(&b));
        assert_eq!(fa.len(), MAX);
        assert_ne!(fa, fb);
        assert!(is_dns_label(&fa) && is_dns_label(&fb));
        let cm = config_map_for(&a, "0123456789");
        assert!(
            cm.len() <= MAX && cm.ends_with("-collector-0123456789") && is_dns_label(&cm),
            "{cm}"
        );
    }

    #[test]
    fn cutting_never_leaves_a_trailing_dash() {
        let name = format!("{}-{}", "b".repeat(51), "c".repeat(20));
        let f = fit(&name);
        assert!(is_dns_label(&f), "{f}");
        let cm = config_map_for(&"d-".repeat(30), "0123456789");
        assert!(is_dns_label(&cm), "{cm}");
    }
}
