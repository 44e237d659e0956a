//! A `nats-server -js` of a test's or benchmark's own, on a free loopback port, with a
//! temporary store; stopped, and its store removed, when dropped. The fault suite also
//! pauses, kills and restarts it (by its PID, on the same port and store).

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct NatsServer {
    process: Child,
    binary: &'static str,
    port: u16,
    /// Extra arguments (a configuration file, say) given at every start.
    extra: Vec<String>,
    pub url: String,
    pub dir: PathBuf,
}

impl NatsServer {
    /// Err says why, with how to install the server when it is missing.
    // The fault suite starts its servers with arguments.
    #[allow(dead_code)]
    pub fn start() -> Result<Self, String> {
        Self::start_with(&[])
    }

    /// With `extra` arguments, e.g. `["-c", "auth.conf"]`.
    pub fn start_with(extra: &[&str]) -> Result<Self, String> {
        let binary = [
            "nats-server",
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
        ]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok())
        .ok_or(
            "`nats-server` is not on the PATH: apt-get install nats-server (Debian/Ubuntu), \
                 or see https://nats.io",
        )?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let dir = std::env::temp_dir().join(format!("pipeline-nats-{}-{port}", std::process::id()));
        let extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        let process = spawn(binary, port, &dir, &extra)?;
        let mut server = NatsServer {
            process,
            binary,
            port,
            extra,
            url: format!("nats://127.0.0.1:{port}"),
            dir,
        };
        server.wait_listening()?;
        Ok(server)
    }

    fn wait_listening(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                let _ = self.process.kill();
                return Err(format!("nats-server did not listen on port {}", self.port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

fn spawn(
    binary: &str,
    port: u16,
    dir: &std::path::Path,
    extra: &[String],
) -> Result<Child, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("no directory for nats-server: {e}"))?;
    // Appended to across restarts: what the server said, for a test that fails.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .map_err(|e| format!("no log file for nats-server: {e}"))?;
    Command::new(binary)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.join("store"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("nats-server did not start: {e}"))
}

// Only the fault suite uses these.
#[allow(dead_code)]
impl NatsServer {
    /// The last lines the server logged.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Sends `signal` (`STOP`, `CONT`, `KILL`, `TERM`) to the server, by its PID.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.process.id().to_string()])
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill -s {signal} failed");
    }

    /// Waits for the server to exit (after `KILL` or `TERM`).
    pub fn wait_exit(&mut self) {
        let _ = self.process.wait();
    }

    /// Starts the server again on the same port and store.
    pub fn restart(&mut self) {
        self.process = spawn(self.binary, self.port, &self.dir, &self.extra).unwrap();
        self.wait_listening().unwrap();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until the consumer `consumer` of `stream` has acknowledged `n` messages (the run is
/// flowing, with items in flight): a fault struck then hits a process holding items, not
/// one that has not begun or has already finished, whatever the machine's load.
#[allow(dead_code)]
pub fn wait_for_acks(url: &str, stream: &str, consumer: &str, n: u64) {
    use pipeline::remote::async_nats;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(stream) = js.get_stream(stream).await
                && let Ok(mut consumer) = stream
                    .get_consumer::<async_nats::jetstream::consumer::pull::Config>(consumer)
                    .await
                && let Ok(info) = consumer.info().await
                && info.ack_floor.consumer_sequence >= n
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nothing flowed on `{consumer}` in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
}
