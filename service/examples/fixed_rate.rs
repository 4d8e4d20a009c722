//! An open-loop HTTP load for `bench/service-cost.sh` (`RATE=`): `GET <url>` at a fixed rate
//! for a fixed time, each request sent when it is due whether or not the earlier ones were
//! answered. Under wrk's closed loop a slower answer also changes how the kernel batches the
//! next requests, which shows up as the service's kernel time; at a fixed rate the service's
//! CPU per request is its own. Prints `<answered> <answered per second>`.
//!
//! Usage: `fixed_rate <url> <requests/s> <seconds>`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, rate, seconds] = args.as_slice() else {
        eprintln!("usage: fixed_rate <url> <requests/s> <seconds>");
        std::process::exit(2);
    };
    let rate: f64 = rate.parse().expect("requests/s");
    let seconds: f64 = seconds.parse().expect("seconds");
    let client = reqwest::Client::new();
    let answered = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    let total = (rate * seconds) as u64;
    for k in 0..total {
        tokio::time::sleep_until(started + Duration::from_secs_f64(k as f64 / rate)).await;
        let (client, url, answered) = (client.clone(), url.clone(), answered.clone());
        tasks.spawn(async move {
            if let Ok(response) = client.get(&url).send().await
                && response.status().is_success()
                && response.bytes().await.is_ok()
            {
                answered.fetch_add(1, Ordering::Relaxed);
            }
        });
        // Reap finished requests as we go, so that the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let n = answered.load(Ordering::Relaxed);
    println!("{n} {:.0}", n as f64 / started.elapsed().as_secs_f64());
}
