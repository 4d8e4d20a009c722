//! A Lambda function under the AWS Lambda Runtime Interface Emulator (`aws-lambda-rie`, built
//! by `cargo xtask setup`): the real Runtime API the function polls, invoked over HTTP on
//! 127.0.0.1.
//!
//! The emulator runs in the mode that passes the caller's `X-Amzn-Trace-Id` on to the function
//! (its classic mode drops it); that mode runs only `/var/task/bootstrap`, so it runs in a
//! mount namespace of its own with a tmpfs on `/var` (root, as the rest of the rig).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::process::{Process, TempDir, free_port, listening, start_on_free_ports};
use crate::tools;

/// A function under the emulator; both stopped when dropped.
#[derive(Debug)]
pub struct Rie {
    /// The invoke URL (`POST` an event).
    pub invoke_url: String,
    process: Process,
    _dir: TempDir,
}

/// What an invocation answered.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub status: u16,
    pub body: Value,
    /// From the request to the whole answer.
    pub took: Duration,
}

impl Rie {
    /// Runs `bootstrap` under the emulator with exactly `env` (and `PATH`): nothing of the
    /// test runner's environment leaks into the function. `AWS_LAMBDA_FUNCTION_NAME` is
    /// `function` unless given.
    pub fn start(bootstrap: &Path, env: &[(&str, &str)]) -> Self {
        let dir = TempDir::new("lambda");
        let bootstrap = &std::fs::canonicalize(bootstrap)
            .unwrap_or_else(|e| panic!("{}: {e}", bootstrap.display()));
        let (process, port) = start_on_free_ports(
            "the Runtime Interface Emulator to listen",
            Duration::from_secs(30),
            || {
                let (port, api) = (free_port(), free_port());
                // In a mount namespace of its own, a tmpfs on /var holds the package at
                // /var/task (the only place this mode looks), and nothing of the host's /var
                // is touched.
                let mut cmd = Command::new("unshare");
                cmd.args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
                    .arg(
                        "mount -t tmpfs -o mode=0755,size=512m tracedapp-lambda /var && \
                         mkdir /var/task && cp \"$0\" /var/task/bootstrap && cd /var/task && \
                         exec \"$1\" \"$2\" \"$3\"",
                    )
                    .arg(bootstrap)
                    .arg(tools::lambda_rie())
                    .arg(format!(
                        "--runtime-interface-emulator-address=127.0.0.1:{port}"
                    ))
                    .arg(format!("--runtime-api-address=127.0.0.1:{api}"))
                    .current_dir(dir.path())
                    .env_clear()
                    .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                    .env("AWS_LAMBDA_FUNCTION_NAME", "function")
                    // The emulator's mode that hands the function the caller's X-Ray header
                    // (`Lambda-Runtime-Trace-Id`, passed through); one invocation at a time.
                    .env("AWS_LAMBDA_MAX_CONCURRENCY", "1")
                    .env("LOG_LEVEL", "warn");
                for (k, v) in env {
                    cmd.env(k, v);
                }
                let process = Process::start("aws-lambda-rie", cmd, dir.path().join("rie.log"));
                (process, port)
            },
            |port| listening(*port),
        );
        Self {
            invoke_url: format!(
                "http://127.0.0.1:{port}/2015-03-31/functions/function/invocations"
            ),
            process,
            _dir: dir,
        }
    }

    /// Invokes the function with `event`, with an `X-Amzn-Trace-Id` header when given (the
    /// emulator hands it to the function as Lambda does).
    pub fn invoke(&self, event: &Value, xray_header: Option<&str>) -> Invocation {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client");
        // With one runtime, an invocation sent before the function has asked for the next
        // one is refused ("no idle runtimes", 400); Lambda would route it, the emulator does
        // not: try again. `took` is the attempt that was answered.
        let give_up = Instant::now() + Duration::from_secs(10);
        let (status, text, took) = loop {
            let mut request = client.post(&self.invoke_url).json(event);
            if let Some(h) = xray_header {
                request = request.header("X-Amzn-Trace-Id", h);
            }
            let started = Instant::now();
            let response = request
                .send()
                .unwrap_or_else(|e| panic!("invoke: {e}\n{}", self.process.log_tail(30)));
            let status = response.status().as_u16();
            let text = response.text().unwrap_or_default();
            let took = started.elapsed();
            if status == 400 && Instant::now() < give_up {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            break (status, text, took);
        };
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Invocation { status, body, took }
    }

    /// The function's process (the emulator's child), once the first invocation started it.
    pub fn function_pid(&self) -> Option<u32> {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.process.pid())).ok()?;
        tasks.flatten().find_map(|task| {
            std::fs::read_to_string(task.path().join("children"))
                .ok()?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
    }

    /// The emulator's and the function's output so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}

/// Sends `signal` (`STOP`, `CONT`) to `pid`, one we started.
pub fn signal(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{signal} {pid}");
}
