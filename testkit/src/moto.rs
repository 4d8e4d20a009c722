//! The moto AWS API emulator (ECS, X-Ray, ...) on a free loopback port.

use std::process::Command;
use std::time::Duration;

use crate::process::{Process, TempDir, free_port, listening, wait_until};
use crate::tools;

/// A running moto server; stopped when dropped.
#[derive(Debug)]
pub struct Moto {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    _process: Process,
    _dir: TempDir,
}

impl Moto {
    pub fn start() -> Self {
        let dir = TempDir::new("moto");
        let port = free_port();
        let mut cmd = Command::new(tools::moto_server());
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        let process = Process::start("moto", cmd, dir.path().join("moto.log"));
        wait_until("moto to listen", Duration::from_secs(30), || {
            listening(port)
        });
        Self {
            url: format!("http://127.0.0.1:{port}"),
            _process: process,
            _dir: dir,
        }
    }
}
