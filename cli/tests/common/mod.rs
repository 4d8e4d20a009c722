//! What the CLI's tests share: the binary with AWS isolated from this machine's, and an output
//! read as text.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the rig"
)]

use std::process::{Command, Output};

/// `tracedapp <args>` with AWS isolated from the machine running the tests: the keys `testing`
/// (a test's own `.envs(...)` set afterwards win), no profile, no config or credentials file,
/// no instance metadata.
pub fn tracedapp_aws(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tracedapp"));
    cmd.args(args)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env_remove("AWS_PROFILE");
    cmd
}

/// `(exit code, stdout, stderr)`.
pub fn text(o: &Output) -> (Option<i32>, String, String) {
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}
