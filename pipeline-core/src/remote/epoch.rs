//! Which epoch of a named run a process joins, so that running a pipeline again under the
//! same run name never meets the last run's items, markers, consumers or message ids.
//!
//! The stream keeps one record per run name, on `pipeline.<name>.<run>.epoch`: `open N`
//! while epoch N runs, `closed N` once every process of it has finished. A process joins
//! the open epoch, or opens the next one after a closed one; a run that failed (still open)
//! is resumed by whatever starts under its name. Records change only through the stream's
//! compare-and-set on the subject's last sequence, so processes starting together agree.
//! Every subject, consumer and message id of a run carries its epoch (`e<N>`).
//!
//! A process that finished its part writes `done.<instance>` (the nodes it hosts) in the
//! epoch; the one that finds every node done by as many processes as the plan gives it
//! (`replicas`) closes the epoch.

use std::collections::HashMap;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, stream, stream::Stream};

use super::link::{KEEP, Link, Stored};
use crate::control::Control;

#[derive(Debug, PartialEq, Eq)]
enum Record {
    Open(u64),
    Closed(u64),
}

impl Link {
    /// The stream (created if it was not there yet) and this run's epoch (see `epoch`).
    pub(crate) async fn stored(&self, control: &Control) -> Result<&Stored, String> {
        let client = self.client().await?;
        self.stored
            .get_or_try_init(|| async {
                let context = jetstream::new(client.clone());
                let config = stream::Config {
                    name: self.stream.clone(),
                    subjects: vec![self.subjects.clone()],
                    // Runs leave their items behind for a day, to look into.
                    max_age: KEEP,
                    duplicate_window: self.duplicate_window,
                    // Last messages by subject (epoch, markers, done records) are read with
                    // direct gets: nats-server 2.9's message-get request can crash it.
                    allow_direct: true,
                    ..Default::default()
                };
                // Processes starting together race to create the stream: one creates it,
                // the others find it on a second try.
                let stream = self
                    .ride_through(control, "creating or opening the JetStream stream", || {
                        context.get_or_create_stream(config.clone())
                    })
                    .await
                    .map_err(|e| {
                        format!(
                            "{e}; stream `{}` at {} (is the server started with `-js`?)",
                            self.stream,
                            self.shown_url()
                        )
                    })?;
                let epoch = join(self, &context, &stream, control).await?;
                Ok(Stored {
                    context,
                    stream,
                    epoch,
                    prefix: format!("{}.e{epoch}", self.run_prefix),
                    tag: format!("{}.e{epoch}", self.run),
                })
            })
            .await
    }
}

fn parse(payload: &[u8]) -> Option<Record> {
    let text = std::str::from_utf8(payload).ok()?;
    let (state, epoch) = text.trim().split_once(' ')?;
    let epoch = epoch.parse().ok()?;
    match state {
        "open" => Some(Record::Open(epoch)),
        "closed" => Some(Record::Closed(epoch)),
        _ => None,
    }
}

/// The run's record and its sequence on the subject, if there is one.
async fn last_record(
    link: &Link,
    stream: &Stream,
    control: &Control,
) -> Result<Option<(Record, u64)>, String> {
    let subject = link.epoch_subject();
    let last = link
        .last_message(stream, control, "reading the run's epoch", &subject)
        .await?;
    let Some(message) = last else {
        return Ok(None);
    };
    match parse(&message.payload) {
        Some(record) => Ok(Some((record, message.sequence))),
        None => Err(format!(
            "the record on `{subject}` ({:?}) was not written by this library: someone else publishes on the pipeline's subjects",
            String::from_utf8_lossy(&message.payload)
        )),
    }
}

/// Writes `record` if the subject's last sequence is still `after` (0: no record yet);
/// false if another process wrote first.
async fn replace(
    link: &Link,
    context: &async_nats::jetstream::Context,
    control: &Control,
    record: &str,
    after: u64,
) -> Result<bool, String> {
    let subject = link.epoch_subject();
    let message = PublishMessage::build()
        .payload(record.to_string().into())
        .expected_last_subject_sequence(after);
    link.ride_through(control, "writing the run's epoch", || async {
        match context
            .send_publish(subject.clone(), message.clone())
            .await?
            .await
        {
            Ok(_) => Ok(true),
            // Another process wrote first (or an earlier try of this one did).
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(false),
            Err(e) => Err(e),
        }
    })
    .await
}

/// The epoch this process takes part in (see the module's documentation).
pub(crate) async fn join(
    link: &Link,
    context: &async_nats::jetstream::Context,
    stream: &Stream,
    control: &Control,
) -> Result<u64, String> {
    loop {
        let (next, after) = match last_record(link, stream, control).await? {
            Some((Record::Open(epoch), _)) => return Ok(epoch),
            Some((Record::Closed(epoch), sequence)) => (epoch + 1, sequence),
            None => (1, 0),
        };
        if replace(link, context, control, &format!("open {next}"), after).await? {
            tracing::info!(run = %link.run, epoch = next, "opened a new epoch of the run");
            return Ok(next);
        }
    }
}

/// Says that this process finished its part, and closes the epoch if every process has.
pub(crate) async fn finish(
    link: &Link,
    stored: &Stored,
    hosted: &[String],
    nodes: &[(String, usize)],
    control: &Control,
) -> Result<(), String> {
    link.no_twin()?;
    let done = stored.run_subject(&format!("done.{}", link.instance));
    let message = PublishMessage::build().payload(hosted.join(",").into());
    link.ride_through(control, "recording that this process is done", || async {
        stored
            .context
            .send_publish(done.clone(), message.clone())
            .await?
            .await
    })
    .await?;
    // Written before looking: of two processes finishing together, the later sees both.
    let every = stored.run_subject("done.*");
    let subjects = link
        .subjects(stored, control, "reading which processes are done", &every)
        .await?;
    let mut finished: HashMap<String, usize> = HashMap::new();
    for (subject, _) in subjects {
        let Some(record) = link
            .last_message(
                &stored.stream,
                control,
                "reading which processes are done",
                &subject,
            )
            .await?
        else {
            continue;
        };
        for node in String::from_utf8_lossy(&record.payload).split(',') {
            *finished.entry(node.to_string()).or_default() += 1;
        }
    }
    let all = nodes
        .iter()
        .all(|(node, replicas)| finished.get(node).copied().unwrap_or(0) >= *replicas);
    if !all {
        return Ok(());
    }
    if let Some((Record::Open(epoch), sequence)) =
        last_record(link, &stored.stream, control).await?
        && epoch == stored.epoch
    {
        // False: another process closed it first.
        replace(
            link,
            &stored.context,
            control,
            &format!("closed {epoch}"),
            sequence,
        )
        .await?;
        tracing::info!(run = %link.run, epoch, "every process is done: the run's epoch is closed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back() {
        assert_eq!(parse(b"open 3"), Some(Record::Open(3)));
        assert_eq!(parse(b"closed 12"), Some(Record::Closed(12)));
        assert_eq!(parse(b"closed"), None);
        assert_eq!(parse(b"shut 1"), None);
        assert_eq!(parse(b"\xff 1"), None);
    }
}
