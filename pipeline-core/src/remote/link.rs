//! One process's connection to NATS, opened by the first edge that needs it: the client,
//! the pipeline's stream with this run's epoch, and how long every operation on them is
//! retried through an outage before the process gives up.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, Context, stream};
use futures::{StreamExt, TryStreamExt};
use tokio::sync::OnceCell;

use super::plan::{Plan, Security};
use crate::control::Control;
use crate::ledger::Ledger;
use crate::lineage::Lineage;

/// How long a run's items, markers and records stay in the stream.
pub(super) const KEEP: Duration = Duration::from_secs(24 * 3600);
/// How long one try of an operation on the server may take.
const ATTEMPT_AT_MOST: Duration = Duration::from_secs(10);

pub(crate) struct Link {
    url: String,
    security: Security,
    pub stream: String,
    pub(super) subjects: String,
    /// `pipeline.<name>.<run>`: every stored subject of this run starts with it.
    pub(super) run_prefix: String,
    /// The same for at-most-once edges, outside the stream's subjects so nothing stores them.
    live_prefix: String,
    pub pipeline: &'static str,
    pub run: String,
    pub instance: String,
    pub ack_wait: Duration,
    pub retry_for: Duration,
    /// Set on the stream when this process creates it.
    pub(super) duplicate_window: Duration,
    client: OnceCell<async_nats::Client>,
    pub(super) stored: OnceCell<Stored>,
    pub ledger: Arc<Ledger>,
    /// Stateless stages hosted here fed only from other processes, with their inputs.
    replaceable: std::sync::OnceLock<Vec<(String, usize)>>,
    /// How each edge into a node here ended (see `input_ended`).
    inputs_ended: std::sync::Mutex<std::collections::HashMap<String, Vec<bool>>>,
    input_ended: tokio::sync::Notify,
    /// Set when another live process has this process's instance name.
    twin: Arc<std::sync::OnceLock<String>>,
    /// Set when an edge into this process stopped before its input ended (a graceful stop):
    /// this process's part is then not done, and it must not say it is.
    interrupted: AtomicBool,
}

/// The stream, and where this run's epoch keeps its subjects in it.
pub(crate) struct Stored {
    pub context: Context,
    pub stream: stream::Stream,
    pub epoch: u64,
    /// `pipeline.<name>.<run>.e<epoch>`.
    pub(super) prefix: String,
    /// `<run>.e<epoch>`: message ids and consumer names start with it.
    pub(super) tag: String,
}

impl Stored {
    /// A subject of edge `from => to` in this epoch.
    pub(crate) fn subject(&self, from: &str, to: &str, what: &str) -> String {
        format!("{}.{from}.{to}.{what}", self.prefix)
    }

    /// A subject of this epoch not tied to an edge.
    pub(crate) fn run_subject(&self, what: &str) -> String {
        format!("{}.{what}", self.prefix)
    }

    /// The message id of an item on edge `from => to`: the same however often it is
    /// published, so the stream stores it once.
    pub(crate) fn item_id(&self, from: &str, to: &str, lineage: Lineage) -> String {
        format!(
            "{}.{from}.{to}.{}.{}",
            self.tag,
            lineage.root_index(),
            lineage.path()
        )
    }

    pub(crate) fn marker_id(&self, from: &str, to: &str, instance: &str) -> String {
        format!("{}.{from}.{to}.end.{instance}", self.tag)
    }

    /// The durable consumer of edge `from => to` in this epoch.
    pub(crate) fn consumer(&self, from: &str, to: &str) -> String {
        format!("{}-{from}-{to}", self.tag.replace('.', "-"))
    }
}

impl Link {
    pub(crate) fn new(pipeline: &'static str, plan: &Plan) -> Self {
        let run = &plan.run;
        Link {
            url: plan.url.clone(),
            security: plan.security.clone(),
            stream: format!("PIPELINE_{pipeline}"),
            subjects: format!("pipeline.{pipeline}.>"),
            run_prefix: format!("pipeline.{pipeline}.{run}"),
            live_prefix: format!("pipeline-live.{pipeline}.{run}"),
            pipeline,
            run: run.clone(),
            instance: plan.instance.clone(),
            ack_wait: plan.ack_wait,
            retry_for: plan.retry_for,
            duplicate_window: plan.duplicate_window,
            client: OnceCell::new(),
            stored: OnceCell::new(),
            ledger: Arc::default(),
            interrupted: AtomicBool::new(false),
            twin: Arc::default(),
            replaceable: std::sync::OnceLock::new(),
            inputs_ended: std::sync::Mutex::default(),
            input_ended: tokio::sync::Notify::new(),
        }
    }

    /// The server's address as it may be printed: without a password or token.
    pub(crate) fn shown_url(&self) -> String {
        redact(&self.url)
    }

    pub(crate) async fn client(&self) -> Result<&async_nats::Client, String> {
        self.client
            .get_or_try_init(|| async {
                let (credentials, address) = credentials(&self.url)?;
                let started = Instant::now();
                let mut backoff = Duration::from_millis(50);
                loop {
                    let options = self.options(&credentials).await?;
                    match options.connect(address.as_str()).await {
                        Ok(client) => {
                            self.claim_instance(&client).await?;
                            return Ok(client);
                        }
                        Err(e) if started.elapsed() < self.retry_for => {
                            tracing::warn!(url = %self.shown_url(), error = %e, "cannot connect to NATS yet; retrying");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(2));
                        }
                        Err(e) => {
                            return Err(format!(
                                "cannot connect to NATS at {} (tried for {:.0?}): {e}",
                                self.shown_url(),
                                started.elapsed()
                            ));
                        }
                    }
                }
            })
            .await
    }

    /// The client's options: credentials from the URL, TLS and keys from the plan.
    async fn options(
        &self,
        credentials: &Credentials,
    ) -> Result<async_nats::ConnectOptions, String> {
        let security = &self.security;
        let readable = |path: &std::path::Path, what: &str| match std::fs::metadata(path) {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("cannot read {what} `{}`: {e}", path.display())),
        };
        let mut options = credentials.options();
        if let Some(ca) = &security.ca {
            readable(ca, "the CA file (PIPELINE_NATS_CA)")?;
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let Some((certificate, key)) = &security.client_certificate {
            readable(certificate, "the client certificate (PIPELINE_NATS_CERT)")?;
            readable(key, "the client key (PIPELINE_NATS_KEY)")?;
            options = options.add_client_certificate(certificate.clone(), key.clone());
        }
        if let Some(creds) = &security.creds {
            options = options.credentials_file(creds).await.map_err(|e| {
                format!(
                    "cannot use the credentials file `{}` (PIPELINE_NATS_CREDS): {e}",
                    creds.display()
                )
            })?;
        }
        if let Some(nkey) = &security.nkey {
            let seed = std::fs::read_to_string(nkey).map_err(|e| {
                format!(
                    "cannot read the NKey seed file `{}` (PIPELINE_NATS_NKEY): {e}",
                    nkey.display()
                )
            })?;
            options = options.nkey(seed.trim().to_string());
        }
        Ok(options)
    }

    /// Makes sure no other live process of this run has this process's instance name
    /// (their end markers and records would overwrite each other's), and answers for the
    /// name from now on. A dead process answers nothing, so a replacement under the same
    /// name is welcome.
    async fn claim_instance(&self, client: &async_nats::Client) -> Result<(), String> {
        let subject = self.instance_subject(&self.instance);
        let me = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let failed = |e: &dyn Display| format!("cannot claim the instance name: {e}");
        let mut claims = client
            .subscribe(subject.clone())
            .await
            .map_err(|e| failed(&e))?;
        let inbox = client.new_inbox();
        let mut answers = client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| failed(&e))?;
        client
            .publish_with_reply(subject.clone(), inbox, me.clone().into())
            .await
            .map_err(|e| failed(&e))?;
        client.flush().await.map_err(|e| failed(&e))?;
        // Answer every claim, this one included, for as long as the process runs.
        let answering = client.clone();
        let mine = me.clone();
        tokio::spawn(async move {
            while let Some(claim) = claims.next().await {
                if let Some(reply) = claim.reply {
                    let _ = answering.publish(reply, mine.clone().into()).await;
                }
            }
        });
        // Another process answers about as fast as this one: listen until this one's
        // answer came, and a little more, without holding up the start.
        let twin = self.twin.clone();
        let (run, instance) = (self.run.clone(), self.instance.clone());
        tokio::spawn(async move {
            let mut heard_myself = false;
            let deadline = tokio::time::sleep(Duration::from_secs(2));
            tokio::pin!(deadline);
            loop {
                let wait = if heard_myself {
                    Duration::from_millis(100)
                } else {
                    Duration::from_secs(2)
                };
                tokio::select! {
                    answer = answers.next() => match answer {
                        Some(answer) if answer.payload.as_ref() == me.as_bytes() => heard_myself = true,
                        Some(answer) if answer.status.is_some() => {}
                        Some(_) => {
                            let _ = twin.set(format!(
                                "another live process of run `{run}` already has the instance name `{instance}`: give each process its own (PIPELINE_INSTANCE)"
                            ));
                            return;
                        }
                        None => return,
                    },
                    () = tokio::time::sleep(wait) => return,
                    () = &mut deadline => return,
                }
            }
        });
        Ok(())
    }

    /// Err once another live process was found to have this process's instance name.
    pub(crate) fn no_twin(&self) -> Result<(), String> {
        match self.twin.get() {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }

    /// The stateless stages hosted here fed only from other processes, with how many
    /// inputs each has.
    pub(crate) fn set_replaceable(&self, nodes: Vec<(String, usize)>) {
        let _ = self.replaceable.set(nodes);
    }

    /// An edge into `to` ended here; `settled`: its consumer then had nothing left to
    /// deliver and nothing unacknowledged anywhere.
    pub(crate) fn input_ended(&self, to: &str, settled: bool) {
        self.inputs_ended
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(to.to_string())
            .or_default()
            .push(settled);
        self.input_ended.notify_waiters();
    }

    /// Whether this copy of `node` ending ends the node's whole work: it is a stateless
    /// stage fed only from other processes, and when each of its inputs ended here, every
    /// item on it was acknowledged, by whichever copy, so every copy's outputs are stored.
    /// (A copy that died for good then holds nothing the others wait for.) Waits for the
    /// inputs to say how they ended; false if the run fails meanwhile, or if they take
    /// long (an input may wait for everything here to end, this edge too): then the
    /// receivers wait for every copy's marker, as for any node.
    pub(crate) async fn ends_whole_node(&self, node: &str, control: &Control) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        let Some(&(_, inputs)) = self
            .replaceable
            .get()
            .and_then(|nodes| nodes.iter().find(|(n, _)| n == node))
        else {
            return false;
        };
        loop {
            let notified = self.input_ended.notified();
            {
                let ended = self.inputs_ended.lock().unwrap_or_else(|e| e.into_inner());
                let of_node = ended.get(node).map_or(&[][..], Vec::as_slice);
                if of_node.len() >= inputs {
                    return of_node.iter().all(|&settled| settled);
                }
            }
            if control.is_failing() || Instant::now() > deadline {
                return false;
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        }
    }

    /// An edge into this process stopped before its input ended.
    pub(crate) fn interrupted(&self) {
        self.interrupted.store(true, Ordering::Release);
    }

    /// Whether this process may end its output edges and call its part done: no edge into
    /// it was cut short.
    pub(crate) fn may_end(&self) -> bool {
        !self.interrupted.load(Ordering::Acquire)
    }

    /// The stream and epoch, if an edge of this process opened them.
    pub(crate) fn opened(&self) -> Option<&Stored> {
        self.stored.get()
    }

    /// The subject holding this run's epoch record.
    pub(crate) fn epoch_subject(&self) -> String {
        format!("{}.epoch", self.run_prefix)
    }

    /// Where the live process named `instance` answers (see `claim_instance`).
    pub(crate) fn instance_subject(&self, instance: &str) -> String {
        format!("{}.instance.{instance}", self.live_prefix)
    }

    /// An at-most-once subject of edge `from => to`.
    pub(crate) fn live_subject(&self, from: &str, to: &str, what: &str) -> String {
        format!("{}.{from}.{to}.{what}", self.live_prefix)
    }

    /// The stream's subjects matching `filter` (a wildcard), with how many messages each
    /// holds, riding through an outage.
    pub(crate) async fn subjects(
        &self,
        stored: &Stored,
        control: &Control,
        what: &str,
        filter: &str,
    ) -> Result<Vec<(String, usize)>, String> {
        self.ride_through(control, what, || async {
            stored
                .stream
                .info_with_subjects(filter)
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await
    }

    /// The last message stored on `subject`, if any, riding through an outage. Read with a
    /// direct get; a stream made before direct gets were allowed answers the usual way.
    pub(crate) async fn last_message(
        &self,
        stream: &stream::Stream,
        control: &Control,
        what: &str,
        subject: &str,
    ) -> Result<Option<jetstream::message::StreamMessage>, String> {
        use async_nats::jetstream::stream::{DirectGetErrorKind, LastRawMessageErrorKind};
        let direct = stream.cached_info().config.allow_direct;
        self.ride_through(control, what, || async {
            if direct {
                match stream.direct_get_last_for_subject(subject).await {
                    Ok(message) => return Ok(Some(message)),
                    Err(e) if e.kind() == DirectGetErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e.to_string()),
                }
            }
            match stream.get_last_raw_message_by_subject(subject).await {
                Ok(message) => Ok(Some(message)),
                Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        })
        .await
    }

    /// Runs `attempt` until it succeeds; through an outage (a paused, restarting or
    /// unreachable server), again with backoff until errors have lasted `retry_for`. A
    /// failing run stops retrying at once: nothing it does now can count.
    pub(crate) async fn ride_through<T, E, F, Fut>(
        &self,
        control: &Control,
        what: &str,
        mut attempt: F,
    ) -> Result<T, String>
    where
        E: Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(20);
        let mut warned = false;
        loop {
            // An operation may also just wait (the client queues what it cannot send while
            // it reconnects): that counts as a failed try.
            let tried = match tokio::time::timeout(ATTEMPT_AT_MOST, attempt()).await {
                Ok(result) => result.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer within {ATTEMPT_AT_MOST:?}")),
            };
            match tried {
                Ok(value) => {
                    if warned {
                        tracing::info!(what, after = ?started.elapsed(), "NATS answers again");
                    }
                    return Ok(value);
                }
                Err(e) => {
                    if control.is_failing() || started.elapsed() >= self.retry_for {
                        return Err(format!(
                            "{what} failed: {e} (tried for {:.1?})",
                            started.elapsed()
                        ));
                    }
                    if !warned {
                        warned = true;
                        tracing::warn!(what, error = %e, "NATS does not answer; retrying");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
}

/// What a process shows the server to be let in.
#[derive(Debug, PartialEq, Eq)]
enum Credentials {
    None,
    UserAndPassword(String, String),
    Token(String),
}

impl Credentials {
    fn options(&self) -> async_nats::ConnectOptions {
        // Reconnects without end: how long an outage is ridden through is `retry_for`'s
        // business, per operation.
        let options = async_nats::ConnectOptions::new().max_reconnects(None);
        match self {
            Credentials::None => options,
            Credentials::UserAndPassword(user, password) => {
                options.user_and_password(user.clone(), password.clone())
            }
            Credentials::Token(token) => options.token(token.clone()),
        }
    }
}

/// The credentials written in `url` (`nats://user:pass@host`, `nats://token@host`), and
/// the address to connect to, without them.
fn credentials(url: &str) -> Result<(Credentials, String), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Ok((Credentials::None, url.to_string()));
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return Ok((Credentials::None, url.to_string()));
    };
    let address = format!("{scheme}://{host}");
    let decode = |s: &str| {
        percent_decode(s).ok_or_else(|| {
            format!(
                "the NATS URL {} has a malformed %-escape in its credentials",
                redact(url)
            )
        })
    };
    let credentials = match userinfo.split_once(':') {
        Some((user, password)) => Credentials::UserAndPassword(decode(user)?, decode(password)?),
        None => Credentials::Token(decode(userinfo)?),
    };
    Ok((credentials, address))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `url` with any credentials in it replaced by `***`, for errors and logs.
pub(crate) fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_string(),
        },
        None => match url.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => url.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show() {
        assert_eq!(
            redact("nats://alice:s3cret@10.0.0.1:4222"),
            "nats://***@10.0.0.1:4222"
        );
        assert_eq!(redact("tls://tok3n@host:4222"), "tls://***@host:4222");
        assert_eq!(redact("nats://host:4222"), "nats://host:4222");
        assert_eq!(redact("user:pw@host:4222"), "***@host:4222");
    }

    #[test]
    fn credentials_leave_the_address() {
        let (given, address) = credentials("nats://alice:p%40ss@127.0.0.1:4222").unwrap();
        assert_eq!(address, "nats://127.0.0.1:4222");
        assert_eq!(
            given,
            Credentials::UserAndPassword("alice".into(), "p@ss".into())
        );
        let (given, _) = credentials("nats://t0ken@h:1").unwrap();
        assert_eq!(given, Credentials::Token("t0ken".into()));
        let bad = credentials("nats://alice:p%4@127.0.0.1:4222").unwrap_err();
        assert!(!bad.contains("alice"), "{bad}");
    }
}
