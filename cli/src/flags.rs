//! Flags and variables are input too: each is checked like the spec field it stands for, and
//! a bad one stops the command with exit 2 and the fix (clap prints the message after
//! `invalid value '…' for '--flag'`).

/// `--region`: an AWS region, as `spec.ecs.region` must be.
pub fn region(s: &str) -> Result<String, String> {
    if tracedapp_api::spec::is_aws_region(s) {
        Ok(s.to_owned())
    } else {
        Err("not an AWS region; give one like eu-west-1".to_owned())
    }
}

/// `--operator-namespace`: a namespace name, as `metadata.namespace` must be.
pub fn namespace(s: &str) -> Result<String, String> {
    if tracedapp_api::rules::is_dns_label(s) {
        Ok(s.to_owned())
    } else {
        Err(
            "not a namespace name; use lowercase letters, digits and '-' (at most 63), \
             like tracedapp-system"
                .to_owned(),
        )
    }
}

/// `--collector-image`: an image reference, as `spec.collector.image` must be.
pub fn collector_image(s: &str) -> Result<String, String> {
    tracedapp_api::validate::collector_image(s).map(|()| s.to_owned())
}

/// A URL the CLI calls (`--jaeger`/`JAEGER_URL`, endpoint overrides): `http://` or
/// `https://` and a host.
pub fn http_url(s: &str) -> Result<String, String> {
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(format!("not a URL; add http://, like http://{s}"));
    };
    if !matches!(scheme, "http" | "https") {
        return Err(format!("the scheme must be http or https, not {scheme:?}"));
    }
    match reqwest::Url::parse(s) {
        Ok(url) if url.host_str().is_some_and(|h| !h.is_empty()) && !rest.is_empty() => {
            Ok(s.to_owned())
        }
        Ok(_) => Err("the URL has no host; like http://localhost:16686".to_owned()),
        Err(e) => Err(format!(
            "not a valid URL ({e}); like http://localhost:16686"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_flag_says_its_fix() {
        assert!(region("eu-west-1").is_ok());
        assert!(
            region("not a region!")
                .unwrap_err()
                .contains("like eu-west-1")
        );
        assert!(namespace("tracedapp-system").is_ok());
        assert!(namespace("Bad NS!").unwrap_err().contains("lowercase"));
        assert!(http_url("http://localhost:16686").is_ok());
        assert!(http_url("https://xray.eu-west-1.amazonaws.com").is_ok());
        assert_eq!(
            http_url("localhost:16686").unwrap_err(),
            "not a URL; add http://, like http://localhost:16686"
        );
        assert!(http_url("ftp://x").unwrap_err().contains("http or https"));
        assert!(http_url("http://").is_err());
    }
}
