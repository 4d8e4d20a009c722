//! A plain blocking HTTP GET for tests and readiness waits.

use std::time::Duration;

/// `GET url` with a 5 s timeout: `(status, body)`, or why nothing answered.
pub fn get(url: &str) -> Result<(u16, String), String> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let response = client.get(url).send().map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.text().map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// The status of `GET url`, or 0 when nothing answered.
pub fn status(url: &str) -> u16 {
    get(url).map_or(0, |(status, _)| status)
}
